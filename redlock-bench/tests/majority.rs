//! A majority of the nodes unavailable, on both adapters: acquire fails with
//! `Error::NoQuorum` within its retry budget (never hangs), and unlimited
//! retries stop the moment their future is dropped.

mod common;

use std::time::{Duration, Instant};

use common::{block_on, prefix, within, Adapter, Fleet};
use redlock_core::{AttemptOutcome, Error, ErrorKind, NodeOutcome, Redlock, RetryCount};

const RETRIES: u32 = 3;
const DELAY: Duration = Duration::from_millis(50);
const JITTER: Duration = Duration::from_millis(25);
const NODE_TIMEOUT: Duration = Duration::from_millis(150);
const TTL: Duration = Duration::from_secs(1);
/// What a loaded 2-core CI machine may add to the budget.
const SLACK: Duration = Duration::from_millis(1500);

/// The longest an acquisition with a majority down may take: every attempt
/// waits at most one per-node timeout for its votes and one for the release
/// of its partial lock, and every retry sleeps at most delay + jitter.
fn budget() -> Duration {
    (NODE_TIMEOUT * 2) * (RETRIES + 1) + (DELAY + JITTER) * RETRIES
}

#[derive(Clone, Copy, Debug)]
enum Outage {
    /// The processes are killed: connections refused.
    Killed,
    /// The proxies hold every connection and answer nothing: timeouts.
    Blackholed,
}

async fn no_quorum_within_budget(adapter: Adapter, outage: Outage) {
    let fleet = Fleet::start(5);
    let key = prefix("no_quorum");
    let redlock = Redlock::builder(adapter.backends(&fleet.urls()).await)
        .retry_count(RETRIES)
        .retry_delay(DELAY)
        .retry_jitter(JITTER)
        .node_timeout(NODE_TIMEOUT)
        .build()
        .expect("build");
    // Warm: every connection is open before the outage.
    let lock = redlock.acquire(&[&key], TTL).await.expect("all nodes up");
    lock.release().await.expect("release");

    let down = [0, 2, 4];
    for &i in &down {
        match outage {
            Outage::Killed => fleet.nodes[i].kill(),
            Outage::Blackholed => fleet.proxies[i].blackhole(),
        }
    }
    let started = Instant::now();
    let result = within(
        Duration::from_secs(30),
        "acquire with a majority down",
        redlock.acquire(&[&key], TTL),
    )
    .await;
    let elapsed = started.elapsed();
    println!(
        "{adapter:?} {outage:?}: NoQuorum after {elapsed:?} (budget {:?})",
        budget()
    );
    let failure = match &result {
        Err(Error::NoQuorum(failure)) => failure,
        other => panic!("{adapter:?} {outage:?}: expected Error::NoQuorum, got {other:?}"),
    };
    assert_eq!(
        failure.attempts.total(),
        u64::from(RETRIES) + 1,
        "retry_count + 1 attempts"
    );
    for attempt in failure.attempts.iter() {
        assert_eq!(attempt.outcome, AttemptOutcome::Unavailable, "{attempt:?}");
        for &i in &down {
            match &attempt.nodes[i].outcome {
                NodeOutcome::Failed(e) => assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                    "{adapter:?} {outage:?}: node {i} failed with {e}"
                ),
                other => panic!("{adapter:?} {outage:?}: node {i} was {other:?}"),
            }
        }
    }
    assert!(
        elapsed <= budget() + SLACK,
        "{adapter:?} {outage:?}: NoQuorum took {elapsed:?}, over the budget {:?} + {SLACK:?}",
        budget()
    );
    if let Outage::Blackholed = outage {
        // Each attempt really waited for its per-node timeout.
        let floor = NODE_TIMEOUT * (RETRIES + 1) + (DELAY - JITTER) * RETRIES;
        assert!(elapsed >= floor, "{elapsed:?} < {floor:?}");
    }
    // Every partial lock was undone on the live nodes.
    let left: Vec<_> = fleet
        .keys(&key)
        .into_iter()
        .filter(|(i, _, _)| !down.contains(i))
        .collect();
    assert!(
        left.is_empty(),
        "{adapter:?} {outage:?}: keys left {left:?}"
    );
}

#[test]
fn no_quorum_killed_redis_rs() {
    block_on(no_quorum_within_budget(Adapter::RedisRs, Outage::Killed));
}

#[test]
fn no_quorum_killed_fred() {
    block_on(no_quorum_within_budget(Adapter::Fred, Outage::Killed));
}

#[test]
fn no_quorum_blackholed_redis_rs() {
    block_on(no_quorum_within_budget(
        Adapter::RedisRs,
        Outage::Blackholed,
    ));
}

#[test]
fn no_quorum_blackholed_fred() {
    block_on(no_quorum_within_budget(Adapter::Fred, Outage::Blackholed));
}

/// Unlimited retries against a majority that is down: the future keeps
/// trying until it is dropped, then stops at once (nothing was spawned), and
/// leaves no key behind its TTL. When the majority comes back, an unlimited
/// acquisition gets the lock.
async fn unlimited_retries_cancelled_by_drop(adapter: Adapter) {
    let fleet = Fleet::start(3);
    let key = prefix("unlimited");
    let redlock = Redlock::builder(adapter.backends(&fleet.urls()).await)
        .retry_count(RetryCount::Unlimited)
        .retry_delay(Duration::from_millis(20))
        .retry_jitter(Duration::from_millis(10))
        .node_timeout(NODE_TIMEOUT)
        .build()
        .expect("build");
    redlock
        .acquire(&[&key], TTL)
        .await
        .expect("all nodes up")
        .release()
        .await
        .expect("release");
    let live = fleet.nodes[0].probe();
    fleet.nodes[1].kill();
    fleet.nodes[2].kill();

    let before = live.command_calls("evalsha");
    let started = Instant::now();
    let result =
        tokio::time::timeout(Duration::from_millis(600), redlock.acquire(&[&key], TTL)).await;
    let elapsed = started.elapsed();
    assert!(
        result.is_err(),
        "{adapter:?}: unlimited retries returned {result:?}"
    );
    assert!(
        elapsed < Duration::from_millis(600) + SLACK,
        "{adapter:?}: the dropped acquisition took {elapsed:?} to stop"
    );
    let during = live.command_calls("evalsha") - before;
    assert!(
        during >= 5,
        "{adapter:?}: it kept retrying ({during} calls)"
    );
    // Dropped: no attempt runs any more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let settled = live.command_calls("evalsha");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        live.command_calls("evalsha"),
        settled,
        "{adapter:?}: attempts went on after the future was dropped"
    );
    tokio::time::sleep(TTL).await;
    assert_eq!(
        fleet.keys(&key),
        vec![],
        "{adapter:?}: keys left after the TTL"
    );

    // The majority comes back while an unlimited acquisition waits: it gets the lock.
    let waiting = tokio::spawn({
        let redlock = redlock.clone();
        let key = key.clone();
        async move { redlock.acquire(&[&key], TTL).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.nodes[1].restart().expect("restart");
    fleet.nodes[2].restart().expect("restart");
    let lock = within(
        Duration::from_secs(15),
        "unlimited acquire after recovery",
        waiting,
    )
    .await
    .expect("join")
    .unwrap_or_else(|e| panic!("{adapter:?}: after recovery: {e:?}"));
    assert!(lock.attempts().total() > 1);
    lock.release().await.expect("release");
    assert_eq!(fleet.keys(&key), vec![]);
}

#[test]
fn unlimited_retries_cancelled_by_drop_redis_rs() {
    block_on(unlimited_retries_cancelled_by_drop(Adapter::RedisRs));
}

#[test]
fn unlimited_retries_cancelled_by_drop_fred() {
    block_on(unlimited_retries_cancelled_by_drop(Adapter::Fred));
}
