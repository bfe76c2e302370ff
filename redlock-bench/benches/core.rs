//! The core's own CPU cost, without Redis: the algorithm on in-process
//! `MemoryBackend` nodes, so that a regression in the quorum round, the
//! statistics or the allocations shows up here before it shows up against a
//! network.
//!
//! `cargo bench -p redlock-bench --bench core` (add `-- --quick` for a fast
//! pass). Every case runs on a current-thread tokio runtime with the core's
//! `TokioRuntime` timer, as an application would.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redlock_core::{MemoryBackend, Redlock, TokioRuntime};

const TTL: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime")
}

fn redlock(nodes: &[MemoryBackend]) -> Redlock {
    Redlock::builder(nodes.to_vec())
        .runtime(TokioRuntime)
        .build()
        .expect("valid configuration")
}

fn nodes(n: usize) -> Vec<MemoryBackend> {
    (0..n).map(|_| MemoryBackend::new()).collect()
}

/// acquire + release of one free resource on 1, 3 and 5 nodes.
fn acquire_release(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("acquire_release");
    group.throughput(Throughput::Elements(1));
    for n in [1usize, 3, 5] {
        let nodes = nodes(n);
        let redlock = redlock(&nodes);
        group.bench_with_input(BenchmarkId::new("nodes", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let lock = redlock
                        .acquire(black_box(&["bench:resource"]), TTL)
                        .await
                        .expect("a free resource is acquired");
                    lock.release().await.expect("released")
                })
            });
        });
        assert!(nodes.iter().all(MemoryBackend::is_empty));
    }
    group.finish();
}

/// acquire + release of three resources at once on 3 nodes (the script path:
/// no plain SET NX for several keys).
fn multi_resource(c: &mut Criterion) {
    let rt = runtime();
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let resources = ["{bench}a", "{bench}b", "{bench}c"];
    c.bench_function("acquire_release_3_resources/nodes/3", |b| {
        b.iter(|| {
            rt.block_on(async {
                let lock = redlock
                    .acquire(black_box(&resources), TTL)
                    .await
                    .expect("free resources are acquired");
                lock.release().await.expect("released")
            })
        });
    });
}

/// A try-acquire that finds the resource held on every node: the failure
/// path (votes against, no partial lock to undo, the typed error with its
/// statistics).
fn contended_try(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("try_acquire_held");
    for n in [1usize, 3, 5] {
        let nodes = nodes(n);
        for node in &nodes {
            node.set("bench:held", "someone-else", Duration::from_secs(3600));
        }
        let redlock = redlock(&nodes);
        group.bench_with_input(BenchmarkId::new("nodes", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    let result = redlock.try_acquire(black_box(&["bench:held"]), TTL).await;
                    assert!(result.is_err());
                    result
                })
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = core;
    config = config();
    targets = acquire_release, multi_resource, contended_try
}
criterion_main!(core);
