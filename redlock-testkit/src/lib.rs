//! Real Redis for tests: launchers, fault injection, a probe, and the
//! conformance suite every redlock backend runs.
//!
//! - [`server`]: start real `redis-server` processes on free loopback ports:
//!   one node ([`RedisNode`](server::RedisNode)), N independent nodes
//!   ([`RedisNodes`](server::RedisNodes)), a Redis Cluster
//!   ([`RedisCluster`](server::RedisCluster)); kill, pause (SIGSTOP), resume and
//!   restart them. Each test owns its servers; they stop when dropped.
//! - [`probe`]: a small synchronous inspector (`GET`, `PTTL`, `DBSIZE`, ...) to
//!   assert what the server really holds.
//! - [`proxy`]: a TCP fault proxy (latency, blackhole, resets, garbage).
//! - [`conformance`]: one public async function per behaviour, generic over a
//!   [`Fixture`](fixture::Fixture) (real Redis nodes through your
//!   [`Connector`], or in-process nodes), and [`conformance_tests!`] to turn
//!   them into `#[test]`s. One table lists the cases; it generates both the
//!   tests and [the documentation](conformance#the-cases).
//! - [`fixture`]: where the cases get their nodes: real ones, real ones over
//!   TLS with an ACL user ([`TlsFixture`](fixture::TlsFixture)), or
//!   in-process ones.
//!
//! The binaries `redis-server` and `redis-cli` must be installed
//! (`apt-get install redis-server redis-tools` on Debian and Ubuntu); when
//! they are not, the launchers fail with
//! [`LaunchError::MissingBinary`](server::LaunchError::MissingBinary) saying so.
//! Nodes with a movable wall clock
//! ([`NodeOptions::fake_clock`](server::NodeOptions::fake_clock)) also need
//! libfaketime (`apt-get install faketime`); without it they fail with
//! [`LaunchError::MissingLibfaketime`](server::LaunchError::MissingLibfaketime).
//!
//! # Depending on it from outside this workspace
//!
//! The testkit is an ordinary dev-dependency. Take `redlock-core` and
//! `redlock-testkit` from the same release (or the same git revision, or
//! the same checkout): the suite's cases are generic over `redlock-core`'s
//! [`LockBackend`], and two versions of that trait are two different traits
//! to the compiler.
//!
//! ```toml
//! [dependencies]
//! redlock-core = "0.1"
//!
//! [dev-dependencies]
//! redlock-testkit = "0.1"
//! # or, before a release: the same source for both crates
//! # redlock-core = { git = "<the redlock repository>" }
//! # redlock-testkit = { git = "<the redlock repository>" }
//! # or a local checkout:
//! # redlock-core = { path = "../redlock/redlock-core" }
//! # redlock-testkit = { path = "../redlock/redlock-testkit" }
//! ```
//!
//! Then one file in your `tests/` runs the suite. For a backend that keeps
//! its state in process (no Redis), the in-process fixture needs nothing
//! else installed; a `Fn() -> B` makes each node:
//!
//! ```no_run
//! // tests/conformance.rs of a crate outside this workspace
//! # mod my_lock_store { pub use redlock_core::MemoryBackend as MyStore; }
//! redlock_testkit::conformance_tests!(
//!     fixture = redlock_testkit::fixture::InProcess::new(my_lock_store::MyStore::new),
//!     block_on = redlock_testkit::block_on_futures,
//! );
//! # fn main() {}
//! ```
//!
//! Cases that need real Redis (through a [`Connector`], below) need
//! `redis-server` and `redis-cli` on the `PATH` of `cargo test`; they start
//! their own servers on free loopback ports, so nothing else must run.
//! The macro names only `redlock_testkit` paths: your crate needs no other
//! import for it.
//!
//! # Writing a new adapter
//!
//! A backend for a new Redis client is three steps and one macro call.
//!
//! **1. Implement [`LockBackend`]** in your crate, over
//! [`redlock_core::protocol`], which decides everything about Redis itself:
//! [`Call::acquire`](redlock_core::protocol::Call::acquire) (or
//! [`Call::script`](redlock_core::protocol::Call::script) for extend, release
//! and fence) describes the command to send, its
//! [`args`](redlock_core::protocol::Call::args) are what you hand your client,
//! [`fallback`](redlock_core::protocol::Call::fallback) says whether an error
//! code (`NOSCRIPT`) means "send it again as `EVAL`", and
//! [`reply`](redlock_core::protocol::Call::reply) turns your client's reply,
//! converted to a [`RawReply`](redlock_core::protocol::RawReply), into the
//! node's vote. Map your client's own errors (I/O, timeouts, routing) to a
//! [`BackendError`] of the closest [`ErrorKind`], and server error replies
//! through [`server_error_kind`](redlock_core::protocol::server_error_kind).
//! `watch_releases` is optional (see [`redlock_core::wake::ReleaseHub`]).
//! Connect lazily: a node that is down must fail its calls, not the
//! construction. See [`redlock_core::backend`], and `redlock-redis-rs` for a
//! complete adapter in a few hundred lines.
//!
//! **2. Implement [`Connector`]** in `tests/conformance.rs`: how the suite
//! gets a backend for a node URL (`redis://[:password@]127.0.0.1:PORT`), and
//! which optional behaviours your backend has ([`Capabilities`]): fencing
//! tokens, wake-on-release, custom scripts, a Redis Cluster mode (then also
//! implement [`Connector::cluster`]). A case for a capability you do not
//! declare is skipped with a `skipped:` line; one you declare must work (an
//! `ErrorKind::Unsupported` answer fails the case).
//!
//! **3. Call the macro** with the connector and a function that runs a future
//! to completion on the runtime your client needs:
//!
//! ```no_run
//! # mod my_adapter {
//! #     use redlock_core::{BackendError, MemoryBackend};
//! #     pub type MyBackend = MemoryBackend;
//! #     pub trait Connect {
//! #         fn connect_lazy(url: &str) -> Result<MemoryBackend, BackendError>;
//! #         fn cluster(urls: &[String]) -> std::future::Ready<Result<MemoryBackend, BackendError>>;
//! #     }
//! #     impl Connect for MemoryBackend {
//! #         fn connect_lazy(_: &str) -> Result<MemoryBackend, BackendError> {
//! #             Ok(MemoryBackend::new())
//! #         }
//! #         fn cluster(_: &[String]) -> std::future::Ready<Result<MemoryBackend, BackendError>> {
//! #             std::future::ready(Ok(MemoryBackend::new()))
//! #         }
//! #     }
//! # }
//! # use my_adapter::Connect;
//! // my-adapter/tests/conformance.rs
//! use my_adapter::MyBackend;
//! use redlock_core::{async_trait, BackendError};
//! use redlock_testkit::{Capabilities, Connector};
//!
//! struct MyConnector;
//!
//! #[async_trait]
//! impl Connector for MyConnector {
//!     type Backend = MyBackend;
//!
//!     async fn standalone(&self, url: &str) -> Result<MyBackend, BackendError> {
//!         MyBackend::connect_lazy(url)
//!     }
//!
//!     // Leave both out if your client has no cluster mode: the cluster
//!     // cases are then skipped.
//!     async fn cluster(&self, urls: &[String]) -> Result<MyBackend, BackendError> {
//!         MyBackend::cluster(urls).await
//!     }
//!
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::FENCING | Capabilities::CUSTOM_SCRIPTS | Capabilities::CLUSTER
//!     }
//! }
//!
//! redlock_testkit::conformance_tests!(
//!     connector = MyConnector,
//!     block_on = redlock_testkit::block_on_tokio,
//! );
//! # fn main() {}
//! ```
//!
//! and `[dev-dependencies] redlock-testkit = { workspace = true }`. Done:
//! `cargo test -p my-adapter` starts real servers, runs every case of
//! [`conformance`] as its own `#[test]`, and names the behaviour that failed.
//!
//! The cases are runtime neutral; `block_on` decides the executor:
//! [`block_on_tokio`] (current thread, I/O and time enabled),
//! [`block_on_tokio_multi_thread`], [`block_on_futures`] (a runtime-free
//! executor: fine for clients that bring their own reactor, such as
//! `async-io`), or from your own dependencies `smol::block_on` and
//! `async_std::task::block_on`. To run the suite on several runtimes, call
//! the macro once per runtime, each inside its own `mod`.
//!
//! A backend that is not Redis (an in-process store, a database) runs the
//! same cases on in-process nodes ([`fixture::InProcess`]); the cases that
//! need a real server (passwords, the script cache, a cluster) are skipped,
//! the faults are emulated:
//!
//! ```no_run
//! # struct MyStore;
//! # impl MyStore {
//! #     fn new_node() -> redlock_core::MemoryBackend {
//! #         redlock_core::MemoryBackend::new()
//! #     }
//! # }
//! use redlock_testkit::{fixture::InProcess, Capabilities};
//!
//! redlock_testkit::conformance_tests!(
//!     // Fn() -> B, B: LockBackend + Clone; clones share a node
//!     fixture = InProcess::new(MyStore::new_node).capabilities(Capabilities::FENCING),
//!     block_on = redlock_testkit::block_on_futures,
//! );
//! # fn main() {}
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::ops::BitOr;

use redlock_core::{async_trait, BackendError, ErrorKind, LockBackend};

mod table;

pub mod conformance;
pub mod fixture;
pub mod probe;
#[cfg(feature = "tokio")]
pub mod proxy;
pub mod server;

/// How the conformance suite reaches the backend under test on real Redis
/// nodes. An adapter's author implements this once and calls
/// [`conformance_tests!`].
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The backend type under test.
    type Backend: LockBackend + 'static;

    /// A backend for the standalone node at `url`
    /// (`redis://[:password@]127.0.0.1:PORT`, or
    /// `rediss://USER:PASSWORD@127.0.0.1:PORT` under
    /// [`TlsFixture`](fixture::TlsFixture)). Must succeed even when the node
    /// is down (connect lazily): a node that is down fails its calls, not the
    /// construction of the lock manager.
    async fn standalone(&self, url: &str) -> Result<Self::Backend, BackendError>;

    /// A backend for the Redis Cluster whose seed nodes are `urls`. Only
    /// called when [`capabilities`](Self::capabilities) declares
    /// [`Capabilities::CLUSTER`]; the default answers `Unsupported`.
    async fn cluster(&self, urls: &[String]) -> Result<Self::Backend, BackendError> {
        let _ = urls;
        Err(BackendError::new(
            ErrorKind::Unsupported,
            "this connector has no cluster mode",
        ))
    }

    /// The optional behaviours the backend implements. The default declares
    /// none, so their cases are skipped (each with a `skipped:` line).
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
}

/// Optional behaviours a backend declares, so the suite knows which cases to
/// run: a case for an undeclared one is skipped and says so; a declared one
/// must work (answering `ErrorKind::Unsupported` fails the case).
///
/// Combine them with `|`: `Capabilities::FENCING | Capabilities::CLUSTER`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Nothing optional.
    pub const NONE: Capabilities = Capabilities(0);
    /// Fencing tokens: [`LockBackend::fence`] and the fenced acquire.
    pub const FENCING: Capabilities = Capabilities(1);
    /// Wake-on-release: [`LockBackend::watch_releases`].
    pub const WAKE_ON_RELEASE: Capabilities = Capabilities(1 << 1);
    /// Custom Lua scripts for acquire, extend and release.
    pub const CUSTOM_SCRIPTS: Capabilities = Capabilities(1 << 2);
    /// A Redis Cluster mode ([`Connector::cluster`]).
    pub const CLUSTER: Capabilities = Capabilities(1 << 3);
    /// Restart quarantine: [`LockBackend::node_age`] tracks the node's age
    /// (read on every (re)connection) and a restarted node is quarantined.
    pub const RESTART_QUARANTINE: Capabilities = Capabilities(1 << 4);
    /// Read-only inspection of the nodes ([`LockBackend::inspect`]): what
    /// [`Redlock::doctor`](redlock_core::Redlock::doctor) and
    /// [`Redlock::status`](redlock_core::Redlock::status) run on.
    pub const INSPECT: Capabilities = Capabilities(1 << 5);
    /// Every capability.
    pub const ALL: Capabilities = Capabilities(0b11_1111);

    const NAMES: [(Capabilities, &'static str); 6] = [
        (Capabilities::FENCING, "fencing"),
        (Capabilities::WAKE_ON_RELEASE, "wake-on-release"),
        (Capabilities::CUSTOM_SCRIPTS, "custom scripts"),
        (Capabilities::CLUSTER, "cluster"),
        (Capabilities::RESTART_QUARANTINE, "restart quarantine"),
        (Capabilities::INSPECT, "inspection (doctor, status)"),
    ];

    /// Both sets.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The capabilities of `self` that `declared` lacks.
    pub const fn missing_from(self, declared: Capabilities) -> Capabilities {
        Capabilities(self.0 & !declared.0)
    }

    /// Whether there is none.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the capabilities in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(c, _)| self.contains(*c))
            .map(|(_, name)| name)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, other: Capabilities) -> Capabilities {
        self.union(other)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Runs `future` to completion on a new current-thread tokio runtime with I/O
/// and time enabled (what tokio-based clients need).
///
/// # Panics
///
/// If the runtime cannot be built.
#[cfg(feature = "tokio")]
pub fn block_on_tokio<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a current-thread tokio runtime")
        .block_on(future)
}

/// Runs `future` to completion on a new two-worker tokio runtime with I/O and
/// time enabled (tasks the client spawns run on other threads).
///
/// # Panics
///
/// If the runtime cannot be built.
#[cfg(feature = "tokio")]
pub fn block_on_tokio_multi_thread<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a multi-thread tokio runtime")
        .block_on(future)
}

/// Runs `future` to completion on the current thread with
/// `futures::executor::block_on`: no runtime at all, for backends that need
/// none (in-process nodes) or bring their own reactor.
pub fn block_on_futures<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// Expands to one `#[test]` per case of [`conformance`] (the
/// [table](conformance#the-cases) decides which), each running the case on a
/// fresh fixture with `block_on`. On real Redis nodes through a [`Connector`]:
///
/// ```no_run
/// # use redlock_core::{async_trait, BackendError, MemoryBackend};
/// # struct MyConnector;
/// # #[async_trait]
/// # impl redlock_testkit::Connector for MyConnector {
/// #     type Backend = MemoryBackend;
/// #     async fn standalone(&self, _: &str) -> Result<MemoryBackend, BackendError> {
/// #         Ok(MemoryBackend::new())
/// #     }
/// # }
/// redlock_testkit::conformance_tests!(
///     connector = MyConnector,                 // an expression, evaluated per test
///     block_on = redlock_testkit::block_on_tokio, // fn(impl Future<Output = T>) -> T
/// );
/// # fn main() {}
/// ```
///
/// or on any [`Fixture`](fixture::Fixture), such as in-process nodes:
///
/// ```no_run
/// redlock_testkit::conformance_tests!(
///     fixture = redlock_testkit::fixture::InProcess::new(redlock_core::MemoryBackend::new),
///     block_on = redlock_testkit::block_on_futures,
/// );
/// # fn main() {}
/// ```
///
/// The test functions are named after the cases (`exclusivity`,
/// `minority_held_3`, ...); call the macro inside a `mod` to run it more than
/// once in one file. A case the fixture cannot run passes after printing
/// `skipped: <case>: <reason>` (see `cargo test -- --nocapture`).
#[macro_export]
macro_rules! conformance_tests {
    (connector = $connector:expr, block_on = $block_on:expr $(,)?) => {
        $crate::conformance_tests!(
            fixture = $crate::fixture::RedisFixture::new($connector),
            block_on = $block_on,
        );
    };
    (fixture = $fixture:expr, block_on = $block_on:expr $(,)?) => {
        $crate::conformance_cases!(__conformance_tests { ($fixture) ($block_on) });
    };
}
