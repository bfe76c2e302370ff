//! When to try again: the retry policy the acquire and extend loops share.
//!
//! After a failed attempt the loop asks [`Retry::after`] for the pause before
//! the next one. The answer is `None` when the failure is not worth retrying
//! (a rejection, or for an extension a lock that is no longer ours) or when
//! `retry_count` attempts have been made; otherwise it is
//! `retry_delay ± uniform(retry_jitter)`, never below zero.

use std::time::Duration;

use rand::RngExt;

use crate::settings::Settings;
use crate::stats::{AttemptOutcome, Operation};

/// Counts the attempts of one acquisition or extension against the settings.
#[derive(Debug)]
pub(crate) struct Retry<'a> {
    settings: &'a Settings,
    /// Attempts made so far.
    made: u64,
}

impl<'a> Retry<'a> {
    pub(crate) fn new(settings: &'a Settings) -> Self {
        Retry { settings, made: 0 }
    }

    /// Whether no attempt has been made yet.
    pub(crate) fn is_first(&self) -> bool {
        self.made == 0
    }

    /// Attempts made so far.
    pub(crate) fn made(&self) -> u64 {
        self.made
    }

    /// Records a failed attempt of `operation` that ended `outcome`, and
    /// returns the pause before the next attempt, or `None` to give up.
    pub(crate) fn after(
        &mut self,
        operation: Operation,
        outcome: AttemptOutcome,
    ) -> Option<Duration> {
        self.made += 1;
        let worth_it = match outcome {
            AttemptOutcome::Succeeded | AttemptOutcome::Rejected => false,
            AttemptOutcome::Unavailable | AttemptOutcome::TooSlow => true,
            // Held by someone else: they may release. For an extension it
            // means the lock is no longer ours, which waiting cannot change.
            AttemptOutcome::Contended => operation == Operation::Acquire,
        };
        (worth_it && self.settings.retry_count.allows(self.made))
            .then(|| jittered(self.settings.retry_delay, self.settings.retry_jitter))
    }
}

/// `base` ± uniform(`jitter`), never below zero. Drawn at once, before any
/// await: the thread RNG is not `Send`.
pub(crate) fn jittered(base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let offset: f64 = rand::rng().random_range(-1.0..=1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RetryCount;

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let base = Duration::from_millis(200);
        let jitter = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..10_000).map(|_| jittered(base, jitter)).collect();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        assert!(
            min >= Duration::from_millis(100) && max <= Duration::from_millis(300),
            "{min:?}..{max:?}"
        );
        assert!(
            min < Duration::from_millis(110) && max > Duration::from_millis(290),
            "{min:?}..{max:?}"
        );
        // Never negative when the jitter exceeds the base.
        assert!((0..1000).all(
            |_| jittered(Duration::from_millis(10), Duration::from_millis(50))
                <= Duration::from_millis(60)
        ));
        assert_eq!(jittered(base, Duration::ZERO), base);
    }

    #[test]
    fn retry_count_is_retries_after_the_first_attempt() {
        let settings = Settings {
            retry_count: RetryCount::Limited(2),
            retry_jitter: Duration::ZERO,
            ..Settings::default()
        };
        let mut retry = Retry::new(&settings);
        assert!(retry.is_first());
        let pauses: Vec<Option<Duration>> = (0..3)
            .map(|_| retry.after(Operation::Acquire, AttemptOutcome::Contended))
            .collect();
        let delay = Some(settings.retry_delay);
        assert_eq!(pauses, [delay, delay, None]);
        assert_eq!(retry.made(), 3);
        assert!(!retry.is_first());
    }

    #[test]
    fn what_is_worth_retrying() {
        let settings = Settings::default();
        let worth = |operation, outcome| Retry::new(&settings).after(operation, outcome).is_some();
        for op in [Operation::Acquire, Operation::Extend] {
            assert!(worth(op, AttemptOutcome::Unavailable));
            assert!(worth(op, AttemptOutcome::TooSlow));
            assert!(!worth(op, AttemptOutcome::Rejected));
        }
        assert!(worth(Operation::Acquire, AttemptOutcome::Contended));
        assert!(!worth(Operation::Extend, AttemptOutcome::Contended));
    }

    #[test]
    fn unlimited_never_gives_up_on_a_retryable_failure() {
        let settings = Settings {
            retry_count: RetryCount::Unlimited,
            ..Settings::default()
        };
        let mut retry = Retry::new(&settings);
        assert!((0..10_000).all(|_| retry
            .after(Operation::Acquire, AttemptOutcome::Unavailable)
            .is_some()));
    }
}
