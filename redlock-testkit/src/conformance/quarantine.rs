//! Restart quarantine: a node restarted without persistence does not vote
//! for a lock until the window has passed since it came back.

use std::time::{Duration, Instant};

use redlock_core::{Error, ErrorKind, Lock, NodeOutcome, NodeResult, Quarantine, Redlock};

use super::case::Case;
use super::support::{build, sleep, within};
use crate::fixture::Fixture;

/// The quarantine window of the case, and the TTL its locks use (below it).
const WINDOW: Duration = Duration::from_secs(3);
const TTL: Duration = Duration::from_secs(2);

/// Generous limits: nothing here asserts timing, it only polls.
const PATIENCE: Duration = Duration::from_secs(40);

fn node(lock_or_error: &Result<Lock, Error>, i: usize) -> Option<NodeResult> {
    let attempt = match lock_or_error {
        Ok(lock) => lock.attempts().last(),
        Err(e) => e.failure().and_then(|f| f.attempts.last()),
    }?;
    attempt.nodes.iter().find(|r| r.node == i).cloned()
}

/// Acquires `key` once (no retry) and releases it at once if acquired,
/// returning node `i`'s result in that attempt.
async fn try_once(redlock: &Redlock, key: &str, i: usize) -> (Option<NodeResult>, bool) {
    let result = within(
        Duration::from_secs(10),
        "one acquire under restart quarantine",
        redlock.acquire(&[key], TTL),
    )
    .await;
    let acquired = result.is_ok();
    let seen = node(&result, i);
    if let Ok(lock) = result {
        let _ = lock.release().await;
    }
    (seen, acquired)
}

/// 3 nodes, quarantine 3 s, TTL 2 s: TTLs above the window are
/// `InvalidInput`; once the nodes are old enough a lock is acquired; node 0
/// restarted without persistence (its keys lost) is then refused a vote
/// (`Failed(Quarantined)`, with the time left in
/// [`NodeResult::quarantine`]) while the lock is still acquired on the
/// other two, and it never holds the key; after the window its vote counts
/// again (a second key held by another owner on node 1 is then acquired,
/// which needs node 0's vote).
pub async fn restart_quarantine<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "restart_quarantine", 3) else {
        return;
    };
    let key = case.key("resource");
    let redlock = build(
        case.builder()
            .await
            .restart_quarantine(WINDOW)
            .retry_count(0),
    );

    // A TTL the quarantine would not cover is refused before any node.
    match redlock
        .acquire(&[&key], WINDOW + Duration::from_millis(1))
        .await
    {
        Err(Error::InvalidInput(_)) => {}
        other => panic!("a TTL above the quarantine must be InvalidInput, got {other:?}"),
    }

    // The nodes were just started: wait until each has voted for (a round
    // may be decided before its third node answers, so across attempts).
    let deadline = Instant::now() + PATIENCE;
    let mut voted = [false; 3];
    while voted.contains(&false) {
        let result = redlock.acquire(&[&key], TTL).await;
        for (i, seen) in voted.iter_mut().enumerate() {
            if node(&result, i).is_some_and(|r| matches!(r.outcome, NodeOutcome::For)) {
                *seen = true;
            }
        }
        if let Ok(lock) = result {
            let _ = lock.release().await;
        }
        assert!(
            Instant::now() < deadline,
            "the fresh nodes never all voted within {PATIENCE:?}: {voted:?}"
        );
        sleep(Duration::from_millis(200)).await;
    }

    // Restart node 0 without persistence: it comes back empty.
    case.restart(0);

    // Until the window passes, node 0 never votes for: first its broken
    // connection fails, then its age is read and it is quarantined.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (seen, acquired) = try_once(&redlock, &key, 0).await;
        let seen = seen.expect("a result for node 0");
        match (&seen.outcome, seen.quarantine) {
            (NodeOutcome::For, _) => {
                panic!("the restarted node voted for a lock inside its quarantine: {seen:?}")
            }
            (NodeOutcome::Failed(e), Some(Quarantine::Restarted { up_for, left })) => {
                assert_eq!(e.kind(), ErrorKind::Quarantined, "{e:?}");
                assert!(
                    left > Duration::ZERO && left <= WINDOW && up_for < WINDOW,
                    "time left must be within the window: {seen:?}"
                );
                assert!(
                    acquired,
                    "the two other nodes still make a quorum: {seen:?}"
                );
                break;
            }
            (NodeOutcome::Failed(e), Some(Quarantine::Unverified)) => {
                assert_eq!(e.kind(), ErrorKind::Quarantined, "{e:?}");
            }
            // The old connection's failure, before the age is read again.
            (NodeOutcome::Failed(e), None) => assert!(
                matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                "{e:?}"
            ),
            // The two others decided the round first (node 0's age read, or
            // its failure, still in flight).
            (NodeOutcome::Unanswered, _) => {}
            (other, q) => panic!("unexpected outcome for the restarted node: {other:?} {q:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node was never reported quarantined"
        );
        sleep(Duration::from_millis(50)).await;
    }
    case.assert_value(0, &key, None, "a quarantined node is not asked")
        .await;

    // After the window, node 0 votes again. Another owner holds a second
    // key on node 1, so a lock on it needs node 0's vote.
    let second = case.key("second");
    let foreign = case
        .hold_foreign(1, &[&second], Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + PATIENCE;
    let lock = loop {
        match redlock.acquire(&[&second], TTL).await {
            Ok(lock) => break lock,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the restarted node never voted again within {PATIENCE:?}: {e}"
            ),
        }
        sleep(Duration::from_millis(200)).await;
    };
    let seen = lock
        .attempts()
        .last()
        .and_then(|a| a.nodes.iter().find(|r| r.node == 0).cloned())
        .expect("a result for node 0");
    assert!(
        matches!(seen.outcome, NodeOutcome::For) && seen.quarantine.is_none(),
        "with node 1 held by another owner, the lock needs node 0: {seen:?}"
    );
    case.assert_value(0, &second, Some(lock.value()), "node 0 votes again")
        .await;
    lock.release().await.expect("release");
    case.release_foreign(foreign, "after the window").await;
    case.finish().await;
}
