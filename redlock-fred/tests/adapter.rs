//! Adapter-specific behaviour against real redis-server processes: what the
//! shared conformance suite does not look at (NOSCRIPT fallback, error kinds of
//! this client, reconnection, dropped calls).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fred::interfaces::{KeysInterface, LuaInterface};
use redlock_core::{ErrorKind, LockBackend, Request, Script, Scripts};
use redlock_fred::FredBackend;

/// A redis-server on a free loopback port, killed on drop.
struct Server {
    port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut server = Server {
            port,
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server would not die from SIGTERM.
            self.signal("-CONT");
        }
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const TTL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_scripts_and_falls_back_to_eval_on_noscript() {
    let server = Server::start(&[]);
    let backend = FredBackend::connect(&server.url()).await.unwrap();
    assert_eq!(backend.describe(), server.url());
    let scripts = Scripts::default();
    let resources = keys(&["fred:a", "fred:b"]);

    // A fresh node has no script cached: the first EVALSHA gets NOSCRIPT.
    let acquire = Request::new(&resources, "v1", TTL, scripts.acquire());
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 2);
    let other = Request::new(&resources, "v2", TTL, scripts.acquire());
    assert_eq!(backend.acquire(&other).await.unwrap().applied, 0);

    let client = backend.client().clone();
    let value: Option<String> = client.get("fred:a").await.unwrap();
    assert_eq!(value.as_deref(), Some("v1"));
    let pttl: i64 = client.pttl("fred:b").await.unwrap();
    assert!(pttl > 9_000 && pttl <= 10_000, "{pttl}");

    let _: () = client.script_flush(false).await.unwrap();
    let extend = Request::new(&resources, "v1", Duration::from_secs(20), scripts.extend());
    assert_eq!(backend.extend(&extend).await.unwrap().applied, 2);
    let pttl: i64 = client.pttl("fred:a").await.unwrap();
    assert!(pttl > 19_000, "{pttl}");

    let release = Request::new(&resources, "v1", TTL, scripts.release());
    assert_eq!(backend.release(&release).await.unwrap().applied, 2);
    assert_eq!(backend.release(&release).await.unwrap().applied, 0);
    let exists: i64 = client.exists(vec!["fred:a", "fred:b"]).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_errors_and_odd_replies_are_classified() {
    let server = Server::start(&[]);
    let backend = FredBackend::connect(&server.url()).await.unwrap();
    let resources = keys(&["fred:odd"]);

    let string_reply = Script::new("return 'yes'");
    let err = backend
        .acquire(&Request::new(&resources, "v", TTL, &string_reply))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");

    let lua_error = Script::new("return undefined_global.x");
    let err = backend
        .acquire(&Request::new(&resources, "v", TTL, &lua_error))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Script, "{err}");

    let wrongtype =
        Script::new("redis.call('LPUSH', KEYS[1], 'x') return redis.call('INCR', KEYS[1])");
    let err = backend
        .acquire(&Request::new(&resources, "v", TTL, &wrongtype))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Script, "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_node_fails_fast_and_is_used_again_when_it_comes_back() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = Instant::now();
    let backend = FredBackend::connect(&url).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let scripts = Scripts::default();
    let resources = keys(&["fred:down"]);
    let acquire = Request::new(&resources, "v", TTL, scripts.acquire());
    let started = Instant::now();
    let err = backend.acquire(&acquire).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    // The node comes up on that port: the backend reconnects on its own.
    let mut server = Server {
        port,
        child: None,
        args: vec![],
    };
    server.spawn();
    assert_eq!(eventually(|| backend.acquire(&acquire)).await.applied, 1);

    // Killed and restarted: again.
    server.kill();
    // fred notices the closed socket within a millisecond; a call sent in that
    // millisecond can only time out. After that, every call fails at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let err = backend.acquire(&acquire).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.spawn();
    assert_eq!(eventually(|| backend.acquire(&acquire)).await.applied, 1);
}

/// Retries `call` for up to 3 s until it succeeds.
async fn eventually<F, Fut, T, E>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if Instant::now() > deadline => panic!("still failing: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error() {
    let server = Server::start(&["--requirepass", "right"]);
    let scripts = Scripts::default();
    let resources = keys(&["fred:auth"]);
    let acquire = Request::new(&resources, "v", TTL, scripts.acquire());

    let url = format!("redis://:wrong@127.0.0.1:{}", server.port);
    let backend = FredBackend::connect(&url).await.unwrap();
    assert!(
        !backend.describe().contains("wrong"),
        "{}",
        backend.describe()
    );
    let err = backend.acquire(&acquire).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    // Still Auth later, while fred keeps retrying with the wrong password.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = backend.acquire(&acquire).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    let url = format!("redis://:right@127.0.0.1:{}", server.port);
    let backend = FredBackend::connect(&url).await.unwrap();
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_times_out_and_dropped_calls_leave_the_client_working() {
    let server = Server::start(&[]);
    let backend = FredBackend::connect(&server.url())
        .await
        .unwrap()
        .with_command_timeout(Duration::from_millis(300));
    let scripts = Scripts::default();
    let resources = keys(&["fred:pause"]);
    let acquire = Request::new(&resources, "v", TTL, scripts.acquire());
    let release = Request::new(&resources, "v", TTL, scripts.release());
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 1);

    server.signal("-STOP");
    let started = Instant::now();
    let err = backend.acquire(&acquire).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    // What the core does: give up on the call after its own timeout and drop it.
    for _ in 0..5 {
        let dropped =
            tokio::time::timeout(Duration::from_millis(50), backend.release(&release)).await;
        assert!(dropped.is_err(), "a paused node answered");
    }
    server.signal("-CONT");

    assert_eq!(eventually(|| backend.acquire(&acquire)).await.applied, 1);
    assert_eq!(backend.release(&release).await.unwrap().applied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn construction_needs_a_tokio_runtime_and_a_valid_url() {
    let err = FredBackend::connect("not a url").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    let err = FredBackend::connect_cluster::<&str>(&[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    // Without a TLS feature in fred, a TLS URL must not quietly go plain text.
    #[cfg(not(feature = "tls-rustls"))]
    {
        let err = FredBackend::connect("rediss://:pw@127.0.0.1:1")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(!err.message().contains("pw"), "{err}");
    }
    // With one (tests/tls.rs has the rest), it is a TLS backend like any other.
    #[cfg(feature = "tls-rustls")]
    {
        let backend = FredBackend::connect("rediss://:pw@127.0.0.1:1")
            .await
            .expect("lazy");
        assert_eq!(backend.describe(), "rediss://127.0.0.1:1");
    }
}

#[test]
fn outside_tokio_construction_is_an_error_not_a_panic() {
    let err = futures_lite_block_on(FredBackend::connect("redis://127.0.0.1:1")).unwrap_err();
    assert!(err.message().contains("tokio"), "{err}");
}

/// A minimal executor that is not tokio.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wraps_a_pool_built_by_the_user() {
    use fred::interfaces::ClientLike;
    use fred::types::{config::Config, Builder};

    let server = Server::start(&[]);
    let pool = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .build_pool(3)
        .unwrap();
    pool.init().await.unwrap();
    let backend =
        FredBackend::new(pool, "pool of 3").with_command_timeout(Duration::from_millis(500));
    assert_eq!(backend.describe(), "pool of 3");

    let scripts = Scripts::default();
    let resources = keys(&["{fred}:p1", "{fred}:p2"]);
    for round in 0..6 {
        let value = format!("v{round}");
        let acquire = Request::new(&resources, &value, TTL, scripts.acquire());
        let release = Request::new(&resources, &value, TTL, scripts.release());
        assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 2);
        assert_eq!(backend.release(&release).await.unwrap().applied, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_backend_stops_its_reconnection_loop() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // A "node" that accepts connections and closes them at once: fred keeps
    // reconnecting to it for as long as its connection task runs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });

    let backend = FredBackend::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        accepted.load(Ordering::SeqCst) >= 2,
        "fred should be retrying"
    );
    drop(backend);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        after_drop,
        "still reconnecting after drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pause_is_survived_with_bounded_calls() {
    let server = Server::start(&[]);
    let backend = FredBackend::connect(&server.url())
        .await
        .unwrap()
        .with_command_timeout(Duration::from_millis(300));
    let scripts = Scripts::default();
    let resources = keys(&["fred:long-pause"]);
    let acquire = Request::new(&resources, "v", TTL, scripts.acquire());
    let release = Request::new(&resources, "v", TTL, scripts.release());
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 1);

    // Longer than the unresponsive timeout (2 s): fred drops the connection and
    // tries new ones against a node that accepts TCP but answers nothing.
    server.signal("-STOP");
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_millis(3500) {
        let started = Instant::now();
        let err = backend.acquire(&acquire).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Timeout | ErrorKind::Connection),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.signal("-CONT");

    assert_eq!(eventually(|| backend.release(&release)).await.applied, 1);
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 1);
}

/// With wake-on-release, a waiter retries as soon as the holder releases, not
/// after its (here, long) retry delay: on 3 standalone nodes and on a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_on_release_cuts_the_wait_short() {
    let servers = [Server::start(&[]), Server::start(&[]), Server::start(&[])];
    let urls: Vec<String> = servers.iter().map(Server::url).collect();
    wake_case(|| async {
        let mut nodes = Vec::new();
        for url in &urls {
            nodes.push(FredBackend::connect(url).await.unwrap());
        }
        nodes
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_on_release_on_a_cluster() {
    let cluster = redlock_testkit::server::RedisCluster::start(3).expect("a cluster");
    let urls = cluster.urls();
    wake_case(|| async { vec![FredBackend::connect_cluster(&urls).await.unwrap()] }).await;
}

async fn wake_case<F, Fut>(backends: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<FredBackend>>,
{
    use redlock_core::{Redlock, TokioRuntime};
    let redlock = |nodes: Vec<FredBackend>| {
        Redlock::builder(nodes)
            .runtime(TokioRuntime)
            .retry_count(5)
            .retry_delay(Duration::from_secs(3))
            .retry_jitter(Duration::ZERO)
            .wake_on_release(true)
            .build()
            .unwrap()
    };
    let (holder, waiter) = (redlock(backends().await), redlock(backends().await));
    for round in 0..2 {
        let resource = format!("{{fred}}:wake{round}");
        let lock = holder.acquire(&[&resource], TTL).await.unwrap();
        let release_later = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            lock.release().await.unwrap();
        };
        let started = Instant::now();
        let resources = [resource.as_str()];
        let (got, ()) = tokio::join!(waiter.acquire(&resources, TTL), release_later);
        let waited = started.elapsed();
        let got = got.expect("the waiter gets the lock after the release");
        assert!(
            waited < Duration::from_millis(1500),
            "round {round}: woken on release, not after the 3 s retry delay: waited {waited:?}"
        );
        got.release().await.unwrap();
    }
}

/// A cluster master killed and restarted: calls fail (retryably, and promptly)
/// while it is down, and the same backend uses it again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_master_is_used_again() {
    use redlock_testkit::server::RedisCluster;
    let cluster = RedisCluster::start(3).expect("a 3-master cluster");
    let probe = cluster.probe();
    let backend = FredBackend::connect_cluster(&cluster.urls()).await.unwrap();
    let scripts = Scripts::default();
    let resources = keys(&["{restart}k"]);
    let owner = probe.owner_of("{restart}k");
    let acquire = Request::new(
        &resources,
        "v",
        Duration::from_millis(500),
        scripts.acquire(),
    );
    assert_eq!(backend.acquire(&acquire).await.unwrap().applied, 1);

    cluster.node(owner).kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let err = backend.acquire(&acquire).await.unwrap_err();
        assert!(!err.kind().is_permanent(), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }

    cluster.node(owner).restart().expect("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match backend.acquire(&acquire).await {
            Ok(reply) if reply.applied == 1 => break,
            other => assert!(Instant::now() < deadline, "never used again: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
