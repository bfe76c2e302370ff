//! Your own `LockBackend`: a lease table kept in this process (it could as
//! well be a SQL table or another key-value store), checked by the same
//! conformance suite every adapter runs.
//!
//! ```text
//! cargo run --example custom_backend          # use it
//! cargo test --example custom_backend         # run the conformance suite on it, in process
//! ```
//!
//! Writing a backend is: implement the three operations with the semantics of
//! the built-in scripts (take every key or none; re-arm only if all are ours;
//! delete only ours), refuse what you cannot do (custom Lua) with
//! `ErrorKind::Unsupported`, and call `conformance_tests!` with an in-process
//! fixture (or, for a Redis client, with a `Connector`).
//!
//! This backend also takes part in the two optional protocols, and declares
//! them to the conformance suite (`Capabilities::FENCING |
//! Capabilities::WAKE_ON_RELEASE`), which then checks them:
//!
//! - **Fencing.** A fenced acquire is an ordinary [`LockBackend::acquire`]
//!   whose request carries the fence counters as
//!   [`Request::extra_keys`]: take the resources as usual and, in the same
//!   step, reply the highest of those counters with [`Reply::with_fence`]
//!   (0 when none exists). The core picks the token (one above the highest
//!   counter of the quorum) and calls [`LockBackend::fence`] with it in
//!   `extra_args()[0]`: if every resource still holds our value, raise each
//!   counter to the token, never lower it, and reply the resource count.
//!   Counters must outlive locks (never expire), or tokens can repeat.
//! - **Wake-on-release.** A release made with wake-on-release carries one
//!   channel per resource in [`Request::extra_args`]: announce each released
//!   resource on its channel with [`ReleaseHub::notify`] (the message is the
//!   released value). [`LockBackend::watch_releases`] registers a waiter with
//!   [`ReleaseHub::register`]. A shared store would carry the announcement
//!   to other processes (as Redis pub/sub does); this table lives in one
//!   process, so the hub is the whole transport.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock::wake::{ReleaseHub, ReleaseWaker};
use redlock::{async_trait, BackendError, ErrorKind, LockBackend, Redlock, Reply, Request};

/// One row per resource: who holds it and until when.
#[derive(Debug)]
struct Lease {
    owner: String,
    until: Instant,
}

/// The table's state: the leases and the fence counters (which never expire).
#[derive(Debug, Default)]
struct Rows {
    leases: BTreeMap<String, Lease>,
    fences: BTreeMap<String, u64>,
}

/// A lease table. Clones share the table (one table = one node).
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    rows: Arc<Mutex<Rows>>,
    hub: ReleaseHub,
}

impl LeaseTable {
    fn with_rows<T>(
        &self,
        request: &Request<'_>,
        f: impl FnOnce(&mut Rows, Instant) -> T,
    ) -> Result<T, BackendError> {
        if !request.script().is_builtin() {
            return Err(BackendError::new(
                ErrorKind::Unsupported,
                "a lease table runs no Lua",
            ));
        }
        let mut rows = self
            .rows
            .lock()
            .map_err(|_| BackendError::new(ErrorKind::Other, "lease table poisoned"))?;
        let now = Instant::now();
        rows.leases.retain(|_, lease| lease.until > now); // expired leases are gone
        Ok(f(&mut rows, now))
    }
}

fn owned_by_us(rows: &Rows, request: &Request<'_>) -> bool {
    request.resources().iter().all(|r| {
        rows.leases
            .get(r)
            .is_some_and(|lease| lease.owner == request.value())
    })
}

#[async_trait]
impl LockBackend for LeaseTable {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.with_rows(request, |rows, now| {
            let taken = request.resources().iter().any(|r| {
                rows.leases
                    .get(r)
                    .is_some_and(|lease| lease.owner != request.value())
            });
            if taken {
                return Reply::applied(0);
            }
            for r in request.resources() {
                let lease = Lease {
                    owner: request.value().to_owned(),
                    until: now + request.ttl(),
                };
                rows.leases.insert(r.clone(), lease);
            }
            let reply = Reply::applied(request.resources().len());
            // A fenced acquire names the fence counters as extra keys: reply
            // the highest, read in the same step as the take.
            if request.extra_keys().is_empty() {
                return reply;
            }
            let highest = request
                .extra_keys()
                .iter()
                .filter_map(|k| rows.fences.get(k))
                .max();
            reply.with_fence(highest.copied().unwrap_or(0))
        })
    }

    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        let token = request
            .extra_args()
            .first()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| BackendError::new(ErrorKind::Protocol, "fence without a token"))?;
        self.with_rows(request, |rows, _| {
            if !owned_by_us(rows, request) {
                return Reply::applied(0); // lost meanwhile: write nothing
            }
            // Raise the counters, never lower them. The extra keys are one
            // counter per resource, then the names of the per-resource
            // counters of older versions, which only a Redis deployment can
            // hold: a new backend has none and skips them.
            for key in request.extra_keys().iter().take(request.resources().len()) {
                let counter = rows.fences.entry(key.clone()).or_insert(0);
                *counter = (*counter).max(token);
            }
            Reply::applied(request.resources().len())
        })
    }

    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.with_rows(request, |rows, now| {
            if !owned_by_us(rows, request) {
                return Reply::applied(0);
            }
            for r in request.resources() {
                if let Some(lease) = rows.leases.get_mut(r) {
                    lease.until = now + request.ttl();
                }
            }
            Reply::applied(request.resources().len())
        })
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        let released: Vec<usize> = self.with_rows(request, |rows, _| {
            let ours: Vec<usize> = (0..request.resources().len())
                .filter(|&i| {
                    rows.leases
                        .get(&request.resources()[i])
                        .is_some_and(|lease| lease.owner == request.value())
                })
                .collect();
            for &i in &ours {
                rows.leases.remove(&request.resources()[i]);
            }
            ours
        })?;
        // With wake-on-release, the channels come as extra args, one per
        // resource: announce each released resource, after the table is
        // unlocked, with the released value as the message.
        for &i in &released {
            if let Some(channel) = request.extra_args().get(i) {
                self.hub.notify(channel, request.value().as_bytes());
            }
        }
        Ok(Reply::applied(released.len()))
    }

    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.hub.register(channels, waker);
        Ok(())
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed("lease-table")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), redlock::Error> {
    println!("three independent lease tables, in this process");
    let tables = [
        LeaseTable::default(),
        LeaseTable::default(),
        LeaseTable::default(),
    ];
    let redlock = Redlock::builder(tables).fencing(true).build()?;
    let lock = redlock
        .acquire(&["report:2026-11"], Duration::from_secs(5))
        .await?;
    println!(
        "locked {:?}, valid for {:?}, fencing token {:?}",
        lock.resources(),
        lock.remaining_validity(),
        lock.fencing_token()
    );
    println!("released: {}", lock.release().await?.was_held());
    Ok(())
}

#[cfg(test)]
mod conformance {
    // Every case that needs no Redis process, run on this backend, fencing
    // and wake-on-release included.
    redlock_testkit::conformance_tests!(
        fixture = redlock_testkit::fixture::InProcess::new(super::LeaseTable::default)
            .capabilities(
                redlock_testkit::Capabilities::FENCING
                    | redlock_testkit::Capabilities::WAKE_ON_RELEASE
            ),
        block_on = redlock_testkit::block_on_futures,
    );
}
