//! How a fred error becomes a [`BackendError`].
//!
//! fred reports most server replies as [`FredErrorKind::Unknown`] (or a few
//! other kinds) with the server's text in [`FredError::details`], which starts
//! with the Redis error code (`NOSCRIPT ...`, `CROSSSLOT ...`). So the code is
//! looked at first, by the core's table
//! ([`server_error_kind`](redlock_core::protocol::server_error_kind)), and
//! fred's own kind decides for client-side errors (I/O, timeouts, routing) and
//! for codes the table has nothing more specific than `Other` for.

use fred::error::{Error as FredError, ErrorKind as FredErrorKind};
use redlock_core::protocol;
use redlock_core::{BackendError, ErrorKind};

/// The Redis error code a server reply starts with (`NOSCRIPT`, `CROSSSLOT`,
/// ...), if the details look like one.
pub(crate) fn server_code(error: &FredError) -> Option<&str> {
    protocol::split_error_line(error.details()).map(|(code, _)| code)
}

/// The core kind for a fred error. See the crate docs for the table.
pub fn classify(error: &FredError) -> ErrorKind {
    if let Some((code, detail)) = protocol::split_error_line(error.details()) {
        match protocol::server_error_kind(code, detail) {
            ErrorKind::Other => {}
            kind => return kind,
        }
    }
    match error.kind() {
        FredErrorKind::IO | FredErrorKind::Canceled | FredErrorKind::Routing => {
            ErrorKind::Connection
        }
        FredErrorKind::Timeout => ErrorKind::Timeout,
        FredErrorKind::Auth => ErrorKind::Auth,
        FredErrorKind::Cluster => classify_cluster(error.details()),
        FredErrorKind::Backpressure => ErrorKind::Busy,
        // fred's words for "the connection this command was for is gone".
        FredErrorKind::Unknown
            if [
                "Failed to route",
                "failed write attempts",
                "not initialized",
            ]
            .iter()
            .any(|s| error.details().contains(s)) =>
        {
            ErrorKind::Connection
        }
        FredErrorKind::Protocol | FredErrorKind::Parse | FredErrorKind::NotFound => {
            ErrorKind::Protocol
        }
        _ => ErrorKind::Other,
    }
}

/// fred's client-side `Cluster` errors.
fn classify_cluster(details: &str) -> ErrorKind {
    if details.contains("same cluster node") {
        // fred refuses an EVAL whose keys live on different nodes before
        // sending it: the client-side twin of CROSSSLOT.
        ErrorKind::CrossSlot
    } else if details.contains("Missing server") {
        // No routing table yet (the cluster is unreachable): retryable.
        ErrorKind::Connection
    } else {
        ErrorKind::Other
    }
}

/// Maps a fred error to a [`BackendError`] of the closest kind, keeping the
/// fred error as the [source](std::error::Error::source).
///
/// ```
/// use fred::error::{Error, ErrorKind as FredKind};
/// use redlock_core::ErrorKind;
///
/// let noscript = Error::new(FredKind::Unknown, "CROSSSLOT Keys in request don't hash to the same slot");
/// assert_eq!(redlock_fred::map_error(noscript).kind(), ErrorKind::CrossSlot);
/// ```
pub fn map_error(error: FredError) -> BackendError {
    let kind = classify(&error);
    let message = protocol::error_message(kind, &error);
    BackendError::with_source(kind, message, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(kind: FredErrorKind, details: &'static str) -> ErrorKind {
        map_error(FredError::new(kind, details)).kind()
    }

    #[test]
    fn client_side_kinds() {
        use FredErrorKind as F;
        assert_eq!(
            kind_of(F::IO, "Os { code: 111, kind: ConnectionRefused }"),
            ErrorKind::Connection
        );
        assert_eq!(
            kind_of(F::Canceled, "Connection closed unexpectedly."),
            ErrorKind::Connection
        );
        assert_eq!(
            kind_of(F::Routing, "Failed to route command."),
            ErrorKind::Connection
        );
        assert_eq!(
            kind_of(F::Timeout, "Request timed out."),
            ErrorKind::Timeout
        );
        assert_eq!(kind_of(F::Auth, "Authentication failed."), ErrorKind::Auth);
        assert_eq!(kind_of(F::Protocol, "Invalid frame."), ErrorKind::Protocol);
        assert_eq!(kind_of(F::Parse, "Invalid integer."), ErrorKind::Protocol);
        assert_eq!(
            kind_of(F::Backpressure, "Max in-flight commands reached."),
            ErrorKind::Busy
        );
        assert_eq!(kind_of(F::Config, "Missing feature."), ErrorKind::Other);
        assert_eq!(kind_of(F::Url, "Invalid URL."), ErrorKind::Other);
        assert_eq!(kind_of(F::Unknown, "Something odd."), ErrorKind::Other);
    }

    #[test]
    fn cross_slot_mentions_hash_tags_and_keeps_the_source() {
        use std::error::Error as _;
        for error in [
            FredError::new(
                FredErrorKind::Unknown,
                "CROSSSLOT Keys in request don't hash to the same slot",
            ),
            FredError::new(
                FredErrorKind::Cluster,
                "All keys must belong to the same cluster node.",
            ),
        ] {
            let mapped = map_error(error.clone());
            assert_eq!(mapped.kind(), ErrorKind::CrossSlot);
            // The core's hint, once: `Error::Rejected` then shows it once too.
            let hints = mapped.message().matches(protocol::CROSS_SLOT_HINT).count();
            assert_eq!(hints, 1, "{mapped}");
            let source = mapped.source().and_then(|s| s.downcast_ref::<FredError>());
            assert_eq!(source, Some(&error));
        }
        assert_eq!(
            kind_of(FredErrorKind::Cluster, "Missing server for hash slot 1234"),
            ErrorKind::Connection
        );
    }

    #[test]
    fn server_codes() {
        use FredErrorKind as F;
        assert_eq!(
            kind_of(F::Auth, "NOAUTH Authentication required."),
            ErrorKind::Auth
        );
        assert_eq!(
            kind_of(
                F::Auth,
                "WRONGPASS invalid username-password pair or user is disabled."
            ),
            ErrorKind::Auth
        );
        assert_eq!(
            kind_of(
                F::Unknown,
                "NOPERM this user has no permissions to run the 'evalsha' command"
            ),
            ErrorKind::Auth
        );
        assert_eq!(
            kind_of(
                F::InvalidArgument,
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            ),
            ErrorKind::Script
        );
        assert_eq!(
            kind_of(F::Unknown, "ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 1f0e, on @user_script:1."),
            ErrorKind::Script
        );
        assert_eq!(
            kind_of(
                F::Unknown,
                "ERR Error compiling script (new function): user_script:1: unexpected symbol"
            ),
            ErrorKind::Script
        );
        assert_eq!(
            kind_of(F::Unknown, "ERR unknown command 'FOO'"),
            ErrorKind::Unsupported
        );
        for busy in [
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "LOADING Redis is loading the dataset in memory",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "READONLY You can't write against a read only replica.",
            "OOM command not allowed when used memory > 'maxmemory'.",
        ] {
            assert_eq!(kind_of(F::Unknown, busy), ErrorKind::Busy, "{busy}");
        }
        assert_eq!(
            kind_of(F::Cluster, "CLUSTERDOWN The cluster is down"),
            ErrorKind::Busy
        );
    }

    #[test]
    fn server_codes_are_read_from_the_details() {
        let code = |details: &'static str| {
            server_code(&FredError::new(FredErrorKind::Unknown, details)).map(str::to_owned)
        };
        assert_eq!(
            code("NOSCRIPT No matching script. Please use EVAL.").as_deref(),
            Some("NOSCRIPT")
        );
        assert_eq!(code("ERR NOSCRIPT").as_deref(), Some("ERR"));
        assert_eq!(code("Failed to route command."), None);
        assert_eq!(code(""), None);
    }
}
