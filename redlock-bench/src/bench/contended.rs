//! The contended workload: several tasks fight over ONE resource, each
//! acquiring it (retrying until it holds it), incrementing a shared counter
//! with a yield in between, and releasing it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::{Redlock, TokioRuntime};
use redlock_fred::FredBackend;
use redlock_redis_rs::RedisBackend;

use super::clients::{Client, Impl};
use super::measure::quantile;
use super::BenchError;

/// What one contended run measured.
pub(crate) struct ContendedRun {
    pub handoffs_per_s: f64,
    pub acquires_per_s: f64,
    pub wait_p50_us: f64,
    pub wait_p99_us: f64,
    pub wait_max_us: f64,
    pub gap_p99_us: f64,
    pub takeover_wait_p99_us: f64,
    pub lost: u64,
    pub gave_up: u64,
    /// Ours only: attempts (rounds) per successful acquisition, counting
    /// those of calls that ran out of retries.
    pub attempts_per_acquire: Option<f64>,
}

/// What the contenders share: the counter the lock protects, and who held
/// the lock last.
struct Shared {
    counter: AtomicU64,
    sections: AtomicU64,
    owner: AtomicUsize,
    handoffs: AtomicU64,
    /// When the last release completed, in ns since the start.
    released_at: AtomicU64,
}

const NOBODY: usize = usize::MAX;

/// `tasks` tasks on one resource: acquire (retrying until it holds it) ->
/// read the counter, yield, write it + 1 -> release, until the deadline.
pub(crate) async fn contended(
    client: Arc<Client>,
    key: String,
    tasks: usize,
    run: Duration,
    ttl: Duration,
) -> ContendedRun {
    let shared = Arc::new(Shared {
        counter: AtomicU64::new(0),
        sections: AtomicU64::new(0),
        owner: AtomicUsize::new(NOBODY),
        handoffs: AtomicU64::new(0),
        released_at: AtomicU64::new(0),
    });
    let key: Arc<str> = key.into();
    let start = Instant::now();
    let deadline = start + run;
    let handles: Vec<_> = (0..tasks)
        .map(|me| {
            let (client, shared, key) = (client.clone(), shared.clone(), key.clone());
            tokio::spawn(async move {
                let mut waits: Vec<u64> = Vec::with_capacity(4096);
                let mut gaps: Vec<u64> = Vec::with_capacity(4096);
                let mut takeovers: Vec<u64> = Vec::with_capacity(4096);
                let mut censored = 0u64;
                let mut gave_up = 0u64;
                let mut attempts: Option<u64> = None;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let (held, misses, rounds) = tokio::select! {
                        biased;
                        got = client.acquire_until(&key, ttl) => got,
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            censored = t0.elapsed().as_nanos() as u64;
                            break;
                        }
                    };
                    let now = Instant::now();
                    gave_up += misses;
                    if let Some(rounds) = rounds {
                        *attempts.get_or_insert(0) += rounds;
                    }
                    let wait = now.duration_since(t0).as_nanos() as u64;
                    waits.push(wait);
                    let previous = shared.owner.swap(me, Ordering::AcqRel);
                    if previous != me && previous != NOBODY {
                        shared.handoffs.fetch_add(1, Ordering::Relaxed);
                        takeovers.push(wait);
                        let released = shared.released_at.load(Ordering::Acquire);
                        let at = now.duration_since(start).as_nanos() as u64;
                        gaps.push(at.saturating_sub(released));
                    }
                    // The critical section: a read-modify-write that loses an
                    // update if two holders overlap.
                    let value = shared.counter.load(Ordering::Acquire);
                    tokio::task::yield_now().await;
                    shared.counter.store(value + 1, Ordering::Release);
                    shared.sections.fetch_add(1, Ordering::Relaxed);
                    let _ = client.release(held, &key).await;
                    let at = start.elapsed().as_nanos() as u64;
                    shared.released_at.store(at, Ordering::Release);
                }
                (waits, gaps, takeovers, censored, gave_up, attempts)
            })
        })
        .collect();
    let (mut waits, mut gaps, mut takeovers) = (Vec::new(), Vec::new(), Vec::new());
    let (mut censored_max, mut gave_up, mut attempts) = (0, 0, None);
    for handle in handles {
        if let Ok((w, g, t, c, m, a)) = handle.await {
            if let Some(a) = a {
                *attempts.get_or_insert(0u64) += a;
            }
            waits.extend(w);
            gaps.extend(g);
            takeovers.extend(t);
            censored_max = censored_max.max(c);
            gave_up += m;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    waits.sort_unstable();
    gaps.sort_unstable();
    takeovers.sort_unstable();
    let sections = shared.sections.load(Ordering::Acquire);
    let counter = shared.counter.load(Ordering::Acquire);
    let max_wait = waits.last().copied().unwrap_or(0).max(censored_max);
    ContendedRun {
        handoffs_per_s: shared.handoffs.load(Ordering::Relaxed) as f64 / elapsed,
        acquires_per_s: sections as f64 / elapsed,
        wait_p50_us: quantile(&waits, 0.50) as f64 / 1e3,
        wait_p99_us: quantile(&waits, 0.99) as f64 / 1e3,
        wait_max_us: max_wait as f64 / 1e3,
        gap_p99_us: quantile(&gaps, 0.99) as f64 / 1e3,
        takeover_wait_p99_us: quantile(&takeovers, 0.99) as f64 / 1e3,
        lost: sections.saturating_sub(counter),
        attempts_per_acquire: attempts
            .filter(|_| sections > 0)
            .map(|a| a as f64 / sections as f64),
        gave_up,
    }
}

/// A process that waits on nothing while others contend: its release
/// subscription must receive no message (`wake_bystander_messages`).
///
/// Its subscription is opened first, by one wait of its own on another
/// resource, so that a subscription that did not follow interest (one
/// pattern for every release, as before) would count every release of the
/// contended run.
pub(crate) struct Bystander {
    redlock: Redlock,
    messages: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Bystander {
    /// A bystander for implementation `which` (ours or fred; `None` for the
    /// others, which have no subscription), warmed up by waiting once on
    /// `warm_key` while `other` holds it.
    pub(crate) async fn start(
        which: Impl,
        urls: &[String],
        other: &Client,
        warm_key: &str,
    ) -> Result<Option<Bystander>, BenchError> {
        let fail = |e: &dyn std::fmt::Display| {
            BenchError::new(format!("{} bystander: {e}", which.label()))
        };
        let (builder, messages): (_, Box<dyn Fn() -> u64 + Send + Sync>) = match which {
            Impl::Ours => {
                let mut backends = Vec::with_capacity(urls.len());
                for url in urls {
                    let backend = RedisBackend::connect(url).await.map_err(|e| fail(&e))?;
                    backends.push(Arc::new(backend));
                }
                let counted = backends.clone();
                (
                    Redlock::builder(backends),
                    Box::new(move || counted.iter().map(|b| b.wake_messages()).sum()),
                )
            }
            Impl::Fred => {
                let mut backends = Vec::with_capacity(urls.len());
                for url in urls {
                    let backend = FredBackend::connect(url).await.map_err(|e| fail(&e))?;
                    backends.push(Arc::new(backend));
                }
                let counted = backends.clone();
                (
                    Redlock::builder(backends),
                    Box::new(move || counted.iter().map(|b| b.wake_messages()).sum()),
                )
            }
            _ => return Ok(None),
        };
        let redlock = builder
            .runtime(TokioRuntime)
            .retry_count(100)
            .build()
            .map_err(|e| fail(&e))?;
        let ttl = Duration::from_secs(10);
        let held = other
            .acquire(warm_key, ttl)
            .await
            .map_err(|e| fail(&format!("warm-up hold: {e}")))?;
        let release_soon = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            other.release(held, warm_key).await
        };
        let resources = [warm_key];
        let (got, released) = tokio::join!(redlock.acquire(&resources, ttl), release_soon);
        released.map_err(|e| fail(&format!("warm-up release: {e}")))?;
        let lock = got.map_err(|e| fail(&format!("warm-up wait: {e}")))?;
        lock.release().await.map_err(|e| fail(&e))?;
        if messages() == 0 {
            return Err(fail(&"the warm-up wait received no release message"));
        }
        Ok(Some(Bystander { redlock, messages }))
    }

    /// Release messages received so far.
    pub(crate) fn messages(&self) -> u64 {
        (self.messages)()
    }

    /// Ends it (its connections close with it).
    pub(crate) fn finish(self) {
        drop(self.redlock);
    }
}
