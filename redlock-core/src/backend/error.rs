//! The error a backend reports, and its kind, which decides how the
//! algorithm treats it.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The kind of a [`BackendError`], which decides how the algorithm treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The node could not be reached or the connection broke. Retryable.
    Connection,
    /// The node did not answer within the per-node timeout. Retryable.
    Timeout,
    /// The keys hash to different Redis Cluster slots (`CROSSSLOT`). Put the
    /// common part of the resource names in a hash tag, e.g. `{order42}:a` and
    /// `{order42}:b`. Not retryable.
    CrossSlot,
    /// Authentication or authorisation failed (`NOAUTH`, `WRONGPASS`, `NOPERM`).
    /// Not retryable.
    Auth,
    /// The script failed on the server (a Lua error, `WRONGTYPE`, ...). Not retryable.
    Script,
    /// The node answered something the protocol does not allow here. Retryable.
    Protocol,
    /// The backend cannot do what was asked (a custom script on a backend that
    /// does not run Lua, an optional capability). Not retryable.
    Unsupported,
    /// The node is busy (`BUSY`, `LOADING`, `TRYAGAIN`, `MASTERDOWN`, ...). Retryable.
    Busy,
    /// Restart quarantine: the node came up (or was reconnected to) less
    /// than [`Settings::restart_quarantine`](crate::Settings::restart_quarantine)
    /// ago, or its age is not known yet, so it may have lost keys and its
    /// vote for an acquire is not asked. Retryable: it votes again once old
    /// enough.
    Quarantined,
    /// Anything else. Retryable.
    Other,
}

impl ErrorKind {
    /// Whether retrying the same request can succeed. The algorithm stops
    /// retrying at once when an attempt failed because of a permanent error.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorKind::CrossSlot | ErrorKind::Auth | ErrorKind::Script | ErrorKind::Unsupported
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::CrossSlot => "keys in different cluster slots",
            ErrorKind::Auth => "authentication failed",
            ErrorKind::Script => "script error",
            ErrorKind::Protocol => "unexpected reply",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Busy => "node busy",
            ErrorKind::Quarantined => "node in restart quarantine",
            ErrorKind::Other => "backend error",
        })
    }
}

/// Why one node could not run an operation. Cheap to clone; the client's own
/// error is kept as the [source](std::error::Error::source).
#[derive(Clone)]
pub struct BackendError {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl BackendError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        BackendError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` that keeps the client's error as its source.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        BackendError {
            kind,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The per-node timeout expired before the node answered.
    pub fn timeout(after: Duration) -> Self {
        BackendError::new(
            ErrorKind::Timeout,
            format!("no answer within the per-node timeout of {after:?}"),
        )
    }

    /// The kind, which tells the algorithm whether to retry.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BackendError");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
