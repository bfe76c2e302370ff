//! The adapter's own behaviour against a real `redis-server`: EVALSHA with the
//! NOSCRIPT fallback, custom scripts, reply and error mapping, laziness, fast
//! failure of a dead node, reconnection after a restart, calls dropped in
//! flight, and the same under smol. The algorithm's behaviour is covered by the
//! conformance suite (tests/conformance*.rs).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redlock_core::{ErrorKind, LockBackend, Redlock, Reply, Request, Script, Scripts};
use redlock_redis_rs::{redis, RedisBackend};

/// A redis-server this test owns, on a free loopback port, killed on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = free_port();
        let mut server = Server {
            child: None,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// A port with nothing listening on it.
    fn nothing_at() -> u16 {
        free_port()
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--enable-debug-command", "yes"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on {} did not start", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain synchronous connection for assertions.
    fn cli(&self) -> redis::Connection {
        let url = match self.extra.iter().position(|a| a == "--requirepass") {
            Some(i) => format!("redis://:{}@127.0.0.1:{}", self.extra[i + 1], self.port),
            None => self.url(),
        };
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs a test body: on a two-worker tokio runtime when redis-rs is built with
/// tokio, and on smol otherwise (`--no-default-features --features smol`).
#[cfg(feature = "tokio")]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

#[cfg(not(feature = "tokio"))]
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    smol::block_on(future)
}

/// A runtime-neutral sleep (smol's async-io timer works under any executor).
async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

/// `Err(())` if `future` did not finish within `d`; the future is dropped.
async fn timeout<F: std::future::Future>(d: Duration, future: F) -> Result<F::Output, ()> {
    use futures::future::{select, Either};
    match select(Box::pin(future), Box::pin(sleep(d))).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(_) => Err(()),
    }
}

async fn connect_all(servers: &[Server]) -> Vec<RedisBackend> {
    let mut backends = Vec::new();
    for server in servers {
        backends.push(RedisBackend::connect(server.url()).await.expect("connect"));
    }
    backends
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).expect("PTTL")
}

fn calls(con: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn scripts_round_trip(backend: &RedisBackend<ConnectionManager>, server: &Server) {
    let scripts = Scripts::default();
    let res = keys(&["{t}a", "{t}b"]);
    let mut cli = server.cli();

    let req = Request::new(&res, "v1", Duration::from_secs(10), scripts.acquire());
    assert_eq!(
        backend.acquire(&req).await.expect("acquire"),
        Reply::applied(2)
    );
    assert_eq!(get(&mut cli, "{t}a").as_deref(), Some("v1"));
    assert!((9_000..=10_000).contains(&pttl(&mut cli, "{t}b")));

    // Someone else cannot take it.
    let other = Request::new(&res, "v2", Duration::from_secs(10), scripts.acquire());
    assert_eq!(
        backend.acquire(&other).await.expect("acquire"),
        Reply::applied(0)
    );

    let longer = Request::new(&res, "v1", Duration::from_secs(30), scripts.extend());
    assert_eq!(
        backend.extend(&longer).await.expect("extend"),
        Reply::applied(2)
    );
    assert!(pttl(&mut cli, "{t}a") > 20_000);

    let release = Request::new(&res, "v1", Duration::from_secs(30), scripts.release());
    assert_eq!(
        backend.release(&release).await.expect("release"),
        Reply::applied(2)
    );
    assert_eq!(get(&mut cli, "{t}a"), None);
}

#[test]
fn acquire_extend_release_and_noscript_fallback() {
    let server = Server::start(&[]);
    block_on(async {
        let backend = RedisBackend::connect(server.url()).await.expect("connect");
        assert_eq!(backend.describe(), server.url());

        // A fresh node has no scripts: the first call of each falls back to EVAL.
        scripts_round_trip(&backend, &server).await;
        let mut cli = server.cli();
        assert_eq!(calls(&mut cli, "eval"), 3);

        // Now they are cached: EVALSHA only.
        scripts_round_trip(&backend, &server).await;
        assert_eq!(calls(&mut cli, "eval"), 3);
        assert!(calls(&mut cli, "evalsha") >= 6);

        // SCRIPT FLUSH (or a restart) drops them: the fallback again.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut cli)
            .expect("flush");
        scripts_round_trip(&backend, &server).await;
        assert_eq!(calls(&mut cli, "eval"), 6);
    });
}

#[test]
fn custom_scripts_are_run_and_replies_checked() {
    let server = Server::start(&[]);
    block_on(async {
        let backend = RedisBackend::connect(server.url()).await.expect("connect");
        let res = keys(&["k"]);
        let run = |text: &'static str| {
            let backend = backend.clone();
            let res = res.clone();
            async move {
                let script = Script::new(text);
                let req = Request::new(&res, "v", Duration::from_millis(100), &script);
                backend.acquire(&req).await
            }
        };
        // The custom text runs, with KEYS and ARGV as documented.
        let echo = run("return #KEYS * 1000 + tonumber(ARGV[2])").await;
        assert_eq!(echo.expect("custom script"), Reply::applied(1100));
        let negative = run("return -5").await;
        assert_eq!(negative.expect("custom script"), Reply::applied(0));

        let err = run("return 'not a number'")
            .await
            .expect_err("string reply");
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        let err = run("return nosuchglobal").await.expect_err("lua error");
        assert_eq!(err.kind(), ErrorKind::Script, "{err}");
        assert!(std::error::Error::source(&err).is_some());
        let err = run("return (").await.expect_err("does not compile");
        assert_eq!(err.kind(), ErrorKind::Script, "{err}");

        // WRONGTYPE from inside the built-in acquire script.
        let mut cli = server.cli();
        let _: () = redis::cmd("LPUSH")
            .arg("k")
            .arg("x")
            .query(&mut cli)
            .expect("lpush");
        let scripts = Scripts::default();
        let req = Request::new(&res, "v", Duration::from_secs(1), scripts.acquire());
        let err = backend.acquire(&req).await.expect_err("wrongtype");
        assert_eq!(err.kind(), ErrorKind::Script, "{err}");
    });
}

#[test]
fn a_dead_node_builds_and_then_fails_fast() {
    let port = Server::nothing_at();
    block_on(async {
        let url = format!("redis://127.0.0.1:{port}");
        let backend = RedisBackend::connect(url.as_str())
            .await
            .expect("lazy: no connection yet");
        let scripts = Scripts::default();
        let res = keys(&["k"]);
        let req = Request::new(&res, "v", Duration::from_secs(1), scripts.acquire());
        for _ in 0..3 {
            let started = Instant::now();
            let err = backend.acquire(&req).await.expect_err("nothing listens");
            assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "a refused connection must answer at once, took {:?}",
                started.elapsed()
            );
        }
    });
}

#[test]
fn a_killed_node_that_comes_back_is_used_again() {
    let mut server = Server::start(&[]);
    block_on(async {
        let backend = RedisBackend::connect(server.url()).await.expect("connect");
        let scripts = Scripts::default();
        let res = keys(&["k"]);
        let req = Request::new(&res, "v", Duration::from_secs(10), scripts.acquire());
        assert_eq!(backend.acquire(&req).await.expect("up"), Reply::applied(1));

        server.kill();
        for _ in 0..3 {
            let started = Instant::now();
            let err = backend.acquire(&req).await.expect_err("down");
            assert!(
                matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "{:?}",
                started.elapsed()
            );
        }

        server.restart();
        // The very first call after the restart succeeds (the restarted node
        // lost its keys and its scripts: NOSCRIPT, then EVAL).
        assert_eq!(
            backend.acquire(&req).await.expect("back"),
            Reply::applied(1)
        );
    });
}

#[test]
fn calls_dropped_in_flight_do_not_shift_replies() {
    let server = Server::start(&[]);
    block_on(async {
        let backend = RedisBackend::connect(server.url()).await.expect("connect");
        let scripts = Scripts::default();
        let one = keys(&["x"]);
        let two = keys(&["{y}1", "{y}2"]);
        let three = keys(&["{z}1", "{z}2", "{z}3"]);
        // Warm up (loads the scripts).
        let r = Request::new(&one, "w", Duration::from_secs(10), scripts.acquire());
        backend.acquire(&r).await.expect("warm");
        let r = Request::new(&one, "w", Duration::from_secs(10), scripts.release());
        backend.release(&r).await.expect("warm");

        // Block the server, and give up on calls while it sleeps.
        let url = server.url();
        let sleeper = std::thread::spawn(move || {
            let mut con = redis::Client::open(url)
                .and_then(|c| c.get_connection())
                .expect("connect");
            let _: () = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("0.3")
                .query(&mut con)
                .expect("debug sleep");
        });
        sleep(Duration::from_millis(50)).await;
        for res in [&one, &two, &three] {
            let r = Request::new(res, "dropped", Duration::from_secs(10), scripts.acquire());
            let outcome = timeout(Duration::from_millis(20), backend.acquire(&r)).await;
            assert!(outcome.is_err(), "the server is asleep");
        }
        sleeper.join().expect("sleeper");

        // The abandoned calls ran on the server (they took the keys) and
        // their replies were discarded; every later reply is its own.
        for (res, n) in [(&three, 3), (&two, 2), (&one, 1)] {
            let r = Request::new(res, "dropped", Duration::from_secs(10), scripts.release());
            assert_eq!(
                backend.release(&r).await.expect("release"),
                Reply::applied(n)
            );
            let r = Request::new(res, "mine", Duration::from_secs(10), scripts.acquire());
            assert_eq!(
                backend.acquire(&r).await.expect("acquire"),
                Reply::applied(n)
            );
        }
    });
}

#[test]
fn auth_errors_and_password_free_names() {
    let server = Server::start(&["--requirepass", "s3cret"]);
    block_on(async {
        let scripts = Scripts::default();
        let res = keys(&["k"]);
        let req = Request::new(&res, "v", Duration::from_secs(1), scripts.acquire());

        let anonymous = RedisBackend::connect(server.url()).await.expect("connect");
        let err = anonymous.acquire(&req).await.expect_err("no password");
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

        let wrong = format!("redis://:nope@127.0.0.1:{}", server.port);
        let err = RedisBackend::connect(wrong)
            .await
            .expect("connect")
            .acquire(&req)
            .await
            .expect_err("wrong password");
        assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

        let right = format!("redis://:s3cret@127.0.0.1:{}", server.port);
        let backend = RedisBackend::connect(right).await.expect("connect");
        assert_eq!(
            backend.acquire(&req).await.expect("auth"),
            Reply::applied(1)
        );
        assert!(!backend.describe().contains("s3cret"));
        assert!(!format!("{backend:?}").contains("s3cret"));
    });
}

#[test]
fn a_redlock_over_three_nodes_with_one_down() {
    let servers = [Server::start(&[]), Server::start(&[])];
    let dead = Server::nothing_at();
    block_on(async {
        let mut backends = connect_all(&servers).await;
        backends.push(
            RedisBackend::connect(format!("redis://127.0.0.1:{dead}"))
                .await
                .expect("lazy"),
        );
        let redlock = Redlock::builder(backends)
            .retry_count(0)
            .build()
            .expect("build");
        let lock = redlock
            .acquire(&["job"], Duration::from_secs(5))
            .await
            .expect("2 of 3");
        let lock = lock.extend(Duration::from_secs(5)).await.expect("extend");
        lock.release().await.expect("release");
    });
}

/// The same, with no tokio runtime anywhere: redis-rs runs on smol's reactor
/// and the core on its runtime-neutral timer.
#[cfg(feature = "smol")]
#[test]
fn a_redlock_over_three_nodes_with_one_down_under_smol() {
    let servers = [Server::start(&[]), Server::start(&[])];
    let dead = Server::nothing_at();
    smol::block_on(async {
        let mut backends = connect_all(&servers).await;
        backends.push(
            RedisBackend::connect(format!("redis://127.0.0.1:{dead}"))
                .await
                .expect("lazy"),
        );
        let redlock = Redlock::builder(backends)
            .retry_count(0)
            .build()
            .expect("build");
        let lock = redlock
            .acquire(&["job"], Duration::from_secs(5))
            .await
            .expect("2 of 3");
        let other = redlock.acquire(&["job"], Duration::from_secs(5)).await;
        assert!(other.is_err());
        lock.release().await.expect("release");
    });
}

/// Also under a plain `futures` executor, which has no reactor of its own.
#[cfg(feature = "smol")]
#[test]
fn works_under_futures_executor() {
    let server = Server::start(&[]);
    futures::executor::block_on(async {
        let backend = RedisBackend::connect(server.url()).await.expect("connect");
        scripts_round_trip(&backend, &server).await;
    });
}

#[test]
fn fencing_tokens_rise_across_owners() {
    let servers = [Server::start(&[]), Server::start(&[]), Server::start(&[])];
    block_on(async {
        let backends = connect_all(&servers).await;
        let redlock = Redlock::builder(backends)
            .retry_count(0)
            .fencing(true)
            .build()
            .expect("build");
        let mut last = 0;
        for _ in 0..3 {
            let lock = redlock
                .acquire(&["{acct}1", "{acct}2"], Duration::from_secs(5))
                .await
                .expect("acquire");
            let token = lock.fencing_token().expect("a fenced lock has a token");
            assert!(token > last, "{token} after {last}");
            last = token;
            lock.release().await.expect("release");
        }
        // The write-back promises the token to a quorum, not to every node:
        // the round ends once two of three confirm, so the third may lag.
        // One counter for the slot of the tag `acct`.
        let fence = redlock_core::keys::fence_key("{acct}1");
        let counters: Vec<Option<u64>> = servers
            .iter()
            .map(|s| get(&mut s.cli(), &fence).and_then(|v| v.parse().ok()))
            .collect();
        let at_last = counters.iter().filter(|c| **c == Some(last)).count();
        assert!(at_last >= 2, "token {last} on a quorum: {counters:?}");
        assert!(
            counters.iter().all(|c| c.unwrap_or(0) <= last),
            "no counter above the last token {last}: {counters:?}"
        );
    });
}

/// In a tokio-only build, redis-rs needs a current tokio runtime to spawn its
/// reconnect task: outside one, construction is an error, not a panic.
#[cfg(all(feature = "tokio", not(feature = "smol")))]
#[test]
fn tokio_only_builds_refuse_construction_outside_a_runtime() {
    use futures::executor::block_on;
    let err = block_on(RedisBackend::connect("redis://127.0.0.1:6379")).expect_err("no runtime");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(err.message().contains("tokio runtime"), "{err}");
    #[cfg(feature = "cluster")]
    {
        let err = block_on(RedisBackend::connect_cluster(["redis://127.0.0.1:6379"]))
            .expect_err("no runtime");
        assert!(err.message().contains("tokio runtime"), "{err}");
    }
}

/// A cluster whose seeds are all down still builds (lazily), and its calls
/// fail within a bounded time rather than retrying for seconds.
#[cfg(feature = "cluster")]
#[test]
fn a_dead_cluster_builds_and_then_fails() {
    let seeds = [Server::nothing_at(), Server::nothing_at()];
    block_on(async {
        let urls = seeds.map(|p| format!("redis://127.0.0.1:{p}"));
        let backend = RedisBackend::connect_cluster(&urls)
            .await
            .expect("lazy: no connection yet");
        assert!(backend.describe().starts_with("redis-cluster["));
        let scripts = Scripts::default();
        let res = keys(&["k"]);
        let req = Request::new(&res, "v", Duration::from_secs(1), scripts.acquire());
        for _ in 0..2 {
            let started = Instant::now();
            let err = backend.acquire(&req).await.expect_err("nothing listens");
            assert!(
                matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                "{err:?}"
            );
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "took {:?}",
                started.elapsed()
            );
            eprintln!("dead cluster: {err} after {:?}", started.elapsed());
        }
    });
}

/// A cluster master that is killed fails its slots' calls; once it restarts
/// (and rejoins from its nodes.conf) the same backend uses it again.
#[cfg(feature = "cluster")]
#[test]
fn a_restarted_cluster_master_is_used_again() {
    use redlock_testkit::server::RedisCluster;
    let cluster = RedisCluster::start(3).expect("a 3-master cluster");
    let probe = cluster.probe();
    block_on(async {
        let backend = RedisBackend::connect_cluster(cluster.urls())
            .await
            .expect("connect");
        let scripts = Scripts::default();
        let res = keys(&["{restart}k"]);
        let owner = probe.owner_of("{restart}k");
        let acquire = Request::new(&res, "v", Duration::from_millis(500), scripts.acquire());
        assert_eq!(
            backend.acquire(&acquire).await.expect("up"),
            Reply::applied(1)
        );

        cluster.node(owner).kill();
        let started = Instant::now();
        let err = backend.acquire(&acquire).await.expect_err("owner down");
        assert!(!err.kind().is_permanent(), "{err}");
        eprintln!("owner down: {err} after {:?}", started.elapsed());

        cluster.node(owner).restart().expect("restart");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = None;
        while Instant::now() < deadline {
            match backend.acquire(&acquire).await {
                Ok(reply) => {
                    assert_eq!(reply, Reply::applied(1));
                    return;
                }
                Err(err) => last = Some(err),
            }
            sleep(Duration::from_millis(100)).await;
        }
        panic!("the restarted master was never used again: {last:?}");
    });
}

/// With wake-on-release, a waiter retries as soon as the holder releases,
/// not after its (here, long) retry delay.
#[test]
fn wake_on_release_cuts_the_wait_short() {
    let servers = [Server::start(&[]), Server::start(&[]), Server::start(&[])];
    block_on(async {
        let redlock = || async {
            Redlock::builder(connect_all(&servers).await)
                .retry_count(5)
                .retry_delay(Duration::from_secs(3))
                .retry_jitter(Duration::ZERO)
                .wake_on_release(true)
                .build()
                .expect("build")
        };
        let (holder, waiter) = (redlock().await, redlock().await);
        let lock = holder
            .acquire(&["wake"], Duration::from_secs(10))
            .await
            .expect("holder");
        let release_later = async {
            sleep(Duration::from_millis(300)).await;
            lock.release().await.expect("release");
        };
        let started = Instant::now();
        let (got, ()) = futures::join!(
            waiter.acquire(&["wake"], Duration::from_secs(10)),
            release_later
        );
        let waited = started.elapsed();
        let got = got.expect("the waiter gets the lock after the release");
        assert!(
            waited < Duration::from_millis(1500),
            "woken on release, not after the 3 s retry delay: waited {waited:?}"
        );
        got.release().await.expect("release");
    });
}

/// Wake-on-release on a Redis Cluster: the release is published by the slot's
/// master and heard through the subscription on the first seed node.
#[cfg(feature = "cluster")]
#[test]
fn wake_on_release_on_a_cluster() {
    use redlock_testkit::server::RedisCluster;
    let cluster = RedisCluster::start(3).expect("a 3-master cluster");
    // A key whose slot is NOT served by the first seed node, so the message
    // must cross the cluster bus to reach the subscription.
    let probe = cluster.probe();
    let key = (0..100)
        .map(|i| format!("{{wake{i}}}k"))
        .find(|k| probe.owner_of(k) != 0)
        .expect("some key lives on another master");
    block_on(async {
        let redlock = || async {
            let backend = RedisBackend::connect_cluster(cluster.urls())
                .await
                .expect("connect");
            Redlock::builder([backend])
                .retry_count(5)
                .retry_delay(Duration::from_secs(3))
                .retry_jitter(Duration::ZERO)
                .wake_on_release(true)
                .build()
                .expect("build")
        };
        let (holder, waiter) = (redlock().await, redlock().await);
        let resources = [key.as_str()];
        let lock = holder
            .acquire(&resources, Duration::from_secs(10))
            .await
            .expect("holder");
        let release_later = async {
            sleep(Duration::from_millis(300)).await;
            lock.release().await.expect("release");
        };
        let started = Instant::now();
        let (got, ()) = futures::join!(
            waiter.acquire(&resources, Duration::from_secs(10)),
            release_later
        );
        let waited = started.elapsed();
        let got = got.expect("the waiter gets the lock after the release");
        assert!(
            waited < Duration::from_millis(1500),
            "woken on release across the cluster bus, not after the 3 s retry delay: waited {waited:?}"
        );
        got.release().await.expect("release");
    });
}
