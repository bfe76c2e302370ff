//! [`Settings`]: retries, drift, timeouts, with node-redlock's defaults.

use std::time::Duration;

use crate::error::ConfigError;

/// How many times an acquisition is retried after its first attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCount {
    /// At most this many retries (so `n + 1` attempts). `Limited(0)` tries once.
    Limited(u32),
    /// Retry until the lock is acquired or the future is dropped (node-redlock's
    /// `retryCount: -1`). Only the most recent attempts are kept in statistics.
    Unlimited,
}

impl RetryCount {
    /// Whether attempt number `attempt` (0-based) may run.
    pub(crate) fn allows(self, attempt: u64) -> bool {
        match self {
            RetryCount::Limited(n) => attempt <= u64::from(n),
            RetryCount::Unlimited => true,
        }
    }
}

/// The longest TTL accepted (about 24.8 days, 2^31-1 ms).
pub const MAX_TTL: Duration = Duration::from_millis(i32::MAX as u64);

/// The longest retry delay, jitter or per-node timeout accepted (one hour).
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Tuning for acquisition, extension and release.
///
/// Fields are public so a per-call copy can be adjusted:
///
/// ```
/// use redlock_core::{RetryCount, Settings};
/// let mut once = Settings::default();
/// once.retry_count = RetryCount::Limited(0); // try-lock
/// assert!(once.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// Expected relative clock drift between this process and the nodes.
    /// drift = round(drift_factor × TTL) + 2 ms is taken off every lock's
    /// validity. In `[0, 1)`. Default 0.01.
    pub drift_factor: f64,
    /// Retries after the first attempt: how many pauses of `retry_delay ±
    /// retry_jitter` an acquisition waits before it gives up. With
    /// [`wake_on_release`](Self::wake_on_release), an attempt made because a
    /// release woke the acquisition before its pause ran out is extra: it
    /// uses no retry, and if it fails the rest of the same pause follows. So
    /// waiting lasts as long with wake-on-release as without it. Default
    /// `Limited(10)`.
    pub retry_count: RetryCount,
    /// Base delay between attempts. Default 200 ms.
    pub retry_delay: Duration,
    /// The delay varies uniformly by up to this much either way (never below
    /// zero), so contenders do not retry in lockstep. Default 100 ms.
    pub retry_jitter: Duration,
    /// In [`Redlock::using`](crate::Redlock::using), the lock is extended when
    /// its remaining validity drops below this. Must be below the TTL less
    /// the drift. Default 500 ms.
    pub automatic_extension_threshold: Duration,
    /// How long one round waits for the nodes. A node that has not answered by
    /// then counts as failed for that attempt (its error is
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)). The effective wait
    /// is also capped by the lock's TTL less drift, as a later answer could not
    /// yield a valid lock. Default 100 ms.
    pub node_timeout: Duration,
    /// How many more times a release is re-sent to nodes that failed to answer
    /// it. Release never retries nodes that answered. Default 2.
    pub release_retry_count: u32,
    /// The pause before re-sending a release. Default 20 ms.
    pub release_retry_delay: Duration,
    /// Acquire with a fencing token ([`Lock::fencing_token`](crate::Lock::fencing_token)):
    /// a number that strictly increases with every acquisition of the same
    /// resource, across all clients, provided the nodes persist their fence
    /// counters (AOF, `appendfsync always`). Costs one more round trip per
    /// acquisition. Default false.
    pub fencing: bool,
    /// Releases publish a message per resource where some process waits for
    /// it, and an acquisition that finds a resource held retries as soon as
    /// it is released instead of sleeping out the whole retry delay (which
    /// stays as the fallback). A process subscribes only to the resources it
    /// waits on, and only while it waits. Backends that cannot watch, and
    /// releases by other clients (node-redlock never publishes), leave
    /// waiters on the retry delay; a replaced release script
    /// ([`Scripts::with_release`](crate::Scripts::with_release)) runs as
    /// given, without publishing. See [`wake`](crate::wake). Default true.
    pub wake_on_release: bool,
    /// How many attempts' statistics a [`Lock`](crate::Lock) or an error keeps
    /// (the most recent ones; the total is always counted). Default 32.
    pub attempt_history: usize,
    /// Restart quarantine (antirez's delayed-restart rule, enforced by the
    /// client): `Some(max_ttl)` keeps a node that may have lost its keys
    /// from voting for an acquire until `max_ttl` has passed since it came
    /// back. A node that restarts without persistence forgets the locks it
    /// held, and another client could then win a majority that includes it
    /// while the first holder's lock is still valid; waiting out the
    /// longest TTL any lock may have closes that window. Every TTL (acquire,
    /// extend, `using`) above `max_ttl` is then an
    /// [`InvalidInput::TtlAboveQuarantine`](crate::InvalidInput::TtlAboveQuarantine),
    /// since the quarantine would not cover it.
    ///
    /// Backends report their node's age through
    /// [`LockBackend::node_age`](crate::LockBackend::node_age) (the Redis
    /// adapters read `INFO server` on every (re)connection, never on the hot
    /// path); a node whose age is not known yet counts as quarantined until
    /// it is read. A quarantined node counts as failed, and the attempt
    /// statistics say so with the time left
    /// ([`NodeResult::quarantine`](crate::NodeResult::quarantine)). Extend,
    /// fence and release are not gated: they only act where this lock's own
    /// value still holds, which a node that lost its keys does not have.
    /// On a backend for a whole Redis Cluster, each master is a node: a
    /// lock's vote depends on the age of the master serving its slot (see
    /// [`cluster_age`](crate::cluster_age)).
    ///
    /// The cost: after a restart of a majority of the nodes, no lock can be
    /// acquired for `max_ttl`. Backends that do not track ages
    /// ([`MemoryBackend`](crate::MemoryBackend), your own) are never
    /// quarantined. Default `None` (off).
    pub restart_quarantine: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            drift_factor: 0.01,
            retry_count: RetryCount::Limited(10),
            retry_delay: Duration::from_millis(200),
            retry_jitter: Duration::from_millis(100),
            automatic_extension_threshold: Duration::from_millis(500),
            node_timeout: Duration::from_millis(100),
            release_retry_count: 2,
            release_retry_delay: Duration::from_millis(20),
            fencing: false,
            wake_on_release: true,
            attempt_history: 32,
            restart_quarantine: None,
        }
    }
}

impl Settings {
    /// Checks every field, returning the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.drift_factor.is_finite() || !(0.0..1.0).contains(&self.drift_factor) {
            return Err(ConfigError::DriftFactor(self.drift_factor));
        }
        for (name, value) in [
            ("retry_delay", self.retry_delay),
            ("retry_jitter", self.retry_jitter),
            ("node_timeout", self.node_timeout),
            ("release_retry_delay", self.release_retry_delay),
        ] {
            if value > MAX_DELAY {
                return Err(ConfigError::DurationTooLong { name, value });
            }
        }
        if self.node_timeout.is_zero() {
            return Err(ConfigError::ZeroNodeTimeout);
        }
        if self.attempt_history == 0 {
            return Err(ConfigError::ZeroAttemptHistory);
        }
        match self.restart_quarantine {
            Some(max) if max.as_millis() == 0 => return Err(ConfigError::ZeroRestartQuarantine),
            Some(max) if max > MAX_TTL => return Err(ConfigError::RestartQuarantineTooLong(max)),
            _ => {}
        }
        Ok(())
    }

    /// The drift for a TTL: round(drift_factor × TTL) + 2 ms. Saturates at
    /// `u64::MAX` ms for a TTL too large to compute it (which no lock accepts:
    /// see [`MAX_TTL`]).
    pub fn drift(&self, ttl: Duration) -> Duration {
        // A float-to-integer `as` saturates (and maps NaN to 0).
        let ms = (self.drift_factor * ttl.as_millis() as f64).round() as u64;
        Duration::from_millis(ms.saturating_add(2))
    }
}

impl From<u32> for RetryCount {
    fn from(n: u32) -> Self {
        RetryCount::Limited(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_rounded_factor_times_ttl_plus_two_ms() {
        let s = Settings::default();
        assert_eq!(
            s.drift(Duration::from_millis(1000)),
            Duration::from_millis(12)
        );
        // 1.5 rounds to 2.
        assert_eq!(
            s.drift(Duration::from_millis(150)),
            Duration::from_millis(4)
        );
        assert_eq!(
            s.drift(Duration::from_millis(149)),
            Duration::from_millis(3)
        );
    }

    #[test]
    fn drift_of_a_huge_ttl_saturates_instead_of_overflowing() {
        let mut s = Settings::default();
        assert_eq!(s.drift(Duration::MAX), Duration::from_millis(u64::MAX));
        s.drift_factor = 0.99;
        assert_eq!(s.drift(Duration::MAX), Duration::from_millis(u64::MAX));
        s.drift_factor = 0.0;
        assert_eq!(s.drift(Duration::MAX), Duration::from_millis(2));
        s.drift_factor = 0.5;
        assert_eq!(
            s.drift(Duration::from_millis(u64::MAX)),
            Duration::from_millis(u64::MAX / 2 + 3)
        );
    }

    #[test]
    fn retry_counts_from_numbers() {
        assert_eq!(RetryCount::from(3), RetryCount::Limited(3));
        assert!(RetryCount::Limited(0).allows(0));
        assert!(!RetryCount::Limited(0).allows(1));
        assert!(RetryCount::Unlimited.allows(u64::MAX));
    }
}
