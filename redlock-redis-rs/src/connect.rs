//! Building backends: connection settings, and the constructors that connect
//! to a standalone node or a Redis Cluster.

use super::*;

/// How long [`lock_config`] lets one connection attempt take.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_millis(200);

/// How long [`tls_lock_config`] lets one connection attempt take, TLS
/// handshake and login included: a handshake costs more round trips and CPU
/// than a TCP connect (50 to 80 ms in a debug build on an idle machine), and
/// a limit of [`CONNECTION_TIMEOUT`] cuts it short on a loaded host, after
/// which every call fails. A refused connection still fails at once, and the
/// core's per-node timeout still bounds every call.
pub const TLS_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the Redis Cluster client of [`RedisBackend::connect_cluster`]
/// waits for one reply before failing the call. It also bounds the
/// commands the cluster client sends on its own (slot refreshes), which the
/// core does not see; the core's per-node timeout (100 ms by default)
/// usually drops a lock call first.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A [`ConnectionManagerConfig`] tuned for locks: [`CONNECTION_TIMEOUT`], no
/// response timeout, and no reconnect retries inside a call. The manager
/// still reconnects in the background after a failure. Start from this value
/// when you pass your own config to [`RedisBackend::connect_with_config`].
///
/// No response timeout, because the core already bounds every call it makes
/// through a backend by its per-node timeout and drops the call when that
/// runs out. A second timer inside redis-rs would change nothing (a response
/// timeout does not make the manager reconnect) and costs a timer armed and
/// cleared per command: about 1,100 instructions per acquire and release at
/// one node, measured with callgrind (`bench --profile-cycles`).
pub fn lock_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(None)
        .set_number_of_retries(0)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(50))
}

/// [`lock_config`] for a `rediss://` node: the connection timeout is
/// [`TLS_CONNECTION_TIMEOUT`]. [`RedisBackend::connect`] picks it for a
/// `rediss://` URL.
pub fn tls_lock_config() -> ConnectionManagerConfig {
    lock_config().set_connection_timeout(Some(TLS_CONNECTION_TIMEOUT))
}

impl RedisBackend<ConnectionManager> {
    /// A backend for the standalone node at `url`
    /// (`redis://[[user]:password@]host:port[/db]`, `redis+unix:///path`, or
    /// `rediss://...` with the feature `tls-rustls`,
    /// trusting the system's roots: see [TLS and ACL users](crate#tls-and-acl-users)),
    /// with [`lock_config`].
    ///
    /// Lazy: no connection is opened here, so this returns at once and
    /// succeeds while the node is down. It fails only on a malformed URL or, in
    /// a tokio-only build, outside a tokio runtime. It is `async` so that it
    /// runs inside the runtime whose reactor redis-rs will use.
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, BackendError> {
        let info = url.as_ref().into_connection_info().map_err(backend_error)?;
        let config = tls::lock_config_for(&info);
        Self::connect_with_config(info, config).await
    }

    /// [`connect`](Self::connect) with your own [`ConnectionManagerConfig`],
    /// and a URL or a `redis::ConnectionInfo` (for settings a URL cannot
    /// carry). Start from [`lock_config`] and keep the connection timeout and
    /// the retries small, so a dead node answers well within the per-node
    /// timeout.
    pub async fn connect_with_config<T: IntoConnectionInfo>(
        url: T,
        config: ConnectionManagerConfig,
    ) -> Result<Self, BackendError> {
        let info = tls::prepare(url.into_connection_info().map_err(backend_error)?);
        let name = describe_info(&info);
        check_runtime()?;
        let releases = wake::ReleaseWatch::node(&info, &config);
        let clock = Arc::new(NodeClock::new());
        // Over RESP3 the manager also reconnects on its own when the socket
        // closes, without failing a call: restart quarantine must hear of it.
        let config = if info.redis_settings().protocol().supports_resp3() {
            let clock = clock.clone();
            config.set_push_sender(move |push: redis::PushInfo| {
                if push.kind == redis::PushKind::Disconnection {
                    clock.forget();
                }
                Ok::<(), std::convert::Infallible>(())
            })
        } else {
            config
        };
        let client = redis::Client::open(info).map_err(backend_error)?;
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(backend_error)?;
        let mut backend = RedisBackend::new(conn, name);
        backend.releases = Some(Arc::new(releases));
        backend.clock = clock;
        Ok(backend)
    }
}

#[cfg(feature = "cluster")]
impl RedisBackend<redis::cluster_async::ClusterConnection> {
    /// A backend for the Redis Cluster reachable through the seed nodes
    /// `urls` (every URL must carry the same credentials). Lazy, like
    /// [`connect`](RedisBackend::connect). It uses [`CONNECTION_TIMEOUT`] and
    /// [`RESPONSE_TIMEOUT`], and a few short retries for redirections while
    /// the cluster reshards. For other settings, build a
    /// `redis::cluster_async::ClusterConnection` yourself and wrap it with
    /// [`RedisBackend::new`].
    pub async fn connect_cluster<I>(urls: I) -> Result<Self, BackendError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let infos = urls
            .into_iter()
            .map(|url| url.as_ref().into_connection_info().map(tls::prepare))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend_error)?;
        let name = format!(
            "redis-cluster[{}]",
            infos
                .iter()
                .map(describe_info)
                .collect::<Vec<_>>()
                .join(", ")
        );
        check_runtime()?;
        let releases = Some(Arc::new(wake::ReleaseWatch::cluster(infos.clone())));
        let client = cluster_builder(infos).build().map_err(backend_error)?;
        // Restart quarantine: every connection the client makes to a node
        // goes through this resolver first (see `cluster_age`).
        let clock = Arc::new(redlock_core::cluster_age::ClusterClock::new());
        let config =
            cluster_config().set_dns_resolver(cluster_age::ForgetOnConnect::new(clock.clone()));
        let conn = client.get_pending_async_connection_with_config(config);
        let ages = cluster_age::ClusterAges::new(clock, conn.clone());
        let mut backend = RedisBackend::new(conn, name);
        backend.releases = releases;
        backend.cluster_ages = Some(Arc::new(ages));
        Ok(backend)
    }
}

/// The cluster client settings of the lock connection and of the release
/// subscription: short timeouts, and a few short retries for redirections
/// while the cluster reshards.
#[cfg(feature = "cluster")]
pub(crate) fn cluster_builder(infos: Vec<ConnectionInfo>) -> redis::cluster::ClusterClientBuilder {
    redis::cluster::ClusterClient::builder(infos)
        .connection_timeout(CONNECTION_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(3)
        .min_retry_wait(5)
        .max_retry_wait(50)
        .retry_wait_formula(5, 2)
}

/// The per-connection config to go with [`cluster_builder`]: it overrides
/// the builder's timeouts, so it repeats them.
#[cfg(feature = "cluster")]
pub(crate) fn cluster_config() -> redis::cluster::ClusterConfig {
    redis::cluster::ClusterConfig::new()
        .set_connection_timeout(CONNECTION_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT)
}

/// A password-free name for a node: scheme, address and database.
pub(crate) fn describe_info(info: &ConnectionInfo) -> String {
    let addr = info.addr();
    let scheme = match addr {
        ConnectionAddr::TcpTls { .. } => "rediss",
        ConnectionAddr::Unix(_) => "redis+unix",
        _ => "redis",
    };
    let mut name = format!("{scheme}://{addr}");
    let db = info.redis_settings().db();
    if db != 0 {
        name.push_str(&format!("/{db}"));
    }
    name
}

/// redis-rs spawns a task when a connection manager or a cluster connection is
/// built. In a tokio-only build that needs a current tokio runtime, and
/// without one tokio would panic.
fn check_runtime() -> Result<(), BackendError> {
    #[cfg(all(feature = "tokio", not(feature = "smol")))]
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(BackendError::new(
            ErrorKind::Other,
            "build redis-rs backends inside a tokio runtime (or enable the `smol` feature of \
             redlock-redis-rs): redis-rs spawns its reconnect task on the current runtime",
        ));
    }
    Ok(())
}
