//! The launchers and the probe against real redis-server processes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use redlock_testkit::probe::Probe;
use redlock_testkit::server::{
    find_binary, ClusterOptions, LaunchError, NodeOptions, RedisCluster, RedisNode, RedisNodes,
};

fn process_exists(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A raw PING with a short read timeout: `Some(reply)` or `None` if no answer.
fn raw_ping(port: u16, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn one_node_starts_answers_and_cleans_up() {
    let node = RedisNode::start().expect("start a node");
    assert_ne!(node.port(), 6379);
    assert_eq!(node.url(), format!("redis://127.0.0.1:{}", node.port()));
    assert!(node.is_running());
    let probe = node.probe();
    assert!(probe.ping());
    assert_eq!(probe.dbsize(), 0);
    probe.set_px("k", "v", 10_000);
    assert_eq!(probe.get("k").as_deref(), Some("v"));
    assert!(probe.pttl("k").is_some_and(|ms| ms > 0 && ms <= 10_000));
    assert_eq!(probe.pttl("missing"), None);
    assert_eq!(probe.keys("k*"), vec!["k".to_owned()]);
    assert!(probe.exists("k"));
    assert!(probe.del("k"));
    assert!(!probe.del("k"));
    probe.set_px("k2", "v", 10_000);
    probe.flushall();
    assert_eq!(probe.dbsize(), 0);
    probe.script_flush();
    assert_eq!(probe.command_calls("set"), 2);

    // Persistence is off by default.
    let config: Vec<String> = probe.query(redis::cmd("CONFIG").arg("GET").arg("appendonly"));
    assert_eq!(config, ["appendonly", "no"]);
    let save: Vec<String> = probe.query(redis::cmd("CONFIG").arg("GET").arg("save"));
    assert_eq!(save, ["save", ""]);

    let (pid, dir, port) = (
        node.pid().expect("a pid"),
        node.dir().to_path_buf(),
        node.port(),
    );
    assert!(dir.starts_with(std::env::temp_dir()));
    assert!(dir.join("redis.log").exists());
    drop(node);
    assert!(!process_exists(pid), "the process is gone after drop");
    assert!(!dir.exists(), "the directory is removed after drop");
    assert_eq!(raw_ping(port, Duration::from_millis(200)), None);
}

#[test]
fn three_and_five_nodes() {
    for n in [3, 5] {
        let nodes = RedisNodes::start(n).expect("start nodes");
        assert_eq!(nodes.len(), n);
        let urls = nodes.urls();
        assert_eq!(urls.len(), n);
        let mut ports: Vec<u16> = nodes.iter().map(RedisNode::port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "distinct ports");
        for (i, node) in (&nodes).into_iter().enumerate() {
            assert_eq!(node.url(), urls[i]);
            assert!(Probe::new(&urls[i]).ping());
        }
        // Independent: a key on one is not on another.
        nodes[0].probe().set_px("only-here", "1", 10_000);
        assert_eq!(nodes[1].probe().get("only-here"), None);
    }
}

#[test]
fn kill_pause_resume_restart() {
    let node = RedisNode::start().expect("start");
    let probe = node.probe();
    probe.set_px("k", "v", 60_000);

    node.pause().expect("pause");
    assert!(node.is_paused() && node.is_running());
    let started = Instant::now();
    assert_eq!(
        raw_ping(node.port(), Duration::from_millis(200)),
        None,
        "a paused node answers nothing"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
    node.resume().expect("resume");
    assert!(!node.is_paused());
    assert_eq!(
        raw_ping(node.port(), Duration::from_secs(2)).as_deref(),
        Some("+PONG\r\n")
    );
    assert_eq!(
        probe.get("k").as_deref(),
        Some("v"),
        "a resumed node kept its data"
    );

    node.kill();
    assert!(!node.is_running());
    assert!(node.pid().is_none());
    assert!(!probe.ping(), "a killed node refuses connections");
    assert!(matches!(node.pause(), Err(LaunchError::NotRunning { .. })));
    // The dead node's port stays reserved: nobody gets it from the kernel.
    for _ in 0..2000 {
        let other = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        assert_ne!(other.local_addr().unwrap().port(), node.port());
    }
    assert_eq!(
        raw_ping(node.port(), Duration::from_millis(200)),
        None,
        "and refuses connections"
    );
    node.kill(); // idempotent

    node.restart().expect("restart");
    assert!(node.is_running());
    assert!(probe.ping(), "the probe reconnects after a restart");
    assert_eq!(
        probe.get("k"),
        None,
        "without persistence a restart forgets the keys"
    );

    // A paused node can be restarted (and dropped) too.
    node.pause().expect("pause");
    node.restart().expect("restart a paused node");
    assert!(probe.ping());
    node.pause().expect("pause before drop");
}

#[test]
fn restart_with_persistence_keeps_keys() {
    let node = RedisNode::start_with(NodeOptions {
        persistence: true,
        ..NodeOptions::default()
    })
    .expect("start");
    let probe = node.probe();
    let config: Vec<String> = probe.query(redis::cmd("CONFIG").arg("GET").arg("appendfsync"));
    assert_eq!(config, ["appendfsync", "always"]);
    probe.set_px("lock", "value", 60_000);
    let port = node.port();
    node.restart().expect("restart after a SIGKILL");
    assert_eq!(node.port(), port, "same port");
    assert_eq!(
        probe.get("lock").as_deref(),
        Some("value"),
        "the key survived the crash"
    );
    assert!(
        probe.pttl("lock").is_some_and(|ms| ms > 50_000),
        "with its TTL"
    );
}

#[test]
fn password_is_in_the_url() {
    let node = RedisNode::start_with(NodeOptions {
        password: Some("pw-123".into()),
        ..NodeOptions::default()
    })
    .expect("start");
    assert_eq!(
        node.url(),
        format!("redis://:pw-123@127.0.0.1:{}", node.port())
    );
    assert!(node.probe().ping());
    let anonymous = Probe::new(&format!("redis://127.0.0.1:{}", node.port()));
    let error = anonymous.try_ping().expect_err("no password, no PING");
    assert!(format!("{error}").contains("NOAUTH"), "{error}");
}

#[test]
fn cluster_of_three_masters() {
    let cluster = RedisCluster::start(3).expect("start a cluster");
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.urls().len(), 3);
    for node in cluster.nodes() {
        let info: String = node.probe().query(redis::cmd("CLUSTER").arg("INFO"));
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");
    }
    let probe = cluster.probe();
    // Keys land on different masters; the probe finds each one.
    let keys: Vec<String> = (0..30).map(|i| format!("key{i}")).collect();
    let mut owners = std::collections::HashSet::new();
    for key in &keys {
        probe.set_px(key, key, 60_000);
        owners.insert(probe.owner_of(key));
    }
    assert_eq!(owners.len(), 3, "30 keys spread over the 3 masters");
    for key in &keys {
        assert_eq!(probe.get(key).as_deref(), Some(key.as_str()));
        assert!(probe.pttl(key).is_some_and(|ms| ms > 0));
    }
    assert_eq!(probe.keys("key*").len(), 30);
    assert_eq!(probe.dbsize(), 30);
    assert_eq!(probe.keyslot("{t}:a"), probe.keyslot("{t}:b"));
    assert!(probe.del("key0"));
    probe.flushall();
    assert_eq!(probe.dbsize(), 0);
    assert!(cluster.node(1).is_running());
}

#[test]
fn cluster_needs_three_masters() {
    assert!(matches!(
        RedisCluster::start(2),
        Err(LaunchError::InvalidArgument(_))
    ));
}

#[test]
fn missing_binaries_are_named_with_the_install_command() {
    let error = RedisNode::start_with(NodeOptions {
        redis_server: Some(PathBuf::from("/nonexistent/redis-server")),
        ..NodeOptions::default()
    })
    .expect_err("no such binary");
    assert!(
        matches!(&error, LaunchError::MissingBinary { binary, .. } if binary.ends_with("redis-server"))
    );
    let message = error.to_string();
    assert!(
        message.contains("apt-get install redis-server redis-tools"),
        "{message}"
    );
    assert!(message.contains("REDLOCK_REDIS_SERVER"), "{message}");

    // A PATH without redis-server.
    let error = find_binary(
        "redis-server",
        Some(std::ffi::OsStr::new("/nonexistent:/also-not")),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("`redis-server` was not found"),
        "{message}"
    );
    assert!(
        message.contains("apt-get install redis-server redis-tools"),
        "{message}"
    );
    // And the real PATH has it.
    assert!(find_binary("redis-server", None).is_ok());

    let error = RedisCluster::start_with(
        3,
        ClusterOptions {
            redis_cli: Some(PathBuf::from("no-such-redis-cli")),
            ..ClusterOptions::default()
        },
    )
    .expect_err("no such redis-cli");
    assert!(
        matches!(&error, LaunchError::MissingBinary { binary, .. } if binary == "no-such-redis-cli")
    );
    assert!(error.to_string().contains("REDLOCK_REDIS_CLI"), "{error}");
}

#[test]
fn a_server_that_cannot_start_reports_its_log() {
    let error = RedisNode::start_with(NodeOptions {
        extra_args: vec!["--no-such-directive".into(), "1".into()],
        ..NodeOptions::default()
    })
    .expect_err("a bad directive");
    match &error {
        LaunchError::Exited { log_tail, .. } => {
            assert!(
                log_tail.contains("no-such-directive"),
                "the log tail explains: {log_tail}"
            )
        }
        other => panic!("expected Exited, got {other:?}"),
    }
}

#[test]
fn a_panicking_test_still_stops_its_servers() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let nodes = RedisNodes::start(2).expect("start");
        nodes[1].pause().expect("pause");
        let info: Vec<(u32, PathBuf)> = nodes
            .iter()
            .map(|n| (n.pid().unwrap(), n.dir().to_path_buf()))
            .collect();
        tx.send(info).unwrap();
        panic!("a test fails while its nodes run (one of them paused)");
    })
    .join();
    assert!(result.is_err());
    for (pid, dir) in rx.recv().unwrap() {
        assert!(
            !process_exists(pid),
            "process {pid} was stopped by the unwinding"
        );
        assert!(!dir.exists(), "{} was removed", dir.display());
    }
}
