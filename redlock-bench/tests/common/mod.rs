//! Helpers shared by the fault, cancellation and bad-input tests: both
//! adapters behind one enum, nodes behind fault proxies, key counts.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redlock_core::{LockBackend, Redlock, RedlockBuilder};
use redlock_fred::FredBackend;
use redlock_redis_rs::RedisBackend;
use redlock_testkit::probe::Probe;
use redlock_testkit::proxy::FaultProxy;
use redlock_testkit::server::{NodeOptions, RedisNodes};

/// The two adapters under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    RedisRs,
    Fred,
}

impl Adapter {
    /// A backend for the standalone node at `url`.
    pub async fn backend(self, url: &str) -> Box<dyn LockBackend> {
        match self {
            Adapter::RedisRs => Box::new(
                RedisBackend::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("redis-rs backend for {url}: {e}")),
            ),
            Adapter::Fred => Box::new(
                FredBackend::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("fred backend for {url}: {e}")),
            ),
        }
    }

    /// One backend per URL.
    pub async fn backends(self, urls: &[String]) -> Vec<Box<dyn LockBackend>> {
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            out.push(self.backend(url).await);
        }
        out
    }

    /// One backend for a whole Redis Cluster.
    pub async fn cluster(self, urls: &[String]) -> Box<dyn LockBackend> {
        match self {
            Adapter::RedisRs => Box::new(
                RedisBackend::connect_cluster(urls)
                    .await
                    .unwrap_or_else(|e| panic!("redis-rs cluster backend: {e}")),
            ),
            Adapter::Fred => Box::new(
                FredBackend::connect_cluster(urls)
                    .await
                    .unwrap_or_else(|e| panic!("fred cluster backend: {e}")),
            ),
        }
    }
}

/// Runs `f` on a two-worker tokio runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// A key prefix no other test uses.
pub fn prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "t:{test}:{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// N nodes, each behind a fault proxy; clients go through the proxies,
/// probes go to the nodes directly.
pub struct Fleet {
    pub nodes: RedisNodes,
    pub proxies: Vec<FaultProxy>,
}

impl Fleet {
    pub fn start(n: usize) -> Fleet {
        Self::start_with(n, NodeOptions::default())
    }

    pub fn start_with(n: usize, options: NodeOptions) -> Fleet {
        let nodes = RedisNodes::start_with(n, options).expect("start redis-server nodes");
        let proxies = nodes
            .iter()
            .map(|node| FaultProxy::for_node(node).expect("start a proxy"))
            .collect();
        Fleet { nodes, proxies }
    }

    /// The proxies' URLs, for clients.
    pub fn urls(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.url()).collect()
    }

    pub fn probes(&self) -> Vec<Probe> {
        self.nodes.probes()
    }

    /// `(node, key, pttl)` of every key starting with `prefix`, on every
    /// running node.
    pub fn keys(&self, prefix: &str) -> Vec<(usize, String, i64)> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let probe = node.probe();
            for key in probe.keys(&format!("{prefix}*")) {
                let pttl = probe.pttl(&key).unwrap_or(-2);
                out.push((i, key, pttl));
            }
        }
        out
    }
}

/// The builder these tests use: 3 retries of 20 ± 10 ms, a 200 ms per-node
/// timeout (generous for a loaded 2-core CI machine).
pub fn builder(backends: Vec<Box<dyn LockBackend>>) -> RedlockBuilder {
    Redlock::builder(backends)
        .retry_count(3)
        .retry_delay(Duration::from_millis(20))
        .retry_jitter(Duration::from_millis(10))
        .node_timeout(Duration::from_millis(200))
}

/// Runs a future, failing the test if it takes longer than a limit: never a
/// hang. The testkit's, shared with the conformance suite.
// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use redlock_testkit::conformance::within;
