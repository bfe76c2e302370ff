//! The conformance suite's view of this adapter (feature `testkit`).
//!
//! `redlock-testkit` runs every backend through the same behaviours against
//! real `redis-server` processes. It reaches a backend through its
//! [`Connector`] trait, and [`RedisRsConnector`] is this adapter's
//! implementation: standalone nodes through [`RedisBackend::connect`], and,
//! with the `cluster` feature, a Redis Cluster through
//! [`RedisBackend::connect_cluster`].

use redlock_core::{async_trait, BackendError};
use redlock_testkit::Connector;

use crate::RedisBackend;

/// Builds this crate's backends for `redlock-testkit`'s conformance suite.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedisRsConnector;

/// The backend type both topologies share: a trait object, because a
/// standalone node and a cluster use different redis-rs connection types.
pub type DynBackend = Box<dyn redlock_core::LockBackend>;

#[async_trait]
impl Connector for RedisRsConnector {
    type Backend = DynBackend;

    async fn standalone(&self, url: &str) -> Result<Self::Backend, BackendError> {
        Ok(Box::new(RedisBackend::connect(url).await?))
    }

    async fn cluster(&self, urls: &[String]) -> Option<Result<Self::Backend, BackendError>> {
        #[cfg(feature = "cluster")]
        {
            Some(
                RedisBackend::connect_cluster(urls)
                    .await
                    .map(|backend| Box::new(backend) as DynBackend),
            )
        }
        #[cfg(not(feature = "cluster"))]
        {
            let _ = urls;
            None
        }
    }
}
