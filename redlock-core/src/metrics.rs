//! Metrics, through the [`metrics`](https://docs.rs/metrics) crate's facade
//! (feature `metrics`; the facade crate `redlock` forwards a feature of the
//! same name).
//!
//! The library records; the application picks the exporter (Prometheus,
//! StatsD, OpenTelemetry, ...) by installing a `metrics` recorder, as with any
//! crate that uses the facade. Without a recorder the calls do nothing; with
//! the feature off they are not compiled at all. [`describe`] registers the
//! units and descriptions below with the installed recorder.
//!
//! | metric | type | labels | what it counts |
//! |---|---|---|---|
//! | `redlock_acquisitions_total` | counter | `outcome` | acquisitions (`acquire`, `try_acquire`, `acquire_with`, and the one `using` makes), by how they ended: `acquired`, `held`, `no_quorum`, `rejected`, `invalid` |
//! | `redlock_acquire_attempts` | histogram | `outcome` | attempts one acquisition made (1 = first try), by the same `outcome` (not recorded for `invalid`: no attempt was made) |
//! | `redlock_node_round_duration_seconds` | histogram | `node`, `operation` | how long a node took to answer in a round, from the round's start, for every answer (vote for, vote against or error); a node that did not answer in time is counted in the failures (`kind="timeout"`) instead |
//! | `redlock_node_failures_total` | counter | `node`, `operation`, `kind` | node calls that failed (votes against, such as contention, are not failures) |
//! | `redlock_quarantined_votes_total` | counter | `node` | acquire votes not asked of a node in restart quarantine (also counted in the failures, with `kind="quarantined"`) |
//! | `redlock_extensions_total` | counter | `outcome` | extensions (`Lock::extend`, and `using`'s automatic ones), by how they ended: `extended`, `expired`, `no_quorum`, `rejected`, `invalid` |
//! | `redlock_releases_total` | counter | `outcome` | releases: `released` (a quorum still held the lock), `not_held` (it had expired or was released before), `no_quorum` (too many nodes could not be reached) |
//! | `redlock_locks_lost_total` | counter | `reason` | `using` routines whose lock was lost because an extension failed (the signal aborted): `expired`, `no_quorum`, `rejected` |
//! | `redlock_lock_held_seconds` | histogram | | time from the grant of a lock to its release (extensions included), recorded at each release that found it held (`redlock_releases_total{outcome="released"}`) |
//!
//! Label values:
//!
//! - `node`: the node's [`describe`](crate::LockBackend::describe) name, as
//!   [`Redlock::node_name`](crate::Redlock::node_name) gives it;
//! - `operation`: `acquire`, `extend`, `release`, `fence` (a fenced
//!   acquire's write-back round);
//! - `kind`: the [`ErrorKind`]: `connection`, `timeout`, `cross_slot`,
//!   `auth`, `script`, `protocol`, `unsupported`, `busy`, `quarantined`,
//!   `other`.
//!
//! Resources and lock values are never labels: their number is unbounded.
//! The `tracing` spans of the operations (`redlock.acquire`,
//! `redlock.extend`, `redlock.release`, `redlock.using`) carry the resources,
//! and an `outcome` field with the same words as the `outcome` labels here
//! (`using` adds `completed`, `failed`, `lost` and `panicked`).

use std::fmt;
use std::time::Duration;

use crate::backend::ErrorKind;
use crate::error::Error;
use crate::lock::{Held, Lock, Release};
use crate::stats::Operation;

/// `redlock_acquisitions_total`: acquisitions by `outcome`.
pub const ACQUISITIONS: &str = "redlock_acquisitions_total";
/// `redlock_acquire_attempts`: attempts per acquisition, by `outcome`.
pub const ACQUIRE_ATTEMPTS: &str = "redlock_acquire_attempts";
/// `redlock_node_round_duration_seconds`: a node's answer time, by `node` and `operation`.
pub const NODE_ROUND_DURATION: &str = "redlock_node_round_duration_seconds";
/// `redlock_node_failures_total`: failed node calls, by `node`, `operation` and `kind`.
pub const NODE_FAILURES: &str = "redlock_node_failures_total";
/// `redlock_quarantined_votes_total`: votes not asked under restart quarantine, by `node`.
pub const QUARANTINED_VOTES: &str = "redlock_quarantined_votes_total";
/// `redlock_extensions_total`: extensions by `outcome`.
pub const EXTENSIONS: &str = "redlock_extensions_total";
/// `redlock_releases_total`: releases by `outcome`.
pub const RELEASES: &str = "redlock_releases_total";
/// `redlock_locks_lost_total`: `using` locks lost to a failed extension, by `reason`.
pub const LOCKS_LOST: &str = "redlock_locks_lost_total";
/// `redlock_lock_held_seconds`: time from grant to a release that found the lock held.
pub const LOCK_HELD: &str = "redlock_lock_held_seconds";

/// Registers the unit and description of every metric in the
/// [table](self) with the installed recorder. Call it once, after
/// installing the recorder; exporters that show help text use it.
#[cfg(feature = "metrics")]
pub fn describe() {
    use ::metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(ACQUISITIONS, Unit::Count, "Lock acquisitions, by outcome.");
    describe_histogram!(
        ACQUIRE_ATTEMPTS,
        Unit::Count,
        "Attempts made by one acquisition, by outcome."
    );
    describe_histogram!(
        NODE_ROUND_DURATION,
        Unit::Seconds,
        "Time a node took to answer in a round, by node and operation."
    );
    describe_counter!(
        NODE_FAILURES,
        Unit::Count,
        "Failed node calls, by node, operation and error kind."
    );
    describe_counter!(
        QUARANTINED_VOTES,
        Unit::Count,
        "Acquire votes not asked of a node in restart quarantine, by node."
    );
    describe_counter!(EXTENSIONS, Unit::Count, "Lock extensions, by outcome.");
    describe_counter!(RELEASES, Unit::Count, "Lock releases, by outcome.");
    describe_counter!(
        LOCKS_LOST,
        Unit::Count,
        "Locks lost by using() when an extension failed, by reason."
    );
    describe_histogram!(
        LOCK_HELD,
        Unit::Seconds,
        "Time from a lock's grant to its release."
    );
}

/// The label (and span outcome) of an error.
pub(crate) fn error_label(error: &Error) -> &'static str {
    match error {
        Error::Held(_) => "held",
        Error::NoQuorum(_) => "no_quorum",
        Error::Rejected(_) => "rejected",
        Error::Expired { .. } => "expired",
        Error::InvalidInput(_) | Error::InvalidConfig(_) => "invalid",
    }
}

/// The `kind` label of a node error.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Connection => "connection",
        ErrorKind::Timeout => "timeout",
        ErrorKind::CrossSlot => "cross_slot",
        ErrorKind::Auth => "auth",
        ErrorKind::Script => "script",
        ErrorKind::Protocol => "protocol",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Busy => "busy",
        ErrorKind::Quarantined => "quarantined",
        ErrorKind::Other => "other",
    }
}

/// The `operation` label.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn operation_label(operation: Operation) -> &'static str {
    match operation {
        Operation::Acquire => "acquire",
        Operation::Extend => "extend",
        Operation::Release => "release",
        Operation::Fence => "fence",
    }
}

/// Runs `future` inside `span`, or, when no subscriber wants the span, as
/// is: without a subscriber an operation pays for no span enter and exit
/// on each poll.
///
/// A plain function returning either future, not an `async fn`: an
/// `async fn` would hold `future` once as its argument and once more in each
/// branch, three times the size of the operation's future, and a future
/// is copied whole where it starts.
pub(crate) fn in_span<F: std::future::Future>(
    span: &tracing::Span,
    future: F,
) -> futures::future::Either<F, tracing::instrument::Instrumented<F>> {
    if span.is_disabled() {
        futures::future::Either::Left(future)
    } else {
        futures::future::Either::Right(tracing::Instrument::instrument(future, span.clone()))
    }
}

/// A duration in whole milliseconds, for span fields.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Resource names as given to a call, shown as a list (only when a span is
/// actually recorded: formatting is lazy).
pub(crate) struct Names<'a, S>(pub(crate) &'a [S]);

impl<S: AsRef<str>> fmt::Debug for Names<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(AsRef::as_ref))
            .finish()
    }
}

/// Records an acquisition's end; returns its outcome label and attempt count.
pub(crate) fn acquisition(result: Result<&Lock, &Error>) -> (&'static str, Option<u64>) {
    let (outcome, attempts) = match result {
        Ok(lock) => ("acquired", Some(lock.attempts().total())),
        Err(error) => (
            error_label(error),
            error.failure().map(|f| f.attempts.total()),
        ),
    };
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(ACQUISITIONS, "outcome" => outcome).increment(1);
        if let Some(attempts) = attempts {
            // Exact in an f64 up to 2^53 attempts.
            #[allow(clippy::cast_precision_loss)]
            ::metrics::histogram!(ACQUIRE_ATTEMPTS, "outcome" => outcome).record(attempts as f64);
        }
    }
    (outcome, attempts)
}

/// Records an extension's end; returns its outcome label.
pub(crate) fn extension(result: &Result<Lock, Error>) -> &'static str {
    let outcome = match result {
        Ok(_) => "extended",
        Err(error) => error_label(error),
    };
    #[cfg(feature = "metrics")]
    ::metrics::counter!(EXTENSIONS, "outcome" => outcome).increment(1);
    outcome
}

/// Records a release's end, and how long the lock was held; returns its
/// outcome label.
pub(crate) fn release(result: &Result<Release, Error>, held: &Held) -> &'static str {
    let outcome = match result {
        Ok(release) if release.was_held() => "released",
        Ok(_) => "not_held",
        Err(error) => error_label(error),
    };
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(RELEASES, "outcome" => outcome).increment(1);
        // Only a release that ended a hold: a lock that had expired was not
        // held until now, and a second release of the same lock ends nothing.
        if outcome == "released" {
            let held_for = held.engine.now().saturating_duration_since(held.granted);
            ::metrics::histogram!(LOCK_HELD).record(held_for.as_secs_f64());
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = held;
    outcome
}

/// Records a `using` lock lost to a failed extension.
pub(crate) fn lock_lost(error: &Error) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(LOCKS_LOST, "reason" => error_label(error)).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = error;
}

/// Records a node's answer time in a round.
#[inline]
pub(crate) fn node_latency(node: &str, operation: Operation, latency: Duration) {
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(
        NODE_ROUND_DURATION,
        "node" => node.to_owned(),
        "operation" => operation_label(operation),
    )
    .record(latency.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (node, operation, latency);
}

/// Records a node's failure (and, under restart quarantine, its vote not asked).
#[inline]
pub(crate) fn node_failure(node: &str, operation: Operation, kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(
            NODE_FAILURES,
            "node" => node.to_owned(),
            "operation" => operation_label(operation),
            "kind" => kind_label(kind),
        )
        .increment(1);
        if kind == ErrorKind::Quarantined {
            ::metrics::counter!(QUARANTINED_VOTES, "node" => node.to_owned()).increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (node, operation, kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_a_snake_case_label() {
        let kinds = [
            ErrorKind::Connection,
            ErrorKind::Timeout,
            ErrorKind::CrossSlot,
            ErrorKind::Auth,
            ErrorKind::Script,
            ErrorKind::Protocol,
            ErrorKind::Unsupported,
            ErrorKind::Busy,
            ErrorKind::Quarantined,
            ErrorKind::Other,
        ];
        let labels: Vec<&str> = kinds.into_iter().map(kind_label).collect();
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "{labels:?}");
        assert!(labels
            .iter()
            .all(|l| l.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')));
    }

    #[test]
    fn names_follow_the_conventions() {
        let names = [
            ACQUISITIONS,
            ACQUIRE_ATTEMPTS,
            NODE_ROUND_DURATION,
            NODE_FAILURES,
            QUARANTINED_VOTES,
            EXTENSIONS,
            RELEASES,
            LOCKS_LOST,
            LOCK_HELD,
        ];
        for name in names {
            assert!(name.starts_with("redlock_"), "{name}");
        }
        // Every metric is in the module's table.
        let table = include_str!("metrics.rs");
        for name in names {
            assert!(table.contains(&format!("//! | `{name}` |")), "{name}");
        }
    }
}
