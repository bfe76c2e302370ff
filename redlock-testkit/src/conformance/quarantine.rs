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
/// again.
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

    // The nodes were just started: wait until all three vote.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = redlock.acquire(&[&key], TTL).await;
        if let Ok(lock) = &result {
            if lock.attempts().last().map(|a| a.votes_for()) == Some(3) {
                let _ = lock.release().await;
                break;
            }
        }
        if let Ok(lock) = result {
            let _ = lock.release().await;
        }
        assert!(
            Instant::now() < deadline,
            "the fresh nodes never all voted within {PATIENCE:?}"
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

    // After the window, node 0 votes again.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = redlock.acquire(&[&key], TTL).await;
        if let Some(seen) = node(&result, 0) {
            if matches!(seen.outcome, NodeOutcome::For) {
                let lock = result.expect("a lock with node 0's vote");
                case.assert_value(0, &key, Some(lock.value()), "node 0 votes again")
                    .await;
                lock.release().await.expect("release");
                break;
            }
        }
        if let Ok(lock) = result {
            let _ = lock.release().await;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never voted again within {PATIENCE:?}"
        );
        sleep(Duration::from_millis(200)).await;
    }
    case.finish().await;
}
