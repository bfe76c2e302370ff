//! [`Redlock::using`]: run a routine under a lock that extends itself, and the
//! [`AbortSignal`] that tells the routine when the lock is lost.
//!
//! The routine and the extension schedule run in the caller's task, side by
//! side (a `select`, nothing spawned): the routine is polled while an extension
//! is in flight, and when it finishes the lock is released at once, whatever
//! the routine returned, and even if it panicked.

use std::future::Future;
use std::panic::{resume_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{select, Either};
use futures::FutureExt;

use crate::error::Error;
use crate::lock::Lock;
use crate::redlock::Redlock;
use crate::settings::Settings;
use crate::validate;

/// Handed to a [`using`](Redlock::using) routine: tells it when the lock is lost
/// (an extension failed), so it can stop before doing unprotected work.
///
/// ```
/// use futures::{future::Either, pin_mut};
/// use redlock_core::{AbortSignal, Error};
///
/// # async fn long_step() {}
/// async fn routine(signal: AbortSignal) -> Result<(), Error> {
///     let work = long_step();
///     let lost = signal.aborted();
///     pin_mut!(work, lost);
///     match futures::future::select(work, lost).await {
///         Either::Left(((), _)) => Ok(()),
///         Either::Right((error, _)) => Err(error), // stop: the lock is gone
///     }
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AbortSignal {
    inner: Arc<SignalInner>,
}

#[derive(Debug, Default)]
struct SignalInner {
    aborted: AtomicBool,
    state: Mutex<SignalState>,
}

#[derive(Debug, Default)]
struct SignalState {
    error: Option<Error>,
    wakers: Vec<Waker>,
}

impl AbortSignal {
    /// A signal that has not aborted.
    pub fn new() -> Self {
        Self::default()
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
    /// Acquisition errors are converted with `E: From<Error>`, so a routine can
    /// use [`Error`] itself, `anyhow::Error`, or its own error type.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redlock_core::{Error, MemoryBackend, Redlock};
    /// use std::time::Duration;
    ///
    /// let redlock = Redlock::new([MemoryBackend::new()])?;
    /// let total = redlock
    ///     .using(&["report"], Duration::from_secs(5), |signal| async move {
    ///         if signal.is_aborted() {
    ///             return Err(signal.error().expect("an aborted signal has its error"));
    ///         }
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
        validate::ttl(ttl, &settings).map_err(Error::from)?;
        validate::extension_threshold(ttl, &settings).map_err(Error::from)?;
        let threshold = settings.automatic_extension_threshold;
        let mut lock = self.acquire_settings(resources, ttl, settings).await?;
        let signal = AbortSignal::new();
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
                Step::Extended(extended) => lock = extended,
                Step::Lost(error) => {
                    tracing::debug!(resources = ?lock.resources(), %error, "extension failed; aborting");
                    signal.abort(error);
                }
            }
        };
        if let Err(error) = lock.release().await {
            tracing::warn!(%error, "release after using() failed; the keys expire at their TTL");
        }
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
