//! The bad-input sweep on both adapters against real nodes: every bad
//! argument or setting fails with its typed error and writes no key; keys in
//! different cluster slots are `Rejected(CrossSlot)`; a wrong or missing
//! password is `Rejected(Auth)`; a node answering garbage is a `Protocol`
//! failure of that node only.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{block_on, builder, prefix, Adapter, Fleet};
use redlock_core::{
    AttemptOutcome, ConfigError, Error, ErrorKind, InvalidInput, LockBackend, NodeOutcome, Redlock,
    Settings, MAX_RESOURCE_LEN,
};
use redlock_testkit::probe::Probe;
use redlock_testkit::proxy::{Garbage, Latency, Mode};
use redlock_testkit::server::{NodeOptions, RedisCluster, RedisNode, RedisNodes};

const TTL: Duration = Duration::from_secs(10);

/// Whether a configuration error is the one expected.
type Expect = fn(&ConfigError) -> bool;

fn invalid(result: Result<impl std::fmt::Debug, Error>, what: &str) -> InvalidInput {
    match result {
        Err(Error::InvalidInput(e)) => e,
        other => panic!("{what}: expected Error::InvalidInput, got {other:?}"),
    }
}

fn config(result: Result<impl std::fmt::Debug, Error>, what: &str) -> ConfigError {
    match result {
        Err(Error::InvalidConfig(e)) => e,
        other => panic!("{what}: expected Error::InvalidConfig, got {other:?}"),
    }
}

fn script_calls(probe: &Probe) -> u64 {
    ["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "set"]
        .iter()
        .map(|c| probe.command_calls(c))
        .sum()
}

/// Every bad argument and setting: its typed error, and nothing sent.
async fn bad_arguments_reach_no_node(adapter: Adapter) {
    let nodes = RedisNodes::start(3).expect("start nodes");
    let probes = nodes.probes();
    let key = prefix("bad_input");
    let redlock = builder(adapter.backends(&nodes.urls()).await)
        .build()
        .expect("build");
    let none: [&str; 0] = [];
    let long = "x".repeat(MAX_RESOURCE_LEN + 1);

    // Resources.
    assert_eq!(
        invalid(redlock.acquire(&none, TTL).await, "no resources"),
        InvalidInput::NoResources
    );
    assert_eq!(
        invalid(redlock.acquire(&[&key, &key], TTL).await, "duplicates"),
        InvalidInput::DuplicateResource(key.clone())
    );
    assert_eq!(
        invalid(
            redlock.acquire(&[key.as_str(), ""], TTL).await,
            "empty name"
        ),
        InvalidInput::EmptyResource { index: 1 }
    );
    assert!(matches!(
        invalid(redlock.acquire(&[&long], TTL).await, "long name"),
        InvalidInput::ResourceTooLong { index: 0, len, max } if len == MAX_RESOURCE_LEN + 1 && max == MAX_RESOURCE_LEN
    ));
    // TTLs.
    assert_eq!(
        invalid(redlock.acquire(&[&key], Duration::ZERO).await, "zero TTL"),
        InvalidInput::ZeroTtl
    );
    assert_eq!(
        invalid(
            redlock.acquire(&[&key], Duration::from_micros(999)).await,
            "sub-ms TTL"
        ),
        InvalidInput::ZeroTtl
    );
    assert!(matches!(
        invalid(
            redlock.acquire(&[&key], Duration::from_millis(2)).await,
            "TTL within the drift"
        ),
        InvalidInput::TtlTooShort { .. }
    ));
    assert!(matches!(
        invalid(
            redlock.acquire(&[&key], Duration::MAX).await,
            "Duration::MAX"
        ),
        InvalidInput::TtlTooLong { .. }
    ));
    assert!(matches!(
        invalid(
            redlock.try_acquire(&[&key], Duration::MAX).await,
            "try_acquire Duration::MAX"
        ),
        InvalidInput::TtlTooLong { .. }
    ));

    // Per-call settings out of range.
    let with = |change: fn(&mut Settings)| {
        let mut s = Settings::default();
        change(&mut s);
        s
    };
    let bad_settings: [(&str, Settings, Expect); 8] = [
        ("drift -0.1", with(|s| s.drift_factor = -0.1), |e| {
            matches!(e, ConfigError::DriftFactor(_))
        }),
        ("drift 1.0", with(|s| s.drift_factor = 1.0), |e| {
            matches!(e, ConfigError::DriftFactor(_))
        }),
        ("drift NaN", with(|s| s.drift_factor = f64::NAN), |e| {
            matches!(e, ConfigError::DriftFactor(_))
        }),
        (
            "node_timeout 0",
            with(|s| s.node_timeout = Duration::ZERO),
            |e| *e == ConfigError::ZeroNodeTimeout,
        ),
        (
            "retry_delay 2 h",
            with(|s| s.retry_delay = Duration::from_secs(7200)),
            |e| {
                matches!(
                    e,
                    ConfigError::DurationTooLong {
                        name: "retry_delay",
                        ..
                    }
                )
            },
        ),
        (
            "retry_jitter 2 h",
            with(|s| s.retry_jitter = Duration::from_secs(7200)),
            |e| {
                matches!(
                    e,
                    ConfigError::DurationTooLong {
                        name: "retry_jitter",
                        ..
                    }
                )
            },
        ),
        (
            "node_timeout 2 h",
            with(|s| s.node_timeout = Duration::from_secs(7200)),
            |e| {
                matches!(
                    e,
                    ConfigError::DurationTooLong {
                        name: "node_timeout",
                        ..
                    }
                )
            },
        ),
        ("attempt_history 0", with(|s| s.attempt_history = 0), |e| {
            *e == ConfigError::ZeroAttemptHistory
        }),
    ];
    for (what, settings, expected) in &bad_settings {
        let e = config(redlock.acquire_with(&[&key], TTL, settings).await, what);
        assert!(expected(&e), "{what}: {e:?}");
        let ran = AtomicBool::new(false);
        let result: Result<(), Error> = redlock
            .using_with(&[&key], TTL, settings, |_| async {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        let e = config(result, what);
        assert!(expected(&e), "using_with, {what}: {e:?}");
        assert!(!ran.load(Ordering::SeqCst), "{what}: the routine ran");
    }

    // using(): a threshold that leaves no time before expiry, and a bad TTL.
    let ran = AtomicBool::new(false);
    let routine = |_| async {
        ran.store(true, Ordering::SeqCst);
        Ok::<_, Error>(())
    };
    let result = redlock
        .using(&[&key], Duration::from_millis(500), routine)
        .await;
    assert!(
        matches!(
            invalid(result, "threshold 500 ms >= TTL 500 ms"),
            InvalidInput::ThresholdNotBelowTtl { .. }
        ),
        "threshold >= TTL"
    );
    let result = redlock
        .using(&[&key], Duration::from_millis(505), routine)
        .await;
    assert!(matches!(
        invalid(result, "threshold 500 ms >= TTL 505 ms - drift 7 ms"),
        InvalidInput::ThresholdNotBelowTtl { .. }
    ));
    let result = redlock.using(&[&key], Duration::ZERO, routine).await;
    assert_eq!(invalid(result, "using, zero TTL"), InvalidInput::ZeroTtl);
    let result = redlock.using(&none, TTL, routine).await;
    assert_eq!(
        invalid(result, "using, no resources"),
        InvalidInput::NoResources
    );
    assert!(!ran.load(Ordering::SeqCst), "no routine ran");

    for (i, probe) in probes.iter().enumerate() {
        assert_eq!(
            probe.dbsize(),
            0,
            "{adapter:?}: bad input wrote to node {i}"
        );
        assert_eq!(
            script_calls(probe),
            0,
            "{adapter:?}: bad input reached node {i}"
        );
    }

    // extend() with a bad TTL sends nothing either.
    let lock = redlock.acquire(&[&key], TTL).await.expect("acquire");
    let calls: Vec<u64> = probes.iter().map(script_calls).collect();
    assert_eq!(
        invalid(lock.extend(Duration::ZERO).await, "extend 0"),
        InvalidInput::ZeroTtl
    );
    assert!(matches!(
        invalid(lock.extend(Duration::MAX).await, "extend MAX"),
        InvalidInput::TtlTooLong { .. }
    ));
    assert_eq!(probes.iter().map(script_calls).collect::<Vec<_>>(), calls);
    // The longest name allowed is accepted.
    let longest = format!("{key}:{}", "y".repeat(MAX_RESOURCE_LEN - key.len() - 1));
    let long_lock = redlock
        .acquire(&[&longest], TTL)
        .await
        .expect("the longest name");
    assert!(long_lock.release().await.expect("release").was_held());
    assert!(lock.release().await.expect("release").was_held());
    for probe in &probes {
        assert_eq!(probe.dbsize(), 0);
    }
}

#[test]
fn bad_arguments_reach_no_node_redis_rs() {
    block_on(bad_arguments_reach_no_node(Adapter::RedisRs));
}

#[test]
fn bad_arguments_reach_no_node_fred() {
    block_on(bad_arguments_reach_no_node(Adapter::Fred));
}

#[test]
fn bad_builder_settings() {
    block_on(async {
        let node = RedisNode::start().expect("start");
        let none: Vec<Box<dyn LockBackend>> = Vec::new();
        assert_eq!(
            config(Redlock::builder(none).build(), "zero backends"),
            ConfigError::NoBackends
        );
        for adapter in [Adapter::RedisRs, Adapter::Fred] {
            let b = || async { vec![adapter.backend(&node.url()).await] };
            assert!(matches!(
                config(
                    Redlock::builder(b().await).drift_factor(-0.5).build(),
                    "drift -0.5"
                ),
                ConfigError::DriftFactor(_)
            ));
            assert!(matches!(
                config(
                    Redlock::builder(b().await).drift_factor(1.0).build(),
                    "drift 1"
                ),
                ConfigError::DriftFactor(_)
            ));
            assert_eq!(
                config(
                    Redlock::builder(b().await)
                        .node_timeout(Duration::ZERO)
                        .build(),
                    "node_timeout 0"
                ),
                ConfigError::ZeroNodeTimeout
            );
            assert!(matches!(
                config(
                    Redlock::builder(b().await)
                        .retry_delay(Duration::from_secs(3601))
                        .build(),
                    "retry_delay over an hour"
                ),
                ConfigError::DurationTooLong {
                    name: "retry_delay",
                    ..
                }
            ));
            assert!(matches!(
                config(
                    Redlock::builder(b().await)
                        .retry_jitter(Duration::MAX)
                        .build(),
                    "retry_jitter Duration::MAX"
                ),
                ConfigError::DurationTooLong {
                    name: "retry_jitter",
                    ..
                }
            ));
        }
        assert_eq!(node.probe().dbsize(), 0);
        assert_eq!(script_calls(&node.probe()), 0);
    });
}

/// Keys in different slots on a real Redis Cluster: `Rejected` with
/// `CrossSlot`, one attempt, nothing written; the same keys under one hash
/// tag work.
#[test]
fn cross_slot_on_a_cluster_is_rejected() {
    let cluster = RedisCluster::start(3).expect("start a cluster");
    let probe = cluster.probe();
    block_on(async {
        for adapter in [Adapter::RedisRs, Adapter::Fred] {
            let p = prefix("crossslot");
            let (a, b) = (format!("{{{p}-a}}x"), format!("{{{p}-b}}y"));
            assert_ne!(probe.keyslot(&a), probe.keyslot(&b), "different slots");
            let redlock = builder(vec![adapter.cluster(&cluster.urls()).await])
                .node_timeout(Duration::from_secs(1))
                .build()
                .expect("build");
            for fencing in [false, true] {
                let mut settings = Settings::default();
                settings.fencing = fencing;
                settings.node_timeout = Duration::from_secs(1);
                let result = redlock.acquire_with(&[&a, &b], TTL, &settings).await;
                match &result {
                    Err(e @ Error::Rejected(failure)) => {
                        let kind = failure.rejection().map(|r| r.kind());
                        assert_eq!(kind, Some(ErrorKind::CrossSlot), "{adapter:?}: {e}");
                        assert_eq!(failure.attempts.total(), 1, "CrossSlot is not retried");
                        // The hash-tag hint, exactly once.
                        let text = e.to_string();
                        let hints = text.matches(redlock_core::protocol::CROSS_SLOT_HINT).count();
                        assert_eq!(hints, 1, "{adapter:?}: {e}");
                    }
                    other => panic!("{adapter:?} fencing={fencing}: expected Rejected(CrossSlot), got {other:?}"),
                }
            }
            assert_eq!(probe.dbsize(), 0, "{adapter:?}: nothing written");
            let tag = format!("{{{p}}}");
            let (c, d) = (format!("{tag}x"), format!("{tag}y"));
            let lock = redlock.acquire(&[&c, &d], TTL).await.expect("same slot");
            assert!(lock.release().await.expect("release").was_held());
        }
    });
}

/// A wrong password, and none, on a node that requires one: `Rejected` with
/// `Auth`, one attempt, nothing written.
#[test]
fn wrong_or_missing_password_is_rejected() {
    let node = RedisNode::start_with(NodeOptions {
        password: Some("right-pass".into()),
        ..NodeOptions::default()
    })
    .expect("start");
    let probe = node.probe();
    block_on(async {
        for adapter in [Adapter::RedisRs, Adapter::Fred] {
            for url in [
                format!("redis://:wrong-pass@127.0.0.1:{}", node.port()),
                format!("redis://127.0.0.1:{}", node.port()),
            ] {
                let key = prefix("auth");
                let redlock = builder(vec![adapter.backend(&url).await])
                    .build()
                    .expect("build");
                let result = common::within(
                    Duration::from_secs(10),
                    "acquire with bad credentials",
                    redlock.acquire(&[&key], TTL),
                )
                .await;
                match &result {
                    Err(e @ Error::Rejected(failure)) => {
                        let kind = failure.rejection().map(|r| r.kind());
                        assert_eq!(kind, Some(ErrorKind::Auth), "{adapter:?} {url}: {e}");
                        assert_eq!(failure.attempts.total(), 1, "Auth is not retried");
                    }
                    other => panic!("{adapter:?} {url}: expected Rejected(Auth), got {other:?}"),
                }
            }
        }
        assert_eq!(probe.dbsize(), 0);
        assert_eq!(script_calls(&probe), 0);
    });
}

fn node_kind(attempt: &redlock_core::Attempt, node: usize) -> Option<ErrorKind> {
    match &attempt.nodes[node].outcome {
        NodeOutcome::Failed(e) => Some(e.kind()),
        _ => None,
    }
}

/// A node that answers garbage (through the proxy: a reply that is not an
/// integer) is a `Protocol` failure of that node: the lock is still taken on
/// the others; with a majority answering garbage, `NoQuorum`. Nothing reaches
/// the garbage nodes, and nothing is left anywhere.
async fn garbage_node(adapter: Adapter) {
    let fleet = Fleet::start(3);
    let probes = fleet.probes();
    // Garbage before connecting, so every connection to node 0 is a garbage one.
    fleet.proxies[0].set_mode(Mode::Garbage(Garbage::Bulk));
    let redlock = builder(adapter.backends(&fleet.urls()).await)
        .build()
        .expect("build");
    let fenced = builder(adapter.backends(&fleet.urls()).await)
        .fencing(true)
        .build()
        .expect("build");
    // The good nodes answer 10 ms late, so the garbage answer is in before the
    // round is decided (else node 0 could be left unanswered).
    for proxy in &fleet.proxies[1..] {
        proxy.set_mode(Mode::Latency(Latency::new(Duration::from_millis(5))));
    }
    for (mode, redlock) in [
        (Garbage::Bulk, &redlock),
        (Garbage::Bulk, &fenced),
        (Garbage::Status, &fenced),
    ] {
        fleet.proxies[0].set_mode(Mode::Garbage(mode.clone()));
        let key = prefix("garbage");
        let lock = redlock
            .acquire(&[&key], TTL)
            .await
            .unwrap_or_else(|e| panic!("{adapter:?} {mode:?}: two good nodes of three: {e:?}"));
        let attempt = lock.attempts().iter().next().expect("an attempt");
        assert_eq!(attempt.outcome, AttemptOutcome::Succeeded);
        assert_eq!(
            node_kind(attempt, 0),
            Some(ErrorKind::Protocol),
            "{adapter:?} {mode:?}: {attempt:?}"
        );
        assert_eq!(attempt.votes_for(), 2);
        assert!(!probes[0].exists(&key) && probes[1].exists(&key) && probes[2].exists(&key));
        let release = lock.release().await.expect("release");
        assert_eq!(release.released, 2, "{release:?}");
        assert!(fleet.keys(&key).is_empty());
    }

    fleet.proxies[2].heal();
    // A majority answers garbage: NoQuorum. (Bulk, not `+OK`: a first
    // attempt may go out as a plain `SET NX`, to which `+OK` is a valid
    // "set".) Switching resets node 1's open connections, so it first
    // answers with a broken connection; after the reconnection, garbage.
    fleet.proxies[0].set_mode(Mode::Garbage(Garbage::Bulk));
    fleet.proxies[1].set_mode(Mode::Garbage(Garbage::Bulk));
    let calls_before: Vec<u64> = probes.iter().map(script_calls).collect();
    let key = prefix("garbage_majority");
    // Retries 150 ms apart: fred refuses calls for a moment after a
    // connection error, then reconnects into the garbage.
    let mut slow = redlock.settings().clone();
    slow.retry_delay = Duration::from_millis(150);
    let result = redlock.acquire_with(&[&key], TTL, &slow).await;
    match &result {
        Err(Error::NoQuorum(failure)) => {
            assert_eq!(failure.attempts.total(), 4, "Protocol is retried");
            for (n, attempt) in failure.attempts.iter().enumerate() {
                assert_eq!(attempt.outcome, AttemptOutcome::Unavailable);
                assert_eq!(
                    node_kind(attempt, 0),
                    Some(ErrorKind::Protocol),
                    "{attempt:?}"
                );
                let kind = node_kind(attempt, 1);
                assert!(
                    matches!(kind, Some(ErrorKind::Protocol | ErrorKind::Connection)),
                    "{adapter:?}: attempt {n}: node 1 failed with {kind:?}"
                );
            }
            assert!(
                failure
                    .attempts
                    .iter()
                    .any(|a| node_kind(a, 1) == Some(ErrorKind::Protocol)),
                "{adapter:?}: node 1 never answered garbage: {:#?}",
                failure.attempts
            );
        }
        Ok(lock) => panic!(
            "{adapter:?}: a garbage majority: expected NoQuorum, got a lock: {:#?}",
            lock.attempts()
        ),
        other => panic!("{adapter:?}: a garbage majority: expected NoQuorum, got {other:?}"),
    }
    assert!(fleet.keys(&key).is_empty(), "{:?}", fleet.keys(&key));
    for i in [0, 1] {
        assert_eq!(
            script_calls(&probes[i]),
            calls_before[i],
            "nothing reached garbage node {i}"
        );
        assert!(fleet.proxies[i].stats().garbage_replies > 0);
    }
    // Healed: all three vote for again.
    fleet.proxies[0].heal();
    fleet.proxies[1].heal();
    let lock = common::within(Duration::from_secs(10), "acquire after heal", async {
        loop {
            let lock = redlock
                .acquire(&[&key], TTL)
                .await
                .expect("acquire after heal");
            if lock.attempts().last().is_some_and(|a| a.votes_for() == 3) {
                break lock;
            }
            lock.release().await.expect("release");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    lock.release().await.expect("release");
    assert!(fleet.keys(&key).is_empty());
}

#[test]
fn garbage_node_redis_rs() {
    block_on(garbage_node(Adapter::RedisRs));
}

#[test]
fn garbage_node_fred() {
    block_on(garbage_node(Adapter::Fred));
}
