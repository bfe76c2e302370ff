//! The Redlock distributed-lock algorithm, over any [`LockBackend`].
//!
//! A lock is held when a majority (floor(N/2)+1) of N independent nodes took
//! it, quickly enough that validity remains: validity = TTL − time the attempt
//! took − drift. This crate holds the whole algorithm once: parallel rounds
//! decided as soon as the outcome is certain, per-node timeouts, retries with
//! jitter, extension, idempotent release, and [`Redlock::using`] with an
//! [`AbortSignal`]. It owns no async runtime: time goes through [`Runtime`].
//!
//! Backends are thin. `redlock-redis-rs` and `redlock-fred` adapt the two
//! Redis clients; [`MemoryBackend`] is an in-process node for examples and
//! tests; [`FaultyBackend`] wraps any backend and fails on command. What the
//! Redis adapters send, and how they read replies and server errors, is
//! decided once, in [`protocol`].
//!
//! ```
//! # futures::executor::block_on(async {
//! use redlock_core::{Error, MemoryBackend, Redlock};
//! use std::time::Duration;
//!
//! let nodes = [MemoryBackend::new(), MemoryBackend::new(), MemoryBackend::new()];
//! let redlock = Redlock::builder(nodes.clone()).retry_count(0).build()?;
//!
//! let lock = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await?;
//! // A second owner is refused while the first holds it:
//! let other = redlock.acquire(&["invoice:42"], Duration::from_secs(10)).await;
//! assert!(matches!(other, Err(Error::Held(_))));
//!
//! let lock = lock.extend(Duration::from_secs(10)).await?;
//! assert!(lock.release().await?.was_held());
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```
//!
//! # Safety
//!
//! Redlock's guarantee rests on assumptions the library cannot check: nodes
//! that restart must not forget keys (run them with `appendfsync always`, or
//! keep a restarted node out for longer than the longest TTL), clocks advance
//! at roughly the same rate (drift_factor), and work under a lock finishes
//! within its validity (check [`Lock::remaining_validity`] or the
//! [`AbortSignal`]). See the README's safety notes. Two of them the client
//! enforces when asked: [`Settings::restart_quarantine`] keeps a node that
//! came back recently (and may have lost its keys) from voting.
//!
//! The protocol is modelled in Promela in the repository's `model/` folder
//! (`model/redlock.pml`, one process per role, mapped in its comments to
//! `acquire.rs`, `round.rs`, `lock.rs`, `scripts.rs` and `keys.rs`), and
//! `scripts/model-check.sh` checks mutual exclusion and the order of fencing
//! tokens with spin, with and without persistence and quarantine.
//!
//! # How the source reads
//!
//! The algorithm reads top to bottom, one job per file:
//!
//! | file | job |
//! |---|---|
//! | `redlock.rs` | [`Redlock`], the public face: checks the input, hands the work on |
//! | `builder.rs` | [`RedlockBuilder`]: nodes, settings, scripts, clock, error hook |
//! | `validate.rs` | input checks: a bad argument is [`InvalidInput`] and reaches no node |
//! | `acquire.rs` | one acquisition: attempt, undo a partial lock, retry, fencing token, wake-on-release |
//! | `round.rs` | one round: ask every node in parallel, and let the tally decide when to stop |
//! | `tally.rs` | the vote tally: pure and synchronous, it counts each node's reply and decides the round |
//! | `retry.rs` | the retry policy (how many attempts, which failures, jittered delay) shared by acquire and extend |
//! | `lock.rs` | [`Lock`]: validity, extension, idempotent release |
//! | `using.rs` | [`Redlock::using`] and its [`AbortSignal`] (the loss signal, and the lock's token and validity) |
//! | [`metrics`] | the metrics (feature `metrics`) and the outcome words the `tracing` spans share with them |
//! | [`backend`], [`scripts`], [`wake`], [`keys`] | the node-facing contract: requests, replies, Lua, release channels, extra keys |
//! | [`memory`], [`faulty`] | an in-process node and a fault-injecting wrapper, for tests and examples |
//! | [`doctor`], [`status`], [`inspect`] | [`Redlock::doctor`] and [`Redlock::status`]: read-only checks of the nodes, and who holds a lock |
//!
//! Dependencies point one way: `redlock` → `acquire` → `round` ← `lock`;
//! a [`Lock`] shares the round engine with the [`Redlock`] that made it, not
//! the `Redlock` itself.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod acquire;
pub mod age;
pub mod backend;
mod builder;
pub mod cluster_age;
pub mod doctor;
mod error;
pub mod faulty;
pub mod inspect;
pub mod keys;
mod lock;
pub mod memory;
pub mod metrics;
pub mod protocol;
mod redlock;
mod retry;
mod round;
pub mod runtime;
pub mod scripts;
mod settings;
pub mod stats;
pub mod status;
mod tally;
mod using;
mod validate;
pub mod wake;

pub use async_trait::async_trait;
pub use backend::{BackendError, ErrorKind, LockBackend, NodeAge, Reply, Request};
pub use builder::RedlockBuilder;
pub use doctor::{Check, DoctorOptions, DoctorReport, Finding, Severity};
pub use error::{ConfigError, Error, InvalidInput, QuorumFailure};
pub use faulty::{Fault, FaultyBackend};
pub use lock::{Lock, Release};
pub use memory::MemoryBackend;
pub use redlock::Redlock;
pub use round::NodeEvent;
#[cfg(feature = "async-std")]
pub use runtime::AsyncStdRuntime;
#[cfg(feature = "smol")]
pub use runtime::SmolRuntime;
#[cfg(feature = "tokio")]
pub use runtime::TokioRuntime;
pub use runtime::{NeutralRuntime, Runtime, Sleep};
pub use scripts::{Script, Scripts};
pub use settings::{RetryCount, Settings, MAX_DELAY, MAX_TTL};
pub use stats::{
    Attempt, AttemptOutcome, Attempts, NodeOutcome, NodeResult, Operation, Quarantine, Refusal,
};
pub use status::{KeyState, KeyStatus, LockStatus, NodeStatus};
pub use using::{AbortSignal, Aborted};
pub use validate::MAX_RESOURCE_LEN;
