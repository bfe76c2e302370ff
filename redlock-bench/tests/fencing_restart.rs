//! Fencing tokens across node restarts that follow the delayed-restart rule
//! (every crashed node stays down longer than the TTL and comes back empty,
//! never more than a minority down at once).
//!
//! The delayed-restart rule protects locks, which expire; fence counters never
//! expire, so a node that restarts empty forgets them for good. This test
//! shows a sequence of minority crashes, each obeying the rule, after which a
//! later owner gets a token no higher than an earlier one's — the limitation
//! `Lock::fencing_token` documents (fencing needs AOF with `appendfsync
//! always`) — and, as the control, that the same crashes on nodes with AOF
//! keep the tokens rising.

mod common;

use std::time::Duration;

use common::{block_on, builder, prefix, Adapter, Fleet};
use redlock_core::keys::fence_key;
use redlock_testkit::server::NodeOptions;

const TTL: Duration = Duration::from_millis(500);

/// Returns A's token and B's (B acquired after A released).
async fn tokens_after_delayed_restarts(adapter: Adapter, persistence: bool) -> (u64, u64) {
    let fleet = Fleet::start_with(
        5,
        NodeOptions {
            persistence,
            ..NodeOptions::default()
        },
    );
    let key = prefix("fence_restart");
    let fence = fence_key(&key);
    let probes = fleet.probes();
    // Retries over 2 s: fred reconnects to a restarted node within about
    // half a second.
    let redlock = builder(adapter.backends(&fleet.urls()).await)
        .retry_count(40)
        .retry_delay(Duration::from_millis(50))
        .fencing(true)
        .build()
        .expect("build");
    let down_longer_than_ttl = || tokio::time::sleep(TTL + Duration::from_millis(300));

    // Nodes 3 and 4 crash; A takes the lock on 0, 1, 2: the counter reaches
    // only those three.
    fleet.nodes[3].kill();
    fleet.nodes[4].kill();
    let a = redlock.acquire(&[&key], TTL).await.expect("A on 0, 1, 2");
    let token_a = a.fencing_token().expect("a token");
    a.release().await.expect("release");
    for (i, probe) in probes.iter().enumerate().take(3) {
        assert_eq!(
            probe.get(&fence).and_then(|v| v.parse::<u64>().ok()),
            Some(token_a),
            "node {i}"
        );
    }

    // 3 and 4 come back (empty without AOF) after more than the TTL; then 0 and 1 crash,
    // and come back (empty without AOF) after more than the TTL. Never more than two
    // nodes down; no node back before the TTL.
    down_longer_than_ttl().await;
    fleet.nodes[3].restart().expect("restart 3");
    fleet.nodes[4].restart().expect("restart 4");
    fleet.nodes[0].kill();
    fleet.nodes[1].kill();
    down_longer_than_ttl().await;
    fleet.nodes[0].restart().expect("restart 0");
    fleet.nodes[1].restart().expect("restart 1");

    // Node 2, the last one that knows A's token, is cut off (a minority).
    fleet.proxies[2].cut_off();
    let b = redlock
        .acquire(&[&key], TTL)
        .await
        .expect("B on 0, 1, 3, 4");
    let token_b = b.fencing_token().expect("a token");
    b.release().await.expect("release");
    (token_a, token_b)
}

fn rising(adapter: Adapter) {
    let (a, b) = block_on(tokens_after_delayed_restarts(adapter, true));
    assert!(
        b > a,
        "{adapter:?} with AOF: B after A got {b}, not above A's {a}"
    );
}

fn repeats_without_aof(adapter: Adapter) {
    let (a, b) = block_on(tokens_after_delayed_restarts(adapter, false));
    assert!(
        b <= a,
        "{adapter:?} without AOF: the crashes wiped every counter that knew A's token {a}, \
         so B's token {b} cannot be above it; if it is, this test no longer builds the scenario"
    );
}

/// The control: the same crashes on nodes with AOF (`appendfsync always`)
/// keep the counters, and the tokens rise.
#[test]
fn tokens_after_restarts_with_aof_redis_rs() {
    rising(Adapter::RedisRs);
}

#[test]
fn tokens_after_restarts_with_aof_fred() {
    rising(Adapter::Fred);
}

/// Without AOF the delayed-restart rule is not enough: the token repeats, as
/// the docs say.
#[test]
fn tokens_repeat_after_delayed_restarts_without_aof_redis_rs() {
    repeats_without_aof(Adapter::RedisRs);
}

#[test]
fn tokens_repeat_after_delayed_restarts_without_aof_fred() {
    repeats_without_aof(Adapter::Fred);
}
