//! Time, kept behind one small trait so the core owns no async runtime.
//!
//! The algorithm needs two things from the outside world: the current instant
//! (to measure validity) and a sleep (for the per-round timeout, the retry
//! delay and the extension schedule). [`Runtime`] supplies both. The default,
//! [`NeutralRuntime`], works under any executor; the feature-gated
//! [`TokioRuntime`], [`AsyncStdRuntime`] and [`SmolRuntime`] use their
//! runtime's own timer. Tests can supply a runtime whose clock they drive.
//!
//! # Which clock
//!
//! Validity is measured on a monotonic clock, never on the wall clock. On
//! Linux, [`Instant`] stops while the machine is suspended; a lock acquired
//! before a suspend looks valid after it although its keys expired on the
//! servers. Where that can happen (laptops, VMs that are paused), wrap a runtime
//! whose [`Runtime::now`] adds the time spent suspended (for example from
//! `CLOCK_BOOTTIME`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed sleep future, as [`Runtime::sleep`] returns it.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The clock and timer the algorithm uses.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// The current instant on a monotonic clock.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// Works under every executor: its timers run on one helper thread shared by
/// the process (the `futures-timer` crate). The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NeutralRuntime;

impl Runtime for NeutralRuntime {
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(futures_timer::Delay::new(duration))
    }
}

/// tokio's timer, inside a tokio runtime. Outside one (a smol or async-std
/// executor in the same binary, where feature unification turned the `tokio`
/// feature on) it falls back to [`NeutralRuntime`]'s timer instead of
/// panicking.
#[cfg(feature = "tokio")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

#[cfg(feature = "tokio")]
impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Box::pin(tokio::time::sleep(duration)),
            Err(_) => NeutralRuntime.sleep(duration),
        }
    }
}

/// async-std's timer.
#[cfg(feature = "async-std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdRuntime;

#[cfg(feature = "async-std")]
impl Runtime for AsyncStdRuntime {
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(async_std::task::sleep(duration))
    }
}

/// smol's timer (the `async-io` reactor).
#[cfg(feature = "smol")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

#[cfg(feature = "smol")]
impl Runtime for SmolRuntime {
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}
