//! The `metrics` feature: every metric is emitted with the right labels and
//! values, seen by a recorder installed for the test's thread.
#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{builder, nodes};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use redlock_core::metrics as names;
use redlock_core::{Error, ErrorKind, Fault, Operation};

const TTL: Duration = Duration::from_millis(1000);

/// One metric with its labels, sorted: `name{k=v,k=v}`.
fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

/// Counter totals and histogram samples, by `name{labels}`.
#[derive(Default)]
struct Store {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

/// A recorder that keeps everything in a [`Store`].
#[derive(Clone, Default)]
struct Recording(Arc<Mutex<Store>>);

struct Handle {
    key: String,
    store: Arc<Mutex<Store>>,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        *self
            .store
            .lock()
            .unwrap()
            .counters
            .entry(self.key.clone())
            .or_default() += value;
    }
    fn absolute(&self, value: u64) {
        self.store
            .lock()
            .unwrap()
            .counters
            .insert(self.key.clone(), value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.store
            .lock()
            .unwrap()
            .histograms
            .entry(self.key.clone())
            .or_default()
            .push(value);
    }
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(self.handle(key)))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(self.handle(key)))
    }
}

impl Recording {
    fn handle(&self, key: &Key) -> Handle {
        Handle {
            key: key_text(key),
            store: self.0.clone(),
        }
    }
    fn counter(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .counters
            .get(key)
            .copied()
            .unwrap_or(0)
    }
    fn samples(&self, key: &str) -> Vec<f64> {
        let store = self.0.lock().unwrap();
        store.histograms.get(key).cloned().unwrap_or_default()
    }
    /// Every counter whose text starts with `prefix`, for failure messages.
    fn counters(&self, prefix: &str) -> Vec<(String, u64)> {
        let store = self.0.lock().unwrap();
        store
            .counters
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[tokio::test(start_paused = true)]
async fn acquire_held_extend_release_are_counted() {
    let recorder = Recording::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let nodes = nodes(3);
    // Every node answers after 20 ms on the virtual clock: a known latency.
    for node in &nodes {
        node.set_for(Operation::Acquire, Fault::Delay(Duration::from_millis(20)));
    }
    let redlock = builder(&nodes).retry_count(0).build().unwrap();

    let lock = redlock.acquire(&["job"], TTL).await.unwrap();
    assert_eq!(
        recorder.counter("redlock_acquisitions_total{outcome=acquired}"),
        1
    );
    assert_eq!(
        recorder.samples("redlock_acquire_attempts{outcome=acquired}"),
        [1.0]
    );
    // The `node` label is the node's describe() name.
    assert_eq!(redlock.node_name(1), Some("faulty(mem1)"));
    for node in ["faulty(mem0)", "faulty(mem1)", "faulty(mem2)"] {
        let samples = recorder.samples(&format!(
            "redlock_node_round_duration_seconds{{node={node},operation=acquire}}"
        ));
        assert!(
            !samples.is_empty() && samples.iter().all(|s| close(*s, 0.020)),
            "{node}: {samples:?}"
        );
    }

    // Someone else holds it: one attempt, held.
    let held = redlock.acquire(&["job"], TTL).await.unwrap_err();
    assert!(held.is_held(), "{held}");
    assert_eq!(
        recorder.counter("redlock_acquisitions_total{outcome=held}"),
        1
    );
    assert_eq!(
        recorder.samples("redlock_acquire_attempts{outcome=held}"),
        [1.0]
    );

    // Invalid input is counted, without attempts.
    let empty: [&str; 0] = [];
    redlock.acquire(&empty, TTL).await.unwrap_err();
    assert_eq!(
        recorder.counter("redlock_acquisitions_total{outcome=invalid}"),
        1
    );
    assert!(recorder
        .samples("redlock_acquire_attempts{outcome=invalid}")
        .is_empty());

    tokio::time::sleep(Duration::from_millis(300)).await;
    let lock = lock.extend(TTL).await.unwrap();
    assert_eq!(
        recorder.counter("redlock_extensions_total{outcome=extended}"),
        1
    );
    assert!(!recorder
        .samples("redlock_node_round_duration_seconds{node=faulty(mem0),operation=extend}")
        .is_empty());

    tokio::time::sleep(Duration::from_millis(200)).await;
    let release = lock.release().await.unwrap();
    assert!(release.was_held());
    assert_eq!(
        recorder.counter("redlock_releases_total{outcome=released}"),
        1
    );
    // Granted, then the held attempt (20 ms), 300 ms, the extension, 200 ms
    // (virtual time), and released: held 0.52 s.
    let held_for = recorder.samples("redlock_lock_held_seconds{}");
    assert_eq!(held_for.len(), 1, "{held_for:?}");
    assert!(close(held_for[0], 0.52), "{held_for:?}");

    // Releasing again finds nothing held.
    lock.release().await.unwrap();
    assert_eq!(
        recorder.counter("redlock_releases_total{outcome=not_held}"),
        1
    );
    // It ended no hold: no second sample of the time held.
    assert_eq!(recorder.samples("redlock_lock_held_seconds{}").len(), 1);
    // No failure was counted: votes against are not failures.
    assert!(
        recorder.counters("redlock_node_failures_total").is_empty(),
        "{:?}",
        recorder.counters("redlock_node_failures_total")
    );
}

#[tokio::test(start_paused = true)]
async fn node_failures_are_counted_by_node_operation_and_kind() {
    let recorder = Recording::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let nodes = nodes(3);
    nodes[1].set(Fault::Fail(ErrorKind::Connection));
    nodes[2].set_for(Operation::Acquire, Fault::Fail(ErrorKind::Quarantined));
    let redlock = builder(&nodes).retry_count(0).build().unwrap();

    // Two of three nodes fail: no quorum.
    let error = redlock.acquire(&["job"], TTL).await.unwrap_err();
    assert!(matches!(error, Error::NoQuorum(_)), "{error}");
    assert_eq!(
        recorder.counter("redlock_acquisitions_total{outcome=no_quorum}"),
        1
    );
    assert_eq!(
        recorder.counter(
            "redlock_node_failures_total{kind=connection,node=faulty(mem1),operation=acquire}"
        ),
        1,
        "{:?}",
        recorder.counters("redlock_node_failures_total")
    );
    assert_eq!(
        recorder.counter(
            "redlock_node_failures_total{kind=quarantined,node=faulty(mem2),operation=acquire}"
        ),
        1
    );
    assert_eq!(
        recorder.counter("redlock_quarantined_votes_total{node=faulty(mem2)}"),
        1
    );
    // The undo of the failed attempt: the release failed on node 1 too.
    assert_eq!(
        recorder.counter(
            "redlock_node_failures_total{kind=connection,node=faulty(mem1),operation=release}"
        ),
        1
    );
    assert!(recorder
        .counters("redlock_node_failures_total{")
        .iter()
        .all(|(k, _)| !k.contains("node=faulty(mem0)")));
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_in_using_is_counted() {
    let recorder = Recording::default();
    let _local = metrics::set_default_local_recorder(&recorder);
    let nodes = nodes(3);
    let redlock = builder(&nodes).build().unwrap();
    let thief = nodes.clone();
    let result: Result<(), Error> = redlock
        .using(&["job"], TTL, |signal| async move {
            // Someone else takes the key on a majority (after a pause, say).
            tokio::time::sleep(Duration::from_millis(100)).await;
            for node in &thief[..2] {
                node.inner().set("job", "thief", Duration::from_secs(60));
            }
            Err(signal.aborted().await)
        })
        .await;
    assert!(matches!(result, Err(Error::Expired { .. })), "{result:?}");
    assert_eq!(
        recorder.counter("redlock_locks_lost_total{reason=expired}"),
        1
    );
    assert_eq!(
        recorder.counter("redlock_extensions_total{outcome=expired}"),
        1
    );
    assert_eq!(
        recorder.counter("redlock_acquisitions_total{outcome=acquired}"),
        1
    );
}

#[test]
fn describe_gives_every_metric_a_unit() {
    type Described = Vec<(String, Option<Unit>)>;
    #[derive(Clone, Default)]
    struct Units(Arc<Mutex<Described>>);
    impl Recorder for Units {
        fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.0.lock().unwrap().push((key.as_str().to_owned(), unit));
        }
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.0.lock().unwrap().push((key.as_str().to_owned(), unit));
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
    let units = Units::default();
    metrics::with_local_recorder(&units, names::describe);
    let described = units.0.lock().unwrap().clone();
    assert_eq!(described.len(), 9, "{described:?}");
    for (name, unit) in described {
        let expected = if name.ends_with("_seconds") {
            Unit::Seconds
        } else {
            Unit::Count
        };
        assert_eq!(unit, Some(expected), "{name}");
    }
}
