//! From a [`RedisError`] to the core's [`BackendError`].
//!
//! The core only needs to know *what kind* of failure a node had, because the
//! kind decides whether retrying can help (see [`ErrorKind::is_permanent`]).
//! An error the server sent carries its code ([`RedisError::code`], the first
//! word of the server's reply) and the rest of the line
//! ([`RedisError::detail`]); those go to the core's table,
//! [`redlock_core::protocol::server_error_kind`], which every Redis adapter
//! shares. This crate maps only what redis-rs itself reports:
//!
//! | redis-rs error | core kind |
//! |---|---|
//! | I/O timeout (`is_timeout`) | [`ErrorKind::Timeout`] |
//! | other I/O: refused, reset, broken pipe, EOF; no cluster connection | [`ErrorKind::Connection`] |
//! | failed `AUTH` (`AuthenticationFailed`) | [`ErrorKind::Auth`] |
//! | a reply redis-rs could not parse, a reply of the wrong type | [`ErrorKind::Protocol`] |
//! | a server error code (`CROSSSLOT`, `NOAUTH`, `BUSY`, `ERR ...`, ...) | the [core's table](redlock_core::protocol#server-error-codes) |
//! | anything else | [`ErrorKind::Other`] |
//!
//! A `CROSSSLOT` message carries the core's hash-tag hint; a `MOVED`/`ASK`
//! redirect the client did not follow says what to change. The redis-rs error
//! is always kept as the [source](std::error::Error::source).

use redis::RedisError;
use redlock_core::protocol;
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
    let mut message = protocol::error_message(kind, &err);
    if err.code().is_some_and(protocol::is_redirect) {
        message.push_str(match cluster {
            Some(false) => {
                " (the node belongs to a Redis Cluster, and a standalone connection cannot \
                 follow its redirects: connect with RedisBackend::connect_cluster)"
            }
            Some(true) => {
                " (the cluster client stopped following redirects for this slot: its master \
                 may be down, or the cluster is resharding)"
            }
            None => " (a Redis Cluster redirect)",
        });
    }
    BackendError::with_source(kind, message, err)
}

/// The core [`ErrorKind`] a redis-rs error maps to: a timeout, an I/O error
/// or a missing cluster connection, a failed `AUTH`, a reply redis-rs could not
/// read, and otherwise the server's error code, by the core's
/// [table](redlock_core::protocol#server-error-codes).
pub fn error_kind(err: &RedisError) -> ErrorKind {
    use redis::ErrorKind as R;

    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    match err.kind() {
        R::Io | R::ClusterConnectionNotFound => ErrorKind::Connection,
        R::AuthenticationFailed => ErrorKind::Auth,
        R::Parse | R::UnexpectedReturnType => ErrorKind::Protocol,
        // Known codes arrive as `Server` kinds, the rest as `Extension`
        // errors; both carry the code.
        _ => match err.code() {
            Some(code) => protocol::server_error_kind(code, err.detail().unwrap_or_default()),
            None => ErrorKind::Other,
        },
    }
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
        // The core's hint, once: `Error::Rejected` then shows it once too.
        let hints = err.message().matches(protocol::CROSS_SLOT_HINT).count();
        assert_eq!(hints, 1, "{err}");
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
    fn server_codes_reach_the_core() {
        // redis-rs's known kinds and its extension errors alike.
        let err = server("NOSCRIPT No matching script. Please use EVAL.");
        assert_eq!(err.code(), Some("NOSCRIPT"));
        assert_eq!(server("ERR something else").code(), Some("ERR"));
        assert_eq!(server("BUSY running a script").code(), Some("BUSY"));
        assert_eq!(
            server("ERR unknown command 'EVALSHA'").detail(),
            Some("unknown command 'EVALSHA'")
        );
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
            ErrorKind::Busy
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
