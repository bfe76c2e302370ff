//! Nodes under libfaketime (Debian package `faketime`): a wall-clock jump
//! while the node runs expires its keys; the monotonic clock is left alone,
//! so the node stays healthy. These tests need libfaketime and fail, saying
//! how to install it, when it is missing (as the other launcher tests do
//! without redis-server).

use std::sync::Mutex;
use std::time::Duration;

use redlock_testkit::server::{
    find_libfaketime, LaunchError, NodeOptions, RedisNode, LIBFAKETIME_ENV,
};

/// `REDLOCK_LIBFAKETIME` is process-wide: the test that changes it runs alone.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's wall clock (`TIME`), in microseconds since the epoch.
fn server_time_us(node: &RedisNode) -> u64 {
    let [secs, micros]: [String; 2] = node
        .probe()
        .query::<Vec<String>>(&redis::cmd("TIME"))
        .try_into()
        .expect("TIME answers two numbers");
    secs.parse::<u64>().expect("seconds") * 1_000_000 + micros.parse::<u64>().expect("micros")
}

fn fake_clock_node() -> RedisNode {
    RedisNode::start_with(NodeOptions {
        fake_clock: true,
        ..NodeOptions::default()
    })
    .unwrap_or_else(|e| panic!("start a node with a fake clock: {e}"))
}

#[test]
fn a_forward_jump_expires_keys_and_the_node_stays_healthy() {
    let _env = env_lock();
    let node = fake_clock_node();
    assert_eq!(node.clock_offset(), Some(Duration::ZERO));
    let probe = node.probe();
    let before = server_time_us(&node);
    probe.set_px("short", "v", 10_000);
    probe.set_px("long", "v", 600_000);
    assert_eq!(probe.get("short").as_deref(), Some("v"));

    assert_eq!(
        node.jump_clock(Duration::from_secs(60)).expect("jump"),
        Duration::from_secs(60)
    );
    assert_eq!(node.clock_offset(), Some(Duration::from_secs(60)));
    // Real time only moves forward, so the node's clock is now at least 60 s
    // past what it said before the jump.
    let after = server_time_us(&node);
    assert!(
        after >= before + 60_000_000,
        "TIME before {before} us, after a +60 s jump {after} us"
    );
    // Redis expires keys on its wall clock: the 10 s key is gone, the 600 s
    // key lost (at least) the 60 s.
    assert_eq!(
        probe.get("short"),
        None,
        "a PX 10000 key after a +60 s jump"
    );
    let left = probe.pttl("long").expect("the long key is still there");
    assert!(left <= 540_000, "PTTL after a +60 s jump: {left} ms");
    // New keys work as usual on the new clock.
    probe.set_px("fresh", "v", 10_000);
    assert_eq!(probe.get("fresh").as_deref(), Some("v"));
    assert!(probe.ping());

    // A second jump adds to the first; a restart keeps the offset.
    assert_eq!(
        node.jump_clock(Duration::from_millis(1_500)).expect("jump"),
        Duration::from_millis(61_500)
    );
    node.restart().expect("restart");
    assert_eq!(node.clock_offset(), Some(Duration::from_millis(61_500)));
    let restarted = server_time_us(&node);
    assert!(
        restarted >= before + 61_500_000,
        "TIME before {before} us, after +61.5 s and a restart {restarted} us"
    );

    // libfaketime's shared memory (removed only at a clean exit) does not
    // outlive the killed node.
    let pid = node.pid().expect("running");
    let shm = std::path::PathBuf::from(format!("/dev/shm/faketime_shm_{pid}"));
    let had_shm = shm.exists();
    drop(node);
    assert!(!shm.exists(), "{} left behind", shm.display());
    assert!(had_shm, "libfaketime names its shared memory as expected");
}

#[test]
fn setting_the_offset_back_to_zero_follows_the_real_clock_again() {
    let _env = env_lock();
    let node = fake_clock_node();
    let probe = node.probe();
    node.set_clock_offset(Duration::from_secs(3_600))
        .expect("an hour ahead");
    let ahead = server_time_us(&node);
    node.set_clock_offset(Duration::ZERO).expect("back");
    let back = server_time_us(&node);
    assert!(
        back < ahead,
        "an hour ahead {ahead} us, then back on the real clock {back} us"
    );
    probe.set_px("k", "v", 600_000);
    assert!(probe.pttl("k").is_some_and(|ms| ms > 0));
}

#[test]
fn a_node_without_a_fake_clock_refuses_to_move_it() {
    let _env = env_lock();
    let node = RedisNode::start().expect("start a node");
    assert_eq!(node.clock_offset(), None);
    let error = node
        .set_clock_offset(Duration::from_secs(5))
        .expect_err("no fake clock");
    assert!(
        matches!(error, LaunchError::NoFakeClock { port } if port == node.port()),
        "{error}"
    );
    assert!(matches!(
        node.jump_clock(Duration::from_secs(5)),
        Err(LaunchError::NoFakeClock { .. })
    ));
}

#[test]
fn a_missing_libfaketime_says_how_to_install_it() {
    let _env = env_lock();
    // The real one is installed (the suite's test command installs it).
    let found = find_libfaketime().unwrap_or_else(|e| panic!("{e}"));
    assert!(found.ends_with("libfaketime.so.1"), "{}", found.display());

    let start_with_library = |library: &str| {
        let previous = std::env::var_os(LIBFAKETIME_ENV);
        std::env::set_var(LIBFAKETIME_ENV, library);
        let result = RedisNode::start_with(NodeOptions {
            fake_clock: true,
            ..NodeOptions::default()
        });
        match previous {
            Some(v) => std::env::set_var(LIBFAKETIME_ENV, v),
            None => std::env::remove_var(LIBFAKETIME_ENV),
        }
        result
    };

    // A file that is no library: the loader skips it and says so; the node
    // would run on the real clock, so the start fails.
    let not_a_library = std::env::temp_dir().join(format!(
        "redlock-testkit-not-a-library-{}.so",
        std::process::id()
    ));
    std::fs::write(&not_a_library, "not an ELF file").expect("write a file");
    let result = start_with_library(&not_a_library.to_string_lossy());
    let _ = std::fs::remove_file(&not_a_library);
    let error = result.expect_err("not a library");
    assert!(
        matches!(error, LaunchError::FakeClockNotLoaded { .. }),
        "{error}"
    );

    let error =
        start_with_library("/nonexistent/libfaketime.so.1").expect_err("no libfaketime there");
    assert!(
        matches!(error, LaunchError::MissingLibfaketime { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("install the Debian package faketime"),
        "{message}"
    );
    assert!(message.contains("apt-get install faketime"), "{message}");
    assert!(message.contains(LIBFAKETIME_ENV), "{message}");
}
