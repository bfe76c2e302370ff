//! TLS: `rediss://` nodes, and a CA (or client certificate) of your own.

use redis::aio::ConnectionManagerConfig;
use redis::{ConnectionAddr, ConnectionInfo};
#[cfg(feature = "tls-rustls")]
use {
    crate::{backend_error, RedisBackend},
    redis::{aio::ConnectionManager, TlsCertificates},
    redlock_core::BackendError,
};

#[cfg(feature = "tls-rustls")]
impl RedisBackend<ConnectionManager> {
    /// A backend for the standalone node at the `rediss://` URL `url`
    /// (`rediss://[[user]:password@]host:port[/db]`), whose server
    /// certificate is checked against `certificates.root_cert` (PEM) instead
    /// of the system's trust store, and which presents
    /// `certificates.client_tls` when the server asks for a client
    /// certificate (mutual TLS). With [`tls_lock_config`](crate::tls_lock_config), lazy like
    /// [`connect`](Self::connect); the wake-on-release subscription uses the
    /// same certificates and credentials.
    ///
    /// Fails at once (with [`ErrorKind::Other`](redlock_core::ErrorKind::Other))
    /// on a URL that is not `rediss://` or on certificates that do not parse.
    /// A server whose certificate the roots do not vouch for fails each call
    /// with [`ErrorKind::Connection`](redlock_core::ErrorKind::Connection).
    /// Needs the feature `tls-rustls`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use redlock_redis_rs::redis::TlsCertificates;
    /// use redlock_redis_rs::RedisBackend;
    ///
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let backend = RedisBackend::connect_with_tls(
    ///     "rediss://locker:secret@10.0.0.1:6380",
    ///     TlsCertificates { client_tls: None, root_cert: Some(ca) },
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_tls(
        url: impl AsRef<str>,
        certificates: TlsCertificates,
    ) -> Result<Self, BackendError> {
        let client =
            redis::Client::build_with_tls(url.as_ref(), certificates).map_err(backend_error)?;
        let info = client.get_connection_info().clone();
        Self::connect_with_config(info, crate::tls_lock_config()).await
    }
}

/// The connection settings [`RedisBackend::connect`] uses for `info`:
/// [`tls_lock_config`](crate::tls_lock_config) for a TLS node, else
/// [`lock_config`](crate::lock_config).
pub(crate) fn lock_config_for(info: &ConnectionInfo) -> ConnectionManagerConfig {
    if is_tls(info) {
        crate::tls_lock_config()
    } else {
        crate::lock_config()
    }
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// A TLS node's connection info, made ready for a lock:
///
/// - `TCP_NODELAY` on. rustls writes a command as more than one TCP segment
///   at times, and Nagle's algorithm then holds the rest back until the node
///   acknowledges the first, which a node delays by up to 40 ms: a contended
///   lock went 40 times slower over TLS than over plain TCP without it.
/// - A crypto provider. redis-rs builds its rustls configuration with the
///   process's default provider, and rustls panics when there is none and the
///   build enables more than one (say, ring through this crate and aws-lc-rs
///   through another dependency). This installs ring then; a provider the
///   application installed is kept.
///
/// Any other `info` is returned as it is.
pub(crate) fn prepare(info: ConnectionInfo) -> ConnectionInfo {
    if !is_tls(&info) {
        return info;
    }
    #[cfg(feature = "tls-rustls")]
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread's install is fine: one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info.set_tcp_settings(tcp)
}
