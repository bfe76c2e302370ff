//! Redlock distributed locks over N independent Redis nodes.
//!
//! A lock is held when a majority of N independent Redis nodes took it in time
//! (the Redlock algorithm). This crate is the facade: the algorithm lives in
//! [`redlock_core`] and is re-exported here whole; the Redis client adapters
//! and the runtime's timers are picked by crate feature, as sqlx picks its
//! drivers:
//!
//! | feature    | brings                                                        |
//! |------------|---------------------------------------------------------------|
//! | `redis-rs` | [`RedisBackend`] over the `redis` crate (default)             |
//! | `fred`     | [`FredBackend`] over the `fred` crate (tokio only)            |
//! | `tokio`    | tokio timers, and the adapters' tokio support (default)       |
//! | `smol`     | smol timers, and redis-rs on the smol/async-io reactor        |
//! | `async-std`| async-std timers, and redis-rs on the async-io reactor        |
//! | `tls-rustls` | `rediss://` (rustls, ring) for both adapters, on every runtime |
//! | `metrics`  | metrics through the `metrics` facade ([`metrics`] module)      |
//!
//! With no feature at all you still get the whole algorithm and
//! [`MemoryBackend`], an in-process node for examples and tests.
//!
//! ```
//! # futures::executor::block_on(async {
//! use redlock::{MemoryBackend, Redlock};
//! use std::time::Duration;
//!
//! // One backend per independent node; here, three in-process ones.
//! let redlock = Redlock::new([MemoryBackend::new(), MemoryBackend::new(), MemoryBackend::new()])?;
//!
//! let lock = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await?;
//! let lock = lock.extend(Duration::from_secs(10)).await?;
//! lock.release().await?;
//!
//! let sum = redlock
//!     .using(&["ledger:7"], Duration::from_secs(10), |signal| async move {
//!         // ... work, checking signal.is_aborted() between steps ...
//!         Ok::<_, redlock::Error>(signal.is_aborted())
//!     })
//!     .await?;
//! assert!(!sum);
//! # Ok::<(), redlock::Error>(())
//! # }).unwrap();
//! ```
//!
//! See the README for the settings, the safety notes, and the guide to
//! writing a backend of your own.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use redlock_core::*;

/// The redis-rs adapter (feature `redis-rs`).
#[cfg(feature = "redis-rs")]
pub use redlock_redis_rs as redis_rs;
#[cfg(feature = "redis-rs")]
pub use redlock_redis_rs::RedisBackend;

/// The fred adapter (feature `fred`).
#[cfg(feature = "fred")]
pub use redlock_fred as fred;
#[cfg(feature = "fred")]
pub use redlock_fred::FredBackend;
