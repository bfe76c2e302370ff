//! Redlock over the [`fred`] Redis client: one [`FredBackend`] per independent
//! Redis node (or per Redis Cluster), handed to
//! [`Redlock`](redlock_core::Redlock). fred runs on tokio only, so this backend
//! does too.
//!
//! ```no_run
//! use redlock_core::{Redlock, TokioRuntime};
//! use redlock_fred::FredBackend;
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // One backend per node. Construction never fails because a node is down:
//! // that node's calls fail (and count as votes against) until it is back.
//! let nodes = vec![
//!     FredBackend::connect("redis://127.0.0.1:7001").await?,
//!     FredBackend::connect("redis://:secret@127.0.0.1:7002").await?,
//!     FredBackend::connect("redis://127.0.0.1:7003/2").await?,
//! ];
//! let redlock = Redlock::builder(nodes).runtime(TokioRuntime).build()?;
//!
//! let lock = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await?;
//! // ... work while lock.remaining_validity() is comfortable ...
//! lock.release().await?;
//! # Ok(()) }
//! ```
//!
//! # What a call does
//!
//! Each operation runs the core's script ([`Request::script`]) as
//! `EVALSHA <sha1> <numkeys> KEYS... <value> <ttl ms> [extra args]`, with
//! `KEYS` = [`Request::keys`], the SHA-1 coming precomputed with the script
//! (nothing is hashed per call). A node that answers `NOSCRIPT` (restarted,
//! `SCRIPT FLUSH`ed, or new) gets the same call once more as `EVAL` with the
//! script's text, which also caches it for the next `EVALSHA`. The reply is an
//! integer (keys applied) or, for the fenced acquire, a pair of integers; any
//! other reply is an [`ErrorKind::Protocol`] error. Custom scripts and fencing
//! need nothing more: they are just other scripts. One exception: an acquire
//! the core marks with [`Request::plain_set_nx`] (the first attempt on a single
//! resource with the built-in script) is sent as `SET key value NX PX ttl`,
//! which does the same for less work on the node (`OK`: applied, `nil`: held).
//!
//! All of that, the reading of replies and the meaning of each server error
//! code, is [`redlock_core::protocol`], shared by every Redis adapter. This
//! crate holds what depends on fred: connections and their health, turning the
//! core's [`Call`] into a fred custom command, fred's own errors, and the
//! release subscriber.
//!
//! The commands go through fred's [`custom`](fred::interfaces::ClientLike::custom)
//! interface rather than its `evalsha`: in fred 10 the per-call
//! [`Options`] wrapper
//! ([`WithOptions`]) does not implement the
//! scripting interface, so `with_options(..).evalsha(..)` silently runs on the
//! inner client *without* the options. A cluster client routes each call by
//! its first key's hash slot.
//!
//! # How it behaves when a node misbehaves
//!
//! The clients this crate builds ([`FredBackend::connect`],
//! [`FredBackend::connect_cluster`], [`FredBackend::from_config`]) are set up
//! for a lock, where a quick "no" from one node is worth more than a late "yes":
//!
//! | situation | what the caller sees |
//! |---|---|
//! | node down at construction | construction succeeds at once; calls fail at once with [`ErrorKind::Connection`] |
//! | node killed, later back | calls fail at once while it is away; fred reconnects within about half a second of its return |
//! | node paused, or a host that drops packets | through [`Redlock`](redlock_core::Redlock): the node's vote is a timeout after the core's per-node timeout; a direct call fails when the connection, with a command unanswered for 2 s, is dropped and rebuilt (or after [`FredBackend::with_command_timeout`], when set) |
//! | wrong password | calls fail with [`ErrorKind::Auth`], which the core does not retry |
//!
//! Every call carries fred's fail-fast flag. fred only checks
//! that flag against its client state, which still says "connected" for the
//! few milliseconds between a connection dropping and the first reconnection
//! attempt; a call sent then would wait in fred's queue until the node is back.
//! So the backend also listens to fred's connection events and refuses
//! acquire, extend and fence calls itself right after a connection error (a
//! release is always handed to fred, so that it is queued behind any acquire
//! fred still holds), until a connection succeeds or
//! fred's state has caught up (for a standalone node; a cluster client has
//! one connection per master, and relies on fred's state). The last connection error also names the cause: a
//! refused password is `Auth`, not `Connection`.
//!
//! The core bounds every call by its own per-node timeout and drops the
//! call's future when it expires. That is safe here: the command stays with
//! fred's router, its reply is read and discarded, and the connection keeps
//! working. (Like any client, a command already written cannot be recalled, so
//! a late acquire may still land; the core's release after a failed attempt is
//! queued behind it on the same connection, and at worst the key expires with
//! its TTL.)
//!
//! Dropping a backend made by these constructors stops its connection task; a
//! client passed to [`FredBackend::new`] is left to its owner.
//!
//! # Cost per lock, and the fred configuration
//!
//! Measured with `redlock-bench` against `fred_floor` (fred used directly,
//! as a hand-written lock would: `set` with NX PX, then `evalsha`),
//! instructions per acquire + release under `valgrind --tool=callgrind`
//! (`bench --profile-cycles K --tasks 1`, two values of K, the difference):
//!
//! - A plain acquire goes through fred's own `set`, not a custom command:
//!   fred flushes the socket after every custom command, and builds it with
//!   two more allocations (the name split and copied); its `SET` is written
//!   back to back with others while more are queued. Before: 64.1k / 302k
//!   instructions per cycle at 1 / 5 nodes; after: 60.1k / 278k.
//! - The clients this crate builds send commands without fred's per-command
//!   timeout (see [`FredBackend::with_command_timeout`]): 58.2k / 262k.
//!   fred_floor: 46.6k / 226k; the rest is the core (one timer per round,
//!   the tally, one boxed future per node call) and the scripts' custom
//!   `EVALSHA` (fred 10.1's `WithOptions` has no scripting interface).
//! - Measured again on 2026-12-03, after later features and the core's own
//!   savings (one boxed future per node call instead of two, smaller
//!   futures, arguments written straight from the request): 58.9k / 257k,
//!   against fred_floor's 47.0k / 232k (1.25x / 1.11x). With 64 tasks at 1
//!   node: 53.3k against 43.0k (1.24x). Pooling two connections per node
//!   (`Builder::build_pool(2)`) gave fred_floor no more throughput on 2
//!   cores: the cost is CPU per command, not one connection's router.
//! - Configuration, kept at what measured best or no worse: RESP2 (RESP3
//!   costs 2.6 % more instructions per cycle at 1 node, 3 % at 5, in fred
//!   and fred_floor alike), fred's `max_feed_count` (200; 2000 made no
//!   difference beyond the noise of the 64-task throughput run), `TCP_NODELAY`
//!   on (no measurable difference on loopback, and no Nagle delay on a real
//!   network), unresponsive-connection detection on (costs one clock read per
//!   write; no measurable difference with it off).
//!
//! # Errors
//!
//! fred reports most server errors as `ErrorKind::Unknown` with the Redis error
//! code at the start of the details, so the code decides first, by the core's
//! [table of server error codes](redlock_core::protocol#server-error-codes)
//! (`CROSSSLOT` is `CrossSlot`, `NOAUTH` is `Auth`, `OOM` is `Busy`, `ERR
//! unknown command` is `Unsupported`, ...). fred's own kind decides the rest
//! ([`map_error`]):
//!
//! | fred error | core kind |
//! |---|---|
//! | a server error code the core's table gives a kind other than `Other` | that kind |
//! | `IO`, `Canceled`, `Routing`, "failed to route", not connected | [`ErrorKind::Connection`] (when not connected, the last connection error decides: a refused password is `Auth`, `LOADING` is `Busy`) |
//! | `Timeout` | [`ErrorKind::Timeout`] |
//! | fred's client-side "keys on different cluster nodes" (`Cluster`) | [`ErrorKind::CrossSlot`] |
//! | `Auth` | [`ErrorKind::Auth`] |
//! | `Backpressure` | [`ErrorKind::Busy`] |
//! | `Protocol`, `Parse`, a script reply that is not an integer | [`ErrorKind::Protocol`] |
//! | anything else | [`ErrorKind::Other`] |
//!
//! A `CrossSlot` message carries the core's hint about hash tags
//! ([`CROSS_SLOT_HINT`](redlock_core::protocol::CROSS_SLOT_HINT)).
//! The fred error is kept as the [source](std::error::Error::source).
//!
//! # Restart quarantine
//!
//! With [`Settings::restart_quarantine`](redlock_core::Settings::restart_quarantine),
//! a standalone backend built by [`FredBackend::connect`] or
//! [`FredBackend::from_config`] reports its node's age through
//! [`LockBackend::node_age`] without I/O (see [`redlock_core::age`]). A
//! restart always drops the connection, so every connection error and every
//! (re)connection event of fred's, and every call that fails with a
//! connection error or a timeout, makes the age unknown; the core then has
//! the backend read `INFO server` (`uptime_in_seconds`, `run_id`) before the
//! node votes again. An acquire is refused ([`ErrorKind::Quarantined`])
//! while the node is younger than the window, and a vote whose connection
//! changed during the call is not counted.
//!
//! On a cluster backend ([`FredBackend::connect_cluster`], or
//! [`FredBackend::from_config`] with a clustered config) each master is a
//! node for the quarantine: the age that decides an acquire is that of the
//! master serving the resources' hash slot, read by `INFO server` routed to
//! that slot (see [`redlock_core::cluster_age`]). fred broadcasts a
//! reconnection event for every connection it makes to a node before that
//! connection carries a command; the backend drains those events (and the
//! connection errors) without waiting each time it answers, and any of them
//! makes every master's age unknown, as does a call that fails on a
//! connection. So a restarted master never votes on an age read before its
//! restart. A master with another `run_id` than the one last read for the
//! slot (restarted, or a replica promoted by a failover, which may lack its
//! old master's last writes) is quarantined for the whole window from the
//! moment it is read, whatever its uptime. After a reconnection, each slot
//! in use costs one `INFO server` before its next vote; nothing is sent on
//! the hot path otherwise.
//!
//! A fred [`Client`] passed to [`FredBackend::new`], standalone or
//! clustered, is followed the same way: the backend subscribes to its
//! events the first time quarantine asks for an age (every age starts
//! unknown, so what happened before does not matter). Other client types
//! (a [`Pool`](fred::clients::Pool), ...) answer [`ErrorKind::Unsupported`]
//! under quarantine rather than vote unchecked.
//!
//! # Doctor and lock status
//!
//! [`LockBackend::inspect`] sends the core's read-only commands
//! ([`Redlock::doctor`](redlock_core::Redlock::doctor): `INFO`, `CONFIG GET`,
//! `CLUSTER INFO`, `TIME`; [`Redlock::status`](redlock_core::Redlock::status):
//! `GET`, `PTTL`) as fred custom commands: on a standalone node one after the
//! other, on a cluster to every connected primary (fred's `cluster_node`
//! option) or routed by key slot. A server's error reply (a `CONFIG` an ACL
//! refuses) is handed back in the command's place, for the core to report.
//!
//! # TLS and ACL users
//!
//! With the feature `tls-rustls` (fred's `enable-rustls-ring`: rustls, with
//! ring as its crypto provider, installed as the process default on the first
//! `rediss://` URL if the application set none), a `rediss://` URL connects
//! over TLS and [`FredBackend::connect`] checks the server's certificate
//! against the system's trust store, as a managed Redis needs. For a CA of
//! your own (a self-hosted node, a test CA) or a client certificate, hand a
//! rustls `ClientConfig` to [`FredBackend::connect_with_tls`], or set
//! [`Config::tls`](fred::types::config::Config::tls) and use
//! [`FredBackend::from_config`]. A server whose certificate is not vouched
//! for fails each call with [`ErrorKind::Connection`], never a panic nor a
//! hang.
//!
//! An ACL user logs in from the URL, `rediss://USER:PASSWORD@host:port`
//! (`redis://:PASSWORD@...` for the `default` user's `requirepass`), on the
//! lock connection and on the wake-on-release subscriber alike. A wrong user
//! name or password fails each call with [`ErrorKind::Auth`], which the core
//! does not retry. [`describe`](LockBackend::describe), and so the
//! statistics, logs and error messages, show the URL without its password
//! (the user name stays). The least an ACL user needs,
//! which the conformance suite over TLS gives it (`redlock-testkit`'s
//! `AclUser::LOCK`), is `~* &* -@all +evalsha +eval +set +get +del +pexpire
//! +publish +spublish +pubsub|numsub +pubsub|shardnumsub +subscribe
//! +unsubscribe +ssubscribe +sunsubscribe +info +hello +auth +ping` (Redis
//! checks the scripts' own calls against the rules too; the README says
//! what each is for).
//!
//! # Redis Cluster
//!
//! [`FredBackend::connect_cluster`] makes one backend for a whole cluster: fred
//! routes each script by its keys' hash slot and follows `MOVED`/`ASK`. All keys
//! of one lock must be in one slot: use a hash tag (`{order42}:invoice`,
//! `{order42}:ledger`), or the call fails with [`ErrorKind::CrossSlot`].
//!
//! # Wake-on-release
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release)
//! (the default), a backend built by this crate starts, on the first
//! [`watch_releases`](LockBackend::watch_releases), a fred
//! [`SubscriberClient`](fred::clients::SubscriberClient) on a connection of its
//! own (same configuration). It subscribes to the release channels of the
//! resources this process waits on, only while it waits (`SSUBSCRIBE` on a
//! cluster, so each message stays on its resource's shard), and resubscribes
//! after reconnections; a waiter then retries the moment the holder releases
//! instead of after its retry delay. A backend made by [`FredBackend::new`]
//! answers [`ErrorKind::Unsupported`], and its waiters keep the retry delay.
//! [`FredBackend::wake_messages`] counts the messages received.
//!
//! # Bring your own client
//!
//! [`FredBackend::new`] wraps a client you built and connected yourself (a
//! [`Client`], a [`Pool`](fred::clients::Pool), ...).
//! Per-call options (timeout, fail fast) still apply; the connection settings
//! and the event listener above do not. Consider a reconnect policy and
//! `Config::fail_fast = false`, so a node that is down at start-up is retried,
//! or build a [`Config`](fred::types::config::Config) (TLS, sentinel, a unix
//! socket) and hand it to [`FredBackend::from_config`] to get this crate's
//! settings on top.

#![deny(missing_docs)]
// The docs link items of optional features; a build without them keeps the text.
#![cfg_attr(not(feature = "tls-rustls"), allow(rustdoc::broken_intra_doc_links))]
#![forbid(unsafe_code)]

mod cluster_age;
mod command;
mod connect;
mod doctor;
mod errors;
mod health;
mod tls;
mod wake;

use std::any::Any;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fred::clients::{Client, WithOptions};
use fred::error::{Error as FredError, ErrorKind as FredErrorKind};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Options;
use fred::types::{ClusterHash, ConnectHandle, CustomCommand, Expiration, SetOptions, Value};
use fred::util::redis_keyslot;
use redlock_core::age::{NodeClock, ServerInfo, INFO_SERVER};
use redlock_core::inspect::{Inspection, ServerReplies};
use redlock_core::protocol::{Arg, Call, Command, RawReply};
use redlock_core::wake::{PubSubKind, ReleaseWaker};
use redlock_core::{async_trait, BackendError, ErrorKind, LockBackend, NodeAge, Reply, Request};

use crate::health::Health;
use crate::wake::ReleaseWatch;

pub use connect::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECTION_TIMEOUT, DEFAULT_MAX_RECONNECT_DELAY,
    DEFAULT_UNRESPONSIVE_TIMEOUT,
};
pub use errors::{classify, map_error};
/// The fred crate this backend is built on, for building your own client.
pub use fred;

/// A [`LockBackend`] over a fred client: one Redis node, or one Redis Cluster.
///
/// `C` is any fred client: [`Client`] (the default, what the constructors
/// build) or [`Pool`](fred::clients::Pool), for instance. See the
/// [crate docs](crate) for what a call does and how failures are reported.
pub struct FredBackend<C: ClientLike = Client> {
    /// The client with this backend's per-call options applied.
    client: WithOptions<C>,
    name: String,
    /// The connection as fred's events describe it (clients built here only).
    health: Option<Health>,
    /// Whether `health` may fail calls fast: only for a standalone node, where
    /// one connection is the whole client.
    fail_fast_on_events: bool,
    /// Whether the client is a cluster client (scripts are routed by slot).
    clustered: bool,
    /// The connection task of a client this backend built; stopped on drop.
    task: Option<ConnectHandle>,
    /// Wake-on-release subscriptions (clients built here only).
    releases: Option<ReleaseWatch>,
    /// Restart quarantine: the node's age, forgotten by `health` on every
    /// connection error and reconnection (standalone clients built here
    /// only).
    clock: Option<Arc<NodeClock>>,
    /// Restart quarantine from fred's connection events, drained when asked:
    /// the masters' ages per slot of a cluster client built here (set at
    /// construction), or the ages of a fred [`Client`] passed to
    /// [`new`](FredBackend::new) (subscribed on first use under quarantine).
    /// Empty for a standalone client built here, which uses `clock`.
    followed: OnceLock<Option<cluster_age::ClusterAges>>,
}

impl<C: ClientLike> FredBackend<C> {
    /// Wraps a client you built. Connect it yourself (`client.init().await`, or
    /// `client.connect()` with a reconnect policy); while it is not connected,
    /// calls fail at once with [`ErrorKind::Connection`]. Each call is sent
    /// with a timeout ([`DEFAULT_COMMAND_TIMEOUT`], see
    /// [`with_command_timeout`](Self::with_command_timeout): this crate cannot
    /// tell whether your client drops an unresponsive connection),
    /// fred's fail-fast flag and, unless the client is clustered, a single
    /// write attempt (no replay after a reconnection). `name` is what
    /// [`describe`](LockBackend::describe) reports in statistics and logs; keep
    /// passwords out of it.
    ///
    /// Restart quarantine works when `C` is fred's [`Client`] (standalone or
    /// clustered): see the [crate docs](crate#restart-quarantine).
    pub fn new(client: C, name: impl Into<String>) -> Self {
        FredBackend {
            client: client.with_options(&call_options(&client, Some(DEFAULT_COMMAND_TIMEOUT))),
            name: name.into(),
            health: None,
            fail_fast_on_events: false,
            clustered: client.is_clustered(),
            task: None,
            releases: None,
            clock: None,
            followed: OnceLock::new(),
        }
    }

    /// Sets a timeout on each command, and on the wake-on-release subscription
    /// of [`watch_releases`](LockBackend::watch_releases).
    ///
    /// A backend made by [`connect`](FredBackend::connect),
    /// [`connect_cluster`](FredBackend::connect_cluster) or
    /// [`from_config`](FredBackend::from_config) sends its commands without
    /// one: the core bounds every round by its per-node timeout and drops the
    /// calls still pending, and those clients drop a connection with a command
    /// unanswered for [`DEFAULT_UNRESPONSIVE_TIMEOUT`], failing its calls. A
    /// timeout per command would arm a second timer for every node of every
    /// round (1 000 to 1 600 instructions a call, 6 % of the client's
    /// instructions per acquire + release at 5 nodes) for nothing. Set one for direct use of the backend
    /// with a shorter bound; keep it at least as long as the core's
    /// `node_timeout`. The subscription waits [`DEFAULT_COMMAND_TIMEOUT`]
    /// unless this is set. A backend made by [`new`](FredBackend::new) has
    /// [`DEFAULT_COMMAND_TIMEOUT`] on each command until this changes it.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        let client: &C = &self.client;
        self.client = client.with_options(&call_options(client, Some(timeout)));
        self
    }

    /// The timeout of each command, subscriptions included.
    fn command_timeout(&self) -> Duration {
        self.client
            .options()
            .timeout
            .unwrap_or(DEFAULT_COMMAND_TIMEOUT)
    }

    /// How many release notifications this backend's subscription has
    /// received so far (wake-on-release; 0 before its first watch). The
    /// subscription follows the waiters of this process, so while nothing
    /// here waits, this does not move, however busy other processes' locks
    /// are.
    pub fn wake_messages(&self) -> u64 {
        self.releases.as_ref().map_or(0, ReleaseWatch::received)
    }

    /// The underlying fred client, e.g. to run other commands on the node.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// Refuses a call at once when fred's events say the standalone node's
    /// connection just failed (see the `health` module).
    ///
    /// Not for releases: a command fred took earlier (say an acquire whose
    /// future the core dropped once the quorum had answered) waits in fred's
    /// queue until the connection is back and is written then; a release
    /// refused here would leave that acquire's key standing until its TTL,
    /// while a release handed to fred is written after it, on the same
    /// connection, and deletes it.
    fn refuse_if_down(&self) -> Result<(), BackendError> {
        match self
            .health
            .as_ref()
            .filter(|h| self.fail_fast_on_events && h.is_down())
        {
            Some(health) => Err(self.not_connected(health.last_error(), None)),
            None => Ok(()),
        }
    }

    /// Maps a fred error; a call refused because the client is not connected
    /// is explained by the last connection error fred reported.
    fn explain(&self, error: FredError) -> BackendError {
        let not_connected = *error.kind() == FredErrorKind::Canceled
            || (*error.kind() == FredErrorKind::Cluster
                && error.details().contains("Missing server"));
        if !not_connected {
            return map_error(error);
        }
        let last = self.health.as_ref().and_then(Health::last_error);
        self.not_connected(last, Some(error))
    }

    /// The client is not connected: say why, with the last connection error
    /// fred reported when there is one (a wrong password is `Auth`).
    fn not_connected(&self, last: Option<FredError>, error: Option<FredError>) -> BackendError {
        match last.or(error) {
            Some(cause) => {
                let kind = match classify(&cause) {
                    kind @ (ErrorKind::Auth | ErrorKind::Busy) => kind,
                    _ => ErrorKind::Connection,
                };
                BackendError::with_source(
                    kind,
                    format!("{} is not connected: {cause}", self.name),
                    cause,
                )
            }
            None => BackendError::new(
                ErrorKind::Connection,
                format!("{} is not connected", self.name),
            ),
        }
    }
}

/// The options every call carries: fail fast, so a call on a disconnected
/// client errors at once instead of waiting for a reconnection, and the
/// timeout, if any (see [`FredBackend::with_command_timeout`]).
///
/// On a standalone node a call is also written once only: a command fred
/// could not route (the connection just died) would otherwise wait in its
/// retry buffer until the node is back, and be replayed then. A cluster client
/// keeps fred's attempts, which it spends following `MOVED`/`ASK`.
fn call_options<C: ClientLike>(client: &C, timeout: Option<Duration>) -> Options {
    Options {
        timeout,
        fail_fast: true,
        max_attempts: (!client.is_clustered()).then_some(1),
        ..Options::default()
    }
}

/// Restart quarantine on a backend that cannot follow its connection.
fn quarantine_unsupported() -> BackendError {
    BackendError::new(
        ErrorKind::Unsupported,
        "restart quarantine needs a FredBackend built by connect, connect_cluster or \
         from_config, or a fred Client passed to FredBackend::new (it follows the \
         connections' events to notice a restart); other client types (a Pool, ...) \
         cannot; turn restart_quarantine off for them",
    )
}

impl<C: ClientLike> Drop for FredBackend<C> {
    fn drop(&mut self) {
        // A client built by this crate reconnects forever; stop it with its
        // owner. A client passed to `new` is left alone.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl<C: ClientLike> std::fmt::Debug for FredBackend<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FredBackend")
            .field("name", &self.name)
            .field("options", self.client.options())
            .finish_non_exhaustive()
    }
}

impl<C: ClientLike + 'static> FredBackend<C> {
    /// The ages followed from fred's events, if any: see the `followed`
    /// field. A fred [`Client`] passed to [`new`](FredBackend::new) is
    /// subscribed to here, the first time quarantine asks (every age starts
    /// unknown, so earlier events do not matter); other client types (a
    /// pool, ...) have none.
    fn followed(&self) -> Option<&cluster_age::ClusterAges> {
        self.followed
            .get_or_init(|| {
                let client: &C = &self.client;
                (client as &dyn Any)
                    .downcast_ref::<Client>()
                    .map(cluster_age::ClusterAges::watch)
            })
            .as_ref()
    }
}

#[async_trait]
impl<C: ClientLike + KeysInterface + 'static> LockBackend for FredBackend<C> {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.refuse_if_down()?;
        if let Some(max_ttl) = request.restart_quarantine() {
            return self
                .acquire_quarantined(request, max_ttl, self.followed())
                .await;
        }
        self.run(Call::acquire(request), request).await
    }

    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.refuse_if_down()?;
        self.run(Call::script(request), request).await
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        // Never refused ahead of fred: see `refuse_if_down`.
        self.run(Call::script(request), request).await
    }

    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.refuse_if_down()?;
        self.run(Call::script(request), request).await
    }

    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        match &self.releases {
            Some(releases) => {
                let timeout = self.command_timeout();
                releases.watch(channels, waker, timeout).await
            }
            None => Err(BackendError::new(
                ErrorKind::Unsupported,
                "wake-on-release needs a backend built by FredBackend::connect, \
                 connect_cluster or from_config; waiters fall back to the retry delay",
            )),
        }
    }

    async fn unwatch_releases(&self) -> Result<(), BackendError> {
        match &self.releases {
            Some(releases) => releases.unwatch(self.command_timeout()).await,
            None => Ok(()),
        }
    }

    async fn inspect(&self, inspection: &Inspection) -> Result<Vec<ServerReplies>, BackendError> {
        self.refuse_if_down()?;
        self.run_inspection(inspection).await
    }

    fn pubsub_kind(&self) -> PubSubKind {
        // A cluster's waiters subscribe to shard channels.
        if self.clustered {
            PubSubKind::Sharded
        } else {
            PubSubKind::Classic
        }
    }

    fn node_age(&self, resources: &[String]) -> NodeAge {
        if let Some(ages) = self.followed() {
            return ages.age(resources);
        }
        // Without a clock the age is never known: the core then asks
        // `refresh_node_age`, which says why.
        self.clock.as_ref().map_or(NodeAge::Unknown, |c| c.age())
    }

    async fn refresh_node_age(&self, resources: &[String]) -> Result<(), BackendError> {
        if let Some(ages) = self.followed() {
            // `INFO server` from the master that serves the resources' slot
            // (fred routes a custom command by the slot given), read again
            // if a connection was made meanwhile.
            let slot = ages.slot(resources)?;
            for _ in 0..cluster_age::READS {
                let generation = ages.generation();
                let command =
                    CustomCommand::new_static(INFO_SERVER[0], ClusterHash::Custom(slot), false);
                let value = self
                    .client
                    .custom::<Value, _>(command, vec![Value::from(INFO_SERVER[1])])
                    .await
                    .map_err(|e| self.forget_if_broken(self.explain(e)))?;
                if ages.learn(slot, generation, &value, Instant::now())? {
                    break;
                }
            }
            return Ok(());
        }
        let Some(clock) = &self.clock else {
            return Err(quarantine_unsupported());
        };
        let generation = clock.generation();
        let command = CustomCommand::new_static(INFO_SERVER[0], ClusterHash::Random, false);
        let value = self
            .client
            .custom::<Value, _>(command, vec![Value::from(INFO_SERVER[1])])
            .await
            .map_err(|e| self.forget_if_broken(self.explain(e)))?;
        let received = Instant::now();
        let info = value
            .as_str()
            .and_then(|text| ServerInfo::parse(&text))
            .ok_or_else(|| {
                BackendError::new(
                    ErrorKind::Protocol,
                    "INFO server answered without uptime_in_seconds",
                )
            })?;
        clock.learn(generation, &info, received);
        Ok(())
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redlock_core::wake::{release_channel, ReleaseWait};

    /// Against a node that accepts connections and never answers, a watch
    /// gives up after the backend's command timeout, not the default one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_release_subscriber_honours_the_command_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        });
        let timeout = Duration::from_millis(150);
        assert!(timeout < DEFAULT_COMMAND_TIMEOUT / 2);
        let backend = FredBackend::connect(&format!("redis://127.0.0.1:{port}"))
            .await
            .expect("construction never waits for the node")
            .with_command_timeout(timeout);

        let wait = ReleaseWait::new();
        let result = backend
            .watch_releases(&[release_channel("r")], &wait.waker())
            .await;
        // The error names the timeout that ran out: the configured one. (No
        // assertion on elapsed time: a loaded machine may stall any test.)
        let err = result.expect_err("a silent node cannot subscribe");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.message().contains("150ms"), "{err}");
    }
}
