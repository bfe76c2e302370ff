//! Helpers shared by the algorithm tests: a virtual clock (tokio's paused time,
//! through the public `Runtime` trait) and clusters of in-memory nodes.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use redlock_core::{FaultyBackend, MemoryBackend, Redlock, RedlockBuilder, Runtime, Sleep};

/// tokio's clock: under `#[tokio::test(start_paused = true)]` it is virtual and
/// jumps ahead whenever every task is idle, so timing is deterministic.
#[derive(Clone, Copy, Debug)]
pub struct Virtual;

impl Runtime for Virtual {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

pub type Node = FaultyBackend<MemoryBackend>;

/// `n` independent in-memory nodes on the virtual clock, each wrapped for faults.
pub fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            FaultyBackend::new(
                MemoryBackend::with_runtime(Virtual).named(format!("mem{i}")),
                Virtual,
            )
        })
        .collect()
}

/// A builder over clones of `nodes` with fast retries on the virtual clock.
pub fn builder(nodes: &[Node]) -> RedlockBuilder {
    Redlock::builder(nodes.to_vec())
        .runtime(Virtual)
        .retry_count(3)
        .retry_delay(Duration::from_millis(100))
        .retry_jitter(Duration::from_millis(20))
}

pub fn redlock(nodes: &[Node]) -> Redlock {
    builder(nodes).build().expect("valid configuration")
}

/// Live keys over all nodes.
pub fn live_keys(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| n.inner().len()).sum()
}

pub const TTL: Duration = Duration::from_secs(1);
