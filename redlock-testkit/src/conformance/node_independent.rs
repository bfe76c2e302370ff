//! Cases that need no Redis process: the lock's semantics checked through the
//! [`LockBackend`] trait alone, for any backend (an in-process node such as
//! [`MemoryBackend`](redlock_core::MemoryBackend), a user's own store, a
//! wrapper around a Redis backend).
//!
//! Each case takes `new_node`, a factory that makes one fresh, empty,
//! independent node per call; clones of a node must share it (so several
//! [`Redlock`]s, standing for several processes, contend on the same nodes).
//! A "foreign" holder is another `Redlock` over the same nodes. Each case ends
//! by checking that every one of its resources is free again on every node.
//! Run them with [`node_independent_tests!`](crate::node_independent_tests).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use redlock_core::{Error, InvalidInput, Lock, LockBackend, NeutralRuntime, Redlock, RetryCount};

use super::support::{build, fast_builder, sleep, unique_prefix, within};

fn make<F, B>(new_node: &F, n: usize) -> Vec<B>
where
    F: Fn() -> B,
{
    (0..n).map(|_| new_node()).collect()
}

fn redlock<B: LockBackend + Clone + 'static>(nodes: &[B]) -> Redlock {
    build(fast_builder(nodes.to_vec()))
}

fn try_once<B: LockBackend + Clone + 'static>(nodes: &[B]) -> Redlock {
    build(fast_builder(nodes.to_vec()).retry_count(0))
}

fn key(prefix: &str, suffix: &str) -> String {
    format!("{prefix}:{suffix}")
}

fn expect_lock(result: Result<Lock, Error>, what: &str) -> Lock {
    result.unwrap_or_else(|e| panic!("{what}: expected the lock to be acquired, got {e:?}"))
}

fn assert_held<T: std::fmt::Debug>(result: &Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::Held(_))),
        "{what}: expected Error::Held, got {result:?}"
    );
}

/// Asserts that `resource` is free on every node by itself (a one-node
/// try-lock on each node succeeds), then lets it go again.
async fn assert_free<B: LockBackend + Clone + 'static>(
    nodes: &[B],
    resources: &[String],
    what: &str,
) {
    for (i, node) in nodes.iter().enumerate() {
        let single = build(
            Redlock::builder(vec![node.clone()])
                .runtime(NeutralRuntime)
                .retry_count(0),
        );
        for resource in resources {
            match single.acquire(&[resource], Duration::from_secs(5)).await {
                Ok(lock) => {
                    let release = lock.release().await.expect("release of the check lock");
                    assert!(release.was_held(), "{release:?}");
                }
                Err(e) => panic!("{what}: {resource:?} is still held on node {i}: {e:?}"),
            }
        }
    }
}

/// Acquire, extend, release on one node: while held, another owner is
/// refused; the extension expires later; after release, the resource is free.
pub async fn acquire_extend_release<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("acquire_extend_release");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 1);
    let redlock = redlock(&nodes);
    let other = try_once(&nodes);

    let lock = expect_lock(
        redlock.acquire(&[&k], Duration::from_secs(10)).await,
        "acquire",
    );
    assert_eq!(
        lock.resources(),
        std::slice::from_ref(&k),
        "the lock's resources are the names given"
    );
    assert!(
        lock.value().len() >= 32,
        "the value carries at least 128 bits: {:?}",
        lock.value()
    );
    assert_eq!(lock.attempts().total(), 1);
    assert_held(
        &other.acquire(&[&k], Duration::from_secs(10)).await,
        "another owner while held",
    );

    let extended = lock
        .extend(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("extend: {e:?}"));
    assert_eq!(extended.value(), lock.value());
    assert!(
        extended.expiration() > lock.expiration(),
        "the extension expires later"
    );
    assert!(extended.remaining_validity() > Duration::from_secs(19));
    assert_held(
        &other.acquire(&[&k], Duration::from_secs(10)).await,
        "another owner after extend",
    );

    let release = extended.release().await.expect("release");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(release.released, 1);
    assert_free(&nodes, &[k], "after release").await;
}

/// A second owner fails with `Error::Held` after its retries (3 nodes).
pub async fn exclusivity<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("exclusivity");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let first = redlock(&nodes);
    let second = build(fast_builder(nodes.clone()).retry_count(2));

    let lock = expect_lock(
        first.acquire(&[&k], Duration::from_secs(10)).await,
        "first acquire",
    );
    match second.acquire(&[&k], Duration::from_secs(10)).await {
        Err(Error::Held(failure)) => {
            assert_eq!(failure.attempts.total(), 3, "retry_count 2: {failure}")
        }
        other => panic!("a second owner must fail with Error::Held, got {other:?}"),
    }
    assert!(lock.release().await.expect("release").was_held());
    let again = expect_lock(
        second.acquire(&[&k], Duration::from_secs(10)).await,
        "after release",
    );
    assert!(again.release().await.expect("release").was_held());
    assert_free(&nodes, &[k], "at the end").await;
}

/// All or nothing: with b held by another owner, acquiring {a, b, c} fails
/// with `Error::Held` and leaves a and c free; with all free, every key is taken.
pub async fn multi_resource_all_or_nothing<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("multi_resource_all_or_nothing");
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|s| key(&prefix, s));
    let nodes = make(&new_node, 1);
    let foreign = redlock(&nodes);
    let redlock = build(fast_builder(nodes.clone()).retry_count(1));

    let held_b = expect_lock(
        foreign.acquire(&[&b], Duration::from_secs(10)).await,
        "foreign b",
    );
    assert_held(
        &redlock
            .acquire(&[&a, &b, &c], Duration::from_secs(10))
            .await,
        "acquire {a, b, c} with b held",
    );
    assert_free(
        &nodes,
        &[a.clone(), c.clone()],
        "a and c after the failed {a, b, c}",
    )
    .await;
    assert!(held_b.release().await.expect("release b").was_held());

    let lock = expect_lock(
        redlock
            .acquire(&[&a, &c, &d], Duration::from_secs(10))
            .await,
        "acquire {a, c, d}",
    );
    let probe = try_once(&nodes);
    for k in [&a, &c, &d] {
        assert_held(
            &probe.acquire(&[k], Duration::from_secs(10)).await,
            "each key of a multi-resource lock",
        );
    }
    assert!(lock.release().await.expect("release").was_held());
    assert_free(&nodes, &[a, b, c, d], "at the end").await;
}

/// Overlapping multi-locks: with {a, b} held, {b, c} fails and leaves c free,
/// {c, d} succeeds.
pub async fn overlapping_multi_locks<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("overlapping_multi_locks");
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|s| key(&prefix, s));
    let nodes = make(&new_node, 3);
    let first = redlock(&nodes);
    let second = build(fast_builder(nodes.clone()).retry_count(1));

    let ab = expect_lock(
        first.acquire(&[&a, &b], Duration::from_secs(10)).await,
        "acquire {a, b}",
    );
    assert_held(
        &second.acquire(&[&b, &c], Duration::from_secs(10)).await,
        "{b, c} while {a, b} is held",
    );
    assert_free(
        &nodes,
        std::slice::from_ref(&c),
        "c after the failed {b, c}",
    )
    .await;
    let cd = expect_lock(
        second.acquire(&[&c, &d], Duration::from_secs(10)).await,
        "{c, d}",
    );
    assert!(ab.release().await.expect("release").was_held());
    assert!(cd.release().await.expect("release").was_held());
    assert_free(&nodes, &[a, b, c, d], "at the end").await;
}

/// Only the owner releases or extends: once the lock was let go and another
/// owner took the resource, the old `Lock`'s extend fails with
/// `Error::Expired` and its release is `Ok` with `was_held() == false`,
/// leaving the other owner's lock in place.
pub async fn release_and_extend_only_by_owner<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("release_and_extend_only_by_owner");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let first = redlock(&nodes);
    let foreign = redlock(&nodes);

    let old = expect_lock(
        first.acquire(&[&k], Duration::from_secs(10)).await,
        "acquire",
    );
    assert!(old.release().await.expect("release").was_held());
    let theirs = expect_lock(
        foreign.acquire(&[&k], Duration::from_secs(10)).await,
        "another owner",
    );

    let extended = old.extend(Duration::from_secs(10)).await;
    assert!(
        matches!(extended, Err(Error::Expired { .. })),
        "extend of a lock now held by another owner: expected Error::Expired, got {extended:?}"
    );
    let release = old
        .release()
        .await
        .expect("release of a lock no longer held is Ok");
    assert!(!release.was_held(), "{release:?}");
    assert_eq!(release.not_held, 3, "{release:?}");
    assert_held(
        &try_once(&nodes)
            .acquire(&[&k], Duration::from_secs(10))
            .await,
        "the other owner's lock survives",
    );
    assert!(theirs.release().await.expect("release").was_held());
    assert_free(&nodes, &[k], "at the end").await;
}

/// A 150 ms lock expires: the `Lock` knows it, and another owner acquires.
pub async fn automatic_expiry<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("automatic_expiry");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let first = redlock(&nodes);
    let lock = expect_lock(
        first.acquire(&[&k], Duration::from_millis(150)).await,
        "acquire",
    );
    sleep(Duration::from_millis(250)).await;
    assert!(lock.is_expired(), "the Lock knows it expired");
    assert_eq!(lock.remaining_validity(), Duration::ZERO);
    let next = expect_lock(
        try_once(&nodes)
            .acquire(&[&k], Duration::from_secs(5))
            .await,
        "another owner after expiry",
    );
    assert!(next.release().await.expect("release").was_held());
    assert_free(&nodes, &[k], "at the end").await;
}

/// Releasing an expired lock is `Ok`, `was_held() == false`, in one round.
pub async fn release_of_expired_lock<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("release_of_expired_lock");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let lock = expect_lock(
        redlock(&nodes)
            .acquire(&[&k], Duration::from_millis(100))
            .await,
        "acquire",
    );
    sleep(Duration::from_millis(200)).await;
    let release = lock
        .release()
        .await
        .expect("release of an expired lock is Ok");
    assert!(!release.was_held(), "{release:?}");
    assert_eq!(release.not_held, 3, "{release:?}");
    assert_eq!(
        release.attempts.total(),
        1,
        "one round, no retry storm: {:?}",
        release.attempts
    );
    assert_free(&nodes, &[k], "at the end").await;
}

/// On `n` nodes, another owner holding a minority (through a Redlock over
/// those nodes only) does not stop the acquisition.
pub async fn minority_held<F, B>(new_node: F, n: usize)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("minority_held");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, n);
    let held = (n - 1) / 2;
    let foreign = redlock(&nodes[..held]);
    let theirs = expect_lock(
        foreign.acquire(&[&k], Duration::from_secs(10)).await,
        "foreign minority",
    );
    let ours = expect_lock(
        redlock(&nodes)
            .acquire(&[&k], Duration::from_secs(10))
            .await,
        &format!("acquire with {held} of {n} nodes held by another owner"),
    );
    let release = ours.release().await.expect("release");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.not_held, held,
        "the foreign nodes did not hold our value: {release:?}"
    );
    assert!(
        theirs.release().await.expect("foreign release").was_held(),
        "the foreign keys were left untouched"
    );
    assert_free(&nodes, &[k], "at the end").await;
}

/// On `n` nodes, another owner holding a majority makes the acquisition fail
/// with `Error::Held`, leaving the other nodes free and the foreign lock intact.
pub async fn majority_held<F, B>(new_node: F, n: usize)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("majority_held");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, n);
    let held = n / 2 + 1;
    let foreign = redlock(&nodes[..held]);
    let theirs = expect_lock(
        foreign.acquire(&[&k], Duration::from_secs(10)).await,
        "foreign majority",
    );
    let result = build(fast_builder(nodes.clone()).retry_count(1))
        .acquire(&[&k], Duration::from_secs(10))
        .await;
    assert_held(&result, &format!("acquire with {held} of {n} nodes held"));
    assert_free(
        &nodes[held..],
        std::slice::from_ref(&k),
        "the free nodes after a failed acquire",
    )
    .await;
    let release = theirs.release().await.expect("foreign release");
    assert!(
        release.was_held() && release.released == held,
        "the foreign lock was intact: {release:?}"
    );
    assert_free(&nodes, &[k], "at the end").await;
}

/// Several Redlocks race for one resource: no lost update on a
/// read-modify-write with an await inside, never two inside, and the race
/// really contended.
pub async fn contention<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    const WORKERS: usize = 4;
    const ROUNDS: usize = 25;
    let prefix = unique_prefix("contention");
    let k = key(&prefix, "counter-lock");
    let nodes = make(&new_node, 3);
    let redlocks: Vec<Redlock> = (0..WORKERS)
        .map(|_| {
            build(
                fast_builder(nodes.clone())
                    .retry_count(RetryCount::Limited(1000))
                    .retry_delay(Duration::from_millis(2))
                    .retry_jitter(Duration::from_millis(2)),
            )
        })
        .collect();
    let counter = AtomicU64::new(0);
    let inside = AtomicBool::new(false);
    let overlaps = AtomicU64::new(0);
    let retried = AtomicU64::new(0);
    let workers = redlocks.iter().enumerate().map(|(w, redlock)| {
        let (k, counter, inside, overlaps, retried) = (&k, &counter, &inside, &overlaps, &retried);
        async move {
            for round in 0..ROUNDS {
                let lock = redlock
                    .acquire(&[k], Duration::from_secs(5))
                    .await
                    .unwrap_or_else(|e| panic!("worker {w} round {round}: {e:?}"));
                if lock.attempts().total() > 1 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                if inside.swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let read = counter.load(Ordering::SeqCst);
                sleep(Duration::from_millis(1)).await;
                counter.store(read + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                assert!(lock.release().await.expect("release").was_held());
            }
        }
    });
    within(
        Duration::from_secs(60),
        "the contention race",
        join_all(workers),
    )
    .await;
    assert_eq!(overlaps.into_inner(), 0, "two owners were inside at once");
    assert_eq!(
        counter.into_inner(),
        (WORKERS * ROUNDS) as u64,
        "lost updates"
    );
    assert!(retried.into_inner() > 0, "the workers never contended");
    assert_free(&nodes, &[k], "at the end").await;
}

fn is_unsupported(e: &Error) -> bool {
    e.failure()
        .and_then(|f| f.rejection())
        .is_some_and(|r| r.kind() == redlock_core::ErrorKind::Unsupported)
}

/// Fencing tokens on 3 nodes: strictly higher for every later owner, kept by
/// an extension. Skipped (with a note) when the backend answers `Unsupported`.
pub async fn fencing_tokens<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("fencing_tokens");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let mut last = 0;
    for owner in 0..3 {
        let redlock = build(fast_builder(nodes.clone()).fencing(true));
        let lock = match redlock.acquire(&[&k], Duration::from_secs(10)).await {
            Err(e) if is_unsupported(&e) => {
                eprintln!("note: case `fencing_tokens` skipped: the backend does not implement fencing ({e})");
                return;
            }
            result => expect_lock(result, "a fenced acquire"),
        };
        let token = lock.fencing_token().expect("a fenced lock carries a token");
        assert!(
            token > last,
            "owner {owner}: the token must rise: {last} then {token}"
        );
        last = token;
        let lock = lock.extend(Duration::from_secs(10)).await.expect("extend");
        assert_eq!(
            lock.fencing_token(),
            Some(token),
            "an extension keeps the token"
        );
        assert!(lock.release().await.expect("release").was_held());
    }
    assert_free(&nodes, &[k], "at the end").await;
}

/// Wake-on-release on 3 nodes: a waiter whose retry delay is 5 s acquires
/// promptly when the holder releases. Skipped (with a note) when the
/// backend's `watch_releases` answers `Unsupported`.
pub async fn wake_on_release<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    use redlock_core::wake::{release_channel, ReleaseWait};
    use std::time::Instant;

    let prefix = unique_prefix("wake_on_release");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    {
        let wait = ReleaseWait::new();
        if let Err(e) = nodes[0]
            .watch_releases(&[release_channel(&k)], &wait.waker())
            .await
        {
            assert_eq!(
                e.kind(),
                redlock_core::ErrorKind::Unsupported,
                "watch_releases failed: {e:?}"
            );
            eprintln!("note: case `wake_on_release` skipped: the backend does not implement watch_releases ({e})");
            return;
        }
    }
    let holder = build(fast_builder(nodes.clone()).wake_on_release(true));
    let waiter = build(
        fast_builder(nodes.clone())
            .wake_on_release(true)
            .retry_count(3)
            .retry_delay(Duration::from_secs(5))
            .retry_jitter(Duration::ZERO),
    );
    let lock = expect_lock(
        holder.acquire(&[&k], Duration::from_secs(10)).await,
        "the holder",
    );
    let released_at = std::sync::Mutex::new(None);
    let hold = async {
        sleep(Duration::from_millis(300)).await;
        *released_at.lock().unwrap() = Some(Instant::now());
        assert!(lock.release().await.expect("release").was_held());
    };
    let wait = async {
        (
            waiter.acquire(&[&k], Duration::from_secs(10)).await,
            Instant::now(),
        )
    };
    let ((), (got, acquired_at)) = within(
        Duration::from_secs(20),
        "the race",
        futures::future::join(hold, wait),
    )
    .await;
    let got = expect_lock(got, "the waiter");
    let after =
        acquired_at.saturating_duration_since(released_at.into_inner().unwrap().expect("released"));
    assert!(
        after < Duration::from_millis(2500),
        "the waiter took {after:?} after the release: not woken by it (its retry delay is 5 s)"
    );
    assert!(got.release().await.expect("release").was_held());
    assert_free(&nodes, &[k], "at the end").await;
}

#[derive(Debug, PartialEq)]
enum CaseError {
    Lock(String),
    Routine(&'static str),
}

impl From<Error> for CaseError {
    fn from(e: Error) -> Self {
        CaseError::Lock(format!("{e:?}"))
    }
}

/// `using` with a 300 ms TTL and a 150 ms threshold keeps the lock through a
/// 1 s routine (another owner is refused mid-way and near the end, the signal
/// never aborts), returns the routine's value and releases at once.
pub async fn using_keeps_lock_while_routine_runs<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("using_keeps_lock_while_routine_runs");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let redlock = build(
        fast_builder(nodes.clone()).automatic_extension_threshold(Duration::from_millis(150)),
    );
    let other = try_once(&nodes);
    let inside = (&k, &other);
    let result: Result<u32, CaseError> = redlock
        .using(
            &[&k],
            Duration::from_millis(300),
            move |signal| async move {
                let (k, other) = inside;
                for (wait, when) in [
                    (450, "after 450 ms"),
                    (300, "after 750 ms"),
                    (250, "after 1 s"),
                ] {
                    sleep(Duration::from_millis(wait)).await;
                    assert!(
                        !signal.is_aborted(),
                        "{when}: the lock was lost: {:?}",
                        signal.error()
                    );
                    assert_held(&other.acquire(&[k], Duration::from_secs(1)).await, when);
                }
                Ok(7)
            },
        )
        .await;
    assert_eq!(result, Ok(7));
    assert_free(&nodes, &[k], "right after using() returned").await;
}

/// `using` returns the routine's own error unchanged, and releases.
pub async fn using_returns_routine_error<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("using_returns_routine_error");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 3);
    let result: Result<(), CaseError> = redlock(&nodes)
        .using(&[&k], Duration::from_secs(5), |_signal| async {
            Err(CaseError::Routine("routine failed"))
        })
        .await;
    assert_eq!(
        result,
        Err(CaseError::Routine("routine failed")),
        "the routine's error, unmasked"
    );
    assert_free(&nodes, &[k], "after a failed routine").await;
}

/// Bad input fails with `Error::InvalidInput`, and nothing is taken.
pub async fn bad_input_rejected<F, B>(new_node: F)
where
    F: Fn() -> B,
    B: LockBackend + Clone + 'static,
{
    let prefix = unique_prefix("bad_input_rejected");
    let k = key(&prefix, "resource");
    let nodes = make(&new_node, 1);
    let redlock = redlock(&nodes);
    let none: [&str; 0] = [];
    let result = redlock.acquire(&none, Duration::from_secs(1)).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::NoResources))),
        "empty resource list: {result:?}"
    );
    let result = redlock.acquire(&[&k, &k], Duration::from_secs(1)).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::DuplicateResource(_)))
        ),
        "duplicate resource: {result:?}"
    );
    let result = redlock.acquire(&[&k], Duration::ZERO).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::ZeroTtl))),
        "zero TTL: {result:?}"
    );
    assert_free(&nodes, &[k], "after bad input").await;
}
