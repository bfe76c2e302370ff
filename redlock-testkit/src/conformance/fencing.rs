//! Fencing tokens (`Settings::fencing`), for backends that declare them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use redlock_core::keys::{fence_key, key_slot, legacy_fence_key, SLOTS};
use redlock_core::{Redlock, RetryCount};

use super::case::{expect_lock, minority, Case};
use super::support::{build, sleep, within};
use crate::fixture::Fixture;

/// Fencing tokens on 3 nodes: every acquisition of a resource gets a
/// strictly higher token, across owners, also with a node down; an
/// extension keeps the token; where the fixture can look, the fence counter
/// holds the token on a quorum and never expires. The backend declares
/// fencing, so an `Unsupported` answer fails the case.
pub async fn fencing_tokens<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "fencing_tokens", 3) else {
        return;
    };
    let key = case.key("resource");
    let fence = fence_key(&key);
    let first = build(case.builder().await.fencing(true));
    let lock = expect_lock(
        first.acquire(&[&key], Duration::from_secs(10)).await,
        "a fenced acquire (the backend declares fencing)",
    );
    let t1 = lock
        .fencing_token()
        .expect("a lock acquired with fencing carries a token");
    assert!(t1 >= 1, "tokens start at 1: {t1}");
    let counters: Option<Vec<Option<u64>>> = (0..3)
        .map(|i| case.inspect(i).map(|view| view.fence_counter(&fence)))
        .collect();
    if let Some(counters) = counters {
        assert!(
            counters.iter().filter(|c| **c == Some(t1)).count() >= 2
                && counters.iter().all(|c| c.is_none_or(|c| c <= t1)),
            "the fence counter {fence} must hold the token {t1} on a quorum and nowhere more: \
             {counters:?}"
        );
        for (i, c) in counters.iter().enumerate() {
            if c.is_some() {
                let ttl = case.inspect(i).and_then(|view| view.ttl_millis(&fence));
                assert_eq!(ttl, Some(-1), "fence counters never expire (node {i})");
            }
        }
    }
    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend of a fenced lock: {e:?}"));
    assert_eq!(
        lock.fencing_token(),
        Some(t1),
        "an extension keeps the token"
    );
    assert!(lock.release().await.expect("release").was_held());

    let second = build(case.builder().await.fencing(true));
    let lock = expect_lock(
        second.acquire(&[&key], Duration::from_secs(10)).await,
        "a second owner",
    );
    let t2 = lock.fencing_token().expect("a token");
    assert!(t2 > t1, "a later owner gets a higher token: {t1} then {t2}");
    assert!(lock.release().await.expect("release").was_held());

    case.kill(0);
    let third = build(case.builder().await.fencing(true));
    let lock = expect_lock(
        third.acquire(&[&key], Duration::from_secs(10)).await,
        "a fenced acquire with a node down",
    );
    let t3 = lock.fencing_token().expect("a token");
    assert!(
        t3 > t2,
        "any two quorums share a node: the token still rises with a node down ({t2} then {t3})"
    );
    assert!(lock.release().await.expect("release").was_held());

    // The counters are permanent by design; this case removes its own.
    for i in 1..3 {
        if let Some(view) = case.inspect(i) {
            view.remove_fence_counter(&fence);
        }
    }
    case.finish().await;
}

/// Fencing tokens raced for by several owners on `n` independent nodes, with
/// persistence on: tokens must strictly increase in the order the critical
/// sections ran, through three phases: a node whose counter is far ahead is
/// down (its stale high counter is outside every quorum); it comes back while
/// a minority of the others is down; that minority comes back with counters
/// behind. The backend declares fencing, so an `Unsupported` answer fails.
pub async fn fencing_race<F: Fixture>(fixture: &F, n: usize) {
    const OWNERS: usize = 4;
    const ROUNDS: usize = 4;
    let options = crate::server::NodeOptions {
        persistence: true,
        ..Default::default()
    };
    let Some(case) = Case::start_with(fixture, "fencing_race", n, options) else {
        return;
    };
    let key = case.key("resource");
    let fence = fence_key(&key);
    let order = Mutex::new(Vec::<(usize, u64)>::new());
    let inside = AtomicBool::new(false);

    let race = |phase: usize| {
        let (key, order, inside, case) = (&key, &order, &inside, &case);
        async move {
            let mut owners = Vec::with_capacity(OWNERS);
            for _ in 0..OWNERS {
                owners.push(build(
                    case.builder()
                        .await
                        .fencing(true)
                        .retry_count(RetryCount::Limited(500))
                        .retry_delay(Duration::from_millis(4))
                        .retry_jitter(Duration::from_millis(3)),
                ));
            }
            let work = owners.iter().map(|owner| async move {
                for _ in 0..ROUNDS {
                    let lock = expect_lock(
                        owner.acquire(&[key], Duration::from_secs(5)).await,
                        "a fenced acquire in the race",
                    );
                    assert!(!inside.swap(true, Ordering::SeqCst), "two owners at once");
                    let token = lock.fencing_token().expect("a fenced lock carries a token");
                    order
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((phase, token));
                    sleep(Duration::from_millis(1)).await;
                    inside.store(false, Ordering::SeqCst);
                    lock.release().await.expect("release");
                }
            });
            within(Duration::from_secs(60), "the fencing race", join_all(work)).await;
        }
    };

    // Phase 1: node 0 holds a stale, far-ahead counter, and is down.
    case.inspect(0)
        .expect("the fixture provides inspection (a need of this case)")
        .set_fence_counter(&fence, 1000);
    case.kill(0);
    race(1).await;
    // Phase 2: it comes back (persistence kept its counter), and a minority
    // of the other nodes goes down: tokens must jump past 1000.
    case.restart(0);
    let lagging = 1..=minority(n);
    for i in lagging.clone() {
        case.kill(i);
    }
    race(2).await;
    // Phase 3: the minority comes back with counters behind (it missed the
    // write-backs of phase 2).
    for i in lagging {
        case.restart(i);
    }
    race(3).await;

    let order = order.into_inner().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(
        order.len(),
        3 * OWNERS * ROUNDS,
        "every owner got every round"
    );
    for pair in order.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "tokens must strictly increase in critical-section order: {pair:?} in {order:?}"
        );
    }
    let (phase1_max, phase2_min) = (
        order.iter().filter(|(p, _)| *p == 1).map(|(_, t)| *t).max(),
        order.iter().filter(|(p, _)| *p == 2).map(|(_, t)| *t).min(),
    );
    assert!(
        phase1_max < Some(1000),
        "with the far-ahead node down, its counter is outside every quorum: {order:?}"
    );
    assert!(
        phase2_min > Some(1000),
        "once it is back in a quorum, tokens pass its counter: {order:?}"
    );
    // The counters are permanent by design; this case removes its own.
    for i in 0..n {
        if let Some(view) = case.inspect(i) {
            view.remove_fence_counter(&fence);
        }
    }
    case.finish().await;
}

/// A fenced acquire of `resources` that must succeed, released at once;
/// returns its token.
async fn token_of<S: AsRef<str>>(redlock: &Redlock, resources: &[S], what: &str) -> u64 {
    let lock = expect_lock(
        redlock.acquire(resources, Duration::from_secs(10)).await,
        what,
    );
    let token = lock
        .fencing_token()
        .unwrap_or_else(|| panic!("{what}: a fenced lock carries a token"));
    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("{what}: release: {e:?}"));
    assert!(release.was_held(), "{what}: {release:?}");
    token
}

/// Bounded memory: fencing 20,000 distinct resources on one node (64 at a
/// time) leaves one fence counter per hash slot they fall in, not one per
/// resource: at most 16,384 (`SLOTS`), fewer than the resources, and
/// exactly as many as their distinct slots; no legacy per-resource counter
/// is created. With per-resource counters it would hold 20,000.
pub async fn fencing_counters_are_bounded<F: Fixture>(fixture: &F) {
    const RESOURCES: usize = 20_000;
    const AT_ONCE: usize = 64;
    let Some(case) = Case::start(fixture, "fencing_counters_are_bounded", 1) else {
        return;
    };
    let base = case.key("resource");
    let redlock = build(case.builder().await.fencing(true));
    let names: Vec<String> = (0..RESOURCES).map(|i| format!("{base}:{i}")).collect();
    let tokens: Vec<u64> =
        within(
            Duration::from_secs(100),
            "fencing 20,000 resources",
            stream::iter(&names)
                .map(|name| {
                    let redlock = &redlock;
                    async move {
                        token_of(redlock, &[name], "a fenced acquire of a fresh resource").await
                    }
                })
                .buffer_unordered(AT_ONCE)
                .collect(),
        )
        .await;
    assert_eq!(tokens.len(), RESOURCES);
    assert!(tokens.iter().all(|t| *t >= 1), "tokens start at 1");
    let slots: HashSet<u16> = names.iter().map(|n| key_slot(n)).collect();
    let view = case
        .inspect(0)
        .expect("the fixture provides inspection (a need of this case)");
    let counters = view
        .slot_fence_counters()
        .expect("this case needs a view that counts the fence counters");
    assert!(
        counters <= usize::from(SLOTS) && counters < RESOURCES,
        "{RESOURCES} fenced resources must leave at most one counter per slot, not one each: \
         {counters} counters"
    );
    assert_eq!(
        counters,
        slots.len(),
        "one counter per slot the resources fall in"
    );
    for name in names.iter().step_by(997) {
        assert_eq!(
            view.fence_counter(&legacy_fence_key(name)),
            None,
            "no per-resource counter is created for {name}"
        );
    }
    // The case's nodes are its own: its permanent counters go with them.
    case.finish().await;
}

/// Carry-over from per-resource counters: a legacy counter
/// (`redlock:fence:{<resource>}`, or `<resource>:redlock:fence` for a
/// tagged resource) of 1000 makes the first token 1001; the write-back folds
/// it into the slot counter and deletes it; a legacy counter below the slot
/// counter does not pull tokens back, and is deleted too; a lock on two
/// resources of one tag carries both of theirs over.
pub async fn fencing_carries_legacy_counters_over<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "fencing_carries_legacy_counters_over", 1) else {
        return;
    };
    let view = case
        .inspect(0)
        .expect("the fixture provides inspection (a need of this case)");
    let plain = case.key("plain");
    let tag_of = case.key("tag");
    let tagged = format!("{{{tag_of}}}:tagged");
    let redlock = build(case.builder().await.fencing(true));
    for (resource, legacy) in [(&plain, 1000), (&tagged, 2000)] {
        let old = legacy_fence_key(resource);
        let slot = fence_key(resource);
        view.set_fence_counter(&old, legacy);
        let token = token_of(&redlock, &[resource], "the first fenced acquire").await;
        assert!(
            token > legacy,
            "{resource}: the legacy counter {old} = {legacy} carries over: token {token}"
        );
        assert_eq!(view.fence_counter(&slot), Some(token), "{slot} holds it");
        assert_eq!(
            view.fence_counter(&old),
            None,
            "the write-back deletes the legacy counter {old}"
        );
        // A stale legacy counter, below the slot counter, cannot pull the
        // token back.
        view.set_fence_counter(&old, 3);
        let next = token_of(&redlock, &[resource], "a later fenced acquire").await;
        assert!(next > token, "{resource}: {token} then {next}");
        assert_eq!(view.fence_counter(&slot), Some(next));
        assert_eq!(view.fence_counter(&old), None, "{old} deleted again");
        view.remove_fence_counter(&slot);
    }
    // A lock on two resources of one tag (one slot counter), each with a
    // legacy counter: the token passes both, both are folded and deleted.
    let (c, d) = (format!("{{{tag_of}}}:c"), format!("{{{tag_of}}}:d"));
    view.set_fence_counter(&legacy_fence_key(&c), 3000);
    view.set_fence_counter(&legacy_fence_key(&d), 4000);
    let token = token_of(&redlock, &[&c, &d], "a fenced acquire of two resources").await;
    assert!(
        token > 4000,
        "both legacy counters carry over: token {token}"
    );
    assert_eq!(view.fence_counter(&fence_key(&c)), Some(token));
    for key in [legacy_fence_key(&c), legacy_fence_key(&d)] {
        assert_eq!(view.fence_counter(&key), None, "{key} deleted");
    }
    view.remove_fence_counter(&fence_key(&c));
    case.finish().await;
}

/// Resources of one hash slot share its fence counter: two distinct
/// resources without a hash tag that fall in the same slot (found by
/// search), and two with the same tag, get strictly rising tokens across
/// both, alternately acquired on 3 nodes. With a counter per resource, the
/// second resource would start again at 1.
pub async fn fencing_slot_shared_across_resources<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "fencing_slot_shared_across_resources", 3) else {
        return;
    };
    let base = case.key("r");
    let mut seen = HashMap::new();
    let (a, b) = (0..)
        .find_map(|i| {
            let name = format!("{base}{i}");
            seen.insert(key_slot(&name), name.clone())
                .map(|first| (first, name))
        })
        .expect("two names in one slot (birthday bound: a few hundred tries)");
    assert_ne!(a, b);
    assert_eq!(fence_key(&a), fence_key(&b), "one counter for one slot");
    let tag = case.key("tag");
    let (c, d) = (format!("{{{tag}}}c"), format!("{{{tag}}}d"));
    let redlock = build(case.builder().await.fencing(true));
    for (x, y) in [(&a, &b), (&c, &d)] {
        let mut tokens = Vec::new();
        for resource in [x, y, x, y] {
            tokens.push(token_of(&redlock, &[resource], "a fenced acquire").await);
        }
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]),
            "tokens rise across the resources of one slot ({x}, {y}): {tokens:?}"
        );
        // Together, a lock on both: its token is above both.
        let both = token_of(&redlock, &[x, y], "a fenced acquire of both").await;
        assert!(both > tokens[3], "{tokens:?} then {both}");
    }
    for i in 0..3 {
        if let Some(view) = case.inspect(i) {
            view.remove_fence_counter(&fence_key(&a));
            view.remove_fence_counter(&fence_key(&c));
        }
    }
    case.finish().await;
}
