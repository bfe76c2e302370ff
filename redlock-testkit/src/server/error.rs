//! Why a node or a cluster could not be started or controlled.

use std::io;
use std::time::Duration;

use super::binary::INSTALL_HINT;
use super::clock::{FAKETIME_INSTALL_HINT, LIBFAKETIME_ENV};

/// Why a node or a cluster could not be started or controlled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A binary (`redis-server` or `redis-cli`) was not found.
    #[error(
        "`{binary}` was not found ({searched}); install it with `{INSTALL_HINT}` \
         (Debian/Ubuntu) or set {env} to its path"
    )]
    MissingBinary {
        /// The binary's name.
        binary: String,
        /// Where it was looked for.
        searched: String,
        /// The environment variable that can name it.
        env: &'static str,
    },
    /// A node with a fake clock was asked for, and libfaketime was not found.
    #[error(
        "libfaketime was not found ({searched}); install the Debian package faketime \
         (`{FAKETIME_INSTALL_HINT}`) or set {LIBFAKETIME_ENV} to the path of libfaketime.so.1"
    )]
    MissingLibfaketime {
        /// Where it was looked for.
        searched: String,
    },
    /// The node runs without libfaketime although a fake clock was asked for
    /// (the dynamic loader could not preload it).
    #[error(
        "redis-server on port {port} did not load libfaketime; its output ends with:\n{log_tail}"
    )]
    FakeClockNotLoaded {
        /// The node's port.
        port: u16,
        /// The last lines of its log and output.
        log_tail: String,
    },
    /// The clock of a node started without
    /// [`NodeOptions::fake_clock`](super::NodeOptions::fake_clock) cannot be moved.
    #[error("the redis-server on port {port} was not started with a fake clock (NodeOptions::fake_clock)")]
    NoFakeClock {
        /// The node's port.
        port: u16,
    },
    /// An operating-system call failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The server process exited before it answered `PING`.
    #[error("redis-server on port {port} exited before it answered PING ({status}); its log ends with:\n{log_tail}")]
    Exited {
        /// The node's port.
        port: u16,
        /// The exit status.
        status: String,
        /// The last lines of its log and output.
        log_tail: String,
    },
    /// The server did not answer `PING` before the deadline.
    #[error(
        "redis-server on port {port} did not answer PING within {waited:?} (last error: {last_error}); \
         its log ends with:\n{log_tail}"
    )]
    NotReady {
        /// The node's port.
        port: u16,
        /// How long it was waited for.
        waited: Duration,
        /// The last error of the readiness check.
        last_error: String,
        /// The last lines of its log and output.
        log_tail: String,
    },
    /// No free loopback port could be found (or kept) for a node.
    #[error("no free loopback port found for redis-server after {attempts} tries{detail}")]
    NoFreePort {
        /// How many ports were tried.
        attempts: u32,
        /// The last failure, if any.
        detail: String,
    },
    /// `redis-cli --cluster create` failed.
    #[error("`redis-cli --cluster create` failed ({status}); its output:\n{output}")]
    ClusterCreate {
        /// Its exit status.
        status: String,
        /// Its output.
        output: String,
    },
    /// The cluster did not become healthy before the deadline.
    #[error("the cluster did not reach cluster_state:ok with all 16384 slots covered within {waited:?}: {detail}")]
    ClusterNotReady {
        /// How long it was waited for.
        waited: Duration,
        /// What the nodes last reported.
        detail: String,
    },
    /// Sending a signal to a node failed.
    #[error("`kill -{signal} {pid}` failed: {detail}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process.
        pid: u32,
        /// Why.
        detail: String,
    },
    /// The operation needs a running node.
    #[error("the redis-server on port {port} is not running")]
    NotRunning {
        /// The node's port.
        port: u16,
    },
    /// An argument was not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The test certificates of a TLS node could not be made
    /// ([`NodeOptions::tls`](super::NodeOptions::tls)).
    #[error("test TLS certificates: {0}")]
    Tls(String),
}

impl LaunchError {
    pub(super) fn io(action: impl Into<String>, source: io::Error) -> Self {
        LaunchError::Io {
            action: action.into(),
            source,
        }
    }
}
