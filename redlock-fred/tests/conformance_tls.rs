//! The conformance suite over TLS with an ACL user: every standalone case
//! (1, 3 and 5 nodes) on `redlock-testkit`'s `TlsFixture`, whose nodes serve
//! clients on `rediss://` ports with certificates from the testkit's CA and
//! let them in only as the ACL user. The connector trusts that CA, and
//! nothing else, through `FredBackend::connect_with_tls`. The cluster cases
//! are skipped (the testkit's clusters speak plain TCP).
#![cfg(feature = "tls-rustls")]

use redlock_core::{async_trait, BackendError, ErrorKind};
use redlock_fred::fred::rustls::pki_types::CertificateDer;
use redlock_fred::fred::rustls::{ClientConfig, RootCertStore};
use redlock_fred::FredBackend;
use redlock_testkit::server::TestCa;
use redlock_testkit::{Capabilities, Connector};

/// A rustls configuration that trusts the testkit's CA and nothing else.
fn trusting_the_test_ca() -> Result<ClientConfig, BackendError> {
    let other = |e: String| BackendError::new(ErrorKind::Other, e);
    let ca = TestCa::shared().map_err(|e| other(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der().to_vec()))
        .map_err(|e| other(e.to_string()))?;
    Ok(ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Backends that trust the testkit's CA.
struct FredTlsConnector;

#[async_trait]
impl Connector for FredTlsConnector {
    type Backend = FredBackend;

    async fn standalone(&self, url: &str) -> Result<FredBackend, BackendError> {
        FredBackend::connect_with_tls(url, trusting_the_test_ca()?).await
    }

    fn capabilities(&self) -> Capabilities {
        // Every capability but the cluster mode, which TlsFixture skips.
        Capabilities::FENCING
            | Capabilities::WAKE_ON_RELEASE
            | Capabilities::CUSTOM_SCRIPTS
            | Capabilities::RESTART_QUARANTINE
    }
}

redlock_testkit::conformance_tests!(
    fixture = redlock_testkit::fixture::TlsFixture::new(FredTlsConnector),
    block_on = redlock_testkit::block_on_tokio_multi_thread,
);
