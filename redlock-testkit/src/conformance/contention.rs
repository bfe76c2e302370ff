//! Many owners racing for one resource.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use redlock_core::RetryCount;

use super::case::Case;
use super::support::{build, sleep, within};
use crate::fixture::Fixture;

/// Several Redlocks (each with its own backends, as separate processes) race
/// for one resource on 3 nodes, many times. Inside the critical section a
/// read-modify-write of a shared counter with an await in between, and an
/// "inside" flag: no update is lost, nobody is ever inside with someone else,
/// and the race really contended (some acquisition needed a retry).
pub async fn contention<F: Fixture>(fixture: &F) {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 10;
    let Some(case) = Case::start(fixture, "contention", 3) else {
        return;
    };
    let key = case.key("counter-lock");
    let mut redlocks = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        redlocks.push(build(
            case.builder()
                .await
                .retry_count(RetryCount::Limited(500))
                .retry_delay(Duration::from_millis(4))
                .retry_jitter(Duration::from_millis(3)),
        ));
    }
    let counter = AtomicU64::new(0);
    let inside = AtomicBool::new(false);
    let overlaps = AtomicU64::new(0);
    let successes = AtomicU64::new(0);
    let retried = AtomicU64::new(0);

    let workers = redlocks.iter().enumerate().map(|(w, redlock)| {
        let (key, counter, inside, overlaps, successes, retried) =
            (&key, &counter, &inside, &overlaps, &successes, &retried);
        async move {
            for round in 0..ROUNDS {
                let lock = match redlock.acquire(&[key], Duration::from_secs(5)).await {
                    Ok(lock) => lock,
                    Err(e) => panic!("worker {w} round {round}: acquire failed: {e:?}"),
                };
                if lock.attempts().total() > 1 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                if inside.swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let read = counter.load(Ordering::SeqCst);
                sleep(Duration::from_millis(1 + (round % 2) as u64)).await;
                counter.store(read + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                successes.fetch_add(1, Ordering::SeqCst);
                let release = lock
                    .release()
                    .await
                    .unwrap_or_else(|e| panic!("worker {w} round {round}: release failed: {e:?}"));
                assert!(release.was_held(), "worker {w} round {round}: {release:?}");
            }
        }
    });
    within(
        Duration::from_secs(60),
        "the contention race",
        join_all(workers),
    )
    .await;

    let successes = successes.into_inner();
    assert_eq!(
        successes,
        (WORKERS * ROUNDS) as u64,
        "every worker got every round"
    );
    assert_eq!(
        overlaps.into_inner(),
        0,
        "two owners were inside the critical section at once"
    );
    assert_eq!(
        counter.into_inner(),
        successes,
        "lost updates: the lock did not exclude"
    );
    assert!(
        retried.into_inner() > 0,
        "no acquisition ever had to retry: the workers did not actually contend"
    );
    case.finish().await;
}
