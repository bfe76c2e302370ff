//! Helpers shared by the cases: deadlines, unique key prefixes, settings.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::{select, Either};
use futures_timer::Delay;
use redlock_core::{LockBackend, NeutralRuntime, Redlock, RedlockBuilder};

/// Runs `fut`, panicking with `what` if it takes longer than `limit`. Runtime
/// neutral (the timer is `futures-timer`'s).
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    let fut = pin!(fut);
    let timer = pin!(Delay::new(limit));
    match select(fut, timer).await {
        Either::Left((out, _)) => out,
        Either::Right(((), _)) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Sleeps on `futures-timer`'s thread, under any executor.
pub async fn sleep(d: Duration) {
    Delay::new(d).await;
}

/// A key prefix no other case (in this or any concurrent test process) uses.
pub fn unique_prefix(case: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "rlt:{case}:{}-{}-{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The suite's builder: short retries and an explicit runtime-neutral clock,
/// so cases run the same under tokio, smol and async-std whatever runtime
/// feature of `redlock-core` the workspace happens to enable.
pub fn fast_builder<B: LockBackend + 'static>(backends: Vec<B>) -> RedlockBuilder {
    Redlock::builder(backends)
        .runtime(NeutralRuntime)
        .retry_count(3)
        .retry_delay(Duration::from_millis(20))
        .retry_jitter(Duration::from_millis(10))
        // Generous: a loaded CI machine can stall a process for a few hundred
        // ms, and a short TTL caps the effective timeout anyway. Dead nodes
        // are refused at once; the paused-node case sets its own timeout.
        .node_timeout(Duration::from_secs(1))
}

/// Builds, panicking with the configuration error.
pub fn build(builder: RedlockBuilder) -> Redlock {
    builder
        .build()
        .unwrap_or_else(|e| panic!("building the Redlock failed: {e}"))
}

/// A contender that keeps waiting: 10 retries 5 s apart, so only a release
/// notification can hand it the lock within a test's patience.
pub fn patient_waiter(builder: RedlockBuilder) -> Redlock {
    build(
        builder
            .retry_count(10)
            .retry_delay(Duration::from_secs(5))
            .retry_jitter(Duration::ZERO),
    )
}
