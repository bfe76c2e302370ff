//! The conformance suite's view of this adapter, shared by
//! tests/conformance.rs (tokio) and tests/conformance_smol.rs (smol).
//!
//! `redlock-testkit` runs every backend through the same behaviours against
//! real `redis-server` processes and reaches a backend through its
//! [`Connector`] trait: standalone nodes through [`RedisBackend::connect`],
//! and, with the `cluster` feature, a Redis Cluster through
//! `RedisBackend::connect_cluster`. It declares every capability this
//! adapter has, so none of their cases is skipped.

use redlock_core::{async_trait, BackendError, LockBackend};
use redlock_redis_rs::RedisBackend;
use redlock_testkit::{Capabilities, Connector};

/// Builds this crate's backends for `redlock-testkit`'s conformance suite.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisRsConnector;

/// The backend type both topologies share: a trait object, because a
/// standalone node and a cluster use different redis-rs connection types.
pub type DynBackend = Box<dyn LockBackend>;

#[async_trait]
impl Connector for RedisRsConnector {
    type Backend = DynBackend;

    async fn standalone(&self, url: &str) -> Result<DynBackend, BackendError> {
        Ok(Box::new(RedisBackend::connect(url).await?))
    }

    #[cfg(feature = "cluster")]
    async fn cluster(&self, urls: &[String]) -> Result<DynBackend, BackendError> {
        RedisBackend::connect_cluster(urls)
            .await
            .map(|backend| Box::new(backend) as DynBackend)
    }

    fn capabilities(&self) -> Capabilities {
        // A backend from `RedisBackend::connect` watches releases; only a
        // cluster backend does not, and no cluster case watches.
        let capabilities = Capabilities::FENCING
            | Capabilities::WAKE_ON_RELEASE
            | Capabilities::CUSTOM_SCRIPTS
            | Capabilities::RESTART_QUARANTINE
            | Capabilities::INSPECT;
        if cfg!(feature = "cluster") {
            capabilities | Capabilities::CLUSTER
        } else {
            capabilities
        }
    }
}
