//! The shared conformance suite (redlock-testkit) against real redis-server
//! processes: single nodes, 3 and 5 independent nodes, and a Redis Cluster.

use redlock_core::{async_trait, BackendError};
use redlock_fred::FredBackend;
use redlock_testkit::{Capabilities, Connector};

/// How the suite gets a [`FredBackend`].
struct FredConnector;

#[async_trait]
impl Connector for FredConnector {
    type Backend = FredBackend;

    async fn standalone(&self, url: &str) -> Result<FredBackend, BackendError> {
        FredBackend::connect(url).await
    }

    async fn cluster(&self, urls: &[String]) -> Result<FredBackend, BackendError> {
        FredBackend::connect_cluster(urls).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }
}

/// On a current-thread tokio runtime: fred's router and this crate's event
/// listener share the test's thread.
mod current_thread {
    redlock_testkit::conformance_tests!(
        connector = super::FredConnector,
        block_on = redlock_testkit::block_on_tokio,
    );
}

/// On a two-worker tokio runtime: fred's tasks run beside the test.
mod multi_thread {
    redlock_testkit::conformance_tests!(
        connector = super::FredConnector,
        block_on = redlock_testkit::block_on_tokio_multi_thread,
    );
}
