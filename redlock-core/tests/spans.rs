//! `tracing`: every operation has a span with its resources and outcome, and
//! no lock value is logged above debug level.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::executor::block_on;
use redlock_core::{
    Error, ErrorKind, Fault, FaultyBackend, MemoryBackend, NeutralRuntime, Operation, Redlock,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const TTL: Duration = Duration::from_secs(10);

/// A span or an event as the capture saw it: its fields formatted.
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    level: Level,
    fields: BTreeMap<&'static str, String>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
}

/// A subscriber that keeps every span (with fields recorded later) and event.
#[derive(Clone, Default)]
struct Capture {
    next: Arc<AtomicU64>,
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut seen = Seen {
            name: span.metadata().name(),
            level: *span.metadata().level(),
            fields: BTreeMap::new(),
        };
        span.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id, seen);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut seen = Seen {
            name: event.metadata().name(),
            level: *event.metadata().level(),
            fields: BTreeMap::new(),
        };
        event.record(&mut Fields(&mut seen.fields));
        self.events.lock().unwrap().push(seen);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn spans(&self, name: &str) -> Vec<Seen> {
        let spans = self.spans.lock().unwrap();
        spans.values().filter(|s| s.name == name).cloned().collect()
    }
    fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }
}

fn nodes() -> Vec<FaultyBackend<MemoryBackend>> {
    (0..3)
        .map(|i| {
            FaultyBackend::new(
                MemoryBackend::new().named(format!("mem{i}")),
                NeutralRuntime,
            )
        })
        .collect()
}

/// The tests take turns: `tracing` caches each callsite's interest across
/// all live subscribers, and one test's subscriber appearing or going while
/// the other logs is a race best not run.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn is_info_or_above(level: Level) -> bool {
    level == Level::INFO || level == Level::WARN || level == Level::ERROR
}

#[test]
fn every_operation_has_a_span_with_resources_and_outcome() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let capture = Capture::default();
    let nodes = nodes();
    let redlock = Redlock::builder(nodes.clone())
        .retry_count(0)
        .build()
        .unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(async {
            let lock = redlock.acquire(&["job:a", "job:b"], TTL).await.unwrap();
            let held = redlock.acquire(&["job:a"], TTL).await.unwrap_err();
            assert!(held.is_held(), "{held}");
            let lock = lock.extend(TTL).await.unwrap();
            lock.release().await.unwrap();
            redlock
                .using(&["job:c"], TTL, |_| async { Ok::<_, Error>(()) })
                .await
                .unwrap();
        })
    });

    let acquires = capture.spans("redlock.acquire");
    assert_eq!(acquires.len(), 3, "{acquires:?}");
    let outcomes: Vec<(Option<&str>, Option<&str>)> = acquires
        .iter()
        .map(|s| (s.field("resources"), s.field("outcome")))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Some(r#"["job:a", "job:b"]"#), Some("acquired")),
            (Some(r#"["job:a"]"#), Some("held")),
            (Some(r#"["job:c"]"#), Some("acquired")),
        ]
    );
    assert_eq!(acquires[0].field("attempts"), Some("1"));
    assert!(acquires.iter().all(|s| s.level == Level::INFO));

    let extend = capture.spans("redlock.extend");
    assert_eq!(extend.len(), 1, "{extend:?}");
    assert_eq!(extend[0].field("resources"), Some(r#"["job:a", "job:b"]"#));
    assert_eq!(extend[0].field("outcome"), Some("extended"));

    let releases = capture.spans("redlock.release");
    assert_eq!(releases.len(), 2, "the manual release and using's");
    assert_eq!(
        releases[0].field("resources"),
        Some(r#"["job:a", "job:b"]"#)
    );
    assert!(releases
        .iter()
        .all(|s| s.field("outcome") == Some("released")));

    let using = capture.spans("redlock.using");
    assert_eq!(using.len(), 1, "{using:?}");
    assert_eq!(using[0].field("resources"), Some(r#"["job:c"]"#));
    assert_eq!(using[0].field("outcome"), Some("completed"));
    assert_eq!(using[0].field("extensions"), Some("0"));
}

#[test]
fn no_lock_value_above_debug_level() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let capture = Capture::default();
    let nodes = nodes();
    let redlock = Redlock::builder(nodes.clone())
        .retry_count(0)
        .build()
        .unwrap();
    let mut values = Vec::new();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(async {
            let lock = redlock.acquire(&["job:a"], TTL).await.unwrap();
            values.push(lock.value().to_owned());
            lock.release().await.unwrap();
            // A release that fails: using() warns about it.
            for node in &nodes {
                node.set_for(Operation::Release, Fault::Fail(ErrorKind::Connection));
            }
            redlock
                .using(&["job:b"], TTL, |_| async { Ok::<_, Error>(()) })
                .await
                .unwrap();
        })
    });

    let events = capture.events();
    // Every lock's value is logged once, at debug level, when it is acquired.
    let debug_values: Vec<&str> = events
        .iter()
        .filter(|e| e.level == Level::DEBUG)
        .filter_map(|e| e.field("value"))
        .collect();
    assert_eq!(debug_values.len(), 2, "{events:?}");
    assert_eq!(debug_values[0], values[0]);
    assert!(
        events
            .iter()
            .any(|e| e.level == Level::WARN && e.field("message").is_some()),
        "the failed release after using() warns: {events:?}"
    );
    let loud = events.iter().filter(|e| is_info_or_above(e.level));
    let spans = capture
        .spans
        .lock()
        .unwrap()
        .values()
        .cloned()
        .collect::<Vec<_>>();
    let spans = spans.iter().filter(|s| is_info_or_above(s.level));
    for seen in loud.chain(spans) {
        for (field, text) in &seen.fields {
            for value in &debug_values {
                assert!(
                    !text.contains(value),
                    "{:?} {} field {field} shows a lock value: {text}",
                    seen.level,
                    seen.name
                );
            }
        }
    }
}
