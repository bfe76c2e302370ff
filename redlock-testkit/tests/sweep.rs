//! Servers orphaned by a test process that died without dropping its nodes are
//! cleaned up by the next process that starts a node. (Its own test binary:
//! the sweep runs once per process, on the first start.)

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redlock_testkit::server::RedisNode;

#[test]
fn orphans_of_dead_test_processes_are_swept() {
    // An owner that is gone.
    let mut owner = Command::new("true").spawn().unwrap();
    let dead = owner.id();
    owner.wait().unwrap();

    let dir = std::env::temp_dir().join(format!("redlock-testkit-{dead}-0-orphan"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut orphan = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(dir.join("redis-server.pid"), orphan.id().to_string()).unwrap();
    // Wait until it runs in its directory.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(format!("/proc/{}/cwd", orphan.id()))
        .ok()
        .as_deref()
        != Some(dir.as_path())
    {
        assert!(Instant::now() < deadline, "the orphan did not start");
        std::thread::sleep(Duration::from_millis(10));
    }

    // A directory of a live owner (this process) is left alone.
    let mine = std::env::temp_dir().join(format!("redlock-testkit-{}-0-mine", std::process::id()));
    std::fs::create_dir_all(&mine).unwrap();

    let _node = RedisNode::start().expect("start");

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = orphan.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = orphan.kill();
            panic!("the orphan was not killed by the sweep");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(9), "the orphan was killed");
    assert!(!dir.exists(), "the orphan's directory was removed");
    assert!(mine.exists(), "a live owner's directory is kept");
    std::fs::remove_dir_all(&mine).unwrap();
}
