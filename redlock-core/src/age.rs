//! Restart quarantine's bookkeeping for Redis adapters: what a node's
//! `INFO server` says about its age, and a [`NodeClock`] that keeps it per
//! connection.
//!
//! A restart always drops the client's connection. So an adapter:
//!
//! 1. calls [`NodeClock::forget`] the moment a call fails with a broken,
//!    refused or timed-out connection (or its client reports a
//!    reconnection): the node's age becomes [`NodeAge::Unknown`];
//! 2. answers [`LockBackend::node_age`](crate::LockBackend::node_age) with
//!    [`NodeClock::age`] (no I/O);
//! 3. in [`LockBackend::refresh_node_age`](crate::LockBackend::refresh_node_age),
//!    takes [`NodeClock::generation`], sends [`INFO_SERVER`], and hands the
//!    reply to [`NodeClock::learn`], which keeps it only if no break was seen
//!    meanwhile;
//! 4. around an acquire that carries
//!    [`Request::restart_quarantine`](crate::Request::restart_quarantine),
//!    calls [`NodeClock::admit`] before sending (no vote from a node that is
//!    young or unverified on this connection) and [`NodeClock::confirm`]
//!    after the reply (no vote if the connection broke during the call, as
//!    the reply may come from a node that restarted).
//!
//! The algorithm itself (what counts, the statistics) stays in the core's
//! round; this is only the adapters' shared state.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, ErrorKind, NodeAge};
use crate::stats::Quarantine;

/// The command that reads a node's identity and uptime.
pub const INFO_SERVER: [&str; 2] = ["INFO", "server"];

/// What restart quarantine needs from `INFO server`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `run_id`: changes with every start of the server process.
    pub run_id: String,
    /// `uptime_in_seconds`.
    pub uptime: Duration,
}

impl ServerInfo {
    /// An identity (`run_id`, or the master set of a cluster) and an uptime.
    pub fn new(run_id: impl Into<String>, uptime: Duration) -> ServerInfo {
        ServerInfo {
            run_id: run_id.into(),
            uptime,
        }
    }

    /// Reads `run_id` and `uptime_in_seconds` from the text of `INFO server`
    /// (`key:value` lines). `None` when the uptime is missing or not a number.
    pub fn parse(text: &str) -> Option<ServerInfo> {
        let mut run_id = None;
        let mut uptime = None;
        for line in text.lines() {
            let Some((key, value)) = line.trim_end_matches('\r').split_once(':') else {
                continue;
            };
            match key {
                "run_id" => run_id = Some(value.trim().to_owned()),
                "uptime_in_seconds" => uptime = value.trim().parse::<u64>().ok(),
                _ => {}
            }
        }
        Some(ServerInfo {
            run_id: run_id.unwrap_or_default(),
            uptime: Duration::from_secs(uptime?),
        })
    }

    /// The latest instant at which the node can have started, given that
    /// the reply was `received` then. `uptime_in_seconds` is truncated to
    /// whole seconds from wall-clock readings, so one second is taken off:
    /// an age is never overestimated (which would shorten the quarantine).
    pub fn booted(&self, received: Instant) -> Instant {
        let mut up = self.uptime.saturating_sub(Duration::from_secs(1));
        // An uptime longer than this machine's monotonic clock can go back
        // is represented by the oldest instant it can: still an
        // underestimate of the age.
        loop {
            if let Some(booted) = received.checked_sub(up) {
                return booted;
            }
            up /= 2;
            if up.is_zero() {
                return received;
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by every [`NodeClock::forget`].
    generation: u64,
    booted: Option<Instant>,
    run_id: Option<String>,
}

/// One node's age as its adapter knows it, tied to the connection it was
/// read on. See the [module docs](self). Starts [`NodeAge::Unknown`].
#[derive(Debug, Default)]
pub struct NodeClock {
    state: Mutex<State>,
}

impl NodeClock {
    /// A clock that knows nothing yet.
    pub fn new() -> NodeClock {
        NodeClock::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields, always consistent: a panic
        // elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's age, for [`LockBackend::node_age`](crate::LockBackend::node_age).
    pub fn age(&self) -> NodeAge {
        self.state()
            .booted
            .map_or(NodeAge::Unknown, NodeAge::UpSince)
    }

    /// Which connection the age belongs to: changes with every
    /// [`forget`](Self::forget).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// The connection broke, was refused or timed out, or was replaced: the
    /// node may have restarted, so its age is unknown until read again.
    pub fn forget(&self) {
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        state.booted = None;
    }

    /// Records `info`, received at `received` by a read that began at
    /// `generation`. Returns false (and keeps nothing) if the connection
    /// broke since, as the reply may describe the node before its restart.
    ///
    /// A `run_id` other than the one read before means another server
    /// process (a restart, or a failover to another machine behind the same
    /// address, whose uptime says nothing of the keys it holds): the node
    /// then counts as up since `received`.
    pub fn learn(&self, generation: u64, info: &ServerInfo, received: Instant) -> bool {
        let mut state = self.state();
        if state.generation != generation {
            return false;
        }
        let mut booted = info.booted(received);
        if let Some(previous) = &state.run_id {
            if *previous != info.run_id {
                tracing::info!(run_id = %info.run_id, uptime = ?info.uptime, "node restarted or replaced (new run_id)");
                booted = booted.max(received);
            }
        }
        state.booted = Some(booted);
        state.run_id = Some(info.run_id.clone());
        true
    }

    /// Before an acquire under restart quarantine `max_ttl`: the
    /// generation to [`confirm`](Self::confirm) after the reply, or an
    /// [`ErrorKind::Quarantined`] error if the node is too young or its age
    /// unknown on the current connection.
    pub fn admit(&self, max_ttl: Duration) -> Result<u64, BackendError> {
        let state = self.state();
        admit_booted(state.booted, max_ttl, state.generation)
    }

    /// After the reply to an acquire admitted at `generation`: an
    /// [`ErrorKind::Quarantined`] error (the vote must not count) if the
    /// connection broke meanwhile.
    pub fn confirm(&self, generation: u64) -> Result<(), BackendError> {
        if self.generation() == generation {
            Ok(())
        } else {
            Err(BackendError::new(
                ErrorKind::Quarantined,
                "the connection was re-established during the call, so the node may have \
                 restarted; its vote is not counted until its age is read again",
            ))
        }
    }
}

/// The admission rule shared by [`NodeClock`] and
/// [`ClusterClock`](crate::cluster_age::ClusterClock): a node that came up
/// at `booted` votes under a quarantine of `max_ttl` once it has been up that
/// long (answering `generation`, the connection state to confirm against);
/// an unknown boot time is [`Quarantine::Unverified`].
pub(crate) fn admit_booted(
    booted: Option<Instant>,
    max_ttl: Duration,
    generation: u64,
) -> Result<u64, BackendError> {
    let Some(booted) = booted else {
        return Err(quarantined(Quarantine::Unverified));
    };
    let up_for = Instant::now().saturating_duration_since(booted);
    if up_for < max_ttl {
        return Err(quarantined(Quarantine::Restarted {
            up_for,
            left: max_ttl - up_for,
        }));
    }
    Ok(generation)
}

fn quarantined(q: Quarantine) -> BackendError {
    BackendError::new(ErrorKind::Quarantined, q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:7001\r\nuptime_in_seconds:42\r\nuptime_in_days:0\r\n";

    #[test]
    fn parses_run_id_and_uptime() {
        let info = ServerInfo::parse(INFO).expect("parsed");
        assert_eq!(info.run_id, "abc123");
        assert_eq!(info.uptime, Duration::from_secs(42));
        assert_eq!(ServerInfo::parse("# Server\r\nrun_id:x\r\n"), None);
        assert_eq!(ServerInfo::parse("uptime_in_seconds:abc"), None);
    }

    #[test]
    fn boot_is_the_latest_possible_instant() {
        let info = ServerInfo::parse(INFO).expect("parsed");
        let now = Instant::now();
        // 42 s truncated: up at least 41 s.
        assert_eq!(
            now.duration_since(info.booted(now)),
            Duration::from_secs(41)
        );
        let zero = ServerInfo {
            run_id: String::new(),
            uptime: Duration::ZERO,
        };
        assert_eq!(zero.booted(now), now);
    }

    #[test]
    fn a_break_forgets_and_invalidates_reads_and_votes_in_flight() {
        let clock = NodeClock::new();
        let window = Duration::from_secs(10);
        assert_eq!(clock.age(), NodeAge::Unknown);
        assert_eq!(
            clock.admit(window).map_err(|e| e.kind()),
            Err(ErrorKind::Quarantined)
        );
        let old = ServerInfo {
            run_id: "a".into(),
            uptime: Duration::from_secs(3600),
        };
        let g = clock.generation();
        assert!(clock.learn(g, &old, Instant::now()));
        assert!(matches!(clock.age(), NodeAge::UpSince(_)));
        let ticket = clock.admit(window).expect("old enough");
        assert!(clock.confirm(ticket).is_ok());
        // A break during a vote: the vote does not count.
        clock.forget();
        assert_eq!(
            clock.confirm(ticket).map_err(|e| e.kind()),
            Err(ErrorKind::Quarantined)
        );
        assert_eq!(clock.age(), NodeAge::Unknown);
        // A read begun before the break is stale.
        assert!(!clock.learn(g, &old, Instant::now()));
        assert_eq!(clock.age(), NodeAge::Unknown);
        // A young node is refused with the time left.
        let young = ServerInfo {
            run_id: "b".into(),
            uptime: Duration::from_secs(2),
        };
        assert!(clock.learn(clock.generation(), &young, Instant::now()));
        let err = clock.admit(window).expect_err("young");
        assert_eq!(err.kind(), ErrorKind::Quarantined);
        assert!(err.message().contains("votes again in"), "{err}");
        // Another process behind the address, however old, is new to us.
        clock.forget();
        let replaced = ServerInfo::new("c", Duration::from_secs(3600));
        let now = Instant::now();
        assert!(clock.learn(clock.generation(), &replaced, now));
        assert_eq!(clock.age(), NodeAge::UpSince(now));
    }
}
