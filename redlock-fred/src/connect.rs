//! Building and starting the fred clients this crate owns.

use std::sync::Arc;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::{ClusterDiscoveryPolicy, Config, ReconnectPolicy, ServerConfig};
use fred::types::Builder;
use redlock_core::age::NodeClock;
use redlock_core::{BackendError, ErrorKind};

use crate::errors::map_error;
use crate::health::Health;
use crate::wake::ReleaseWatch;
use crate::{call_options, FredBackend};

/// Timeout of the wake-on-release subscription, and of each command of a
/// backend made by [`FredBackend::new`] (a backstop behind the core's per-node
/// timeout, long enough not to cut a slow but healthy node short). The
/// clients this crate builds send commands without a timeout of their own:
/// see [`FredBackend::with_command_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Timeout to open a connection (TCP, and TLS when used) and of fred's own
/// setup commands (`HELLO`, `AUTH`, `CLUSTER SLOTS`). fred's default is 10 s.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection with a command unanswered for this long is dropped and
/// rebuilt (a paused node, a half-open TCP connection). fred's default is never.
pub const DEFAULT_UNRESPONSIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest wait between reconnection attempts (exponential from 10 ms, forever).
/// A node that comes back is used again within about this long.
pub const DEFAULT_MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

const MIN_RECONNECT_DELAY_MS: u32 = 10;
const RECONNECT_JITTER_MS: u32 = 10;

/// How long construction waits for the first connection attempt to finish,
/// so that a live node is ready for the first call. A failed attempt ends the
/// wait at once; this bound only matters for a node that does not answer.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(2);

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl FredBackend<Client> {
    /// A backend for the standalone node at `url`
    /// (`redis://[[user]:password@]host[:port][/db]`; any URL fred's
    /// [`Config::from_url`] accepts).
    ///
    /// Succeeds even when the node is down: fred keeps reconnecting in the
    /// background and the node's calls fail until it is back. Fails only on an
    /// invalid URL, on a `rediss://` URL when fred has no TLS feature enabled
    /// (enable this crate's `tls-rustls`, or one of fred's in your own
    /// `Cargo.toml`), or outside a tokio runtime. [`describe`] reports the URL
    /// without its password. A `rediss://` node's certificate is checked
    /// against the system's trust store; to trust a CA of your own, see
    /// [`connect_with_tls`](Self::connect_with_tls).
    ///
    /// [`describe`]: redlock_core::LockBackend::describe
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let config = parse(url, Config::from_url)?;
        Self::start(config, redact(url)).await
    }

    /// One backend for the Redis Cluster whose seed nodes are `urls` (one is
    /// enough; fred discovers the rest). Credentials come from the first URL.
    /// Like [`connect`](Self::connect), it succeeds while the cluster is down.
    pub async fn connect_cluster<S: AsRef<str>>(urls: &[S]) -> Result<Self, BackendError> {
        let Some((first, rest)) = urls.split_first() else {
            return Err(BackendError::new(
                ErrorKind::Other,
                "connect_cluster needs at least one seed node URL",
            ));
        };
        let first = first.as_ref();
        let mut config = parse(first, Config::from_url_clustered)?;
        let mut hosts = config.server.hosts();
        for url in rest {
            let url = url.as_ref();
            let seed = parse(url, Config::from_url_clustered)?;
            for host in seed.server.hosts() {
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
        }
        config.server = ServerConfig::Clustered {
            hosts,
            policy: ClusterDiscoveryPolicy::default(),
        };
        let name = urls
            .iter()
            .map(|u| redact(u.as_ref()))
            .collect::<Vec<_>>()
            .join(",");
        Self::start(config, name).await
    }

    /// A backend from a fred [`Config`] you prepared (TLS, sentinel, a unix
    /// socket, ...), with this crate's connection settings applied on top:
    /// reconnect forever, short connection timeouts, unresponsive-connection
    /// detection. [`describe`](redlock_core::LockBackend::describe) lists the
    /// configured hosts.
    pub async fn from_config(config: Config) -> Result<Self, BackendError> {
        let hosts: Vec<String> = config
            .server
            .hosts()
            .iter()
            .map(|h| h.to_string())
            .collect();
        let scheme = if config.server.is_clustered() {
            "redis-cluster"
        } else {
            "redis"
        };
        Self::start(config, format!("{scheme}://{}", hosts.join(","))).await
    }

    pub(crate) async fn start(config: Config, name: String) -> Result<Self, BackendError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BackendError::new(
                ErrorKind::Other,
                "FredBackend must be created inside a tokio runtime (fred runs on tokio)",
            ));
        }
        let builder = lock_builder(config);
        let client = builder.build().map_err(map_error)?;

        // Restart quarantine: a standalone node's age follows its one
        // connection (through `health`'s listener).
        let clock = (!client.is_clustered()).then(|| Arc::new(NodeClock::new()));
        // A cluster client's masters, one age per slot, from fred's events
        // (a standalone client's age follows `clock`).
        let followed = std::sync::OnceLock::from(
            client
                .is_clustered()
                .then(|| crate::cluster_age::ClusterAges::watch(&client)),
        );
        // Subscribe before starting, so no outcome of the first attempt is missed.
        let mut health = Health::watch(&client, clock.clone());
        let task = client.connect();
        // Wait for the first attempt: connected, failed, or out of time. Either
        // way the backend is returned; only the first call's fate differs.
        health.first_outcome(&client, FIRST_CONNECT_WAIT).await;

        Ok(FredBackend {
            client: client.with_options(&call_options(&client, None)),
            name,
            fail_fast_on_events: !client.is_clustered(),
            clustered: client.is_clustered(),
            health: Some(health),
            task: Some(task),
            releases: Some(ReleaseWatch::new(builder)),
            clock,
            followed,
        })
    }
}

/// `config` with this crate's connection settings, for the lock client and
/// the release subscriber alike.
fn lock_builder(mut config: Config) -> Builder {
    // Apply the reconnect policy to the first connection too, so a node that
    // is down now is connected to when it comes up.
    config.fail_fast = false;
    let mut policy = ReconnectPolicy::new_exponential(
        0,
        MIN_RECONNECT_DELAY_MS,
        millis(DEFAULT_MAX_RECONNECT_DELAY),
        2,
    );
    policy.set_jitter(RECONNECT_JITTER_MS);
    let mut builder = Builder::from_config(config);
    builder.set_policy(policy).with_connection_config(|c| {
        c.connection_timeout = DEFAULT_CONNECTION_TIMEOUT;
        c.internal_command_timeout = DEFAULT_CONNECTION_TIMEOUT;
        c.unresponsive.max_timeout = Some(DEFAULT_UNRESPONSIVE_TIMEOUT);
        c.unresponsive.interval = DEFAULT_UNRESPONSIVE_TIMEOUT / 4;
        c.tcp.nodelay = Some(true);
    });
    builder
}

/// Parses `url` with one of fred's URL parsers, refusing a TLS URL that this
/// build cannot honour (fred without a TLS feature would silently connect in
/// plain text).
pub(crate) fn parse(
    url: &str,
    parser: fn(&str) -> Result<Config, fred::error::Error>,
) -> Result<Config, BackendError> {
    crate::tls::prepare(url);
    let config = parser(url).map_err(|error| {
        BackendError::with_source(
            ErrorKind::Other,
            format!("invalid Redis URL {}: {}", redact(url), error.details()),
            error,
        )
    })?;
    let wants_tls = ["rediss", "valkeys"].iter().any(|s| url.starts_with(s));
    if wants_tls && !config.uses_tls() {
        return Err(BackendError::new(
            ErrorKind::Unsupported,
            format!(
                "{} asks for TLS, but fred was built without a TLS feature: enable one \
                 (e.g. `fred = {{ version = \"10\", features = [\"enable-rustls-ring\"] }}`)",
                redact(url)
            ),
        ));
    }
    Ok(config)
}

/// The URL without its password (user name kept), nor query parameters whose
/// name mentions a password.
pub(crate) fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable URL>".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("password"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_drops_passwords_only() {
        assert_eq!(redact("redis://127.0.0.1:7001"), "redis://127.0.0.1:7001");
        assert_eq!(
            redact("redis://:secret@127.0.0.1:7001"),
            "redis://127.0.0.1:7001"
        );
        assert_eq!(
            redact("redis://alice:secret@host:7001/2"),
            "redis://alice@host:7001/2"
        );
        assert_eq!(
            redact("redis-sentinel://h:26379?sentinelServiceName=m&sentinelPassword=x"),
            "redis-sentinel://h:26379?sentinelServiceName=m"
        );
        assert_eq!(redact("redis://h:1?sentinelPassword=x"), "redis://h:1");
        assert!(!redact("not a url :secret@").contains("secret"));
    }
}
