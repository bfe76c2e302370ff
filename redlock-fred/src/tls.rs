//! TLS: `rediss://` nodes, and a CA (or client certificate) of your own.

#[cfg(feature = "tls-rustls")]
use {
    crate::connect::{parse, redact},
    crate::FredBackend,
    fred::clients::Client,
    fred::types::config::{Config, TlsConfig},
    redlock_core::{BackendError, ErrorKind},
};

#[cfg(feature = "tls-rustls")]
impl FredBackend<Client> {
    /// A backend for the standalone node at the `rediss://` URL `url`
    /// (`rediss://[[user]:password@]host[:port][/db]`), over TLS with `tls`
    /// instead of the system's trust store: a rustls `ClientConfig` (with
    /// your CA in its roots, and a client certificate for mutual TLS) or a
    /// fred [`TlsConnector`](fred::types::config::TlsConnector) converts into
    /// it. Otherwise like [`connect`](Self::connect): lazy, this crate's
    /// connection settings, and the wake-on-release subscriber uses the same
    /// TLS configuration and credentials. Needs the feature `tls-rustls`.
    ///
    /// Fails at once (with [`ErrorKind::Unsupported`]) on a URL that is not
    /// `rediss://` (or `valkeys://`): a plain URL with a TLS configuration is
    /// a mistake, not a request for plain text. A server whose certificate
    /// `tls` does not vouch for fails each call.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use redlock_fred::fred::rustls::pki_types::{pem::PemObject, CertificateDer};
    /// use redlock_fred::fred::rustls::{ClientConfig, RootCertStore};
    /// use redlock_fred::FredBackend;
    ///
    /// let mut roots = RootCertStore::empty();
    /// roots.add(CertificateDer::from_pem_file("/etc/redis/tls/ca.crt")?)?;
    /// let tls = ClientConfig::builder()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let backend =
    ///     FredBackend::connect_with_tls("rediss://locker:secret@10.0.0.1:6380", tls).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_tls(
        url: &str,
        tls: impl Into<TlsConfig>,
    ) -> Result<Self, BackendError> {
        let mut config = parse(url, Config::from_url)?;
        if !config.uses_tls() {
            return Err(BackendError::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is not a TLS URL: connect_with_tls takes rediss:// (use connect for \
                     plain TCP)",
                    redact(url)
                ),
            ));
        }
        config.tls = Some(tls.into());
        Self::start(config, redact(url)).await
    }
}

/// Before fred parses a `rediss://` URL, which builds a rustls configuration
/// with the process's default crypto provider: rustls panics when there is
/// none and the build enables more than one (say, ring through this crate and
/// aws-lc-rs through another dependency). This installs ring then; a provider
/// the application installed is kept.
pub(crate) fn prepare(url: &str) {
    let wants_tls = ["rediss", "valkeys"].iter().any(|s| url.starts_with(s));
    #[cfg(feature = "tls-rustls")]
    if wants_tls && fred::rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread's install is fine: one is set.
        let _ = fred::rustls::crypto::ring::default_provider().install_default();
    }
    let _ = wants_tls;
}
