//! Real Redis for tests: launchers, fault injection and the conformance suite.
//! (Being built; the `Connector` trait below is the contract adapters use.)
#![deny(missing_docs)]

use redlock_core::{async_trait, BackendError, LockBackend};

/// How the conformance suite reaches the backend under test. An adapter's
/// author implements this once and calls the suite's macro.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The backend type under test.
    type Backend: LockBackend + 'static;

    /// A backend for the standalone node at `url`
    /// (`redis://[:password@]127.0.0.1:PORT`). Must succeed even when the node
    /// is down (connect lazily): a node that is down fails its calls, not the
    /// construction of the lock manager.
    async fn standalone(&self, url: &str) -> Result<Self::Backend, BackendError>;

    /// A backend for the Redis Cluster whose seed nodes are `urls`, or `None`
    /// if this backend has no cluster mode.
    async fn cluster(&self, urls: &[String]) -> Option<Result<Self::Backend, BackendError>>;
}
