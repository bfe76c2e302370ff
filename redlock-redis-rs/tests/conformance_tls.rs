//! The conformance suite over TLS with an ACL user: every standalone case
//! (1, 3 and 5 nodes) on `redlock-testkit`'s `TlsFixture`, whose nodes serve
//! clients on `rediss://` ports with certificates from the testkit's CA and
//! let them in only as the ACL user. The connector trusts that CA, and
//! nothing else, through `RedisBackend::connect_with_tls`. The cluster cases
//! are skipped (the testkit's clusters speak plain TCP).
#![cfg(feature = "tls-rustls")]

use redlock_core::{async_trait, BackendError, ErrorKind};
use redlock_redis_rs::redis::TlsCertificates;
use redlock_redis_rs::RedisBackend;
use redlock_testkit::server::TestCa;
use redlock_testkit::{Capabilities, Connector};

/// Backends that trust the testkit's CA.
struct TlsConnector;

#[async_trait]
impl Connector for TlsConnector {
    type Backend = RedisBackend;

    async fn standalone(&self, url: &str) -> Result<RedisBackend, BackendError> {
        let ca =
            TestCa::shared().map_err(|e| BackendError::new(ErrorKind::Other, e.to_string()))?;
        let certificates = TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.cert_pem().as_bytes().to_vec()),
        };
        RedisBackend::connect_with_tls(url, certificates).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::FENCING
            | Capabilities::WAKE_ON_RELEASE
            | Capabilities::CUSTOM_SCRIPTS
            | Capabilities::RESTART_QUARANTINE
    }
}

redlock_testkit::conformance_tests!(
    fixture = redlock_testkit::fixture::TlsFixture::new(TlsConnector),
    block_on = redlock_testkit::block_on_tokio,
);
