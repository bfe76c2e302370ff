//! Nodes that fail: dead, paused, restarted, password-protected.

use std::time::Duration;

use redlock_core::{ErrorKind, NodeOutcome};

use super::case::{assert_held, assert_rejected, expect_lock, Case};
use super::support::{build, fast_builder, sleep, within};
use crate::fixture::Fixture;
use crate::server::NodeOptions;

/// One of 3 nodes killed (connection refused): acquisition succeeds, and the
/// dead node's statistics say `Failed` with kind `Connection` (or `Timeout`).
pub async fn unreachable_node_refused<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "unreachable_node_refused", 3) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;
    case.kill(2);

    let lock = expect_lock(
        within(
            Duration::from_secs(10),
            "acquire with a dead node",
            redlock.acquire(&[&key], Duration::from_secs(10)),
        )
        .await,
        "acquire with 1 of 3 nodes killed",
    );
    let attempt = lock.attempts().last().expect("attempt statistics");
    let dead = attempt
        .nodes
        .iter()
        .find(|r| r.node == 2)
        .expect("a result for node 2");
    match &dead.outcome {
        NodeOutcome::Failed(e) => assert!(
            matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "a refused connection is a Connection (or Timeout) error, got {e:?}"
        ),
        // The quorum may be decided before a refusal arrives; the release
        // below awaits every node and is checked strictly.
        NodeOutcome::Unanswered => {}
        other => panic!("the dead node cannot vote: {other:?}"),
    }
    for i in 0..2 {
        case.assert_value(i, &key, Some(lock.value()), "a live node")
            .await;
    }
    let release = within(
        Duration::from_secs(10),
        "release with a dead node",
        lock.release(),
    )
    .await
    .expect("release with 1 of 3 nodes killed");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(release.failed, 1, "{release:?}");
    let last = release.attempts.last().expect("release statistics");
    let dead = last
        .nodes
        .iter()
        .find(|r| r.node == 2)
        .expect("a result for node 2");
    assert!(
        matches!(&dead.outcome, NodeOutcome::Failed(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)),
        "release: the dead node's outcome must be Failed(Connection or Timeout), got {:?}",
        dead.outcome
    );
    case.finish().await;
}

/// One of 3 nodes paused (SIGSTOP on Redis: it accepts connections and
/// answers nothing): acquisition still succeeds and returns, the paused
/// node's outcome is `Failed(Timeout)` or `Unanswered`, and release returns
/// too (the per-node timeout works).
pub async fn paused_node_times_out<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "paused_node_times_out", 3) else {
        return;
    };
    let key = case.key("resource");
    let redlock = build(
        case.builder()
            .await
            .node_timeout(Duration::from_millis(500)),
    );
    case.pause(1);

    let ttl = Duration::from_secs(2);
    let lock = expect_lock(
        within(
            Duration::from_secs(5),
            "acquire with a paused node (the per-node timeout must bound it)",
            redlock.acquire(&[&key], ttl),
        )
        .await,
        "acquire with 1 of 3 nodes paused",
    );
    let attempt = lock.attempts().last().expect("attempt statistics");
    let paused = attempt
        .nodes
        .iter()
        .find(|r| r.node == 1)
        .expect("a result for node 1");
    assert!(
        matches!(&paused.outcome, NodeOutcome::Unanswered)
            || matches!(&paused.outcome, NodeOutcome::Failed(e) if e.kind() == ErrorKind::Timeout),
        "a paused node is Failed(Timeout) or Unanswered, got {:?}",
        paused.outcome
    );
    let release = within(
        Duration::from_secs(5),
        "release with a paused node (the per-node timeout must bound it)",
        lock.release(),
    )
    .await
    .expect("release with 1 of 3 nodes paused");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.failed, 1,
        "the paused node fails the release: {release:?}"
    );

    case.resume(1);
    // The resumed node now runs what was queued (maybe the acquire after the
    // release): release again, then wait out the TTL if need be.
    sleep(Duration::from_millis(100)).await;
    let _ = within(
        Duration::from_secs(5),
        "release after resume",
        lock.release(),
    )
    .await;
    assert!(
        case.gone_within(1, &key, ttl + Duration::from_secs(1))
            .await,
        "the resumed node's key must be released or expire"
    );
    case.finish().await;
}

/// A node restarted with persistence (`appendfsync always` on Redis) keeps
/// the lock: another owner is still refused, and the original owner's
/// backend reconnects and releases it.
pub async fn node_restart_with_persistence<F: Fixture>(fixture: &F) {
    let options = NodeOptions {
        persistence: true,
        ..NodeOptions::default()
    };
    let Some(case) = Case::start_with(fixture, "node_restart_with_persistence", 1, options) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );

    case.restart(0);
    case.assert_value(
        0,
        &key,
        Some(lock.value()),
        "the key survives a restart with persistence",
    )
    .await;
    let other = build(case.builder().await.retry_count(0));
    assert_held(
        &other.acquire(&[&key], Duration::from_secs(10)).await,
        "after the restart the lock is still held",
    );

    // The original backend's connection died with the process: it must
    // reconnect by itself within a few calls.
    let mut released = false;
    for _ in 0..40 {
        if let Ok(release) = lock.release().await {
            if release.was_held() {
                released = true;
                break;
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        released,
        "the backend must reconnect after a node restart and release the lock"
    );
    case.assert_value(0, &key, None, "after release").await;
    case.finish().await;
}

/// A password-protected node is reached through a URL that carries the
/// password (`redis://:PASSWORD@127.0.0.1:PORT`).
pub async fn password_in_url<F: Fixture>(fixture: &F) {
    let options = NodeOptions {
        password: Some("s3cret-pass".to_owned()),
        ..NodeOptions::default()
    };
    let Some(case) = Case::start_with(fixture, "password_in_url", 1, options) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire with a password",
    );
    case.assert_value(0, &key, Some(lock.value()), "after acquire with a password")
        .await;
    assert!(lock.release().await.expect("release").was_held());
    case.finish().await;
}

/// A wrong password fails with `Error::Rejected` (kind `Auth`, permanent: no
/// retries), not as a node being down, and writes nothing.
pub async fn wrong_password_rejected<F: Fixture>(fixture: &F) {
    let options = NodeOptions {
        password: Some("right-pass".to_owned()),
        ..NodeOptions::default()
    };
    let Some(case) = Case::start_with(fixture, "wrong_password_rejected", 1, options) else {
        return;
    };
    let key = case.key("resource");
    let backend = case
        .fixture
        .backend_with_password(&case.nodes, 0, "wrong-pass")
        .await
        .expect("the fixture provides passwords")
        .unwrap_or_else(|e| panic!("a backend with a wrong password must still be made: {e}"));
    let redlock = build(fast_builder(vec![backend]));
    let result = within(
        Duration::from_secs(10),
        "acquire with a wrong password",
        redlock.acquire(&[&key], Duration::from_secs(10)),
    )
    .await;
    assert_rejected(&result, ErrorKind::Auth, "acquire with a wrong password");
    if let Some(view) = case.inspect(0) {
        assert_eq!(view.key_count(), 0, "a rejected acquire writes nothing");
    }
    case.finish().await;
}
