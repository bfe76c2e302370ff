//! Restart quarantine on a Redis Cluster: each master is a node for the
//! quarantine, so a master restarted without persistence does not vote for
//! the resources of its slots until the window has passed, while the other
//! masters keep voting for theirs.

use std::time::{Duration, Instant};

use redlock_core::{Error, ErrorKind, Lock, NodeOutcome, NodeResult, Quarantine, Redlock};

use super::cluster::ClusterCase;
use super::support::{build, sleep, within};
use crate::fixture::Fixture;
use crate::probe::ClusterProbe;

/// The quarantine window of the case, and the TTL its locks use (below it).
const WINDOW: Duration = Duration::from_secs(3);
const TTL: Duration = Duration::from_secs(2);

/// Generous limits: nothing here asserts timing, it only polls.
const PATIENCE: Duration = Duration::from_secs(40);

/// The cluster backend's result (the only node, 0) in the last attempt.
fn outcome(result: &Result<Lock, Error>) -> Option<NodeResult> {
    let attempt = match result {
        Ok(lock) => lock.attempts().last(),
        Err(e) => e.failure().and_then(|f| f.attempts.last()),
    }?;
    attempt.nodes.iter().find(|r| r.node == 0).cloned()
}

/// The cluster backend's result in the attempt that made `lock`.
fn granted_by(lock: &Lock) -> Option<NodeResult> {
    let attempt = lock.attempts().last()?;
    attempt.nodes.iter().find(|r| r.node == 0).cloned()
}

/// Acquires `key` once (no retry), releasing it at once if acquired.
async fn try_once(redlock: &Redlock, key: &str) -> (Option<NodeResult>, bool) {
    let result = within(
        Duration::from_secs(10),
        "one acquire under restart quarantine on a cluster",
        redlock.acquire(&[key], TTL),
    )
    .await;
    let seen = outcome(&result);
    let acquired = result.is_ok();
    if let Ok(lock) = result {
        let _ = lock.release().await;
    }
    (seen, acquired)
}

/// Polls until `key` is acquired (its master old enough), within
/// [`PATIENCE`]; returns the lock.
async fn acquire_eventually(redlock: &Redlock, key: &str, what: &str) -> Lock {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = within(
            Duration::from_secs(10),
            "one acquire on a cluster",
            redlock.acquire(&[key], TTL),
        )
        .await;
        match result {
            Ok(lock) => return lock,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{what}: not acquired within {PATIENCE:?}: {e}"
            ),
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every master says `cluster_state:ok` and serves keys (a
/// node that just started or rejoined answers `CLUSTERDOWN` for a while).
async fn settle(probe: &ClusterProbe) {
    let deadline = Instant::now() + PATIENCE;
    for master in probe.masters() {
        loop {
            let info = master.try_query::<String>(redis::cmd("CLUSTER").arg("INFO"));
            let served = master.try_query::<i64>(redis::cmd("EXISTS").arg("rlt:settle"));
            let redirected = served
                .as_ref()
                .err()
                .is_some_and(|e| matches!(e.code(), Some("MOVED" | "ASK")));
            if info.is_ok_and(|i| i.contains("cluster_state:ok")) && (served.is_ok() || redirected)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not serve the cluster within {PATIENCE:?}",
                master.url()
            );
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A 3-master cluster (one backend, one vote), quarantine 3 s, TTL 2 s:
/// once the masters are old enough, a lock is taken on a key of master A;
/// A is restarted without persistence but with its cluster config (it
/// rejoins as the same master, empty): the lock's key is gone, yet no new
/// lock on it is granted inside the window. The cluster's vote is
/// `Failed(Quarantined)` with the time left in [`NodeResult::quarantine`],
/// while a key on another master is still acquired; after the window A
/// votes again and the key is acquired on it.
pub async fn cluster_restart_quarantine<F: Fixture>(fixture: &F) {
    let Some(case) = ClusterCase::start(fixture, "cluster_restart_quarantine") else {
        return;
    };
    let redlock = build(
        case.builder()
            .await
            .restart_quarantine(WINDOW)
            .retry_count(0),
    );
    let probe = &case.probe;
    settle(probe).await;
    let on_master = |m: usize, tag: &str| {
        (0..10_000)
            .map(|i| format!("{}:{tag}{i}", case.prefix))
            .find(|k| probe.owner_of(k) == m)
            .unwrap_or_else(|| panic!("no key of 10,000 on master {m}"))
    };
    // Master 1: not the first seed node, so nothing special about it.
    let restarted = 1;
    let key = on_master(restarted, "a");
    let other = on_master(2, "b");

    // A TTL the quarantine would not cover is refused before any node.
    match redlock
        .acquire(&[&key], WINDOW + Duration::from_millis(1))
        .await
    {
        Err(Error::InvalidInput(_)) => {}
        unexpected => {
            panic!("a TTL above the quarantine must be InvalidInput, got {unexpected:?}")
        }
    }

    // The cluster was just created: wait until both masters vote.
    let lock = acquire_eventually(&redlock, &other, "a key on master 2").await;
    let _ = lock.release().await;
    let held = acquire_eventually(&redlock, &key, "a key on master 1").await;
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(held.value()),
        "the lock is on master {restarted}"
    );

    // Restart master 1 without persistence: it comes back empty, as the
    // same master (its cluster config is kept).
    case.cluster
        .node(restarted)
        .restart()
        .unwrap_or_else(|e| panic!("restart master {restarted}: {e}"));
    // It refuses commands (`CLUSTERDOWN`) until it has rejoined: wait.
    settle(probe).await;
    assert_eq!(
        probe.owner_of(&key),
        restarted,
        "the restarted master keeps its slots"
    );
    assert_eq!(probe.get(&key), None, "the restart lost the lock's key");

    // The key looks free, but inside the window the restarted master never
    // votes for it: first the client's new connection voids a vote, or a
    // call fails, then its age is read and it is quarantined.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (seen, acquired) = try_once(&redlock, &key).await;
        let seen = seen.expect("a result for the cluster backend");
        assert!(
            !acquired,
            "a lock was granted by a master inside its quarantine: {seen:?}"
        );
        match (&seen.outcome, seen.quarantine) {
            (NodeOutcome::For, _) => {
                panic!("the restarted master voted for a lock inside its quarantine: {seen:?}")
            }
            (NodeOutcome::Failed(e), Some(Quarantine::Restarted { up_for, left })) => {
                assert_eq!(e.kind(), ErrorKind::Quarantined, "{e:?}");
                assert!(
                    left > Duration::ZERO && left <= WINDOW && up_for < WINDOW,
                    "time left must be within the window: {seen:?}"
                );
                break;
            }
            (NodeOutcome::Failed(e), Some(Quarantine::Unverified)) => {
                assert_eq!(e.kind(), ErrorKind::Quarantined, "{e:?}");
            }
            // The old connection's failure, or the cluster settling
            // (`CLUSTERDOWN` while the master rejoins), before the age is read.
            (NodeOutcome::Failed(e), None) => assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Busy
                ),
                "{e:?}"
            ),
            (other, q) => panic!("unexpected outcome for the restarted master: {other:?} {q:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the restarted master was never reported quarantined"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        probe.get(&key),
        None,
        "no vote was taken from the quarantined master"
    );

    // Another master did not restart: its keys are locked meanwhile.
    let lock = acquire_eventually(&redlock, &other, "a key on a master that did not restart").await;
    let seen = granted_by(&lock).expect("a result");
    assert!(
        matches!(seen.outcome, NodeOutcome::For) && seen.quarantine.is_none(),
        "{seen:?}"
    );
    assert!(lock.release().await.expect("release").was_held());

    // After the window, the restarted master votes again.
    let lock = acquire_eventually(&redlock, &key, "the restarted master after its window").await;
    let seen = granted_by(&lock).expect("a result");
    assert!(
        matches!(seen.outcome, NodeOutcome::For) && seen.quarantine.is_none(),
        "{seen:?}"
    );
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(lock.value()),
        "the restarted master holds the new lock"
    );
    assert!(lock.release().await.expect("release").was_held());
    // The first lock's key was lost in the restart: not held any more.
    let release = held.release().await.expect("release of the lost lock");
    assert!(!release.was_held(), "{release:?}");
    case.finish();
}
