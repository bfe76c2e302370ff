//! Wake-on-release (`Settings::wake_on_release`), for backends that declare it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redlock_core::wake::{release_channel, ReleaseWait};
use redlock_core::LockBackend;

use super::case::{expect_lock, Case};
use super::support::{build, patient_waiter, sleep, within};
use crate::fixture::Fixture;

/// Wake-on-release on 3 nodes: a waiter whose retry delay is 5 s acquires
/// promptly when the holder releases, woken by the release rather than its
/// timer. The backend declares wake-on-release, so a `watch_releases` that
/// answers `Unsupported` (or fails on a live node) fails the case.
pub async fn wake_on_release<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "wake_on_release", 3) else {
        return;
    };
    let key = case.key("resource");
    {
        let check = case.backend(0).await;
        let wait = ReleaseWait::new();
        if let Err(e) = within(
            Duration::from_secs(5),
            "watch_releases",
            check.watch_releases(&[release_channel(&key)], &wait.waker()),
        )
        .await
        {
            panic!(
                "the backend declares wake-on-release, yet watch_releases on a live node failed: \
                 {e:?}"
            );
        }
    }
    let holder = build(case.builder().await.wake_on_release(true));
    let waiter = build(
        case.builder()
            .await
            .wake_on_release(true)
            .retry_count(3)
            .retry_delay(Duration::from_secs(5))
            .retry_jitter(Duration::ZERO),
    );
    let lock = expect_lock(
        holder.acquire(&[&key], Duration::from_secs(10)).await,
        "the holder",
    );
    let released_at = Mutex::new(None);
    let channel = release_channel(&key);
    let hold = async {
        // Release once the waiter has failed once and subscribed. On real
        // nodes, watch for its subscription (a TLS connection under load can
        // take longer than any fixed pause); in process, subscribing is a
        // function call, and a pause is plenty.
        // One node's subscription is enough: the release publishes on
        // every node, and the first message wakes the waiter.
        sleep(Duration::from_millis(600)).await;
        let probes: Vec<_> = (0..3).filter_map(|i| case.redis_if_real(i)).collect();
        let subscribed = || {
            probes
                .iter()
                .any(|probe| probe.channel_subscribers(&channel, false) > 0)
        };
        let deadline = Instant::now() + Duration::from_secs(8);
        while !probes.is_empty() && !subscribed() {
            assert!(
                Instant::now() < deadline,
                "the backend declares wake-on-release, yet no node shows the waiter's \
                 subscription to {channel} after 8 s"
            );
            sleep(Duration::from_millis(5)).await;
        }
        *released_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        assert!(lock
            .release()
            .await
            .expect("the holder's release")
            .was_held());
    };
    let wait = async {
        let lock = waiter.acquire(&[&key], Duration::from_secs(10)).await;
        (lock, Instant::now())
    };
    let ((), (got, acquired_at)) = within(
        Duration::from_secs(20),
        "the wake-on-release race",
        futures::future::join(hold, wait),
    )
    .await;
    let got = expect_lock(got, "the waiter");
    let released_at = released_at
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("the holder released");
    let after = acquired_at.saturating_duration_since(released_at);
    assert!(
        after < Duration::from_millis(2500),
        "the waiter took {after:?} after the release: it was not woken by the release (its retry \
         delay is 5 s)"
    );
    assert!(
        got.attempts().total() >= 2,
        "the waiter found the resource held first"
    );
    assert!(got.release().await.expect("release").was_held());
    case.finish().await;
}

/// Wake-on-release with default settings follows interest, seen from a real
/// node: the release of a lock nobody waits for publishes nothing; a waiter
/// subscribes to its resource's channel while it waits, and the holder's
/// release is published to it; once it has the lock and releases it, nobody
/// listens on the channel any more.
pub async fn wake_follows_interest<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "wake_follows_interest", 1) else {
        return;
    };
    let key = case.key("resource");
    let channel = release_channel(&key);
    let probe = case.redis(0);
    let listeners = || probe.channel_subscribers(&channel, false);
    let holder = build(case.builder().await);
    let waiter = patient_waiter(case.builder().await);

    let lock = expect_lock(
        holder.acquire(&[&key], Duration::from_secs(10)).await,
        "the uncontended lock",
    );
    assert!(lock.release().await.expect("release").was_held());
    assert_eq!(
        probe.command_calls("publish"),
        0,
        "the release of a lock nobody waits for published a message"
    );
    assert_eq!(
        listeners(),
        0,
        "nobody waits, yet someone listens on {channel}"
    );

    let lock = expect_lock(
        holder.acquire(&[&key], Duration::from_secs(10)).await,
        "the holder",
    );
    let hold = async {
        within(Duration::from_secs(5), "the waiter's subscription", async {
            while listeners() == 0 {
                sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(listeners(), 1, "one waiting process, one subscription");
        assert!(lock
            .release()
            .await
            .expect("the holder's release")
            .was_held());
    };
    let resources = [&key];
    let wait = waiter.acquire(&resources, Duration::from_secs(10));
    let ((), got) = within(
        Duration::from_secs(20),
        "the wake-on-release race",
        futures::future::join(hold, wait),
    )
    .await;
    let got = expect_lock(got, "the waiter");
    assert_eq!(
        probe.command_calls("publish"),
        1,
        "the holder's release, and only it, was published"
    );
    assert!(got
        .release()
        .await
        .expect("the waiter's release")
        .was_held());
    within(
        Duration::from_secs(5),
        "the waiter's unsubscription",
        async {
            while listeners() != 0 {
                sleep(Duration::from_millis(5)).await;
            }
        },
    )
    .await;
    case.finish().await;
}

/// The release scripts name each channel themselves, in Lua; the waiters
/// subscribe to [`release_channel`], in Rust. Seen from a real node, the two
/// agree for both forms of the name: a resource with no `}`
/// (`redlock:released:{<resource>}`) and one with a hash tag
/// (`<resource>:redlock:released`). Each release reaches a subscriber to
/// `release_channel(resource)`, by exactly one `PUBLISH`.
pub async fn release_names_the_channel<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "release_names_the_channel", 1) else {
        return;
    };
    let plain = case.key("plain");
    let tagged = case.key("{tag}:tagged");
    assert!(!plain.contains('}') && tagged.contains('}'));
    let probe = case.redis(0);
    let listener = case.backend(0).await;
    let wait = ReleaseWait::new();
    let channels = [release_channel(&plain), release_channel(&tagged)];
    within(
        Duration::from_secs(5),
        "watch_releases",
        listener.watch_releases(&channels, &wait.waker()),
    )
    .await
    .unwrap_or_else(|e| panic!("watch_releases on a live node failed: {e:?}"));
    within(Duration::from_secs(5), "the subscriptions", async {
        while channels
            .iter()
            .any(|channel| probe.channel_subscribers(channel, false) != 1)
        {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let holder = build(case.builder().await.wake_on_release(true));
    for (published, resource) in [(1, &plain), (2, &tagged)] {
        let seen = wait.generation();
        let lock = expect_lock(
            holder.acquire(&[resource], Duration::from_secs(10)).await,
            "the holder",
        );
        assert!(lock.release().await.expect("release").was_held());
        within(
            Duration::from_secs(5),
            &format!(
                "the release of {resource} to reach a subscriber of {}",
                release_channel(resource)
            ),
            wait.changed(seen),
        )
        .await;
        assert_eq!(
            probe.command_calls("publish"),
            published,
            "each release is published once"
        );
    }
    drop(listener);
    case.finish().await;
}
