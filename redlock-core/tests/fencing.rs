//! Fencing tokens across independent nodes: read-max, then write back to a quorum.

mod common;

use std::time::Duration;

use common::{builder, live_keys, nodes, Virtual};
use redlock_core::keys::{fence_key, legacy_fence_key};
use redlock_core::{Error, ErrorKind, Fault, Operation, Redlock};

const TTL: Duration = Duration::from_millis(500);

fn fenced(nodes: &[common::Node]) -> Redlock {
    builder(nodes)
        .fencing(true)
        .retry_count(50)
        .retry_delay(Duration::from_millis(5))
        .retry_jitter(Duration::from_millis(5))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn tokens_strictly_increase_across_racing_clients() {
    let nodes = nodes(5);
    let clients: Vec<Redlock> = (0..6).map(|_| fenced(&nodes)).collect();
    let order = std::sync::Mutex::new(Vec::new());
    let race = clients.iter().map(|client| async {
        for _ in 0..10 {
            let lock = client.acquire(&["res"], TTL).await.unwrap();
            // The critical section: tokens are recorded in the order sections run.
            order.lock().unwrap().push(lock.fencing_token().unwrap());
            tokio::time::sleep(Duration::from_millis(3)).await;
            lock.release().await.unwrap();
        }
    });
    futures::future::join_all(race).await;
    let order = order.into_inner().unwrap();
    assert_eq!(order.len(), 60);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "tokens out of order: {order:?}"
    );
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stale_high_counter_outside_the_quorum_cannot_break_the_order() {
    let nodes = nodes(5);
    let redlock = fenced(&nodes);
    let key = fence_key("res");
    // Node 4 is ahead (a counter from a long-gone lock) and down.
    nodes[4].inner().set_fence_counter(&key, 1000);
    nodes[4].set(Fault::Fail(ErrorKind::Connection));
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let lock = redlock.acquire(&["res"], TTL).await.unwrap();
        tokens.push(lock.fencing_token().unwrap());
        lock.release().await.unwrap();
    }
    assert_eq!(tokens, [1, 2, 3]);
    // It comes back: the next quorum includes it, and the token jumps past it.
    nodes[4].set(Fault::None);
    let lock = redlock.acquire(&["res"], TTL).await.unwrap();
    assert_eq!(lock.fencing_token(), Some(1001));
    lock.release().await.unwrap();
    // A node whose counter is behind (wiped) does not pull tokens back.
    nodes[0].inner().set_fence_counter(&key, 0);
    let lock = redlock.acquire(&["res"], TTL).await.unwrap();
    assert_eq!(lock.fencing_token(), Some(1002));
    lock.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn legacy_per_resource_counters_carry_over_and_are_folded_in() {
    let nodes = nodes(5);
    let redlock = fenced(&nodes);
    let (slot, legacy) = (fence_key("res"), legacy_fence_key("res"));
    // Counters left by a release with one counter per resource: 500 on a
    // quorum, 1000 on a node that is down.
    for node in &nodes[..3] {
        node.inner().set_fence_counter(&legacy, 500);
    }
    nodes[4].inner().set_fence_counter(&legacy, 1000);
    nodes[4].set(Fault::Fail(ErrorKind::Connection));
    let lock = redlock.acquire(&["res"], TTL).await.unwrap();
    assert_eq!(
        lock.fencing_token(),
        Some(501),
        "the old counters carry over"
    );
    lock.release().await.unwrap();
    for (i, node) in nodes[..4].iter().enumerate() {
        let (s, l) = (
            node.inner().fence_counter(&slot),
            node.inner().fence_counter(&legacy),
        );
        assert!(
            l.is_none() || s.is_none(),
            "node {i}: folded into the slot counter, or not written back: {s:?} {l:?}"
        );
    }
    // The down node comes back: its old counter is read, and the token
    // passes it; the write-back folds it in.
    nodes[4].set(Fault::None);
    for node in &nodes[..4] {
        node.set(Fault::Fail(ErrorKind::Connection));
    }
    nodes[0].set(Fault::None);
    nodes[1].set(Fault::None);
    let lock = redlock.acquire(&["res"], TTL).await.unwrap();
    assert_eq!(lock.fencing_token(), Some(1001));
    lock.release().await.unwrap();
    assert_eq!(nodes[4].inner().fence_counter(&legacy), None);
    assert_eq!(nodes[4].inner().fence_counter(&slot), Some(1001));
}

#[tokio::test(start_paused = true)]
async fn minority_down_still_yields_increasing_tokens_written_to_a_quorum() {
    let nodes = nodes(5);
    let redlock = fenced(&nodes);
    nodes[0].set(Fault::Fail(ErrorKind::Connection));
    nodes[1].set(Fault::Hang);
    let lock = redlock.acquire(&["a", "b"], TTL).await.unwrap();
    assert_eq!(lock.fencing_token(), Some(1));
    let written = nodes[2..]
        .iter()
        .filter(|n| {
            n.inner().fence_counter(&fence_key("a")) == Some(1)
                && n.inner().fence_counter(&fence_key("b")) == Some(1)
        })
        .count();
    assert!(
        written >= 3,
        "written to a quorum of the live nodes: {written}"
    );
    // The extra round trip shows in the statistics.
    let ops: Vec<_> = lock.attempts().iter().map(|a| a.operation).collect();
    assert_eq!(ops, [Operation::Acquire, Operation::Fence]);
    let lock = lock.extend(TTL).await.unwrap();
    assert_eq!(
        lock.fencing_token(),
        Some(1),
        "an extension keeps the token"
    );
    lock.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_token_not_confirmed_by_a_quorum_is_not_granted() {
    let nodes = nodes(3);
    let redlock = builder(&nodes)
        .fencing(true)
        .retry_count(2)
        .build()
        .unwrap();
    for node in &nodes[..2] {
        node.set_for(Operation::Fence, Fault::Fail(ErrorKind::Connection));
    }
    let err = redlock.acquire(&["res"], TTL).await.unwrap_err();
    assert!(matches!(err, Error::NoQuorum(_)), "{err}");
    let attempts = &err.failure().unwrap().attempts;
    assert_eq!(attempts.total(), 3, "3 attempts");
    assert_eq!(attempts.len(), 6, "of 2 rounds each");
    assert_eq!(live_keys(&nodes), 0, "the unconfirmed lock is released");
}

#[tokio::test(start_paused = true)]
async fn without_fencing_there_is_no_token_and_no_extra_round() {
    let nodes = nodes(3);
    let redlock = builder(&nodes).build().unwrap();
    let lock = redlock.acquire(&["res"], TTL).await.unwrap();
    assert_eq!(lock.fencing_token(), None);
    assert!(nodes[0]
        .calls()
        .iter()
        .all(|c| c.operation != Operation::Fence));
    lock.release().await.unwrap();
    let _ = Virtual;
}

#[tokio::test(start_paused = true)]
async fn a_backend_without_fencing_is_a_typed_rejection() {
    use redlock_core::{async_trait, BackendError, LockBackend, Reply, Request};
    struct Plain;
    #[async_trait]
    impl LockBackend for Plain {
        async fn acquire(&self, r: &Request<'_>) -> Result<Reply, BackendError> {
            Ok(Reply::applied(r.resources().len()))
        }
        async fn extend(&self, r: &Request<'_>) -> Result<Reply, BackendError> {
            Ok(Reply::applied(r.resources().len()))
        }
        async fn release(&self, r: &Request<'_>) -> Result<Reply, BackendError> {
            Ok(Reply::applied(r.resources().len()))
        }
    }
    let redlock = Redlock::builder([Plain])
        .runtime(Virtual)
        .fencing(true)
        .build()
        .unwrap();
    let err = redlock.acquire(&["res"], TTL).await.unwrap_err();
    // Its acquire ignores the fence counters: a typed rejection at once, never
    // a lock without a token.
    assert!(matches!(err, Error::Rejected(_)), "{err}");
    assert_eq!(err.failure().unwrap().attempts.total(), 1);
    let kinds: Vec<_> = err
        .failure()
        .unwrap()
        .attempts
        .last()
        .unwrap()
        .errors()
        .map(|(_, e)| e.kind())
        .collect();
    assert_eq!(kinds, [ErrorKind::Unsupported]);
}
