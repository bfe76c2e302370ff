//! The lock's basic semantics: acquire, extend, release, exclusion, expiry,
//! ownership.

use std::time::{Duration, Instant};

use redlock_core::Error;

use super::case::{assert_held, expect_lock, Case};
use super::support::build;
use crate::fixture::Fixture;

/// Acquire, extend and release on one node: the node holds the lock's value
/// with a TTL within the lock's after acquire, the TTL is reset (not added
/// to) by extend, another owner is refused meanwhile, and the key is gone
/// after release. The lock reports its resources as given and a value of at
/// least 128 bits.
pub async fn acquire_extend_release<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "acquire_extend_release", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;
    let other = build(case.builder().await.retry_count(0));

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );
    assert_eq!(
        lock.resources(),
        std::slice::from_ref(&key),
        "the lock's resources are the names given"
    );
    assert!(
        lock.value().len() >= 32,
        "the value carries at least 128 bits: {:?}",
        lock.value()
    );
    case.assert_value(
        0,
        &key,
        Some(lock.value()),
        "after acquire, the lock's value",
    )
    .await;
    case.assert_ttl_in(0, &key, 0, 10_000, "after acquire with a 10 s TTL");
    assert_eq!(
        lock.attempts().total(),
        1,
        "a free resource is acquired at the first attempt"
    );
    assert!(
        lock.remaining_validity() > Duration::from_secs(9),
        "validity left: {lock:?}"
    );
    assert_held(
        &other.acquire(&[&key], Duration::from_secs(10)).await,
        "another owner while held",
    );

    let extended = lock
        .extend(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("extend: expected the lock to be extended, got {e:?}"));
    assert_eq!(extended.value(), lock.value(), "extend keeps the value");
    case.assert_value(0, &key, Some(lock.value()), "after extend")
        .await;
    // Reset to 20 s, not 10 s + 20 s.
    case.assert_ttl_in(
        0,
        &key,
        10_000,
        20_000,
        "after extend to 20 s (a reset, not an addition)",
    );
    assert!(
        extended.expiration() > lock.expiration(),
        "the extended lock expires later"
    );
    assert!(extended.remaining_validity() > Duration::from_secs(19));
    assert_held(
        &other.acquire(&[&key], Duration::from_secs(10)).await,
        "another owner after extend",
    );

    let release = extended
        .release()
        .await
        .unwrap_or_else(|e| panic!("release: expected Ok, got {e:?}"));
    assert!(
        release.was_held(),
        "release of a held lock reports was_held: {release:?}"
    );
    assert_eq!(release.released, 1, "one node deleted the key: {release:?}");
    case.assert_value(0, &key, None, "after release").await;
    case.finish().await;
}

/// A multi-resource lock is all or nothing: with one key held by another
/// owner, acquisition fails with `Error::Held` and writes none of the other
/// keys; with all keys free, every key gets the value.
pub async fn multi_resource_all_or_nothing<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "multi_resource_all_or_nothing", 1) else {
        return;
    };
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|s| case.key(s));
    let redlock = case.redlock().await;

    let foreign = case.hold_foreign(0, &[&b], Duration::from_secs(10)).await;
    assert_held(
        &redlock
            .acquire(&[&a, &b, &c], Duration::from_secs(10))
            .await,
        "acquire [a, b, c] with b held by another owner",
    );
    case.assert_value(0, &a, None, "a must not be written when b is held")
        .await;
    case.assert_value(0, &c, None, "c must not be written when b is held")
        .await;
    case.assert_value(0, &b, Some(foreign.value()), "the foreign b is untouched")
        .await;
    case.assert_ttl_in(0, &b, 0, 10_000, "the foreign b keeps its TTL");
    case.release_foreign(foreign, "the foreign b").await;

    let lock = expect_lock(
        redlock
            .acquire(&[&a, &c, &d], Duration::from_secs(10))
            .await,
        "acquire [a, c, d], all free",
    );
    for key in [&a, &c, &d] {
        case.assert_value(0, key, Some(lock.value()), "a key of a multi-resource lock")
            .await;
        case.assert_ttl_in(0, key, 0, 10_000, "each key of a multi-resource lock");
    }
    let release = lock
        .release()
        .await
        .expect("release of a multi-resource lock");
    assert!(release.was_held(), "{release:?}");
    for key in [&a, &c, &d] {
        case.assert_value(0, key, None, "after release").await;
    }
    case.finish().await;
}

/// Overlapping multi-resource locks exclude each other: with {a, b} held,
/// {b, c} fails (and c is not written), {c, d} succeeds.
pub async fn overlapping_multi_locks<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "overlapping_multi_locks", 1) else {
        return;
    };
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|s| case.key(s));
    let first = case.redlock().await;
    let second = build(case.builder().await.retry_count(1));

    let ab = expect_lock(
        first.acquire(&[&a, &b], Duration::from_secs(10)).await,
        "acquire {a, b}",
    );
    assert_held(
        &second.acquire(&[&b, &c], Duration::from_secs(10)).await,
        "acquire {b, c} while {a, b} is held",
    );
    case.assert_value(0, &c, None, "c must not be written by the failed {b, c}")
        .await;
    case.assert_value(0, &b, Some(ab.value()), "b still belongs to {a, b}")
        .await;

    let cd = expect_lock(
        second.acquire(&[&c, &d], Duration::from_secs(10)).await,
        "acquire {c, d} while {a, b} is held",
    );
    case.assert_value(0, &c, Some(cd.value()), "c belongs to {c, d}")
        .await;
    case.assert_value(0, &d, Some(cd.value()), "d belongs to {c, d}")
        .await;

    assert!(ab.release().await.expect("release {a, b}").was_held());
    assert!(cd.release().await.expect("release {c, d}").was_held());
    case.finish().await;
}

/// While one Redlock holds a resource on 3 nodes, a second one (its own
/// backends, as another process) fails with `Error::Held` after its
/// retries, and a quorum still holds the first lock's value.
pub async fn exclusivity<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "exclusivity", 3) else {
        return;
    };
    let key = case.key("resource");
    let first = case.redlock().await;
    // The timer alone: with wake-on-release, an attempt made within a pause
    // (the one at once after subscribing) is extra, so the count would
    // depend on how fast the subscription was.
    let second = build(case.builder().await.retry_count(2).wake_on_release(false));

    let lock = expect_lock(
        first.acquire(&[&key], Duration::from_secs(10)).await,
        "first acquire",
    );
    let other = second.acquire(&[&key], Duration::from_secs(10)).await;
    match &other {
        Err(Error::Held(failure)) => assert_eq!(
            failure.attempts.total(),
            3,
            "retry_count 2 means 3 attempts: {failure}"
        ),
        other => panic!("a second owner must fail with Error::Held, got {other:?}"),
    }
    // A quorum holds the first owner's value (a node not awaited once the
    // quorum was reached may hold nothing), and no node holds anything else.
    let values: Option<Vec<Option<String>>> = (0..3)
        .map(|i| case.inspect(i).map(|view| view.value(&key)))
        .collect();
    if let Some(values) = values {
        let holding = values
            .iter()
            .filter(|v| v.as_deref() == Some(lock.value()))
            .count();
        assert!(
            holding >= 2
                && values
                    .iter()
                    .all(|v| v.is_none() || v.as_deref() == Some(lock.value())),
            "after the second owner failed, a quorum must still hold the first owner's value \
             {:?} and no node another value: {values:?}",
            lock.value()
        );
    }
    assert!(lock.release().await.expect("release").was_held());
    let again = expect_lock(
        second.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire after release",
    );
    assert!(again.release().await.expect("release").was_held());
    case.finish().await;
}

/// A short-TTL lock's key disappears from the node at its TTL, the `Lock`
/// knows it expired, and another owner can then acquire the resource.
pub async fn automatic_expiry<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "automatic_expiry", 1) else {
        return;
    };
    let key = case.key("resource");
    let first = case.redlock().await;
    let second = build(case.builder().await.retry_count(0));

    let ttl = Duration::from_millis(200);
    let started = Instant::now();
    let lock = expect_lock(
        first.acquire(&[&key], ttl).await,
        "acquire with a 200 ms TTL",
    );
    if let Some(view) = case.inspect(0) {
        match view.ttl_millis(&key) {
            Some(ms) => assert!(ms > 0 && ms <= 200, "a 200 ms lock: PTTL {ms} ms"),
            // Only a stalled machine gets here: the key may be gone already.
            None => assert!(
                started.elapsed() >= Duration::from_millis(150),
                "the key of a 200 ms lock vanished after {:?}",
                started.elapsed()
            ),
        }
    }
    assert!(
        case.gone_within(0, &key, Duration::from_secs(3)).await,
        "the key of a 200 ms lock must expire on the node"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the key vanished after {:?}, long before its 200 ms TTL",
        started.elapsed()
    );
    assert!(lock.is_expired(), "the Lock knows it expired");
    assert_eq!(lock.remaining_validity(), Duration::ZERO);

    let next = expect_lock(
        second.acquire(&[&key], ttl * 5).await,
        "acquire after expiry",
    );
    case.assert_value(0, &key, Some(next.value()), "the next owner's value")
        .await;
    assert!(next.release().await.expect("release").was_held());
    case.finish().await;
}

/// Only the owner can release or extend: once the key holds another owner's
/// value, extend fails with `Error::Expired` and release reports
/// `was_held() == false`, both leaving the other owner's key untouched.
pub async fn release_and_extend_only_by_owner<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "release_and_extend_only_by_owner", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );
    // Someone else now holds the key (as after an expiry and a new owner);
    // `lock` itself is still valid, so it asks the node.
    assert!(lock.release().await.expect("release").was_held());
    let foreign = case.hold_foreign(0, &[&key], Duration::from_secs(10)).await;

    let extended = lock.extend(Duration::from_secs(10)).await;
    assert!(
        matches!(extended, Err(Error::Expired { .. })),
        "extend of a lock whose key holds another value: expected Error::Expired, got {extended:?}"
    );
    case.assert_value(
        0,
        &key,
        Some(foreign.value()),
        "a failed extend leaves the other owner's value",
    )
    .await;
    case.assert_ttl_in(
        0,
        &key,
        0,
        10_000,
        "a failed extend leaves the other owner's TTL",
    );

    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release of a lock no longer held must be Ok, got {e:?}"));
    assert!(
        !release.was_held(),
        "release must report was_held false: {release:?}"
    );
    assert_eq!(release.not_held, 1, "{release:?}");
    case.assert_value(
        0,
        &key,
        Some(foreign.value()),
        "release must not delete another owner's key",
    )
    .await;
    case.release_foreign(foreign, "the other owner").await;
    case.finish().await;
}

/// Releasing a lock that already expired is `Ok` with `was_held() == false`,
/// in one round (no retry storm).
pub async fn release_of_expired_lock<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "release_of_expired_lock", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_millis(100)).await,
        "acquire",
    );
    assert!(
        case.gone_within(0, &key, Duration::from_secs(3)).await,
        "the 100 ms key must expire"
    );
    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release of an expired lock must be Ok, got {e:?}"));
    assert!(!release.was_held(), "{release:?}");
    assert_eq!(
        release.not_held, 1,
        "the node answered that it did not hold it: {release:?}"
    );
    assert_eq!(release.failed, 0, "{release:?}");
    assert_eq!(
        release.attempts.total(),
        1,
        "a node that answered is never asked again: one release round, got {:?}",
        release.attempts
    );
    case.finish().await;
}
