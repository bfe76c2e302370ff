//! From a [`RedisError`] to the core's [`BackendError`].
//!
//! The core only needs to know *what kind* of failure a node had, because the
//! kind decides whether retrying can help (see [`ErrorKind::is_permanent`]).
//! redis-rs tells us through [`RedisError::kind`] for the errors it knows and
//! through the raw error code ([`RedisError::code`], the first word of the
//! server's reply) for the rest, so the mapping looks at both:
//!
//! | redis-rs error | core kind |
//! |---|---|
//! | I/O timeout (`is_timeout`) | [`ErrorKind::Timeout`] |
//! | other I/O: refused, reset, broken pipe, EOF; no cluster connection | [`ErrorKind::Connection`] |
//! | `CROSSSLOT` | [`ErrorKind::CrossSlot`] (the message explains hash tags) |
//! | `NOAUTH`, `WRONGPASS`, `NOPERM`, failed `AUTH` | [`ErrorKind::Auth`] |
//! | `WRONGTYPE`, `ERR ...script...` (a Lua error, a script that does not compile) | [`ErrorKind::Script`] |
//! | `ERR unknown command` (no `EVALSHA` on this server) | [`ErrorKind::Unsupported`] |
//! | `BUSY`, `LOADING`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY` | [`ErrorKind::Busy`] |
//! | a reply redis-rs could not parse, a reply of the wrong type | [`ErrorKind::Protocol`] |
//! | anything else (a `MOVED`/`ASK` redirect the client did not follow, `OOM`, ...) | [`ErrorKind::Other`] |
//!
//! The redis-rs error is always kept as the [source](std::error::Error::source).

use std::borrow::Cow;

use redis::{RedisError, ServerErrorKind};
use redlock_core::{BackendError, ErrorKind};

/// Converts a redis-rs error into a [`BackendError`] of the closest
/// [`ErrorKind`], keeping `err` as its source.
///
/// The adapter uses this for every failure; it is public for anyone wrapping a
/// redis-rs connection in a [`LockBackend`](redlock_core::LockBackend) of their own.
pub fn backend_error(err: RedisError) -> BackendError {
    mapped(err, None)
}

/// [`backend_error`], with a hint for a `MOVED`/`ASK` redirect that depends on
/// the connection: `cluster` is whether it was a cluster connection.
pub(crate) fn mapped(err: RedisError, cluster: Option<bool>) -> BackendError {
    let kind = error_kind(&err);
    let hint = match cluster {
        _ if !is_redirect(&err) => "",
        Some(false) => {
            " (the node belongs to a Redis Cluster, and a standalone connection cannot follow \
             its redirects: connect with RedisBackend::connect_cluster)"
        }
        Some(true) => {
            " (the cluster client stopped following redirects for this slot: its master may \
             be down, or the cluster is resharding)"
        }
        None => " (a Redis Cluster redirect)",
    };
    let message: Cow<'static, str> = match kind {
        ErrorKind::CrossSlot => Cow::Borrowed(
            "the lock's keys hash to different Redis Cluster slots: give the resources a \
             common hash tag, e.g. `{order42}:invoice` and `{order42}:ledger`, so they land \
             in the same slot",
        ),
        _ => Cow::Owned(format!("{err}{hint}")),
    };
    BackendError::with_source(kind, message, err)
}

/// The core [`ErrorKind`] a redis-rs error maps to (the table in the module docs).
pub fn error_kind(err: &RedisError) -> ErrorKind {
    use redis::ErrorKind as R;

    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    match err.kind() {
        R::Io | R::ClusterConnectionNotFound => return ErrorKind::Connection,
        R::AuthenticationFailed => return ErrorKind::Auth,
        R::Parse | R::UnexpectedReturnType => return ErrorKind::Protocol,
        R::Server(ServerErrorKind::CrossSlot) => return ErrorKind::CrossSlot,
        R::Server(ServerErrorKind::NoPerm) => return ErrorKind::Auth,
        R::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => return ErrorKind::Busy,
        _ => {}
    }
    // Codes redis-rs has no kind for arrive as `Extension` errors; `ERR` is a
    // catch-all whose detail tells a script failure from the rest.
    match err.code().unwrap_or_default() {
        "CROSSSLOT" => ErrorKind::CrossSlot,
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorKind::Auth,
        "BUSY" | "LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY" => {
            ErrorKind::Busy
        }
        "WRONGTYPE" => ErrorKind::Script,
        "ERR" => {
            let detail = err.detail().unwrap_or_default().to_ascii_lowercase();
            if detail.starts_with("unknown command") {
                ErrorKind::Unsupported
            } else if detail.contains("script") {
                ErrorKind::Script
            } else {
                ErrorKind::Other
            }
        }
        _ => ErrorKind::Other,
    }
}

/// Whether the server refused a script by SHA because it does not have it.
pub(crate) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
        || err.code() == Some("NOSCRIPT")
}

fn is_redirect(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io;

    /// A server error exactly as redis-rs builds it from the wire.
    fn server(line: &str) -> RedisError {
        let wire = format!("-{line}\r\n");
        match redis::parse_redis_value(wire.as_bytes()) {
            Ok(value) => match value.extract_error() {
                Err(err) => err,
                Ok(other) => panic!("{line:?} parsed to a non-error {other:?}"),
            },
            Err(err) => err,
        }
    }

    fn io(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::from(kind))
    }

    #[test]
    fn connection_failures() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::NotConnected,
        ] {
            assert_eq!(error_kind(&io(kind)), ErrorKind::Connection, "{kind:?}");
        }
        let not_found =
            RedisError::from((redis::ErrorKind::ClusterConnectionNotFound, "no connection"));
        assert_eq!(error_kind(&not_found), ErrorKind::Connection);
    }

    #[test]
    fn timeouts() {
        assert_eq!(error_kind(&io(io::ErrorKind::TimedOut)), ErrorKind::Timeout);
    }

    #[test]
    fn cross_slot_explains_hash_tags() {
        let err = backend_error(server(
            "CROSSSLOT Keys in request don't hash to the same slot",
        ));
        assert_eq!(err.kind(), ErrorKind::CrossSlot);
        assert!(err.message().contains("hash tag"), "{err}");
        assert!(err.source().is_some());
        // Also when it only arrives as a code.
        let ext = redis::make_extension_error("CROSSSLOT".into(), None);
        assert_eq!(error_kind(&ext), ErrorKind::CrossSlot);
    }

    #[test]
    fn auth_failures() {
        for line in [
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair or user is disabled.",
            "NOPERM this user has no permissions to run the 'evalsha' command",
        ] {
            assert_eq!(error_kind(&server(line)), ErrorKind::Auth, "{line}");
        }
        let failed = RedisError::from((redis::ErrorKind::AuthenticationFailed, "bad password"));
        assert_eq!(error_kind(&failed), ErrorKind::Auth);
    }

    #[test]
    fn script_failures() {
        for line in [
            "ERR Error running script (call to f_1234): @user_script:1: oops",
            "ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 1234, on @user_script:1.",
            "ERR Error compiling script (new function): user_script:1: unexpected symbol",
            "WRONGTYPE Operation against a key holding the wrong kind of value script: 1234, on @user_script:2.",
        ] {
            assert_eq!(error_kind(&server(line)), ErrorKind::Script, "{line}");
        }
    }

    #[test]
    fn busy_nodes() {
        for line in [
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
            "LOADING Redis is loading the dataset in memory",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "CLUSTERDOWN The cluster is down",
            "READONLY You can't write against a read only replica.",
        ] {
            assert_eq!(error_kind(&server(line)), ErrorKind::Busy, "{line}");
        }
    }

    #[test]
    fn noscript_is_recognised() {
        let err = server("NOSCRIPT No matching script. Please use EVAL.");
        assert!(is_noscript(&err));
        assert!(!is_noscript(&server("ERR something else")));
    }

    #[test]
    fn protocol_and_other() {
        let parse = RedisError::from((redis::ErrorKind::Parse, "bad reply"));
        assert_eq!(error_kind(&parse), ErrorKind::Protocol);
        let typ = RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not an int"));
        assert_eq!(error_kind(&typ), ErrorKind::Protocol);
        assert_eq!(
            error_kind(&server(
                "OOM command not allowed when used memory > 'maxmemory'."
            )),
            ErrorKind::Other
        );
        assert_eq!(
            error_kind(&server(
                "ERR unknown command 'EVALSHA', with args beginning with: "
            )),
            ErrorKind::Unsupported
        );
        let moved = mapped(server("MOVED 3999 127.0.0.1:6381"), Some(false));
        assert_eq!(moved.kind(), ErrorKind::Other);
        assert!(moved.message().contains("connect_cluster"), "{moved}");
        let moved = mapped(server("MOVED 3999 127.0.0.1:6381"), Some(true));
        assert!(moved.message().contains("master may be down"), "{moved}");
        let ask = backend_error(server("ASK 3999 127.0.0.1:6381"));
        assert!(ask.message().contains("redirect"), "{ask}");
    }
}
