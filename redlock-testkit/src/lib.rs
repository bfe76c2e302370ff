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
//! - [`conformance`]: one public async function per behaviour, generic over a
//!   [`Connector`], and [`conformance_tests!`] to turn them into `#[test]`s;
//!   [`conformance::node_independent`] and [`node_independent_tests!`] for
//!   backends that need no Redis process.
//!
//! The binaries `redis-server` and `redis-cli` must be installed
//! (`apt-get install redis-server redis-tools` on Debian and Ubuntu); when
//! they are not, the launchers fail with
//! [`LaunchError::MissingBinary`](server::LaunchError::MissingBinary) saying so.
//!
//! # Writing a new adapter
//!
//! A backend for a new Redis client is three steps and one macro call.
//!
//! **1. Implement [`LockBackend`]** in your crate: run [`Request::script`](redlock_core::Request::script)
//! by `EVALSHA` with its precomputed `sha1()` (falling back to `EVAL` on
//! `NOSCRIPT`) with `KEYS = request.keys()` (the resources, then any extra
//! keys: the fence counters of a fenced acquire) and
//! `ARGV = [request.value(), request.ttl_millis()]` followed by
//! `request.extra_args()` (the token of a fence write-back, the channels of a
//! publishing release); answer [`Reply::from_script_integer`](redlock_core::Reply::from_script_integer)
//! for an integer reply and [`Reply::from_script_pair`](redlock_core::Reply::from_script_pair)
//! for a two-integer array (the fenced acquire). Implement `fence` the same
//! way as `acquire`; `watch_releases` is optional (see
//! [`redlock_core::wake::ReleaseHub`]). Map every client error to a
//! [`BackendError`] of the closest [`ErrorKind`](redlock_core::ErrorKind) (refused connection:
//! `Connection`; `CROSSSLOT`: `CrossSlot`; `NOAUTH`/`WRONGPASS`: `Auth`; ...).
//! Connect lazily: a node that is down must fail its calls, not the
//! construction. See [`redlock_core::backend`].
//!
//! **2. Implement [`Connector`]** in `tests/conformance.rs`: how the suite
//! gets a backend for a node URL (`redis://[:password@]127.0.0.1:PORT`) and,
//! if your client has a cluster mode, for a Redis Cluster's seed URLs.
//!
//! **3. Call the macro** with the connector and a function that runs a future
//! to completion on the runtime your client needs:
//!
//! ```no_run
//! # mod my_adapter {
//! #     use redlock_core::{BackendError, MemoryBackend};
//! #     pub type MyBackend = MemoryBackend;
//! #     pub type MyClusterBackend = MemoryBackend;
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
//! use my_adapter::{MyBackend, MyClusterBackend};
//! use redlock_core::{async_trait, BackendError};
//! use redlock_testkit::Connector;
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
//!     async fn cluster(&self, urls: &[String]) -> Option<Result<MyBackend, BackendError>> {
//!         Some(MyBackend::cluster(urls).await) // or None: the cluster cases are skipped
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
//! semantics-only cases instead:
//!
//! ```no_run
//! # struct MyStore;
//! # impl MyStore {
//! #     fn new_node() -> redlock_core::MemoryBackend {
//! #         redlock_core::MemoryBackend::new()
//! #     }
//! # }
//! redlock_testkit::node_independent_tests!(
//!     new_node = MyStore::new_node, // Fn() -> B, B: LockBackend + Clone; clones share a node
//!     block_on = redlock_testkit::block_on_futures,
//! );
//! # fn main() {}
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;

use redlock_core::{async_trait, BackendError, LockBackend};

pub mod conformance;
pub mod probe;
#[cfg(feature = "tokio")]
pub mod proxy;
pub mod server;

/// How the conformance suite reaches the backend under test. An adapter's
/// author implements this once and calls the suite's macro.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The backend type under test.
    type Backend: LockBackend + 'static;

    /// A backend for the standalone node at `url`
    /// (`redis://[:password@]127.0.0.1:PORT`). Must succeed even when the node
    /// is down (connect lazily): a node that is down fails its calls, not the
    /// construction of the lock manager.
    async fn standalone(&self, url: &str) -> Result<Self::Backend, BackendError>;

    /// A backend for the Redis Cluster whose seed nodes are `urls`, or `None`
    /// if this backend has no cluster mode.
    async fn cluster(&self, urls: &[String]) -> Option<Result<Self::Backend, BackendError>>;
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

/// Expands to one `#[test]` per case of [`conformance`], each running
/// the case with a fresh connector on `block_on`:
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
/// #     async fn cluster(&self, _: &[String]) -> Option<Result<MemoryBackend, BackendError>> {
/// #         None
/// #     }
/// # }
/// redlock_testkit::conformance_tests!(
///     connector = MyConnector,                 // an expression, evaluated per test
///     block_on = redlock_testkit::block_on_tokio, // fn(impl Future<Output = T>) -> T
/// );
/// # fn main() {}
/// ```
///
/// The test functions are named after the cases (`exclusivity`,
/// `minority_held_3`, ...); call the macro inside a `mod` to run it more than
/// once in one file.
#[macro_export]
macro_rules! conformance_tests {
    (connector = $connector:expr, block_on = $block_on:expr $(,)?) => {
        $crate::conformance_tests!(@cases ($connector) ($block_on)
            acquire_extend_release,
            multi_resource_all_or_nothing,
            overlapping_multi_locks,
            exclusivity,
            automatic_expiry,
            release_and_extend_only_by_owner,
            release_of_expired_lock,
            noscript_fallback,
            custom_scripts,
            using_keeps_lock_while_routine_runs,
            using_returns_routine_error,
            cluster_hash_tagged_multi_resource,
            cluster_cross_slot_rejected,
            unreachable_node_refused,
            paused_node_times_out,
            node_restart_with_persistence,
            password_in_url,
            wrong_password_rejected,
            contention,
            bad_input_reaches_no_node,
            fencing_tokens,
            wake_on_release,
        );
        $crate::conformance_tests!(@sized ($connector) ($block_on)
            minority_held_3 => minority_held(3),
            minority_held_5 => minority_held(5),
            minority_killed_3 => minority_killed(3),
            minority_killed_5 => minority_killed(5),
            majority_held_3 => majority_held(3),
            majority_held_5 => majority_held(5),
            majority_killed_3 => majority_killed(3),
            majority_killed_5 => majority_killed(5),
            fencing_race_3 => fencing_race(3),
            fencing_race_5 => fencing_race(5),
        );
    };
    (@cases ($connector:expr) ($block_on:expr) $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            let connector = $connector;
            ($block_on)($crate::conformance::with_deadline(
                stringify!($case),
                $crate::conformance::$case(&connector),
            ));
        }
    )*};
    (@sized ($connector:expr) ($block_on:expr) $($name:ident => $case:ident($n:expr)),* $(,)?) => {$(
        #[test]
        fn $name() {
            let connector = $connector;
            ($block_on)($crate::conformance::with_deadline(
                stringify!($name),
                $crate::conformance::$case(&connector, $n),
            ));
        }
    )*};
}

/// Expands to one `#[test]` per case of [`conformance::node_independent`]:
///
/// ```no_run
/// redlock_testkit::node_independent_tests!(
///     new_node = redlock_core::MemoryBackend::new, // Fn() -> B, B: LockBackend + Clone
///     block_on = redlock_testkit::block_on_futures,
/// );
/// # fn main() {}
/// ```
///
/// `new_node` makes one fresh, independent node per call; clones of a node
/// must share it.
#[macro_export]
macro_rules! node_independent_tests {
    (new_node = $new_node:expr, block_on = $block_on:expr $(,)?) => {
        $crate::node_independent_tests!(@cases ($new_node) ($block_on)
            acquire_extend_release,
            exclusivity,
            multi_resource_all_or_nothing,
            overlapping_multi_locks,
            release_and_extend_only_by_owner,
            automatic_expiry,
            release_of_expired_lock,
            contention,
            using_keeps_lock_while_routine_runs,
            using_returns_routine_error,
            bad_input_rejected,
            fencing_tokens,
            wake_on_release,
        );
        $crate::node_independent_tests!(@sized ($new_node) ($block_on)
            minority_held_3 => minority_held(3),
            minority_held_5 => minority_held(5),
            majority_held_3 => majority_held(3),
            majority_held_5 => majority_held(5),
        );
    };
    (@cases ($new_node:expr) ($block_on:expr) $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            ($block_on)($crate::conformance::with_deadline(
                stringify!($case),
                $crate::conformance::node_independent::$case($new_node),
            ));
        }
    )*};
    (@sized ($new_node:expr) ($block_on:expr) $($name:ident => $case:ident($n:expr)),* $(,)?) => {$(
        #[test]
        fn $name() {
            ($block_on)($crate::conformance::with_deadline(
                stringify!($name),
                $crate::conformance::node_independent::$case($new_node, $n),
            ));
        }
    )*};
}
