//! Restart quarantine's bookkeeping for a Redis Cluster behind one backend:
//! the [`NodeClock`](crate::age::NodeClock) idea, kept per hash slot.
//!
//! Each master of a cluster is a node for restart quarantine, and the master
//! that votes for a lock is the one that serves its resources' slot (all
//! resources of one request share a slot: the core checks that). A cluster
//! client keeps one connection per master and re-makes any of them without
//! telling its caller, so a [`ClusterClock`]:
//!
//! - keeps one age per slot in use, read by `INFO server` routed to that
//!   slot's master (a lookup of the client's own slot map, so the master
//!   whose age is read is the master the acquire is routed to);
//! - forgets **every** slot's age ([`ClusterClock::forget`]) whenever the
//!   client makes a new connection to any node, or a call fails on one. The
//!   adapter calls it from a hook that runs before the new connection carries
//!   a command (redis-rs: the DNS resolver the cluster client asks for every
//!   connection; fred: the reconnection event, broadcast before the new
//!   connection is used), so no reply from a restarted master is counted
//!   against an age read before its restart;
//! - remembers, per slot, the `run_id` of the master that served it: another
//!   `run_id` for the slot (a restart, or a failover that promoted a replica)
//!   makes that master count as up since the moment it was read, however
//!   long its uptime. A replica promoted by a failover may lack the last
//!   writes of its master (replication is asynchronous), so it is quarantined
//!   like a restarted node. A slot first read after such a failover (this
//!   process never saw its previous master) is judged by its master's uptime
//!   only.
//!
//! A slot's first vote, and its first vote after a forget, cost one `INFO
//! server` (only then: [`ClusterClock::age`] does no I/O, and slots whose
//! age is known vote without extra round trips). Ages are kept per slot, not
//! per master, because no client tells, without I/O, which master serves a
//! slot; reading the age through the client's own routing keeps the master
//! read and the master that votes the same. Memory is bounded by the 16,384
//! slots.
//!
//! Use it as [`NodeClock`](crate::age::NodeClock) is used (see the
//! [`age`](crate::age) module docs), with the slot of the request
//! ([`ClusterClock::slot_of`]) as the extra argument.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::age::{admit_booted, ServerInfo};
use crate::backend::{BackendError, ErrorKind, NodeAge};
use crate::keys::key_slot;

/// What is known of the master of one slot.
#[derive(Debug)]
struct Slot {
    /// The generation the age below was read at; stale unless current.
    generation: u64,
    booted: Instant,
    /// Kept across forgets, to notice another server process on the slot.
    run_id: Arc<str>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every [`ClusterClock::forget`].
    generation: u64,
    slots: HashMap<u16, Slot>,
}

/// The ages of a Redis Cluster's masters, one per hash slot in use, tied to
/// the client's connections. See the [module docs](self). Every slot starts
/// [`NodeAge::Unknown`].
#[derive(Debug, Default)]
pub struct ClusterClock {
    state: Mutex<State>,
}

impl ClusterClock {
    /// A clock that knows nothing yet.
    pub fn new() -> ClusterClock {
        ClusterClock::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A few plain fields, always consistent: a panic elsewhere cannot
        // leave them half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hash slot of a request's `resources` (that of the first; the core
    /// has checked that they share it), or `None` for no resource.
    pub fn slot_of(resources: &[String]) -> Option<u16> {
        resources.first().map(|r| key_slot(r))
    }

    /// The age of the master serving `slot`, for
    /// [`LockBackend::node_age`](crate::LockBackend::node_age): known only
    /// if read since the last [`forget`](Self::forget).
    pub fn age(&self, slot: u16) -> NodeAge {
        let state = self.state();
        match state.slots.get(&slot) {
            Some(s) if s.generation == state.generation => NodeAge::UpSince(s.booted),
            _ => NodeAge::Unknown,
        }
    }

    /// Which set of connections the ages belong to: changes with every
    /// [`forget`](Self::forget).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The client made (or is making) a new connection to some node, or a
    /// call failed on one: any master may have restarted, so every age is
    /// unknown until read again.
    pub fn forget(&self) {
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
    }

    /// Records `info`, read from the master of `slot` and received at
    /// `received` by a read that began at `generation`. Returns false (and
    /// keeps nothing) if a connection changed since, as the reply may
    /// describe a master before its restart.
    ///
    /// A `run_id` other than the one read before for this slot (a restart,
    /// or a failover to another master) counts as up since `received`.
    pub fn learn(&self, slot: u16, generation: u64, info: &ServerInfo, received: Instant) -> bool {
        let mut state = self.state();
        if state.generation != generation {
            return false;
        }
        let mut booted = info.booted(received);
        let run_id = match state.slots.get(&slot) {
            Some(previous) if *previous.run_id == *info.run_id => previous.run_id.clone(),
            Some(_) => {
                tracing::info!(slot, run_id = %info.run_id, uptime = ?info.uptime,
                    "the slot's master restarted or was replaced (new run_id)");
                booted = booted.max(received);
                Arc::from(info.run_id.as_str())
            }
            None => Arc::from(info.run_id.as_str()),
        };
        state.slots.insert(
            slot,
            Slot {
                generation,
                booted,
                run_id,
            },
        );
        true
    }

    /// Before an acquire on `slot` under restart quarantine `max_ttl`: the
    /// generation to [`confirm`](Self::confirm) after the reply, or an
    /// [`ErrorKind::Quarantined`] error if the slot's master is too young or
    /// its age unknown on the current connections.
    pub fn admit(&self, slot: u16, max_ttl: Duration) -> Result<u64, BackendError> {
        let state = self.state();
        let booted = match state.slots.get(&slot) {
            Some(s) if s.generation == state.generation => Some(s.booted),
            _ => None,
        };
        admit_booted(booted, max_ttl, state.generation)
    }

    /// After the reply to an acquire admitted at `generation`: an
    /// [`ErrorKind::Quarantined`] error (the vote must not count) if a
    /// connection was made or failed meanwhile.
    pub fn confirm(&self, generation: u64) -> Result<(), BackendError> {
        if self.generation() == generation {
            Ok(())
        } else {
            Err(BackendError::new(
                ErrorKind::Quarantined,
                "the cluster client re-made a connection during the call, so the slot's master \
                 may have restarted; its vote is not counted until its age is read again",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(run_id: &str, secs: u64) -> ServerInfo {
        ServerInfo::new(run_id, Duration::from_secs(secs))
    }

    #[test]
    fn each_slot_has_its_own_master_age() {
        let clock = ClusterClock::new();
        let window = Duration::from_secs(10);
        let (a, b) = (1, 2);
        assert_eq!(clock.age(a), NodeAge::Unknown);
        let err = clock.admit(a, window).expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::Quarantined);
        let g = clock.generation();
        assert!(clock.learn(a, g, &info("old", 3600), Instant::now()));
        assert!(clock.learn(b, g, &info("young", 2), Instant::now()));
        assert!(matches!(clock.age(a), NodeAge::UpSince(_)));
        let ticket = clock.admit(a, window).expect("old master votes");
        assert!(clock.confirm(ticket).is_ok());
        let err = clock.admit(b, window).expect_err("young master");
        assert!(err.message().contains("votes again in"), "{err}");
        // Another slot was never read.
        assert_eq!(clock.age(3), NodeAge::Unknown);
    }

    #[test]
    fn a_new_connection_forgets_every_slot_and_voids_reads_and_votes_in_flight() {
        let clock = ClusterClock::new();
        let window = Duration::from_secs(10);
        let g = clock.generation();
        assert!(clock.learn(7, g, &info("a", 3600), Instant::now()));
        assert!(clock.learn(8, g, &info("b", 3600), Instant::now()));
        let ticket = clock.admit(7, window).expect("old");
        clock.forget();
        assert_eq!(clock.age(7), NodeAge::Unknown);
        assert_eq!(clock.age(8), NodeAge::Unknown);
        assert_eq!(
            clock.confirm(ticket).map_err(|e| e.kind()),
            Err(ErrorKind::Quarantined)
        );
        // A read begun before the forget is stale.
        assert!(!clock.learn(7, g, &info("a", 3600), Instant::now()));
        assert_eq!(clock.age(7), NodeAge::Unknown);
        // The same server process, read again: its uptime counts.
        let g = clock.generation();
        assert!(clock.learn(7, g, &info("a", 3600), Instant::now()));
        assert!(clock.admit(7, window).is_ok());
    }

    #[test]
    fn another_master_on_a_slot_is_new_however_old() {
        let clock = ClusterClock::new();
        let window = Duration::from_secs(10);
        let g = clock.generation();
        assert!(clock.learn(5, g, &info("first", 3600), Instant::now()));
        clock.forget();
        // A restart or a promoted replica: long uptime, other run_id.
        let now = Instant::now();
        assert!(clock.learn(5, clock.generation(), &info("promoted", 3600), now));
        assert_eq!(clock.age(5), NodeAge::UpSince(now));
        let err = clock.admit(5, window).expect_err("new master");
        assert_eq!(err.kind(), ErrorKind::Quarantined);
    }

    #[test]
    fn the_slot_of_a_request_is_its_first_resource() {
        let resources = vec!["{org}a".to_owned(), "{org}b".to_owned()];
        assert_eq!(ClusterClock::slot_of(&resources), Some(key_slot("{org}a")));
        assert_eq!(ClusterClock::slot_of(&[]), None);
    }
}
