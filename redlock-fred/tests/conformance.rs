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

/// A fred [`Client`](redlock_fred::fred::clients::Client) built by the
/// caller and passed to [`FredBackend::new`]: restart quarantine follows its
/// connection events too (subscribed on first use), standalone and cluster.
mod client_passed_to_new {
    use std::time::Duration;

    use redlock_core::{async_trait, BackendError};
    use redlock_fred::fred::interfaces::ClientLike;
    use redlock_fred::fred::types::config::{Config, ReconnectPolicy};
    use redlock_fred::fred::types::Builder;
    use redlock_fred::{map_error, FredBackend};
    use redlock_testkit::fixture::RedisFixture;
    use redlock_testkit::{Capabilities, Connector};

    /// Builds a client the way an application would, connects it, and
    /// hands it to `FredBackend::new`.
    struct NewClientConnector;

    async fn backend(config: Config, name: &str) -> Result<FredBackend, BackendError> {
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_constant(0, 20))
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(1);
                c.internal_command_timeout = Duration::from_secs(1);
            });
        let client = builder.build().map_err(map_error)?;
        // The connection task runs until the client quits.
        let _task = client.connect();
        client.wait_for_connect().await.map_err(map_error)?;
        Ok(FredBackend::new(client, name))
    }

    #[async_trait]
    impl Connector for NewClientConnector {
        type Backend = FredBackend;

        async fn standalone(&self, url: &str) -> Result<FredBackend, BackendError> {
            backend(Config::from_url(url).map_err(map_error)?, url).await
        }

        async fn cluster(&self, urls: &[String]) -> Result<FredBackend, BackendError> {
            let seed = urls.first().map(String::as_str).unwrap_or_default();
            backend(
                Config::from_url_clustered(seed).map_err(map_error)?,
                "cluster",
            )
            .await
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::CLUSTER | Capabilities::RESTART_QUARANTINE
        }
    }

    #[test]
    fn restart_quarantine() {
        let fixture = RedisFixture::new(NewClientConnector);
        redlock_testkit::block_on_tokio_multi_thread(redlock_testkit::conformance::with_deadline(
            "restart_quarantine",
            redlock_testkit::conformance::restart_quarantine(&fixture),
        ));
    }

    #[test]
    fn cluster_restart_quarantine() {
        let fixture = RedisFixture::new(NewClientConnector);
        redlock_testkit::block_on_tokio_multi_thread(redlock_testkit::conformance::with_deadline(
            "cluster_restart_quarantine",
            redlock_testkit::conformance::cluster_restart_quarantine(&fixture),
        ));
    }
}
