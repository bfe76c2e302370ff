//! [`Lock`]: a held lock, its validity, extension and release.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::field::Empty;

use crate::backend::Request;
use crate::error::{Error, QuorumFailure};
use crate::metrics;
use crate::retry::Retry;
use crate::round::{Engine, Targets};
use crate::settings::Settings;
use crate::stats::{AttemptOutcome, Attempts, NodeOutcome, Operation};
use crate::validate;

/// A lock held on a quorum of nodes until [`expiration`](Lock::expiration).
///
/// Dropping a `Lock` does not release it (a drop cannot wait for the network);
/// the keys expire at their TTL. Call [`release`](Lock::release), or use
/// [`Redlock::using`](crate::Redlock::using), which always releases.
pub struct Lock {
    held: Held,
    ttl: Duration,
    expiration: Instant,
    attempts: Attempts,
}

/// What stays the same across a lock's extensions: the nodes, the keys and
/// the value under them, the settings, the fencing token. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Held {
    pub(crate) engine: Arc<Engine>,
    pub(crate) resources: Arc<[String]>,
    pub(crate) value: Arc<str>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) fencing_token: Option<u64>,
    /// When the lock was granted, for the time-held histogram.
    #[cfg(feature = "metrics")]
    pub(crate) granted: Instant,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("resources", &self.held.resources)
            .field("ttl", &self.ttl)
            .field("remaining_validity", &self.remaining_validity())
            .field("attempts", &self.attempts.total())
            .finish_non_exhaustive()
    }
}

/// What a release found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Release {
    /// Nodes that deleted every key.
    pub released: usize,
    /// Nodes where the keys were already gone (expired, released before) or
    /// held by another value. Those keys were left alone.
    pub not_held: usize,
    /// Nodes that could not be reached, even after the release retries. Their
    /// keys expire at the TTL.
    pub failed: usize,
    /// The release rounds.
    pub attempts: Attempts,
}

impl Release {
    /// Whether a quorum of nodes still held the lock when it was released. When
    /// false, the lock had expired (or was released before): nothing was lost,
    /// but the work done under it may have overlapped another owner's.
    ///
    /// It errs towards `false`: a node whose first reply timed out after it
    /// had deleted the key answers "not held" to the retry, and counts as
    /// not held ([`not_held`](Self::not_held)), since the two cannot be told
    /// apart from here.
    pub fn was_held(&self) -> bool {
        self.attempts
            .last()
            .is_some_and(|a| self.released >= a.quorum_size)
    }
}

impl Lock {
    /// The one place a `Lock` is made: by an acquisition, and by each extension.
    pub(crate) fn new(held: Held, ttl: Duration, expiration: Instant, attempts: Attempts) -> Lock {
        Lock {
            held,
            ttl,
            expiration,
            attempts,
        }
    }

    /// What stays the same across extensions (`using`'s signal follows it).
    pub(crate) fn held(&self) -> &Held {
        &self.held
    }

    /// The fencing token, when acquired with [`Settings::fencing`]: it strictly
    /// increases with every acquisition of the same resource, across all
    /// clients, so the protected storage can refuse a write carrying a token
    /// lower than the highest it has seen (a stale holder, paused past its
    /// validity). Extensions keep the token.
    ///
    /// Tokens come from one counter per Redis Cluster hash slot
    /// ([`keys::fence_key`](crate::keys::fence_key)), so they also rise
    /// across the resources of one slot, and a node holds at most 16,384
    /// counters however many resources are fenced. The per-resource counters
    /// of earlier releases are read too, and folded into the slot counters.
    ///
    /// Monotonicity needs the fence counters to survive node restarts: run
    /// the nodes with AOF and `appendfsync always`. The delayed-restart rule,
    /// which is enough for the lock keys (they expire anyway), is NOT enough
    /// for the counters: a node that restarts empty has forgotten them, and
    /// after crashes of different minorities a quorum can hold only counters
    /// older than the last token, so a token repeats. Counters must also never
    /// be evicted (`maxmemory-policy noeviction`).
    pub fn fencing_token(&self) -> Option<u64> {
        self.held.fencing_token
    }

    /// The locked resources (the Redis keys).
    pub fn resources(&self) -> &[String] {
        &self.held.resources
    }

    /// The random value stored under every key.
    pub fn value(&self) -> &str {
        &self.held.value
    }

    /// The TTL it was acquired (or last extended) with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The monotonic instant after which the lock may be held by someone else:
    /// start of the winning attempt + TTL − drift.
    pub fn expiration(&self) -> Instant {
        self.expiration
    }

    /// Validity left now; zero once expired.
    pub fn remaining_validity(&self) -> Duration {
        self.expiration
            .saturating_duration_since(self.held.engine.now())
    }

    /// Whether the validity has run out.
    pub fn is_expired(&self) -> bool {
        self.held.engine.now() >= self.expiration
    }

    /// The attempts that produced this lock (acquisition, or the last extension).
    pub fn attempts(&self) -> &Attempts {
        &self.attempts
    }

    /// The settings this lock was acquired with; extension and release use them.
    pub fn settings(&self) -> &Settings {
        &self.held.settings
    }

    /// Resets the TTL on a quorum of nodes and returns the extended lock.
    ///
    /// When it gives which error:
    /// - [`Error::Expired`] (acquire again; the lock is gone):
    ///   - at once, without a network call, if the validity already ran out;
    ///   - if the nodes that no longer hold the keys under this value (they
    ///     expired, or another owner took them) made a quorum impossible;
    ///   - if the validity ran out while node failures were being retried.
    /// - [`Error::NoQuorum`]: node failures (refused connections, timeouts)
    ///   made a quorum impossible in every attempt, and the lock was still
    ///   valid when the retries ran out. It may still be held on some nodes
    ///   until its expiration: do not act as if it were extended.
    /// - [`Error::Rejected`]: a node refused the request in a way no retry
    ///   fixes (a broken custom script, failed authentication).
    /// - [`Error::InvalidInput`]: the TTL is not acceptable; nothing was sent.
    ///
    /// Node failures are retried, per the retry settings, only while the lock
    /// is still valid.
    pub async fn extend(&self, ttl: Duration) -> Result<Lock, Error> {
        let span = tracing::info_span!(
            "redlock.extend",
            resources = ?&*self.held.resources,
            ttl_ms = metrics::millis(ttl),
            outcome = Empty,
            attempts = Empty,
        );
        let result = metrics::in_span(&span, self.extend_inner(ttl)).await;
        let outcome = metrics::extension(&result);
        let attempts = match &result {
            Ok(lock) => Some(lock.attempts.total()),
            Err(error) => error.failure().map(|f| f.attempts.total()),
        };
        span.record("outcome", outcome);
        span.record("attempts", attempts);
        result
    }

    async fn extend_inner(&self, ttl: Duration) -> Result<Lock, Error> {
        let held = &self.held;
        let settings = &*held.settings;
        validate::ttl(ttl, settings)?;
        let mut attempts = Attempts::default();
        let mut retry = Retry::new(settings);
        let request = Request::new(
            &held.resources,
            &held.value,
            ttl,
            held.engine.script(Operation::Extend),
        );
        while !self.is_expired() {
            let (attempt, expiration) = held
                .engine
                .timed_round(Operation::Extend, &request, settings)
                .await;
            let outcome = attempt.outcome;
            attempts.push(attempt, settings.attempt_history);
            if let Some(expiration) = expiration {
                return Ok(Lock::new(held.clone(), ttl, expiration, attempts));
            }
            let Some(delay) = retry.after(Operation::Extend, outcome) else {
                break;
            };
            // Waiting past the expiration cannot help.
            let delay = delay.min(self.remaining_validity());
            held.engine.runtime().sleep(delay).await;
        }
        if attempts.is_empty() {
            return Err(Error::Expired {
                resources: held.resources.clone(),
                failure: None,
            });
        }
        let failure = QuorumFailure {
            operation: Operation::Extend,
            resources: held.resources.clone(),
            attempts,
        };
        let rejected = failure.attempts.last().map(|a| a.outcome) == Some(AttemptOutcome::Rejected);
        if self.is_expired() && !rejected {
            return Err(Error::Expired {
                resources: held.resources.clone(),
                failure: Some(Box::new(failure)),
            });
        }
        Err(Error::from_failure(failure))
    }

    /// Deletes the keys on every node where they still hold this lock's value.
    ///
    /// Idempotent: releasing a lock that expired or was released already
    /// returns `Ok` with [`Release::was_held`] false, at once, with no retry
    /// storm. Nodes that fail are retried `release_retry_count` times, after
    /// `release_retry_delay`. Fails with [`Error::NoQuorum`] only when too many
    /// nodes could not be reached to know; their keys still expire at the TTL.
    pub async fn release(&self) -> Result<Release, Error> {
        let span = tracing::info_span!(
            "redlock.release",
            resources = ?&*self.held.resources,
            outcome = Empty,
        );
        let result = metrics::in_span(&span, self.release_inner()).await;
        span.record("outcome", metrics::release(&result, &self.held));
        result
    }

    async fn release_inner(&self) -> Result<Release, Error> {
        let held = &self.held;
        let settings = &*held.settings;
        let mut attempts = Attempts::default();
        let (mut released, mut not_held) = (0, 0);
        let mut retry: Vec<usize> = Vec::new();
        for round in 0..=settings.release_retry_count {
            if round > 0 {
                if retry.is_empty() {
                    break;
                }
                held.engine
                    .runtime()
                    .sleep(settings.release_retry_delay)
                    .await;
            }
            let targets = if round == 0 {
                Targets::All
            } else {
                Targets::Only(&retry)
            };
            let attempt = held
                .engine
                .release_round(&held.resources, &held.value, settings, targets, true)
                .await;
            retry.clear();
            for node in &attempt.nodes {
                match node.outcome {
                    NodeOutcome::For => released += 1,
                    NodeOutcome::Against(_) => not_held += 1,
                    _ => retry.push(node.node),
                }
            }
            attempts.push(attempt, settings.attempt_history.max(2));
        }
        let n = held.engine.membership_size();
        let failed = retry.len();
        if failed > n - held.engine.quorum_size() {
            return Err(Error::from_failure(QuorumFailure {
                operation: Operation::Release,
                resources: held.resources.clone(),
                attempts,
            }));
        }
        Ok(Release {
            released,
            not_held,
            failed,
            attempts,
        })
    }
}
