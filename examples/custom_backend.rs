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
//! fixture (or, for a Redis client, with a `Connector`). This backend
//! declares no optional capability (no fencing, no wake-on-release), so those
//! cases are skipped; the cases that need a real Redis server are skipped
//! too, and the faults are emulated around the table.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock::{async_trait, BackendError, ErrorKind, LockBackend, Redlock, Reply, Request};

/// One row per resource: who holds it and until when.
#[derive(Debug)]
struct Lease {
    owner: String,
    until: Instant,
}

/// A lease table. Clones share the table (one table = one node).
#[derive(Clone, Debug, Default)]
pub struct LeaseTable {
    rows: Arc<Mutex<BTreeMap<String, Lease>>>,
}

impl LeaseTable {
    fn with_rows<T>(
        &self,
        request: &Request<'_>,
        f: impl FnOnce(&mut BTreeMap<String, Lease>, Instant) -> T,
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
        rows.retain(|_, lease| lease.until > now); // expired leases are gone
        Ok(f(&mut rows, now))
    }
}

fn owned_by_us(rows: &BTreeMap<String, Lease>, request: &Request<'_>) -> bool {
    request.resources().iter().all(|r| {
        rows.get(r)
            .is_some_and(|lease| lease.owner == request.value())
    })
}

#[async_trait]
impl LockBackend for LeaseTable {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.with_rows(request, |rows, now| {
            let taken = request.resources().iter().any(|r| {
                rows.get(r)
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
                rows.insert(r.clone(), lease);
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
                if let Some(lease) = rows.get_mut(r) {
                    lease.until = now + request.ttl();
                }
            }
            Reply::applied(request.resources().len())
        })
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.with_rows(request, |rows, _| {
            let ours: Vec<&String> = request
                .resources()
                .iter()
                .filter(|r| {
                    rows.get(*r)
                        .is_some_and(|lease| lease.owner == request.value())
                })
                .collect();
            for r in &ours {
                rows.remove(*r);
            }
            Reply::applied(ours.len())
        })
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
    let redlock = Redlock::new(tables)?;
    let lock = redlock
        .acquire(&["report:2026-11"], Duration::from_secs(5))
        .await?;
    println!(
        "locked {:?}, valid for {:?}",
        lock.resources(),
        lock.remaining_validity()
    );
    println!("released: {}", lock.release().await?.was_held());
    Ok(())
}

#[cfg(test)]
mod conformance {
    // Every case that needs no Redis process, run on this backend.
    redlock_testkit::conformance_tests!(
        fixture = redlock_testkit::fixture::InProcess::new(super::LeaseTable::default),
        block_on = redlock_testkit::block_on_futures,
    );
}
