//! Errors. Match on [`Error`]'s variant to tell "someone else holds it" from
//! "Redis is down" from "the lock expired" from "you passed bad input".

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{BackendError, ErrorKind};
use crate::protocol::CROSS_SLOT_HINT;
use crate::stats::{AttemptOutcome, Attempts, Operation};

/// Everything an operation on a lock can fail with.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The votes against made a quorum impossible: in the last attempt no
    /// quorum voted for the lock, and the nodes that voted against (the
    /// resource is held there under another lock value) were at least as
    /// many as the nodes that failed.
    ///
    /// Usually someone else holds the resource. It also covers a split vote:
    /// several clients raced for a free resource, each took some nodes and
    /// none a quorum (each undoes its partial take), so no one holds it for
    /// long. It does not say that one other owner holds a majority.
    /// [`QuorumFailure::attempts`] shows every node's vote. The acquisition
    /// already retried per the retry settings: retry later, raise
    /// `retry_count`, or turn on wake-on-release so a waiter retries the
    /// moment the holder releases.
    #[error("{0}: held by another owner; retry later or raise retry_count")]
    Held(Box<QuorumFailure>),
    /// Not enough nodes answered to form a quorum (refused connections,
    /// timeouts, busy nodes), or they answered too slowly to leave any
    /// validity. Check that a majority of the nodes are reachable; raise
    /// `node_timeout` or the TTL if they are slow.
    #[error(
        "{0}: no quorum of nodes answered in time; check that a majority of nodes is reachable"
    )]
    NoQuorum(Box<QuorumFailure>),
    /// A node rejected the request in a way no retry can fix: keys in
    /// different cluster slots, failed authentication, a broken script, or a
    /// backend that does not support the request. See
    /// [`QuorumFailure::rejection`].
    #[error("{0}: rejected by a node{detail}", detail = rejection_detail(.0))]
    Rejected(Box<QuorumFailure>),
    /// The lock is no longer held: its validity ran out before the call, or a
    /// quorum of nodes no longer has it under this lock's value. Acquire it again.
    #[error("the lock on {resources:?} has expired or is no longer held; acquire it again")]
    Expired {
        /// The lock's resources.
        resources: Arc<[String]>,
        /// The rounds that found it gone, if any were run.
        failure: Option<Box<QuorumFailure>>,
    },
    /// An argument was not acceptable. Nothing was sent to any node.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// The configuration was not acceptable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
}

/// What `Rejected` adds to its [`QuorumFailure`]: the rejection, unless the
/// failure already shows it as the first node error, and what to check, unless
/// the rejection's message already says it. Every part appears once.
fn rejection_detail(failure: &QuorumFailure) -> String {
    let Some(rejection) = failure.rejection() else {
        return String::new();
    };
    let shown = failure
        .attempts
        .last()
        .and_then(|last| last.errors().next())
        .is_some_and(|(_, first)| std::ptr::eq(first, rejection));
    let hint = match rejection.kind() {
        ErrorKind::CrossSlot => CROSS_SLOT_HINT,
        ErrorKind::Auth => "check the node's username and password",
        ErrorKind::Script => "check custom scripts and that the keys hold strings",
        _ => "",
    };
    let mut detail = String::new();
    if !shown {
        let _ = write!(detail, ": {rejection}");
    }
    if !hint.is_empty() && !rejection.message().contains(hint) {
        let _ = write!(detail, "; {hint}");
    }
    detail
}

impl Error {
    /// The statistics of the rounds that failed, for the quorum variants.
    pub fn failure(&self) -> Option<&QuorumFailure> {
        match self {
            Error::Held(f) | Error::NoQuorum(f) | Error::Rejected(f) => Some(f),
            Error::Expired { failure, .. } => failure.as_deref(),
            _ => None,
        }
    }

    /// Whether another owner holds the resource.
    pub fn is_held(&self) -> bool {
        matches!(self, Error::Held(_))
    }

    pub(crate) fn from_failure(failure: QuorumFailure) -> Error {
        let outcome = failure.attempts.last().map(|a| a.outcome);
        let failure = Box::new(failure);
        match outcome {
            Some(AttemptOutcome::Contended) if failure.operation != Operation::Acquire => {
                Error::Expired {
                    resources: failure.resources.clone(),
                    failure: Some(failure),
                }
            }
            Some(AttemptOutcome::Contended) => Error::Held(failure),
            Some(AttemptOutcome::Rejected) => Error::Rejected(failure),
            _ => Error::NoQuorum(failure),
        }
    }
}

/// The statistics behind a failed quorum operation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuorumFailure {
    /// The operation that failed.
    pub operation: Operation,
    /// The resources it was for.
    pub resources: Arc<[String]>,
    /// Its rounds, most recent last.
    pub attempts: Attempts,
}

impl QuorumFailure {
    /// The first permanent node error of the last attempt, if one ended it.
    pub fn rejection(&self) -> Option<&BackendError> {
        self.attempts
            .last()?
            .errors()
            .map(|(_, e)| e)
            .find(|e| e.kind().is_permanent())
    }
}

impl fmt::Display for QuorumFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not {} {:?} after {} attempt(s)",
            self.operation,
            self.resources,
            self.attempts.total()
        )?;
        if let Some(last) = self.attempts.last() {
            write!(
                f,
                " (last: {} for, {} against, {} failed of {} nodes, quorum {}",
                last.votes_for(),
                last.votes_against(),
                last.failures(),
                last.membership_size,
                last.quorum_size
            )?;
            if let Some((node, e)) = last.errors().next() {
                write!(f, "; node {node}: {e}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A bad argument to an operation. Nothing was sent to any node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The resource list is empty.
    #[error("no resources given; pass at least one resource name")]
    NoResources,
    /// A resource name is empty.
    #[error("resource {index} is an empty string")]
    EmptyResource {
        /// Its position.
        index: usize,
    },
    /// A resource name is longer than [`MAX_RESOURCE_LEN`](crate::MAX_RESOURCE_LEN).
    #[error("resource {index} is {len} bytes long, more than the {max} allowed")]
    ResourceTooLong {
        /// Its position.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A resource appears twice.
    #[error("resource {0:?} appears more than once")]
    DuplicateResource(String),
    /// The TTL is zero or under one millisecond.
    #[error("the TTL is zero (or under 1 ms); locks are kept in whole milliseconds")]
    ZeroTtl,
    /// The TTL does not exceed the drift, so no lock could ever be valid.
    #[error(
        "the TTL {ttl:?} does not exceed the clock drift allowance {drift:?}; use a longer TTL"
    )]
    TtlTooShort {
        /// The TTL asked for.
        ttl: Duration,
        /// round(drift_factor × TTL) + 2 ms.
        drift: Duration,
    },
    /// The TTL is longer than [`MAX_TTL`](crate::MAX_TTL).
    #[error("the TTL {ttl:?} is longer than the {max:?} allowed")]
    TtlTooLong {
        /// The TTL asked for.
        ttl: Duration,
        /// The limit.
        max: Duration,
    },
    /// The TTL is longer than
    /// [`Settings::restart_quarantine`](crate::Settings::restart_quarantine):
    /// a node that restarted and lost this lock could vote for another
    /// owner before it expired.
    #[error("the TTL {ttl:?} is longer than the restart quarantine {max_ttl:?}, which would not cover it; use a TTL of at most {max_ttl:?} or raise restart_quarantine")]
    TtlAboveQuarantine {
        /// The TTL asked for.
        ttl: Duration,
        /// The quarantine (the longest TTL allowed).
        max_ttl: Duration,
    },
    /// In `using`, the extension threshold leaves no time before the lock expires.
    #[error("automatic_extension_threshold {threshold:?} must be below the TTL {ttl:?} less the drift {drift:?}")]
    ThresholdNotBelowTtl {
        /// The threshold.
        threshold: Duration,
        /// The TTL.
        ttl: Duration,
        /// The drift for that TTL.
        drift: Duration,
    },
}

/// A bad configuration, found when the [`Redlock`](crate::Redlock) or a per-call
/// [`Settings`](crate::Settings) is checked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No backends were given.
    #[error("no backends given; pass one backend per independent Redis node")]
    NoBackends,
    /// The drift factor is not in `[0, 1)`.
    #[error("drift_factor {0} is not a number in [0, 1)")]
    DriftFactor(f64),
    /// A duration setting is longer than [`MAX_DELAY`](crate::MAX_DELAY).
    #[error("{name} of {value:?} is longer than the one hour allowed")]
    DurationTooLong {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: Duration,
    },
    /// `node_timeout` is zero.
    #[error("node_timeout is zero; every node call needs a timeout")]
    ZeroNodeTimeout,
    /// `attempt_history` is zero.
    #[error("attempt_history is zero; at least the last attempt must be kept")]
    ZeroAttemptHistory,
    /// `restart_quarantine` is zero (or under 1 ms): it would cover no TTL.
    #[error(
        "restart_quarantine is zero; give the longest TTL your locks use, or None to turn it off"
    )]
    ZeroRestartQuarantine,
    /// `restart_quarantine` is longer than [`MAX_TTL`](crate::MAX_TTL), the
    /// longest TTL any lock can have.
    #[error("restart_quarantine of {0:?} is longer than the longest TTL allowed (MAX_TTL)")]
    RestartQuarantineTooLong(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LockBackend, Reply, Request};
    use crate::Redlock;

    /// A node that rejects every call with one error.
    struct Rejecting(BackendError);

    #[async_trait::async_trait]
    impl LockBackend for Rejecting {
        async fn acquire(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
            Err(self.0.clone())
        }
        async fn extend(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
            Err(self.0.clone())
        }
        async fn release(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
            Err(self.0.clone())
        }
    }

    fn rejected(nodes: Vec<BackendError>) -> String {
        let nodes: Vec<Rejecting> = nodes.into_iter().map(Rejecting).collect();
        let redlock = Redlock::builder(nodes).build().expect("valid");
        let result = futures::executor::block_on(
            redlock.acquire(&["a", "b"], std::time::Duration::from_secs(1)),
        );
        match result {
            Err(e @ Error::Rejected(_)) => e.to_string(),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn rejections_show_their_hint_once() {
        let bare = BackendError::new(ErrorKind::CrossSlot, "CROSSSLOT Keys in request");
        let hinted = BackendError::new(
            ErrorKind::CrossSlot,
            crate::protocol::error_message(ErrorKind::CrossSlot, &"CROSSSLOT Keys in request"),
        );
        let other = BackendError::new(ErrorKind::Connection, "refused");
        for nodes in [
            vec![bare.clone()],
            vec![hinted.clone()],
            // The rejection is not the error the failure shows first.
            vec![other.clone(), hinted],
            vec![other, bare],
        ] {
            let text = rejected(nodes);
            assert_eq!(text.matches(CROSS_SLOT_HINT).count(), 1, "{text}");
            assert_eq!(text.matches("CROSSSLOT Keys").count(), 1, "{text}");
        }
        let auth = rejected(vec![BackendError::new(ErrorKind::Auth, "WRONGPASS")]);
        assert_eq!(auth.matches("username and password").count(), 1, "{auth}");
    }
}
