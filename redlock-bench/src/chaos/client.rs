//! One chaos client: lock, read, pause (maybe extend), write while still
//! valid, release; and what the clients share with the schedule.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redlock_core::{LockBackend, Redlock};
use redlock_fred::FredBackend;
use redlock_redis_rs::RedisBackend;

use super::check::{Checker, Histogram, Section, Write};
use super::report::Failures;
use super::{ChaosError, NONE, WRITE_MARGIN};

/// Messages from the long-holding client to the unsafe schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HoldEvent {
    /// It holds the resource and has read its record.
    Holding(usize),
    /// It wrote (or skipped) and is about to release.
    Done(usize),
}

/// What the clients and the schedule share.
pub(crate) struct Ctx {
    pub resources: Vec<String>,
    pub checker: Checker,
    pub stop_clients: AtomicBool,
    pub stop_faults: AtomicBool,
    /// Set by the unsafe schedule once it is done.
    pub finish_early: AtomicBool,
    /// A resource every client should pick, or NONE.
    pub focus: AtomicUsize,
    /// A resource whose next holder should hold it long, or NONE.
    pub hold_request: AtomicUsize,
    pub holds: Mutex<Sender<HoldEvent>>,
    pub sections_started: AtomicU64,
}

impl Ctx {
    fn hold(&self, event: HoldEvent) {
        let sender = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sender.send(event);
    }
}

/// One client's tallies.
pub(crate) struct Tally {
    pub(crate) failures: Failures,
    pub(crate) latency: Histogram,
    pub(crate) writes_skipped: u64,
    pub(crate) extensions: u64,
    pub(crate) extensions_lost: u64,
    pub(crate) releases_not_held: u64,
    pub(crate) release_errors: u64,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            failures: Failures::default(),
            latency: Histogram::new(),
            writes_skipped: 0,
            extensions: 0,
            extensions_lost: 0,
            releases_not_held: 0,
            release_errors: 0,
        }
    }

    pub(crate) fn merge(&mut self, o: &Tally) {
        self.failures.merge(&o.failures);
        self.latency.merge(&o.latency);
        self.writes_skipped += o.writes_skipped;
        self.extensions += o.extensions;
        self.extensions_lost += o.extensions_lost;
        self.releases_not_held += o.releases_not_held;
        self.release_errors += o.release_errors;
    }
}

pub(crate) struct ClientParams {
    pub(crate) ttl: Duration,
    pub(crate) max_pause: Duration,
    pub(crate) extend_share: f64,
    pub(crate) seed: u64,
}

/// A client's loop: lock, read, pause, write if still valid, release.
pub(crate) async fn client(redlock: Redlock, ctx: Arc<Ctx>, p: ClientParams) -> Tally {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut tally = Tally::new();
    let n = ctx.resources.len();
    while !ctx.stop_clients.load(Ordering::Acquire) {
        let focus = ctx.focus.load(Ordering::Acquire);
        let r = if focus < n {
            focus
        } else {
            rng.random_range(0..n)
        };
        let started = Instant::now();
        let mut lock = match redlock.acquire(&[&ctx.resources[r]], p.ttl).await {
            Ok(lock) => lock,
            Err(e) => {
                tally.failures.count(&e);
                let backoff = Duration::from_millis(rng.random_range(0..=5));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let acquired = Instant::now();
        tally.latency.record(acquired - started);
        ctx.sections_started.fetch_add(1, Ordering::Relaxed);
        let read = ctx.checker.read(r);
        let long = ctx
            .hold_request
            .compare_exchange(r, NONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if long {
            // Hold through nearly the whole validity: the unsafe schedule
            // restarts a majority meanwhile.
            ctx.hold(HoldEvent::Holding(r));
            let hold = lock
                .remaining_validity()
                .saturating_sub(WRITE_MARGIN + Duration::from_millis(150));
            tokio::time::sleep(hold).await;
        } else {
            let pause = Duration::from_micros(
                rng.random_range(0..=u64::try_from(p.max_pause.as_micros()).unwrap_or(0)),
            );
            if rng.random_bool(p.extend_share) {
                tokio::time::sleep(pause / 2).await;
                match lock.extend(p.ttl).await {
                    Ok(extended) => {
                        tally.extensions += 1;
                        lock = extended;
                    }
                    Err(_) => tally.extensions_lost += 1,
                }
                tokio::time::sleep(pause / 2).await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
        let token = lock.fencing_token();
        if ctx.checker.write_if_valid(r, read, &lock, WRITE_MARGIN) == Write::Skipped {
            tally.writes_skipped += 1;
        }
        let end = Instant::now();
        ctx.checker.section(
            r,
            Section {
                acquired,
                until: end.min(lock.expiration()),
                token,
            },
        );
        if long {
            ctx.hold(HoldEvent::Done(r));
        }
        match lock.release().await {
            Ok(release) if !release.was_held() => tally.releases_not_held += 1,
            Ok(_) => {}
            Err(_) => tally.release_errors += 1,
        }
    }
    tally
}

/// A client over `urls`, with restart quarantine `quarantine` if given.
pub(crate) async fn connect_client(
    urls: &[String],
    fred: bool,
    quarantine: Option<Duration>,
) -> Result<Redlock, ChaosError> {
    let mut backends: Vec<Box<dyn LockBackend>> = Vec::with_capacity(urls.len());
    for url in urls {
        let backend: Box<dyn LockBackend> = if fred {
            Box::new(
                FredBackend::connect(url)
                    .await
                    .map_err(|e| ChaosError::Setup(format!("fred backend for {url}: {e}")))?,
            )
        } else {
            Box::new(
                RedisBackend::connect(url)
                    .await
                    .map_err(|e| ChaosError::Setup(format!("redis-rs backend for {url}: {e}")))?,
            )
        };
        backends.push(backend);
    }
    let mut builder = Redlock::builder(backends);
    if let Some(max_ttl) = quarantine {
        builder = builder.restart_quarantine(max_ttl);
    }
    builder
        .retry_count(5)
        .retry_delay(Duration::from_millis(30))
        .retry_jitter(Duration::from_millis(20))
        .node_timeout(Duration::from_millis(100))
        .fencing(true)
        .build()
        .map_err(|e| ChaosError::Setup(format!("building a Redlock: {e}")))
}
