//! Cancellation safety on both adapters, against real nodes: `acquire`,
//! `extend` and `using` futures dropped at random await points leave no key
//! behind its TTL; a dropped `using` stops extending; a `using` whose routine
//! panics releases the lock at once.

mod common;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::{block_on, builder, prefix, Adapter, Fleet};
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redlock_core::Error;
use redlock_testkit::proxy::{Latency, Mode};

const ITERATIONS: usize = 150;
const TTL: Duration = Duration::from_millis(500);
/// The longest routine a `using` runs.
const MAX_WORK: Duration = Duration::from_millis(6);

#[derive(Default, Debug)]
struct Seen {
    completed: [u32; 3],
    cancelled: [u32; 3],
}

/// Every key under `key` has a TTL of at most TTL: none without one (PTTL
/// -1), none longer. (-2: it expired between KEYS and PTTL.)
fn assert_bounded(fleet: &Fleet, key: &str, adapter: Adapter) {
    for (node, k, pttl) in fleet.keys(key) {
        assert!(
            pttl == -2 || (0..=TTL.as_millis() as i64).contains(&pttl),
            "{adapter:?}: key {k} on node {node} has PTTL {pttl} ms, outside [0, {TTL:?}]"
        );
    }
}

async fn dropped_at_random_points(adapter: Adapter, seed: u64) {
    let fleet = Fleet::start(3);
    // 1 ± 1 ms each way: every call spans a few milliseconds, so the random
    // cut-offs land before, between and after the nodes' replies.
    for proxy in &fleet.proxies {
        proxy.set_mode(Mode::Latency(
            Latency::new(Duration::from_millis(1)).jitter(Duration::from_millis(1)),
        ));
    }
    let key = prefix("cancel");
    let plain = builder(adapter.backends(&fleet.urls()).await)
        .automatic_extension_threshold(Duration::from_millis(300))
        .build()
        .expect("build");
    let fenced = builder(adapter.backends(&fleet.urls()).await)
        .automatic_extension_threshold(Duration::from_millis(300))
        .fencing(true)
        .build()
        .expect("build");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = Seen::default();
    // One operation on its own resource, dropped after `cut` (for `extend`,
    // the cut applies to the extension only). Whether it completed.
    let run = |i: usize, op: usize, cut: Duration, work: Duration| {
        let redlock = if i.is_multiple_of(2) { &plain } else { &fenced };
        let resource = format!("{key}:{i}");
        async move {
            match op {
                0 => tokio::time::timeout(cut, redlock.acquire(&[&resource], TTL))
                    .await
                    .map(|r| {
                        r.unwrap_or_else(|e| panic!("{adapter:?}: acquire {i}: {e:?}"));
                    })
                    .is_ok(),
                1 => {
                    let lock = redlock
                        .acquire(&[&resource], TTL)
                        .await
                        .unwrap_or_else(|e| panic!("{adapter:?}: acquire {i}: {e:?}"));
                    tokio::time::timeout(cut, lock.extend(TTL))
                        .await
                        .map(|r| {
                            r.unwrap_or_else(|e| panic!("{adapter:?}: extend {i}: {e:?}"));
                        })
                        .is_ok()
                }
                _ => tokio::time::timeout(
                    cut,
                    redlock.using(&[&resource], TTL, |_signal| async move {
                        tokio::time::sleep(work).await;
                        Ok::<_, Error>(())
                    }),
                )
                .await
                .map(|r| r.unwrap_or_else(|e| panic!("{adapter:?}: using {i}: {e:?}")))
                .is_ok(),
            }
        }
    };
    // How long each operation takes here and now, uncut (the median of a
    // few, after one of each has opened the connections): the cut-offs are
    // drawn up to twice that, so on a fast machine or a loaded one a fair
    // share of them lands before the end and a fair share after.
    let mut span = [Duration::ZERO; 3];
    let mut calibration = ITERATIONS;
    for (op, span) in span.iter_mut().enumerate() {
        let mut took = Vec::new();
        for round in 0..8 {
            let began = Instant::now();
            let done = run(calibration, op, Duration::from_secs(10), MAX_WORK / 2).await;
            assert!(done, "{adapter:?}: operation {op} did not complete uncut");
            calibration += 1;
            if round >= 2 {
                took.push(began.elapsed());
            }
        }
        took.sort();
        *span = took[took.len() / 2];
    }
    let started = Instant::now();
    for i in 0..ITERATIONS {
        let op = i % 3;
        let limit = u64::try_from(span[op].as_micros() * 2).unwrap_or(u64::MAX);
        let cut = Duration::from_micros(rng.random_range(0..=limit));
        let work = Duration::from_micros(rng.random_range(0..=MAX_WORK.as_micros() as u64));
        let done = run(i, op, cut, work).await;
        if done {
            seen.completed[op] += 1;
        } else {
            seen.cancelled[op] += 1;
        }
        // Anything a dropped call left is bounded by its TTL.
        if i % 25 == 24 {
            assert_bounded(&fleet, &key, adapter);
        }
    }
    println!(
        "{adapter:?}: {ITERATIONS} iterations in {:?} (uncut: {span:?}): completed (acquire, \
         extend, using) {:?}, cancelled {:?}",
        started.elapsed(),
        seen.completed,
        seen.cancelled
    );
    for op in 0..3 {
        assert!(
            seen.cancelled[op] > 0 && seen.completed[op] > 0,
            "{adapter:?}: operation {op} should be both cancelled and completed sometimes: {seen:?}"
        );
    }
    assert_bounded(&fleet, &key, adapter);
    for proxy in &fleet.proxies {
        proxy.heal();
    }
    tokio::time::sleep(TTL + Duration::from_millis(300)).await;
    let left = fleet.keys(&key);
    assert!(
        left.is_empty(),
        "{adapter:?}: keys left after the TTL: {left:?}"
    );
}

#[test]
fn dropped_at_random_points_redis_rs() {
    block_on(dropped_at_random_points(Adapter::RedisRs, 1));
}

#[test]
fn dropped_at_random_points_fred() {
    block_on(dropped_at_random_points(Adapter::Fred, 2));
}

/// A dropped `using` stops extending (it spawned nothing): the key, kept
/// alive by extensions while the routine ran, expires within one TTL.
async fn dropped_using_stops_extending(adapter: Adapter) {
    let fleet = Fleet::start(3);
    let key = prefix("dropped_using");
    let ttl = Duration::from_millis(300);
    let redlock = builder(adapter.backends(&fleet.urls()).await)
        .automatic_extension_threshold(Duration::from_millis(150))
        .build()
        .expect("build");
    let result = tokio::time::timeout(
        Duration::from_millis(800),
        redlock.using(&[&key], ttl, |_signal| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Error>(())
        }),
    )
    .await;
    assert!(result.is_err(), "the routine was still running");
    let held = fleet.keys(&key);
    assert!(
        held.len() >= 2,
        "{adapter:?}: after 800 ms on a 300 ms TTL the lock was still held through extensions: {held:?}"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let left = fleet.keys(&key);
    assert!(
        left.is_empty(),
        "{adapter:?}: the dropped using() kept extending: {left:?}"
    );
}

#[test]
fn dropped_using_stops_extending_redis_rs() {
    block_on(dropped_using_stops_extending(Adapter::RedisRs));
}

#[test]
fn dropped_using_stops_extending_fred() {
    block_on(dropped_using_stops_extending(Adapter::Fred));
}

/// A `using` whose routine panics releases the lock at once (long before the
/// TTL), and the panic goes on to the caller.
async fn panicking_routine_releases(adapter: Adapter) {
    let fleet = Fleet::start(3);
    let key = prefix("panic");
    let ttl = Duration::from_secs(30);
    let redlock = builder(adapter.backends(&fleet.urls()).await)
        .build()
        .expect("build");
    let probes = fleet.probes();
    let seen_inside = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let result = AssertUnwindSafe(redlock.using(&[&key], ttl, |_signal| async {
        let holding = probes.iter().filter(|p| p.exists(&key)).count();
        seen_inside.store(holding, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if holding > 0 {
            panic!("the routine fails");
        }
        Ok::<_, Error>(())
    }))
    .catch_unwind()
    .await;
    let elapsed = started.elapsed();
    assert!(result.is_err(), "{adapter:?}: the panic reaches the caller");
    assert!(
        seen_inside.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the lock was held on a quorum inside the routine"
    );
    let left = fleet.keys(&key);
    assert!(
        left.is_empty(),
        "{adapter:?}: keys left right after the panic (TTL {ttl:?}): {left:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "released at once: {elapsed:?}"
    );
}

#[test]
fn panicking_routine_releases_redis_rs() {
    block_on(panicking_routine_releases(Adapter::RedisRs));
}

#[test]
fn panicking_routine_releases_fred() {
    block_on(panicking_routine_releases(Adapter::Fred));
}
