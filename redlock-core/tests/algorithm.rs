//! The algorithm on in-memory nodes with injected faults, on a virtual clock.

mod common;

use std::time::Duration;

use common::{builder, live_keys, nodes, redlock, Virtual, TTL};
use redlock_core::{
    AttemptOutcome, Error, ErrorKind, Fault, NodeOutcome, Operation, RetryCount, Runtime, Script,
    Scripts,
};

#[tokio::test(start_paused = true)]
async fn quorum_with_every_failure_count_on_one_to_five_nodes() {
    for n in 1..=5usize {
        let quorum = n / 2 + 1;
        for failing in 0..=n {
            let nodes = nodes(n);
            for node in &nodes[..failing] {
                node.set(Fault::Fail(ErrorKind::Connection));
            }
            let redlock = builder(&nodes).retry_count(0).build().unwrap();
            let result = redlock.acquire(&["r"], TTL).await;
            if n - failing >= quorum {
                let lock = result.unwrap_or_else(|e| panic!("n={n} failing={failing}: {e}"));
                assert_eq!(lock.attempts().last().unwrap().quorum_size, quorum);
                lock.release().await.unwrap();
            } else {
                assert!(
                    matches!(result, Err(Error::NoQuorum(_))),
                    "n={n} failing={failing}: {result:?}"
                );
            }
            assert_eq!(live_keys(&nodes), 0, "n={n} failing={failing}: keys left");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn quorum_with_every_contended_count_on_one_to_five_nodes() {
    for n in 1..=5usize {
        for held in 0..=n {
            let nodes = nodes(n);
            for node in &nodes[..held] {
                node.inner().set("r", "someone-else", TTL * 10);
            }
            let redlock = builder(&nodes).retry_count(0).build().unwrap();
            let result = redlock.acquire(&["r"], TTL).await;
            if n - held > n / 2 {
                let lock = result.unwrap_or_else(|e| panic!("n={n} held={held}: {e}"));
                lock.release().await.unwrap();
            } else {
                assert!(
                    matches!(result, Err(Error::Held(_))),
                    "n={n} held={held}: {result:?}"
                );
            }
            // Foreign keys untouched, none of ours left.
            for node in &nodes[..held] {
                assert_eq!(node.inner().get("r").as_deref(), Some("someone-else"));
            }
            assert_eq!(live_keys(&nodes), held, "n={n} held={held}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn split_vote_on_two_and_four_nodes_fails_without_hanging() {
    for n in [2usize, 4] {
        let nodes = nodes(n);
        for node in &nodes[..n / 2] {
            node.inner().set("r", "other", TTL * 10);
        }
        let redlock = builder(&nodes).retry_count(0).build().unwrap();
        let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
        let attempt = err.failure().unwrap().attempts.last().unwrap().clone();
        assert_eq!(attempt.votes_for(), n / 2);
        assert_eq!(attempt.votes_against(), n / 2);
        assert!(err.is_held(), "{err}");
        assert_eq!(live_keys(&nodes), n / 2);
    }
    // Split between votes for and nodes that never answer: decided by the timeout.
    let nodes = nodes(4);
    nodes[0].set(Fault::Hang);
    nodes[1].set_for(Operation::Acquire, Fault::Hang);
    let redlock = builder(&nodes).retry_count(0).build().unwrap();
    let started = Virtual.now();
    let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
    assert!(matches!(err, Error::NoQuorum(_)), "{err}");
    assert!(Virtual.now() - started >= redlock.settings().node_timeout);
}

#[tokio::test(start_paused = true)]
async fn hung_minority_does_not_delay_and_hung_majority_times_out() {
    let nodes = nodes(3);
    nodes[2].set(Fault::Hang);
    let redlock = redlock(&nodes);
    let started = Virtual.now();
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    assert_eq!(Virtual.now(), started, "two fast votes decide at once");
    let attempt = lock.attempts().last().unwrap();
    assert!(matches!(attempt.nodes[2].outcome, NodeOutcome::Unanswered));
    assert!(attempt.nodes[0].latency.is_some());
    lock.release().await.unwrap();

    nodes[1].set(Fault::Hang);
    let err = redlock
        .acquire_with(&["r"], TTL, &{
            let mut s = redlock.settings().clone();
            s.retry_count = RetryCount::Limited(0);
            s.node_timeout = Duration::from_millis(50);
            s
        })
        .await
        .unwrap_err();
    let attempt = err.failure().unwrap().attempts.last().unwrap();
    let timeouts = attempt
        .errors()
        .filter(|(_, e)| e.kind() == ErrorKind::Timeout)
        .count();
    assert_eq!(timeouts, 2, "{err}");
    assert_eq!(attempt.elapsed, Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn node_timeout_is_capped_by_validity() {
    let nodes = nodes(1);
    nodes[0].set(Fault::Hang);
    let redlock = builder(&nodes)
        .retry_count(0)
        .node_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ttl = Duration::from_millis(200);
    let err = redlock.acquire(&["r"], ttl).await.unwrap_err();
    let attempt = err.failure().unwrap().attempts.last().unwrap();
    // 200 ms − (round(0.01 × 200) + 2) ms = 196 ms, far below the 10 s node timeout.
    assert_eq!(attempt.elapsed, Duration::from_millis(196));
}

#[tokio::test(start_paused = true)]
async fn validity_is_ttl_minus_elapsed_minus_drift() {
    let nodes = nodes(3);
    for node in &nodes {
        node.set_for(Operation::Acquire, Fault::Delay(Duration::from_millis(30)));
    }
    let redlock = redlock(&nodes);
    let started = Virtual.now();
    let ttl = Duration::from_millis(1000);
    let lock = redlock.acquire(&["r"], ttl).await.unwrap();
    // drift = round(0.01 × 1000) + 2 = 12 ms; the expiration is counted from the
    // attempt's start, so 30 ms of latency are part of the elapsed time.
    assert_eq!(lock.expiration(), started + Duration::from_millis(988));
    assert_eq!(lock.remaining_validity(), Duration::from_millis(958));
    lock.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_quorum_without_validity_left_is_no_lock() {
    let nodes = nodes(3);
    let ttl = Duration::from_millis(100); // validity 100 − 3 = 97 ms
    for node in &nodes {
        node.set_for(Operation::Acquire, Fault::Delay(Duration::from_millis(97)));
    }
    let redlock = builder(&nodes).retry_count(1).build().unwrap();
    let err = redlock.acquire(&["r"], ttl).await.unwrap_err();
    assert!(matches!(err, Error::NoQuorum(_)), "{err}");
    let attempts = &err.failure().unwrap().attempts;
    assert_eq!(attempts.total(), 2);
    assert!(attempts
        .iter()
        .all(|a| a.outcome == AttemptOutcome::TooSlow && a.votes_for() == 3));
    assert_eq!(live_keys(&nodes), 0, "the slow quorum's keys are released");
}

/// With wake-on-release (the default) the first contended attempt is
/// followed at once by a second one, made once the nodes listen (a release
/// during the subscription is not missed) and uses no retry of the budget;
/// after that the retry delay (or a release) paces the attempts. The undo of
/// a failed attempt wakes nobody.
#[tokio::test(start_paused = true)]
async fn a_watching_acquisition_tries_again_at_once_then_waits() {
    let nodes = nodes(3);
    // Held on a majority only: each attempt takes node 1 and undoes it. The
    // undo must not wake the waiter itself (it would burn its retries at once).
    for node in [&nodes[0], &nodes[2]] {
        node.inner().set("r", "other", TTL * 100);
    }
    let redlock = builder(&nodes)
        .retry_count(3)
        .retry_delay(Duration::from_millis(200))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
    let attempts: Vec<_> = err.failure().unwrap().attempts.iter().cloned().collect();
    // The first attempt, the one at once, and one per retry.
    assert_eq!(attempts.len(), 5);
    let gaps: Vec<Duration> = attempts
        .windows(2)
        .map(|pair| pair[1].started - pair[0].started)
        .collect();
    assert!(gaps[0] < Duration::from_millis(10), "{gaps:?}");
    assert!(
        gaps[1..].iter().all(|&g| g == Duration::from_millis(200)),
        "{gaps:?}"
    );
}

/// The retry budget counts pauses, not attempts: attempts made because a
/// release woke the waiter do not use it up. With one retry and a long
/// delay, a waiter that loses several woken races still gets the lock when
/// it is finally released within the same pause (counting every attempt, it
/// would have given up after its second).
#[tokio::test(start_paused = true)]
async fn woken_attempts_do_not_use_up_the_retry_budget() {
    let nodes = nodes(3);
    let holder = builder(&nodes).retry_count(0).build().unwrap();
    let waiter = builder(&nodes)
        .retry_count(1)
        .retry_delay(Duration::from_secs(10))
        .retry_jitter(Duration::ZERO)
        .build()
        .unwrap();
    let mut lock = holder.acquire(&["r"], TTL * 100).await.unwrap();
    let waiting = tokio::spawn(async move { waiter.acquire(&["r"], TTL * 100).await });
    let mut taken_back = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        lock.release().await.unwrap();
        // Taken back before the woken waiter runs (it loses that race).
        match holder.acquire(&["r"], TTL * 100).await {
            Ok(again) => {
                lock = again;
                taken_back += 1;
            }
            Err(_) => break,
        }
    }
    if taken_back == 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        lock.release().await.unwrap();
    }
    let won = waiting
        .await
        .unwrap()
        .expect("the waiter gets the lock within its pause");
    assert!(
        won.attempts().total() >= 2 + taken_back,
        "one attempt per release heard: {:?}",
        won.attempts()
    );
    won.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retries_count_and_delay_with_jitter_bounds() {
    let nodes = nodes(3);
    for node in &nodes {
        node.inner().set("r", "other", TTL * 100);
    }
    let redlock = builder(&nodes)
        .retry_count(5)
        .retry_delay(Duration::from_millis(200))
        .retry_jitter(Duration::from_millis(100))
        // The timer alone (wake-on-release retries once at once; see below).
        .wake_on_release(false)
        .build()
        .unwrap();
    let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
    let attempts: Vec<_> = err.failure().unwrap().attempts.iter().cloned().collect();
    assert_eq!(attempts.len(), 6);
    for pair in attempts.windows(2) {
        let gap = pair[1].started - pair[0].started;
        assert!(
            gap >= Duration::from_millis(100) && gap <= Duration::from_millis(300),
            "gap {gap:?} outside 200 ± 100 ms"
        );
    }
    // Each node saw one acquire and one release per attempt.
    for node in &nodes {
        let calls = node.calls();
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.operation == Operation::Acquire)
                .count(),
            6
        );
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.operation == Operation::Release)
                .count(),
            6
        );
    }
}

#[tokio::test(start_paused = true)]
async fn partial_lock_is_released_on_every_node_before_the_retry() {
    let nodes = nodes(3);
    nodes[0].inner().set("r", "other", TTL * 100);
    nodes[1].set_for(Operation::Acquire, Fault::Fail(ErrorKind::Connection));
    // The timer alone, so that every attempt is one of the retry budget.
    let redlock = builder(&nodes)
        .retry_count(2)
        .wake_on_release(false)
        .build()
        .unwrap();
    let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
    assert!(
        err.is_held(),
        "one against and one failure reads as contention: {err}"
    );
    // Node 2 voted for each time; its key was deleted before each retry.
    assert_eq!(nodes[2].inner().get("r"), None);
    let ops: Vec<_> = nodes[2].calls().into_iter().map(|c| c.operation).collect();
    assert_eq!(
        ops,
        [
            Operation::Acquire,
            Operation::Release,
            Operation::Acquire,
            Operation::Release,
            Operation::Acquire,
            Operation::Release
        ]
    );
    // The failed node is released too.
    assert_eq!(
        nodes[1]
            .calls()
            .iter()
            .filter(|c| c.operation == Operation::Release)
            .count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_not_blocked_by_its_own_partial_lock() {
    // Node 0's release fails, so after attempt 1 our own key stays there; the
    // next attempt must still be able to take node 0.
    let nodes = nodes(3);
    nodes[0].set_for(Operation::Release, Fault::Fail(ErrorKind::Connection));
    nodes[1]
        .inner()
        .set("r", "other", Duration::from_millis(150));
    nodes[2]
        .inner()
        .set("r", "other", Duration::from_millis(150));
    let redlock = builder(&nodes).retry_count(3).build().unwrap();
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    assert!(lock.attempts().total() >= 2);
    assert_eq!(lock.attempts().last().unwrap().votes_for(), 3);
    nodes[0].set(Fault::None);
    lock.release().await.unwrap();
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn unlimited_retries_keep_bounded_statistics_and_stop_when_dropped() {
    let nodes = nodes(3);
    for node in &nodes {
        node.inner().set("r", "other", Duration::from_secs(30));
    }
    let redlock = builder(&nodes)
        .retry_count(RetryCount::Unlimited)
        .build()
        .unwrap();
    // Frees after 30 s: ~150 attempts at 200 ms, but only 32 are kept.
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    assert!(lock.attempts().total() > 100, "{}", lock.attempts().total());
    assert_eq!(lock.attempts().len(), redlock.settings().attempt_history);
    lock.release().await.unwrap();

    // With the resource held forever, only the caller can stop it: by dropping
    // the future (here through a timeout).
    for node in &nodes {
        node.inner().set("q", "other", Duration::from_secs(3600));
    }
    let result = tokio::time::timeout(Duration::from_secs(10), redlock.acquire(&["q"], TTL)).await;
    assert!(
        result.is_err(),
        "unlimited retries must run until cancelled"
    );
    let calls_after_cancel = nodes[0].calls().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        nodes[0].calls().len(),
        calls_after_cancel,
        "nothing runs after the drop"
    );
}

#[tokio::test(start_paused = true)]
async fn extend_returns_a_new_lock_with_a_reset_ttl() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let lock = redlock.acquire(&["a", "b"], TTL).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let extended = lock.extend(Duration::from_secs(2)).await.unwrap();
    assert_eq!(extended.value(), lock.value());
    assert!(extended.expiration() > lock.expiration());
    assert_eq!(nodes[0].inner().ttl("a"), Some(Duration::from_secs(2)));
    assert_eq!(nodes[0].inner().ttl("b"), Some(Duration::from_secs(2)));
    // Settings ride along into the extension.
    assert_eq!(extended.settings(), lock.settings());
    extended.release().await.unwrap();
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn extending_an_expired_lock_is_a_typed_error_without_network() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    tokio::time::sleep(TTL).await;
    let calls = nodes[0].calls().len();
    let err = lock.extend(TTL).await.unwrap_err();
    assert!(matches!(err, Error::Expired { failure: None, .. }), "{err}");
    assert_eq!(nodes[0].calls().len(), calls);
}

#[tokio::test(start_paused = true)]
async fn extend_by_a_lock_whose_keys_were_taken_fails_at_once() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    for node in &nodes[..2] {
        node.inner().set("r", "thief", TTL);
    }
    let err = lock.extend(TTL).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Expired {
                failure: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.failure().unwrap().attempts.total(),
        1,
        "no retry against a clear loss"
    );
}

#[tokio::test(start_paused = true)]
async fn release_is_idempotent_and_quick_on_expired_locks() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    let first = lock.release().await.unwrap();
    assert!(first.was_held());
    assert_eq!(first.released, 3);
    let again = lock.release().await.unwrap();
    assert!(!again.was_held());
    assert_eq!((again.released, again.not_held, again.failed), (0, 3, 0));
    assert_eq!(again.attempts.total(), 1);

    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    tokio::time::sleep(TTL * 2).await;
    let started = Virtual.now();
    let expired = lock.release().await.unwrap();
    assert!(!expired.was_held());
    assert_eq!(Virtual.now(), started, "no retries, no delay");
}

#[tokio::test(start_paused = true)]
async fn release_retries_only_failed_nodes_and_reports_unreachable_majorities() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let lock = redlock.acquire(&["r"], TTL).await.unwrap();
    nodes[0].set_for(Operation::Release, Fault::Fail(ErrorKind::Connection));
    let release = lock.release().await.unwrap();
    assert_eq!((release.released, release.failed), (2, 1));
    let retried = |n: &common::Node| {
        n.calls()
            .iter()
            .filter(|c| c.operation == Operation::Release)
            .count()
    };
    assert_eq!(retried(&nodes[0]), 3, "1 + release_retry_count");
    assert_eq!(retried(&nodes[1]), 1);

    let lock = redlock.acquire(&["s"], TTL).await.unwrap();
    nodes[1].set_for(Operation::Release, Fault::Fail(ErrorKind::Connection));
    let err = lock.release().await.unwrap_err();
    assert!(matches!(err, Error::NoQuorum(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn multi_resource_locks_are_all_or_nothing_and_overlaps_exclude() {
    let nodes = nodes(3);
    let redlock = builder(&nodes).retry_count(0).build().unwrap();
    let ab = redlock.acquire(&["a", "b"], TTL).await.unwrap();
    let bc = redlock.acquire(&["b", "c"], TTL).await;
    assert!(matches!(bc, Err(Error::Held(_))));
    assert_eq!(
        nodes[0].inner().get("c"),
        None,
        "nothing of a failed lock is written"
    );
    let cd = redlock.acquire(&["c", "d"], TTL).await.unwrap();
    ab.release().await.unwrap();
    cd.release().await.unwrap();
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn error_hook_sees_contention_and_failures() {
    use std::sync::{Arc, Mutex};
    let nodes = nodes(3);
    nodes[0].inner().set("r", "other", TTL * 10);
    nodes[1].set_for(Operation::Acquire, Fault::Fail(ErrorKind::Busy));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let redlock = builder(&nodes)
        .retry_count(0)
        .on_error(move |event| {
            let what = match event.outcome {
                NodeOutcome::Against(_) => "against".to_owned(),
                NodeOutcome::Failed(e) => e.kind().to_string(),
                _ => "other".to_owned(),
            };
            sink.lock()
                .unwrap()
                .push((event.node, event.name.to_owned(), event.operation, what));
        })
        .build()
        .unwrap();
    redlock.acquire(&["r"], TTL).await.unwrap_err();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let event =
        |node: usize, op, what: &str| (node, format!("faulty(mem{node})"), op, what.to_owned());
    assert_eq!(
        seen,
        [
            // Contention is reported like any other refusal; the clean-up
            // release after the failed attempt finds none of our keys on
            // nodes 0 and 1 (node 2 voted for, and released quietly).
            event(0, Operation::Acquire, "against"),
            event(0, Operation::Release, "against"),
            event(1, Operation::Acquire, "node busy"),
            event(1, Operation::Release, "against"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn custom_scripts_reach_the_backend_and_permanent_errors_stop_retries() {
    let nodes = nodes(3);
    let custom = Script::new("return #KEYS -- custom");
    let redlock = builder(&nodes)
        .retry_count(5)
        .scripts(Scripts::default().with_acquire(custom.clone()))
        .build()
        .unwrap();
    let err = redlock.acquire(&["r"], TTL).await.unwrap_err();
    // MemoryBackend runs no Lua and says so rather than ignore the script.
    assert!(matches!(err, Error::Rejected(_)), "{err}");
    assert_eq!(
        err.failure().unwrap().rejection().unwrap().kind(),
        ErrorKind::Unsupported
    );
    for node in &nodes {
        let acquires: Vec<_> = node
            .calls()
            .into_iter()
            .filter(|c| c.operation == Operation::Acquire)
            .collect();
        assert_eq!(acquires.len(), 1, "a permanent error is not retried");
        assert_eq!(acquires[0].script_sha1, custom.sha1());
    }
}

#[tokio::test(start_paused = true)]
async fn lock_values_are_128_bit_random_hex() {
    let nodes = nodes(1);
    let redlock = redlock(&nodes);
    let mut values = std::collections::HashSet::new();
    for i in 0..200 {
        let lock = redlock.acquire(&[format!("r{i}")], TTL).await.unwrap();
        assert_eq!(lock.value().len(), 32);
        assert!(lock.value().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(values.insert(lock.value().to_owned()));
        lock.release().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn memory_backend_expires_keys_and_does_not_grow() {
    let nodes = nodes(1);
    let redlock = redlock(&nodes);
    let lock = redlock
        .acquire(&["r"], Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(nodes[0].inner().get("r"), None);
    redlock
        .acquire(&["r"], TTL)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    drop(lock);
    for i in 0..2000 {
        // Abandoned locks: never released, expire on their own.
        let _ = redlock
            .acquire(&[format!("k{i}")], Duration::from_millis(10))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        nodes[0].inner().stored() <= 130,
        "expired keys are swept: {}",
        nodes[0].inner().stored()
    );
}
