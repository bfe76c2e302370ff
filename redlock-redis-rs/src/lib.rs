//! A [`LockBackend`] over the [`redis`] crate (redis-rs): one Redis node, or
//! one Redis Cluster, as one voter of a [`Redlock`](redlock_core::Redlock).
//!
//! This crate is a thin adapter, with no locking logic of its own. The
//! algorithm (quorum, drift, retries, extension) lives in `redlock-core`, and
//! so do the Lua scripts. A [`RedisBackend`] runs the script it is handed by
//! `EVALSHA <sha1> <numkeys> KEYS... value ttl_ms ARGS...`. `KEYS` holds the
//! lock's resources, followed by any extra keys the request carries (the fence
//! counters of a fenced acquire). `ARGS` holds any extra arguments (a fencing
//! token). The SHA-1 is the one the core computed once per script. If the node
//! answers `NOSCRIPT` (a fresh or restarted node, or one that ran `SCRIPT
//! FLUSH`), the backend sends the same call once more by `EVAL <text>`, which
//! also loads the script for the next time. The script's integer reply (or its
//! `{applied, fence}` pair) becomes the node's [`Reply`]. A failure becomes a
//! [`BackendError`] whose kind tells the algorithm whether a retry can help
//! (see [`backend_error`]). One exception: an acquire the core marks with
//! [`Request::plain_set_nx`] (the first attempt on a single resource with the
//! built-in script) is sent as `SET key value NX PX ttl`, which does the same
//! for less work on the node.
//!
//! All of that, the reading of replies and the meaning of each server error
//! code, is [`redlock_core::protocol`], shared by every Redis adapter. This
//! crate holds what depends on redis-rs: connections, turning the core's
//! [`Call`] into a `redis::Cmd`, and redis-rs's
//! own errors.
//!
//! # Quick start
//!
//! Redlock wants independent nodes, so make one backend per node:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use redlock_core::Redlock;
//! use redlock_redis_rs::RedisBackend;
//! use std::time::Duration;
//!
//! let mut nodes = Vec::new();
//! for url in ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"] {
//!     nodes.push(RedisBackend::connect(url).await?); // lazy: fails only on a malformed URL
//! }
//! let redlock = Redlock::new(nodes)?;
//!
//! let lock = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await?;
//! // ... work while lock.remaining_validity() lasts ...
//! lock.release().await?;
//! # Ok(()) }
//! ```
//!
//! # Connections, and why a dead node must answer fast
//!
//! [`RedisBackend::connect`] is lazy. It parses the URL and returns at once,
//! and the first call opens the connection. A node that is down when you build
//! the [`Redlock`](redlock_core::Redlock) therefore fails its own votes
//! instead of failing the start of your service. A majority of live nodes is
//! enough to lock.
//!
//! The connection is a redis-rs [`ConnectionManager`]. It multiplexes
//! concurrent calls over one socket, and after the connection breaks it
//! reconnects in the background. Its defaults are made for a cache client: a
//! dead node is retried with backoff for seconds before a call fails. A lock
//! has the opposite need. The core gives every node call a per-node timeout
//! (100 ms by default) and drops the call when that runs out, and a node that
//! refuses connections should say so at once. So [`lock_config`] tunes the
//! manager for locks:
//!
//! | setting | redis-rs default | here |
//! |---|---|---|
//! | connection timeout | 1 s | [`CONNECTION_TIMEOUT`] (200 ms) |
//! | response timeout | 500 ms | none: the core's per-node timeout bounds every call (see [`lock_config`]) |
//! | reconnect retries within a call | 6, with exponential backoff | 0 (the core retries whole attempts) |
//!
//! A call that finds the node refusing connections tries once more. A node
//! that was killed and has come back is then used by the very call that
//! notices it, instead of one call later. A refused connection never carried
//! the command, so sending it again cannot run a script twice.
//!
//! Dropping a call partway is safe. The multiplexed connection matches
//! replies to requests in order, and it throws away the reply of a request
//! whose caller has gone, so a timed-out call never shifts the replies of the
//! next ones.
//!
//! To choose other values, or TLS, a password, a database or RESP3, use
//! [`RedisBackend::connect_with_config`]. Or build any redis-rs async
//! connection yourself and wrap it with [`RedisBackend::new`]: a
//! `MultiplexedConnection`, a `ConnectionManager`, or a cluster connection.
//!
//! # TLS and ACL users
//!
//! With the feature `tls-rustls` (under tokio, smol and async-std alike), a
//! `rediss://` URL connects over TLS through rustls, with
//! ring as its crypto provider (installed as the process default on the
//! first TLS connection if the application set none). [`RedisBackend::connect`]
//! then checks the server's certificate against the system's trust store, as
//! a managed Redis needs. For a CA of your own (a self-hosted node, a test
//! CA) or a client certificate, use [`RedisBackend::connect_with_tls`] with
//! redis-rs's own [`TlsCertificates`](redis::TlsCertificates). A server whose
//! certificate is not vouched for fails each call with
//! [`ErrorKind::Connection`], never a panic nor a hang.
//!
//! An ACL user logs in from the URL, `rediss://USER:PASSWORD@host:port`
//! (`redis://:PASSWORD@...` for the `default` user's `requirepass`), on the
//! lock connection and on the wake-on-release subscription alike. A wrong
//! user name or password fails each call with [`ErrorKind::Auth`], which the
//! core does not retry. [`describe`](LockBackend::describe), and so the
//! statistics, logs and error messages, name the node by scheme, address and
//! database only, never with its credentials. The least an ACL user needs,
//! which the conformance suite over TLS gives it (`redlock-testkit`'s
//! `AclUser::LOCK`), is `~* &* -@all +evalsha +eval +set +get +del +pexpire
//! +publish +spublish +pubsub|numsub +pubsub|shardnumsub +subscribe
//! +unsubscribe +ssubscribe +sunsubscribe +info +hello +auth +ping` (Redis
//! checks the scripts' own calls against the rules too; the README says
//! what each is for).
//!
//! # Redis Cluster
//!
//! With the `cluster` feature, a whole Redis Cluster is one backend (one
//! vote). Build it with [`RedisBackend::connect_cluster`], which returns a
//! [`RedisClusterBackend`]. It is lazy as well, and uses the same short
//! timeouts. redis-rs routes each script call by its first key. Every key of
//! one lock must be in the same slot, so give multi-resource locks a common
//! hash tag: `{order42}:invoice` and `{order42}:ledger`. Otherwise the node
//! answers `CROSSSLOT`, which maps to
//! [`ErrorKind::CrossSlot`]. That error is
//! permanent, so the algorithm stops retrying at once.
//!
//! # Wake-on-release
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release)
//! (the default), a backend built by [`RedisBackend::connect`] opens a
//! second, RESP3 connection on its first watch and subscribes it to the
//! release channels of the resources this process waits on, and only while
//! it waits; a cluster backend does the same with a second cluster
//! connection and `SSUBSCRIBE`, so each message stays on its resource's
//! shard. A waiter retries the moment the holder releases instead of after
//! its retry delay. The lock connection keeps the protocol you chose. A
//! backend from [`RedisBackend::new`] answers [`ErrorKind::Unsupported`] for
//! the watch; its waiters fall back to the retry delay.
//! [`RedisBackend::wake_messages`] counts the messages received.
//!
//! # Restart quarantine
//!
//! With [`Settings::restart_quarantine`](redlock_core::Settings::restart_quarantine),
//! a standalone backend reports its node's age through
//! [`LockBackend::node_age`] without I/O (see [`redlock_core::age`]). A
//! restart always drops the connection, so the backend forgets the age the
//! moment a call fails with an I/O, dropped, refused or timed-out connection
//! (in the very poll in which the [`ConnectionManager`] starts reconnecting),
//! and, over RESP3, on the manager's disconnection push (a backend from
//! [`RedisBackend::connect_with_config`] installs its own push sender on the
//! lock connection for this). Before the node votes again, the core has it
//! read `INFO server` (`uptime_in_seconds`, `run_id`); an acquire is refused
//! ([`ErrorKind::Quarantined`]) while the node is younger than the window,
//! and a vote whose connection broke during the call is not counted. Nothing
//! is sent on the hot path. A `ConnectionManager` you build yourself over
//! RESP3 reconnects on its push without failing a call, which this crate
//! cannot see: use [`RedisBackend::connect_with_config`] for quarantine over
//! RESP3.
//!
//! On a [`RedisClusterBackend`] built by [`RedisBackend::connect_cluster`],
//! each master is a node for the quarantine: the age that decides an
//! acquire is that of the master serving the resources' hash slot, read by
//! `INFO server` routed to that slot's master by redis-rs's own slot map
//! (see [`redlock_core::cluster_age`]). The cluster client retries a command
//! on a fresh connection to a restarted master without reporting the break,
//! and its RESP3 disconnection pushes carry no address and arrive after the
//! reconnection started; but it resolves a node's host through its
//! configured DNS resolver before every connection it makes. The backend
//! installs a resolver that first makes every master's age unknown (then
//! resolves as usual: address literals as is, names through the system
//! resolver on a short-lived thread). So a reply over a new connection never
//! counts on an age read before it. A master with another `run_id` than the
//! one last read for the slot (restarted, or a replica promoted by a
//! failover, which may lack its old master's last writes) is quarantined for
//! the whole window from the moment it is read, whatever its uptime; a slot
//! first read after a failover is judged by its master's uptime. After any
//! new connection, each slot in use costs one `INFO server` before its next
//! vote. A cluster connection you build yourself and pass to
//! [`RedisBackend::new`] answers [`ErrorKind::Unsupported`] under
//! quarantine (this crate cannot see its connections).
//!
//! # Doctor and lock status
//!
//! [`LockBackend::inspect`] sends the core's read-only commands
//! ([`Redlock::doctor`](redlock_core::Redlock::doctor): `INFO`, `CONFIG GET`,
//! `CLUSTER INFO`, `TIME`; [`Redlock::status`](redlock_core::Redlock::status):
//! `GET`, `PTTL`) as they are: on a standalone node one after the other, on a
//! cluster to every master (`AllMasters`, one answer per master) or routed by
//! key. A server's error reply (a `CONFIG` an ACL refuses) is handed back in
//! the command's place, for the core to report.
//!
//! # Runtimes and features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `tokio` | yes | redis-rs on tokio (`redis/tokio-comp`) |
//! | `smol` | no | redis-rs on smol's async-io reactor (`redis/smol-comp`). That reactor runs under any executor, so async-std users enable this one too. |
//! | `cluster` | yes | [`RedisClusterBackend`] (`redis/cluster-async`) |
//! | `tls-rustls` | no | `rediss://` over rustls, [`RedisBackend::connect_with_tls`] (`redis/tokio-rustls-comp` and `redis/smol-rustls-comp`: redis-rs builds only with TLS on both of its runtimes or on neither) |
//!
//! Enable at least one of `tokio` and `smol`. With only `tokio`, construct
//! backends inside a tokio runtime, because redis-rs spawns its reconnect task
//! there. If you don't, the constructors return an error instead of panicking.
//! With both enabled, redis-rs uses tokio when a tokio runtime is current and
//! smol otherwise (see `redis::aio::prefer_smol`). For a smol or async-std
//! application, build with `default-features = false, features = ["smol",
//! "cluster"]`.

#![deny(missing_docs)]
// The docs link items of optional features; a build without them keeps the text.
#![cfg_attr(
    not(all(feature = "cluster", feature = "tls-rustls")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![forbid(unsafe_code)]

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!(
    "redlock-redis-rs needs a runtime for redis-rs: enable the `tokio` or the `smol` feature"
);

#[cfg(feature = "cluster")]
mod cluster_age;
mod command;
mod connect;
mod doctor;
mod error;
mod tls;
mod wake;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, Value};
use redlock_core::age::{NodeClock, ServerInfo, INFO_SERVER};
use redlock_core::inspect::{Inspection, ServerReplies};
use redlock_core::protocol::{Arg, Call, RawReply};
use redlock_core::wake::{PubSubKind, ReleaseWaker};
use redlock_core::{async_trait, BackendError, ErrorKind, LockBackend, NodeAge, Reply, Request};

use command::broke;
#[cfg(feature = "cluster")]
pub(crate) use connect::{cluster_builder, cluster_config};
pub use connect::{
    lock_config, tls_lock_config, CONNECTION_TIMEOUT, RESPONSE_TIMEOUT, TLS_CONNECTION_TIMEOUT,
};

pub use error::{backend_error, error_kind};
/// The redis-rs crate this adapter is built on, re-exported so that you can
/// name its types (`redis::aio::ConnectionManagerConfig`, `redis::Client`,
/// ...) without a separate, possibly mismatched, dependency.
pub use redis;

/// One Redis node (or one Redis Cluster) as a Redlock voter, over any redis-rs
/// async connection `C`.
///
/// Cloning is cheap: the clones share `C`, a handle to one multiplexed
/// connection. See the [crate docs](crate) for how the connection is tuned.
#[derive(Clone)]
pub struct RedisBackend<C = ConnectionManager> {
    conn: C,
    name: Arc<str>,
    /// Whether `C` is redis-rs's cluster connection (for error hints).
    cluster: bool,
    /// Wake-on-release, for backends built from a URL.
    releases: wake::SharedWatch,
    /// Restart quarantine: the node's age, read on (re)connection.
    clock: Arc<NodeClock>,
    /// Restart quarantine on a cluster built by `connect_cluster`: the
    /// masters' ages, per slot.
    #[cfg(feature = "cluster")]
    cluster_ages: Option<Arc<cluster_age::ClusterAges>>,
}

/// A whole Redis Cluster as one Redlock voter. Build it with
/// [`RedisBackend::connect_cluster`].
#[cfg(feature = "cluster")]
pub type RedisClusterBackend = RedisBackend<redis::cluster_async::ClusterConnection>;

impl<C> RedisBackend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Wraps a connection you built and configured yourself. `name` is what
    /// [`describe`](LockBackend::describe) answers, which shows up in
    /// statistics, logs and the error hook. Give an address, and never a
    /// password.
    pub fn new(conn: C, name: impl Into<String>) -> Self {
        #[cfg(feature = "cluster")]
        let cluster = std::any::TypeId::of::<C>()
            == std::any::TypeId::of::<redis::cluster_async::ClusterConnection>();
        #[cfg(not(feature = "cluster"))]
        let cluster = false;
        RedisBackend {
            conn,
            name: Arc::from(name.into()),
            cluster,
            releases: None,
            clock: Arc::new(NodeClock::new()),
            #[cfg(feature = "cluster")]
            cluster_ages: None,
        }
    }

    /// How many release notifications this backend's subscription has
    /// received so far (wake-on-release; 0 before its first watch). The
    /// subscription follows the waiters of this process, so while nothing
    /// here waits, this does not move, however busy other processes' locks
    /// are.
    pub fn wake_messages(&self) -> u64 {
        self.releases.as_ref().map_or(0, |watch| watch.received())
    }

    /// The connection this backend sends its scripts on.
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// Gives the connection back.
    pub fn into_connection(self) -> C {
        self.conn
    }
}

/// The youngest node's [`ServerInfo`] in an `INFO server` reply: one text
/// from a standalone node, one per master (keyed by address) from a cluster.
fn youngest(value: &Value) -> Option<ServerInfo> {
    fn texts<'v>(value: &'v Value, out: &mut Vec<&'v [u8]>) {
        match value {
            Value::BulkString(bytes) => out.push(bytes),
            Value::SimpleString(text) | Value::VerbatimString { text, .. } => {
                out.push(text.as_bytes())
            }
            Value::Array(items) | Value::Set(items) => items.iter().for_each(|v| texts(v, out)),
            Value::Map(pairs) => pairs.iter().for_each(|(_, v)| texts(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    texts(value, &mut all);
    let infos: Vec<ServerInfo> = all
        .into_iter()
        .filter_map(|bytes| ServerInfo::parse(&String::from_utf8_lossy(bytes)))
        .collect();
    let youngest = infos.iter().min_by_key(|i| i.uptime)?.clone();
    // A cluster's identity is the set of its masters: a failover (a new
    // master) changes it, and then counts as a restart.
    let mut ids: Vec<&str> = infos.iter().map(|i| i.run_id.as_str()).collect();
    ids.sort_unstable();
    Some(ServerInfo::new(ids.join(","), youngest.uptime))
}

#[async_trait]
impl<C> LockBackend for RedisBackend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        let quarantine = request
            .restart_quarantine()
            .map(|max_ttl| (max_ttl, request.resources()));
        self.run(Call::acquire(request), quarantine).await
    }

    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.run(Call::script(request), None).await
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.run(Call::script(request), None).await
    }

    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.run(Call::script(request), None).await
    }

    fn node_age(&self, resources: &[String]) -> NodeAge {
        #[cfg(feature = "cluster")]
        if let Some(ages) = &self.cluster_ages {
            return ages.age(resources);
        }
        let _ = resources;
        if self.cluster {
            // Never known: the core asks `refresh_node_age`, which says why.
            return NodeAge::Unknown;
        }
        self.clock.age()
    }

    async fn refresh_node_age(&self, resources: &[String]) -> Result<(), BackendError> {
        #[cfg(feature = "cluster")]
        if let Some(ages) = &self.cluster_ages {
            return ages.refresh(resources, |err| self.mapped(err)).await;
        }
        let _ = resources;
        if self.cluster {
            return Err(cluster_quarantine_unsupported());
        }
        let generation = self.clock.generation();
        let mut conn = self.conn.clone();
        let value: Value = redis::cmd(INFO_SERVER[0])
            .arg(INFO_SERVER[1])
            .query_async(&mut conn)
            .await
            .map_err(|err| self.mapped(err))?;
        let received = Instant::now();
        let info = youngest(&value).ok_or_else(|| {
            BackendError::new(
                ErrorKind::Protocol,
                "INFO server answered without uptime_in_seconds",
            )
        })?;
        self.clock.learn(generation, &info, received);
        Ok(())
    }

    async fn inspect(&self, inspection: &Inspection) -> Result<Vec<ServerReplies>, BackendError> {
        doctor::inspect(&self.conn, inspection, |err| {
            if broke(&err) {
                self.clock.forget();
            }
            error::mapped(err, Some(self.cluster))
        })
        .await
    }

    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        match &self.releases {
            Some(watch) => watch.watch(channels, waker).await,
            None => Err(BackendError::new(
                ErrorKind::Unsupported,
                "wake-on-release needs a backend built by RedisBackend::connect or \
                 connect_cluster (one built from a connection falls back to the retry delay)",
            )),
        }
    }

    async fn unwatch_releases(&self) -> Result<(), BackendError> {
        match &self.releases {
            Some(watch) => watch.unwatch().await,
            None => Ok(()),
        }
    }

    fn pubsub_kind(&self) -> PubSubKind {
        // A cluster's waiters subscribe to shard channels.
        if self.cluster {
            PubSubKind::Sharded
        } else {
            PubSubKind::Classic
        }
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.name)
    }
}

/// Restart quarantine on a cluster connection built outside this crate:
/// see the crate docs.
fn cluster_quarantine_unsupported() -> BackendError {
    BackendError::new(
        ErrorKind::Unsupported,
        "restart quarantine on a Redis Cluster needs a backend built by \
         RedisBackend::connect_cluster (which sees every connection the cluster client makes); \
         a cluster connection passed to RedisBackend::new cannot show a master's restart; \
         turn restart_quarantine off for it",
    )
}

impl<C> fmt::Debug for RedisBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("node", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::describe_info;

    #[test]
    fn names_never_carry_passwords() {
        let info = "redis://:hunter2@127.0.0.1:7001/3"
            .into_connection_info()
            .expect("valid url");
        let name = describe_info(&info);
        assert_eq!(name, "redis://127.0.0.1:7001/3");
        let info = "redis://alice:hunter2@localhost:6379"
            .into_connection_info()
            .expect("valid url");
        assert_eq!(describe_info(&info), "redis://localhost:6379");
    }

    #[cfg(feature = "tls-rustls")]
    #[test]
    fn tls_names_never_carry_credentials_and_tls_nodes_get_nodelay() {
        let info = "rediss://alice:hunter2@127.0.0.1:7001"
            .into_connection_info()
            .expect("valid url");
        assert_eq!(describe_info(&info), "rediss://127.0.0.1:7001");
        assert!(!info.tcp_settings().nodelay());
        let prepared = tls::prepare(info);
        assert!(prepared.tcp_settings().nodelay());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // A plain node is left as it is.
        let plain = "redis://127.0.0.1:7001"
            .into_connection_info()
            .expect("valid url");
        assert!(!tls::prepare(plain).tcp_settings().nodelay());
    }

    #[test]
    fn info_replies_give_the_youngest_node() {
        let one =
            |id: &str, up: u64| format!("# Server\r\nrun_id:{id}\r\nuptime_in_seconds:{up}\r\n");
        let standalone = Value::BulkString(one("a", 40).into_bytes());
        let info = youngest(&standalone).expect("parsed");
        assert_eq!((info.run_id.as_str(), info.uptime.as_secs()), ("a", 40));
        // A cluster answers per master; the youngest decides, and the
        // identity is the set of masters.
        let cluster = Value::Map(vec![
            (
                Value::SimpleString("127.0.0.1:7001".into()),
                Value::BulkString(one("b", 90).into_bytes()),
            ),
            (
                Value::SimpleString("127.0.0.1:7002".into()),
                Value::VerbatimString {
                    format: redis::VerbatimFormat::Text,
                    text: one("a", 5),
                },
            ),
        ]);
        let info = youngest(&cluster).expect("parsed");
        assert_eq!((info.run_id.as_str(), info.uptime.as_secs()), ("a,b", 5));
        assert!(youngest(&Value::Okay).is_none());
    }

    #[test]
    fn malformed_url_is_an_error_not_a_panic() {
        let err = futures::executor::block_on(RedisBackend::connect("nonsense://"))
            .expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::Other);
    }
}
