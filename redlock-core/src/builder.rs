//! [`RedlockBuilder`]: the nodes, settings, scripts, clock and error hook of a
//! [`Redlock`], checked once at [`build`](RedlockBuilder::build).

use std::sync::Arc;
use std::time::Duration;

use crate::backend::LockBackend;
use crate::error::{ConfigError, Error};
use crate::redlock::Redlock;
use crate::round::{Engine, ErrorHook, NodeEvent};
use crate::runtime::Runtime;
use crate::scripts::Scripts;
use crate::settings::{RetryCount, Settings};

/// Builds a [`Redlock`]; see [`Redlock::builder`].
#[must_use]
pub struct RedlockBuilder {
    backends: Vec<Box<dyn LockBackend>>,
    settings: Settings,
    scripts: Scripts,
    runtime: Option<Arc<dyn Runtime>>,
    on_error: Option<ErrorHook>,
}

impl RedlockBuilder {
    /// A builder over `backends` with default settings and scripts.
    pub(crate) fn new(backends: Vec<Box<dyn LockBackend>>) -> Self {
        RedlockBuilder {
            backends,
            settings: Settings::default(),
            scripts: Scripts::default(),
            runtime: None,
            on_error: None,
        }
    }

    /// Replaces all settings at once.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
    /// Retries after the first attempt: a number, or [`RetryCount::Unlimited`].
    pub fn retry_count(mut self, count: impl Into<RetryCount>) -> Self {
        self.settings.retry_count = count.into();
        self
    }
    /// Base delay between attempts.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.settings.retry_delay = delay;
        self
    }
    /// Uniform jitter added to or taken from the delay.
    pub fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.settings.retry_jitter = jitter;
        self
    }
    /// Expected relative clock drift, in `[0, 1)`.
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.settings.drift_factor = factor;
        self
    }
    /// Remaining validity below which `using` extends the lock.
    pub fn automatic_extension_threshold(mut self, threshold: Duration) -> Self {
        self.settings.automatic_extension_threshold = threshold;
        self
    }
    /// How long one round waits for the nodes.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.settings.node_timeout = timeout;
        self
    }
    /// Acquire every lock with a fencing token (see [`Settings::fencing`]).
    pub fn fencing(mut self, enabled: bool) -> Self {
        self.settings.fencing = enabled;
        self
    }
    /// Publish releases and wake waiters on them (see [`Settings::wake_on_release`]).
    pub fn wake_on_release(mut self, enabled: bool) -> Self {
        self.settings.wake_on_release = enabled;
        self
    }
    /// Restart quarantine: a node that came up less than `max_ttl` ago does
    /// not vote for an acquire, and every TTL above `max_ttl` is refused
    /// (see [`Settings::restart_quarantine`]). Off by default.
    pub fn restart_quarantine(mut self, max_ttl: Duration) -> Self {
        self.settings.restart_quarantine = Some(max_ttl);
        self
    }
    /// Custom Lua scripts for acquire, extend and release.
    pub fn scripts(mut self, scripts: Scripts) -> Self {
        self.scripts = scripts;
        self
    }
    /// The clock and timer. The default is the runtime of the enabled feature
    /// (tokio, then smol, then async-std), else [`NeutralRuntime`](crate::NeutralRuntime).
    pub fn runtime(mut self, runtime: impl Runtime) -> Self {
        self.runtime = Some(Arc::new(runtime));
        self
    }
    /// A callback that sees every node's vote against (ordinary contention
    /// included) and every node failure, as node-redlock's `on("error")`.
    /// It runs inline on the lock's task: keep it short.
    pub fn on_error(mut self, hook: impl Fn(&NodeEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration and builds the manager: at least one backend
    /// ([`ConfigError::NoBackends`]) and valid settings
    /// ([`Settings::validate`]).
    pub fn build(self) -> Result<Redlock, Error> {
        if self.backends.is_empty() {
            return Err(ConfigError::NoBackends.into());
        }
        self.settings.validate()?;
        let runtime = self.runtime.unwrap_or_else(default_runtime);
        let engine = Engine::new(self.backends, self.scripts, runtime, self.on_error);
        Ok(Redlock::from_parts(
            Arc::new(engine),
            Arc::new(self.settings),
        ))
    }
}

fn default_runtime() -> Arc<dyn Runtime> {
    #[cfg(feature = "tokio")]
    return Arc::new(crate::runtime::TokioRuntime);
    #[cfg(all(not(feature = "tokio"), feature = "smol"))]
    return Arc::new(crate::runtime::SmolRuntime);
    #[cfg(all(not(feature = "tokio"), not(feature = "smol"), feature = "async-std"))]
    return Arc::new(crate::runtime::AsyncStdRuntime);
    #[cfg(not(any(feature = "tokio", feature = "smol", feature = "async-std")))]
    return Arc::new(crate::runtime::NeutralRuntime);
}
