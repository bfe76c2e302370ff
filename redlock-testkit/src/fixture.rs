//! Where a conformance case gets its nodes: real `redis-server` processes
//! ([`RedisFixture`], over an adapter's [`Connector`]) or nodes kept in this
//! process ([`InProcess`], over a `Fn() -> B` factory such as
//! `MemoryBackend::new` or your own backend's).
//!
//! A case starts its own nodes through [`Fixture::start`], gets fresh
//! backends for them (one set per simulated process) through
//! [`Fixture::backend`], and, where the fixture can, looks at what a node
//! really holds ([`Nodes::inspect`]) and injects faults ([`Nodes::kill`],
//! [`Nodes::pause`], [`Nodes::restart`]). What a case cannot do without is a
//! [`Need`]; a fixture that lacks one skips the case and says so.
//!
//! | | [`RedisFixture`] | [`InProcess`] |
//! |---|---|---|
//! | nodes | `redis-server` processes on free loopback ports | `new_node()` per node, wrapped in an [`InProcessNode`] |
//! | [`Need::Inspect`] | `GET`, `PTTL`, `DBSIZE` through a [`Probe`] | with [`InProcess::inspected`], through the node's [`Inspect`] |
//! | [`Need::Kill`], [`Need::Pause`], [`Need::Restart`] | `SIGKILL`, `SIGSTOP`/`SIGCONT`, a restart with persistence | emulated: a killed node fails its calls with `Connection`, a paused one answers nothing until resumed, a restarted one keeps its keys |
//! | [`Need::Password`], [`Need::ScriptCache`], [`Need::Cluster`] | yes | no |
//! | capabilities | the connector's [`Connector::capabilities`] | as given to [`InProcess::capabilities`] |

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redlock_core::wake::ReleaseWaker;
use redlock_core::{
    async_trait, BackendError, ErrorKind, LockBackend, MemoryBackend, Reply, Request,
};

use crate::probe::Probe;
use crate::server::{NodeOptions, RedisNodes};
use crate::{Capabilities, Connector};

/// Something a case cannot run without, beyond what every fixture offers
/// (making backends for fresh, independent nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Need {
    /// Reading a key's value, TTL and fence counter on a node, and setting a
    /// fence counter ([`Inspect`]).
    Inspect,
    /// Killing a node: its calls fail as connection errors.
    Kill,
    /// Pausing a node: it accepts calls and answers none until resumed.
    Pause,
    /// Restarting a killed node with its keys kept (persistence).
    Restart,
    /// A node that requires a password, reached with a right and a wrong one.
    Password,
    /// A Redis script cache to flush (`SCRIPT FLUSH`) and command statistics
    /// (`INFO commandstats`) to read.
    ScriptCache,
    /// A real Redis Cluster.
    Cluster,
}

impl Need {
    /// What the need is, for skip notes.
    pub fn describe(self) -> &'static str {
        match self {
            Need::Inspect => "inspecting what a node holds",
            Need::Kill => "killing a node",
            Need::Pause => "pausing a node",
            Need::Restart => "restarting a node with its keys kept",
            Need::Password => "a password-protected node",
            Need::ScriptCache => "a Redis script cache and command statistics",
            Need::Cluster => "a Redis Cluster",
        }
    }
}

/// A server-side view of one node, for assertions: what it really holds,
/// whatever the backend under test says.
///
/// Implemented for [`Probe`] (a real node) and for [`MemoryBackend`]; an
/// in-process backend of your own can implement it too and run its cases
/// with [`InProcess::inspected`].
pub trait Inspect: Send + Sync {
    /// The value of a live key.
    fn value(&self, key: &str) -> Option<String>;
    /// As Redis `PTTL`: `None` if the key does not exist, `Some(-1)` if it
    /// never expires, else the milliseconds left.
    fn ttl_millis(&self, key: &str) -> Option<i64>;
    /// How many live keys the node holds (as `DBSIZE`; fence counters may
    /// count or not).
    fn key_count(&self) -> usize;
    /// The fence counter stored under `key`
    /// ([`fence_key`](redlock_core::keys::fence_key) of a resource).
    fn fence_counter(&self, key: &str) -> Option<u64>;
    /// Sets a fence counter (a node whose counter is ahead of the others).
    fn set_fence_counter(&self, key: &str, value: u64);
    /// Removes a fence counter a case created, so nothing is left behind. A
    /// node whose counters cannot be removed (they are permanent by design)
    /// may leave it; in-process nodes are dropped with their case anyway.
    fn remove_fence_counter(&self, key: &str);
}

impl Inspect for Probe {
    fn value(&self, key: &str) -> Option<String> {
        self.get(key)
    }

    fn ttl_millis(&self, key: &str) -> Option<i64> {
        self.pttl(key)
    }

    fn key_count(&self) -> usize {
        self.dbsize()
    }

    fn fence_counter(&self, key: &str) -> Option<u64> {
        self.get(key).map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("fence counter {key} is not a number: {v:?}"))
        })
    }

    fn set_fence_counter(&self, key: &str, value: u64) {
        self.query::<()>(redis::cmd("SET").arg(key).arg(value));
    }

    fn remove_fence_counter(&self, key: &str) {
        self.del(key);
    }
}

impl Inspect for MemoryBackend {
    fn value(&self, key: &str) -> Option<String> {
        self.get(key)
    }

    fn ttl_millis(&self, key: &str) -> Option<i64> {
        match self.ttl(key) {
            Some(ttl) => Some(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            // Fence counters never expire.
            None => self.fence_counter(key).map(|_| -1),
        }
    }

    fn key_count(&self) -> usize {
        self.len()
    }

    fn fence_counter(&self, key: &str) -> Option<u64> {
        MemoryBackend::fence_counter(self, key)
    }

    fn set_fence_counter(&self, key: &str, value: u64) {
        MemoryBackend::set_fence_counter(self, key, value);
    }

    fn remove_fence_counter(&self, _key: &str) {}
}

/// The nodes a fixture started for one case.
pub trait Nodes: Send + Sync {
    /// How many.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The server-side view of node `i`, if this fixture has one
    /// ([`Need::Inspect`]).
    fn inspect(&self, i: usize) -> Option<&dyn Inspect>;

    /// The probe of node `i` when it is a real `redis-server`, for checks
    /// only Redis can answer (`INFO commandstats`, `SCRIPT FLUSH`).
    fn redis(&self, i: usize) -> Option<&Probe>;

    /// Kills node `i` ([`Need::Kill`]).
    fn kill(&self, i: usize) -> Result<(), String>;

    /// Pauses node `i` ([`Need::Pause`]).
    fn pause(&self, i: usize) -> Result<(), String>;

    /// Resumes a paused node `i`.
    fn resume(&self, i: usize) -> Result<(), String>;

    /// Restarts node `i`, killed or not, keeping its keys
    /// ([`Need::Restart`]; the case started the nodes with persistence).
    fn restart(&self, i: usize) -> Result<(), String>;

    /// Whether node `i` runs (was not killed).
    fn is_up(&self, i: usize) -> bool;

    /// Whether node `i` is paused.
    fn is_paused(&self, i: usize) -> bool;
}

/// Where a case gets its nodes and its backends; see the [module docs](self).
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The backend type under test.
    type Backend: LockBackend + 'static;
    /// The nodes of one case.
    type Nodes: Nodes;

    /// What the cases run on, for skip notes ("real Redis", "in-process").
    fn describe(&self) -> Cow<'_, str>;

    /// The optional behaviours the backend declares. A case that needs one
    /// that is not declared is skipped (and says so); one that is declared
    /// must work: `ErrorKind::Unsupported` then fails the case.
    fn capabilities(&self) -> Capabilities;

    /// Whether this fixture can do what `need` asks.
    fn provides(&self, need: Need) -> bool;

    /// Starts `n` fresh, empty, independent nodes for case `case`.
    /// `options` matter to real servers (persistence, password).
    fn start(&self, case: &str, n: usize, options: &NodeOptions) -> Result<Self::Nodes, String>;

    /// A fresh backend for node `i`, as a new process would make it (its own
    /// connections, if any). Must succeed while the node is down.
    async fn backend(&self, nodes: &Self::Nodes, i: usize) -> Result<Self::Backend, BackendError>;

    /// A fresh backend for node `i` that authenticates with `password`
    /// instead of the node's own ([`Need::Password`]); `None` if this
    /// fixture has no passwords.
    async fn backend_with_password(
        &self,
        nodes: &Self::Nodes,
        i: usize,
        password: &str,
    ) -> Option<Result<Self::Backend, BackendError>>;

    /// A backend for the Redis Cluster whose seed nodes are `urls`
    /// ([`Need::Cluster`]).
    async fn cluster_backend(&self, urls: &[String]) -> Result<Self::Backend, BackendError>;
}

// ---------------------------------------------------------------------------
// Real Redis

/// Real `redis-server` processes, reached through an adapter's
/// [`Connector`]: what `conformance_tests!(connector = ...)` runs on.
#[derive(Clone, Debug, Default)]
pub struct RedisFixture<C> {
    connector: C,
}

impl<C: Connector> RedisFixture<C> {
    /// Real nodes, reached through `connector`.
    pub fn new(connector: C) -> Self {
        RedisFixture { connector }
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.connector
    }
}

/// The nodes of one case on [`RedisFixture`]: real servers and a probe for each.
#[derive(Debug)]
pub struct RedisCaseNodes {
    servers: RedisNodes,
    probes: Vec<Probe>,
}

impl RedisCaseNodes {
    /// The servers.
    pub fn servers(&self) -> &RedisNodes {
        &self.servers
    }
}

impl Nodes for RedisCaseNodes {
    fn len(&self) -> usize {
        self.servers.len()
    }

    fn inspect(&self, i: usize) -> Option<&dyn Inspect> {
        Some(&self.probes[i])
    }

    fn redis(&self, i: usize) -> Option<&Probe> {
        Some(&self.probes[i])
    }

    fn kill(&self, i: usize) -> Result<(), String> {
        self.servers[i].kill();
        Ok(())
    }

    fn pause(&self, i: usize) -> Result<(), String> {
        self.servers[i].pause().map_err(|e| e.to_string())
    }

    fn resume(&self, i: usize) -> Result<(), String> {
        self.servers[i].resume().map_err(|e| e.to_string())
    }

    fn restart(&self, i: usize) -> Result<(), String> {
        self.servers[i].restart().map_err(|e| e.to_string())
    }

    fn is_up(&self, i: usize) -> bool {
        self.servers[i].is_running()
    }

    fn is_paused(&self, i: usize) -> bool {
        self.servers[i].is_paused()
    }
}

#[async_trait]
impl<C: Connector> Fixture for RedisFixture<C> {
    type Backend = C::Backend;
    type Nodes = RedisCaseNodes;

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed("real Redis")
    }

    fn capabilities(&self) -> Capabilities {
        self.connector.capabilities()
    }

    fn provides(&self, _need: Need) -> bool {
        true
    }

    fn start(&self, case: &str, n: usize, options: &NodeOptions) -> Result<RedisCaseNodes, String> {
        let servers = RedisNodes::start_with(n, options.clone())
            .map_err(|e| format!("case `{case}`: could not start {n} redis-server node(s): {e}"))?;
        let probes = servers.probes();
        Ok(RedisCaseNodes { servers, probes })
    }

    async fn backend(&self, nodes: &RedisCaseNodes, i: usize) -> Result<C::Backend, BackendError> {
        self.connector.standalone(&nodes.servers[i].url()).await
    }

    async fn backend_with_password(
        &self,
        nodes: &RedisCaseNodes,
        i: usize,
        password: &str,
    ) -> Option<Result<C::Backend, BackendError>> {
        let url = format!("redis://:{password}@127.0.0.1:{}", nodes.servers[i].port());
        Some(self.connector.standalone(&url).await)
    }

    async fn cluster_backend(&self, urls: &[String]) -> Result<C::Backend, BackendError> {
        self.connector.cluster(urls).await
    }
}

// ---------------------------------------------------------------------------
// In-process nodes

/// Nodes kept in this process, made by a `Fn() -> B` factory (one fresh,
/// independent node per call; clones of a node share it), for backends that
/// are not Redis: `MemoryBackend`, a lease table, a wrapper. What
/// `conformance_tests!(fixture = ...)` runs on:
///
/// ```no_run
/// use redlock_core::MemoryBackend;
/// use redlock_testkit::{fixture::InProcess, Capabilities};
///
/// redlock_testkit::conformance_tests!(
///     fixture = InProcess::new(MemoryBackend::new)
///         .inspected() // MemoryBackend implements Inspect
///         .capabilities(Capabilities::FENCING | Capabilities::WAKE_ON_RELEASE),
///     block_on = redlock_testkit::block_on_futures,
/// );
/// # fn main() {}
/// ```
///
/// Each node is wrapped in an [`InProcessNode`], which emulates the faults
/// ([`Need::Kill`], [`Need::Pause`], [`Need::Restart`]).
pub struct InProcess<F, B> {
    new_node: F,
    capabilities: Capabilities,
    inspector: Option<fn(&B) -> &dyn Inspect>,
    _node: PhantomData<fn() -> B>,
}

impl<F, B> fmt::Debug for InProcess<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcess")
            .field("node", &std::any::type_name::<B>())
            .field("capabilities", &self.capabilities)
            .field("inspected", &self.inspector.is_some())
            .finish()
    }
}

impl<F, B> InProcess<F, B>
where
    F: Fn() -> B + Send + Sync,
    B: LockBackend + Clone + 'static,
{
    /// Nodes made by `new_node`, declaring no capability and not inspected.
    pub fn new(new_node: F) -> Self {
        InProcess {
            new_node,
            capabilities: Capabilities::NONE,
            inspector: None,
            _node: PhantomData,
        }
    }

    /// Declares what the backend implements.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }
}

impl<F, B> InProcess<F, B>
where
    F: Fn() -> B + Send + Sync,
    B: LockBackend + Inspect + Clone + 'static,
{
    /// Lets the cases look at what each node holds ([`Need::Inspect`]).
    pub fn inspected(mut self) -> Self {
        self.inspector = Some(as_inspect::<B>);
        self
    }
}

fn as_inspect<B: Inspect>(node: &B) -> &dyn Inspect {
    node
}

/// The state of an emulated node, shared by its clones.
#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
    paused: AtomicBool,
}

/// An in-process node with emulated faults: killed, it fails every call with
/// `ErrorKind::Connection`; paused, it answers nothing until resumed (the
/// per-node timeout gives up on it, and nothing is applied); restarted, it
/// keeps its keys. Clones share the node.
#[derive(Clone, Debug)]
pub struct InProcessNode<B> {
    node: B,
    health: Arc<Health>,
}

impl<B> InProcessNode<B> {
    /// The node it wraps.
    pub fn inner(&self) -> &B {
        &self.node
    }

    async fn available(&self) -> Result<(), BackendError> {
        while self.health.paused.load(Ordering::SeqCst) {
            futures_timer::Delay::new(Duration::from_millis(5)).await;
        }
        if self.health.down.load(Ordering::SeqCst) {
            return Err(BackendError::new(
                ErrorKind::Connection,
                "the in-process node is down (killed by the fixture)",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl<B: LockBackend> LockBackend for InProcessNode<B> {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.available().await?;
        self.node.acquire(request).await
    }

    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.available().await?;
        self.node.extend(request).await
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.available().await?;
        self.node.release(request).await
    }

    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.available().await?;
        self.node.fence(request).await
    }

    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.available().await?;
        self.node.watch_releases(channels, waker).await
    }

    fn describe(&self) -> Cow<'_, str> {
        self.node.describe()
    }
}

/// The nodes of one case on [`InProcess`].
pub struct InProcessNodes<B> {
    nodes: Vec<InProcessNode<B>>,
    inspector: Option<fn(&B) -> &dyn Inspect>,
}

impl<B> fmt::Debug for InProcessNodes<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessNodes")
            .field("len", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl<B: Send + Sync> Nodes for InProcessNodes<B> {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn inspect(&self, i: usize) -> Option<&dyn Inspect> {
        self.inspector.map(|inspect| inspect(&self.nodes[i].node))
    }

    fn redis(&self, _i: usize) -> Option<&Probe> {
        None
    }

    fn kill(&self, i: usize) -> Result<(), String> {
        self.nodes[i].health.down.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn pause(&self, i: usize) -> Result<(), String> {
        self.nodes[i].health.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn resume(&self, i: usize) -> Result<(), String> {
        self.nodes[i].health.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn restart(&self, i: usize) -> Result<(), String> {
        let health = &self.nodes[i].health;
        health.paused.store(false, Ordering::SeqCst);
        health.down.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn is_up(&self, i: usize) -> bool {
        !self.nodes[i].health.down.load(Ordering::SeqCst)
    }

    fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].health.paused.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<F, B> Fixture for InProcess<F, B>
where
    F: Fn() -> B + Send + Sync,
    B: LockBackend + Clone + 'static,
{
    type Backend = InProcessNode<B>;
    type Nodes = InProcessNodes<B>;

    fn describe(&self) -> Cow<'_, str> {
        Cow::Owned(format!("in-process {}", std::any::type_name::<B>()))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn provides(&self, need: Need) -> bool {
        match need {
            Need::Inspect => self.inspector.is_some(),
            Need::Kill | Need::Pause | Need::Restart => true,
            Need::Password | Need::ScriptCache | Need::Cluster => false,
        }
    }

    fn start(&self, _case: &str, n: usize, _options: &NodeOptions) -> Result<Self::Nodes, String> {
        let nodes = (0..n)
            .map(|_| InProcessNode {
                node: (self.new_node)(),
                health: Arc::default(),
            })
            .collect();
        Ok(InProcessNodes {
            nodes,
            inspector: self.inspector,
        })
    }

    async fn backend(
        &self,
        nodes: &Self::Nodes,
        i: usize,
    ) -> Result<InProcessNode<B>, BackendError> {
        Ok(nodes.nodes[i].clone())
    }

    async fn backend_with_password(
        &self,
        _nodes: &Self::Nodes,
        _i: usize,
        _password: &str,
    ) -> Option<Result<InProcessNode<B>, BackendError>> {
        None
    }

    async fn cluster_backend(&self, _urls: &[String]) -> Result<InProcessNode<B>, BackendError> {
        Err(BackendError::new(
            ErrorKind::Unsupported,
            "in-process nodes have no Redis Cluster",
        ))
    }
}
