//! [`Redlock::using`]: run a routine under a lock that extends itself, and the
//! [`AbortSignal`] that tells the routine when the lock is lost.
//!
//! The routine and the extension schedule run in the caller's task, side by
//! side (a `select`, nothing spawned): the routine is polled while an extension
//! is in flight, and when it finishes the lock is released at once, whatever
//! the routine returned, and even if it panicked.

use std::fmt;
use std::future::Future;
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use futures::FutureExt;
use tracing::field::Empty;
use tracing::Span;

use crate::error::Error;
use crate::lock::{Held, Lock};
use crate::metrics;
use crate::redlock::Redlock;
use crate::settings::Settings;
use crate::validate;

/// Handed to a [`using`](Redlock::using) routine: everything it needs to act
/// safely under the lock.
///
/// - **Loss**: [`is_aborted`](Self::is_aborted), [`error`](Self::error) and
///   the awaitable [`aborted`](Self::aborted) tell it when the lock is lost
///   (an extension failed), so it can stop before doing unprotected work.
/// - **The lock**: [`resources`](Self::resources), the
///   [`fencing_token`](Self::fencing_token) to pass to the protected storage
///   with every write, and the validity left
///   ([`remaining_validity`](Self::remaining_validity),
///   [`expiration`](Self::expiration)), which moves forward each time `using`
///   extends the lock.
///
/// Clones share one state: a clone kept by a sub-task sees the same abort
/// and the same extensions.
///
/// ```
/// use futures::{future::Either, pin_mut};
/// use redlock_core::{AbortSignal, Error};
///
/// # async fn long_step(_token: Option<u64>) {}
/// async fn routine(signal: AbortSignal) -> Result<(), Error> {
///     // The storage refuses writes whose token is older than one it has seen.
///     let work = long_step(signal.fencing_token());
///     let lost = signal.aborted();
///     pin_mut!(work, lost);
///     match futures::future::select(work, lost).await {
///         Either::Left(((), _)) => Ok(()),
///         Either::Right((error, _)) => Err(error), // stop: the lock is gone
///     }
/// }
/// ```
///
/// A signal made with [`AbortSignal::new`] (to drive a routine outside
/// `using`, in a test) belongs to no lock: no resources, no token, no
/// expiration, and no validity left.
#[derive(Clone, Default)]
pub struct AbortSignal {
    inner: Arc<SignalInner>,
}

#[derive(Default)]
struct SignalInner {
    aborted: AtomicBool,
    state: Mutex<SignalState>,
    /// The lock `using` runs the routine under: its nodes' clock, resources,
    /// token (its value is never shown). `None` for [`AbortSignal::new`].
    held: Option<Held>,
}

#[derive(Debug, Default)]
struct SignalState {
    error: Option<Error>,
    wakers: Vec<Waker>,
    /// The expiration of the latest lock: the acquired one, then each extension.
    expiration: Option<Instant>,
}

impl fmt::Debug for AbortSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortSignal")
            .field("aborted", &self.is_aborted())
            .field("error", &self.error())
            .field("resources", &self.resources())
            .field("fencing_token", &self.fencing_token())
            .field("remaining_validity", &self.remaining_validity())
            .finish()
    }
}

impl AbortSignal {
    /// A signal that has not aborted and belongs to no lock (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal `using` hands its routine: bound to `lock`, which it
    /// follows through [`extended`](Self::extended).
    fn for_lock(lock: &Lock) -> Self {
        AbortSignal {
            inner: Arc::new(SignalInner {
                aborted: AtomicBool::new(false),
                state: Mutex::new(SignalState {
                    expiration: Some(lock.expiration()),
                    ..SignalState::default()
                }),
                held: Some(lock.held().clone()),
            }),
        }
    }

    /// Follows an extension: the validity runs to the new lock's expiration.
    fn extended(&self, lock: &Lock) {
        self.state().expiration = Some(lock.expiration());
    }

    fn state(&self) -> MutexGuard<'_, SignalState> {
        // The state is a plain value; a panic elsewhere cannot leave it torn.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the lock was lost.
    pub fn is_aborted(&self) -> bool {
        self.inner.aborted.load(Ordering::Acquire)
    }

    /// Why the lock was lost, once it was.
    pub fn error(&self) -> Option<Error> {
        self.state().error.clone()
    }

    /// Completes, with the reason, when the lock is lost. Use it in a `select`
    /// beside the routine's own work.
    pub fn aborted(&self) -> Aborted {
        Aborted {
            signal: self.clone(),
        }
    }

    /// The locked resources (the Redis keys), as given to `using`. Empty for
    /// a signal that belongs to no lock.
    pub fn resources(&self) -> &[String] {
        self.inner.held.as_ref().map_or(&[], |h| &h.resources)
    }

    /// The lock's fencing token, when `using` acquired it with
    /// [`Settings::fencing`]: pass it with every write to the protected
    /// storage, which refuses a token lower than the highest it has seen.
    /// Extensions keep the token. See [`Lock::fencing_token`].
    pub fn fencing_token(&self) -> Option<u64> {
        self.inner.held.as_ref().and_then(|h| h.fencing_token)
    }

    /// The monotonic instant after which someone else may hold the lock, as
    /// of the latest extension: it moves forward each time `using` extends
    /// the lock, and stays put once the lock is lost. `None` for a signal
    /// that belongs to no lock. See [`Lock::expiration`].
    pub fn expiration(&self) -> Option<Instant> {
        self.state().expiration
    }

    /// Validity left now, on the lock's own clock: it grows back each time
    /// `using` extends the lock, and runs down to zero once the lock is lost
    /// (or if the routine outlives an extension that is late). Zero for a
    /// signal that belongs to no lock: start no step that needs the lock
    /// for longer than this.
    pub fn remaining_validity(&self) -> Duration {
        match (&self.inner.held, self.expiration()) {
            (Some(held), Some(expiration)) => {
                expiration.saturating_duration_since(held.engine.now())
            }
            _ => Duration::ZERO,
        }
    }

    /// Marks the signal aborted with `error` and wakes every waiter. Only the
    /// first call has an effect.
    pub fn abort(&self, error: Error) {
        let wakers = {
            let mut state = self.state();
            if state.error.is_some() {
                return;
            }
            state.error = Some(error);
            self.inner.aborted.store(true, Ordering::Release);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The future of [`AbortSignal::aborted`].
#[derive(Debug)]
pub struct Aborted {
    signal: AbortSignal,
}

impl Future for Aborted {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        let mut state = self.signal.state();
        if let Some(error) = &state.error {
            return Poll::Ready(error.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

enum Step<T> {
    Finished(T),
    Extended(Lock),
    Lost(Error),
}

impl Redlock {
    /// Acquires the lock, runs `routine`, extends the lock while it runs, and
    /// releases it when it ends.
    ///
    /// The lock is extended (by `ttl` again) whenever its remaining validity
    /// drops below `automatic_extension_threshold`. If an extension fails, the
    /// [`AbortSignal`] aborts at once and no further extension is tried; the
    /// routine decides how to stop. When the routine returns (or panics), the
    /// lock is released promptly. The routine's result is returned as is: a
    /// failed release is reported through `tracing` and never replaces it (the
    /// keys expire at their TTL anyway).
    ///
    /// The signal also carries the lock itself: its
    /// [`resources`](AbortSignal::resources), its
    /// [`fencing_token`](AbortSignal::fencing_token) (with
    /// [`Settings::fencing`]) for the routine to pass to the storage it
    /// writes, and the [`remaining_validity`](AbortSignal::remaining_validity),
    /// which grows back at each extension.
    ///
    /// Acquisition errors are converted with `E: From<Error>`, so a routine can
    /// use [`Error`] itself, `anyhow::Error`, or its own error type.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redlock_core::{Error, MemoryBackend, Redlock};
    /// use std::time::Duration;
    ///
    /// let redlock = Redlock::builder([MemoryBackend::new()]).fencing(true).build()?;
    /// let total = redlock
    ///     .using(&["report"], Duration::from_secs(5), |signal| async move {
    ///         if signal.is_aborted() {
    ///             return Err(signal.error().expect("an aborted signal has its error"));
    ///         }
    ///         assert_eq!(signal.resources(), ["report"]);
    ///         assert!(signal.fencing_token().is_some()); // pass it with each write
    ///         assert!(signal.remaining_validity() > Duration::ZERO);
    ///         Ok::<_, Error>(40 + 2)
    ///     })
    ///     .await?;
    /// assert_eq!(total, 42);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn using<S, F, Fut, T, E>(
        &self,
        resources: &[S],
        ttl: Duration,
        routine: F,
    ) -> Result<T, E>
    where
        S: AsRef<str>,
        F: FnOnce(AbortSignal) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        self.using_settings(resources, ttl, self.default_settings().clone(), routine)
            .await
    }

    /// [`using`](Self::using) with settings for this call.
    pub async fn using_with<S, F, Fut, T, E>(
        &self,
        resources: &[S],
        ttl: Duration,
        settings: &Settings,
        routine: F,
    ) -> Result<T, E>
    where
        S: AsRef<str>,
        F: FnOnce(AbortSignal) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        settings.validate().map_err(Error::from)?;
        self.using_settings(resources, ttl, Arc::new(settings.clone()), routine)
            .await
    }

    async fn using_settings<S, F, Fut, T, E>(
        &self,
        resources: &[S],
        ttl: Duration,
        settings: Arc<Settings>,
        routine: F,
    ) -> Result<T, E>
    where
        S: AsRef<str>,
        F: FnOnce(AbortSignal) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let span = tracing::info_span!(
            "redlock.using",
            resources = ?metrics::Names(resources),
            ttl_ms = metrics::millis(ttl),
            outcome = Empty,
            extensions = Empty,
            fencing_token = Empty,
        );
        metrics::in_span(
            &span,
            self.run_using(resources, ttl, settings, routine, &span),
        )
        .await
    }

    /// The body of [`using`](Self::using), in its span; records the outcome
    /// there.
    async fn run_using<S, F, Fut, T, E>(
        &self,
        resources: &[S],
        ttl: Duration,
        settings: Arc<Settings>,
        routine: F,
        span: &Span,
    ) -> Result<T, E>
    where
        S: AsRef<str>,
        F: FnOnce(AbortSignal) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let checked = validate::ttl(ttl, &settings)
            .and_then(|()| validate::extension_threshold(ttl, &settings));
        if let Err(invalid) = checked {
            let error = Error::from(invalid);
            metrics::acquisition(Err(&error));
            span.record("outcome", metrics::error_label(&error));
            return Err(error.into());
        }
        let threshold = settings.automatic_extension_threshold;
        let mut lock = match self.acquire_settings(resources, ttl, settings).await {
            Ok(lock) => lock,
            Err(error) => {
                span.record("outcome", metrics::error_label(&error));
                return Err(error.into());
            }
        };
        span.record("fencing_token", lock.fencing_token());
        let signal = AbortSignal::for_lock(&lock);
        let mut extensions: u64 = 0;
        let mut routine = pin!(AssertUnwindSafe(routine(signal.clone())).catch_unwind());
        let result = loop {
            if signal.is_aborted() {
                break routine.as_mut().await;
            }
            let step = {
                let extension = pin!(self.extend_when_due(&lock, threshold, ttl));
                match select(routine.as_mut(), extension).await {
                    Either::Left((result, _)) => Step::Finished(result),
                    Either::Right((Ok(extended), _)) => Step::Extended(extended),
                    Either::Right((Err(error), _)) => Step::Lost(error),
                }
            };
            match step {
                Step::Finished(result) => break result,
                Step::Extended(extended) => {
                    extensions += 1;
                    signal.extended(&extended);
                    lock = extended;
                }
                Step::Lost(error) => {
                    tracing::debug!(resources = ?lock.resources(), %error, "extension failed; aborting");
                    metrics::lock_lost(&error);
                    signal.abort(error);
                }
            }
        };
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "release after using() failed; the keys expire at their TTL");
        }
        span.record("extensions", extensions);
        let outcome = match &result {
            Err(_) => "panicked",
            Ok(_) if signal.is_aborted() => "lost",
            Ok(Ok(_)) => "completed",
            Ok(Err(_)) => "failed",
        };
        span.record("outcome", outcome);
        match result {
            Ok(result) => result,
            Err(panic) => resume_unwind(panic),
        }
    }

    async fn extend_when_due(
        &self,
        lock: &Lock,
        threshold: Duration,
        ttl: Duration,
    ) -> Result<Lock, Error> {
        let due = lock.remaining_validity().saturating_sub(threshold);
        if !due.is_zero() {
            self.engine().runtime().sleep(due).await;
        }
        lock.extend(ttl).await
    }
}
