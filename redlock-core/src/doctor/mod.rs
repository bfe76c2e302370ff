//! The node doctor: [`Redlock::doctor`] checks the nodes against the
//! assumptions Redlock's safety rests on, and returns a typed
//! [`DoctorReport`] (one [`Finding`] per check and node) that a service can
//! act on at start-up, and that prints one line per finding.
//!
//! ```
//! # futures::executor::block_on(async {
//! use redlock_core::doctor::{Check, Severity};
//! use redlock_core::{MemoryBackend, Redlock};
//!
//! let redlock = Redlock::new([MemoryBackend::new(), MemoryBackend::new()])?;
//! let report = redlock.doctor().await;
//! // Two nodes: a warning for the set. MemoryBackend runs no Redis commands,
//! // so its nodes' checks are "not checked", never failed.
//! assert!(report.passed());
//! assert_eq!(report.of(Check::NodeCount).next().map(|f| f.severity), Some(Severity::Warning));
//! assert!(report.of(Check::Eviction).all(|f| f.severity == Severity::NotChecked));
//! println!("{report}");
//! # Ok::<(), redlock_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # The checks
//!
//! Per node (for a Redis Cluster backend, per master), through
//! [`LockBackend::inspect`]: `INFO` (default
//! sections), `CONFIG GET` of `appendonly`, `appendfsync`,
//! `maxmemory-policy` and `maxmemory`, `CLUSTER INFO`, then `TIME` on its
//! own round trip. All read-only.
//!
//! | check | reads | ok | warning | fail |
//! |---|---|---|---|---|
//! | `reachable` | `INFO` | the node answers | | unreachable, timed out ([`DoctorOptions::timeout`]), or `INFO` refused (`NOAUTH`, ...) |
//! | `version` | `redis_version` | 2.6.12 or later | version not reported | older than 2.6.12 (no `SET ... NX PX`) |
//! | `role` | `role`, `connected_slaves` | a master without replicas | a master with replicas: a failover loses the locks not yet replicated | a replica: it is not an independent node |
//! | `independence` | `run_id`, `master_replid` | unique across the set | | the same server listed twice (same `run_id`): its vote counts twice; or replicas of one master (same replication id) |
//! | `persistence` | `CONFIG GET appendonly appendfsync` (else `INFO` `aof_enabled`) | AOF with `appendfsync always`; or no AOF with [`Settings::restart_quarantine`](crate::Settings::restart_quarantine) on and fencing off | AOF with another fsync policy, no AOF, or `CONFIG` refused (the message says so, and what `INFO` tells) | |
//! | `eviction` | `CONFIG GET maxmemory-policy` (else `INFO` `maxmemory_policy`) | `noeviction` | | any other policy: `allkeys-*` can evict lock keys and fence counters, `volatile-*` evicts lock keys (they have TTLs) |
//! | `clock` | `TIME` against this machine's clock, corrected by half the round trip | offset within [`DoctorOptions::clock_tolerance`] (default 500 ms) plus the measurement's uncertainty | beyond it: a node far off is a sign its clock is not synchronised (Redis expires keys by wall clock) | |
//! | `uptime` | `uptime_in_seconds` | up longer than the restart quarantine window, or quarantine off | younger than the window: it does not vote for acquires yet | |
//! | `cluster-slots` | `CLUSTER INFO` (cluster backends only) | `cluster_state:ok` and all 16384 slots served | | slots not served, or the cluster state is not ok |
//!
//! For the set (no node named):
//!
//! | check | ok | warning |
//! |---|---|---|
//! | `node-count` | an odd N of at least 3 | N below 3 (no node may fail), or an even N (tolerates no more failures than N − 1) |
//! | `clock-spread` | the nodes' offsets within the tolerance of each other | beyond it |
//!
//! A check that cannot be made says so with [`Severity::NotChecked`]: on a
//! backend that cannot be inspected ([`MemoryBackend`](crate::MemoryBackend),
//! a custom backend: [`ErrorKind::Unsupported`]),
//! for every check of a node that is unreachable, and for a `CONFIG` that is
//! refused with nothing in `INFO` to fall back on. [`DoctorReport::passed`]
//! is false only when some finding is [`Severity::Fail`].
//!
//! # Output
//!
//! [`DoctorReport`]'s `Display` prints one line per finding: the severity
//! (`ok`, `skip` for not checked, `WARN`, `FAIL`), the check, the node (a
//! cluster's master as `<node> @ <address>`, the set as `(all nodes)`) and
//! the message. Lock values and passwords never appear. Three nodes, one of
//! them a replica of another and one evicting (abridged):
//!
//! ```text
//! ok   reachable     redis://127.0.0.1:35857: answers
//! WARN role          redis://127.0.0.1:35857: master with 1 replica(s): replication is asynchronous, so a failover to a replica can lose locks; Redlock wants independent masters
//! FAIL independence  redis://127.0.0.1:35857: same replication id as redis://127.0.0.1:39039 (203056e47152): a master and its replica, or replicas of one master, not independent nodes
//! WARN persistence   redis://127.0.0.1:35857: no AOF (appendonly no): a restarted node forgets its locks at once; set appendonly yes with appendfsync always, or turn on restart_quarantine
//! FAIL eviction      redis://127.0.0.1:42823: maxmemory-policy allkeys-lru (maxmemory 0, no limit yet: any limit set later makes it evict) can evict lock keys and fence counters, releasing locks early; set maxmemory-policy noeviction
//! ok   clock         redis://127.0.0.1:42823: offset -0.0 ms against this machine (± 0.1 ms)
//! FAIL role          redis://127.0.0.1:39039: a replica of 127.0.0.1:35857: it is not an independent node (it copies its master, and refuses writes); list independent masters only
//! ok   node-count    (all nodes): 3 nodes, quorum 2: 1 may fail
//! ok   clock-spread  (all nodes): 0 ms between the nodes' clocks (redis://127.0.0.1:35857 fastest, redis://127.0.0.1:39039 slowest; ± 0.5 ms)
//! ```
//!
//! [`Redlock::doctor`]: crate::Redlock::doctor

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{join_all, select, Either};

use crate::backend::{BackendError, ErrorKind, LockBackend};
use crate::inspect::{Inspection, ServerReplies, Value};
use crate::runtime::Runtime;
use crate::settings::Settings;

/// The oldest Redis the library works with: `SET key value NX PX ms`
/// arrived in 2.6.12 (Lua scripting in 2.6.0).
pub const MIN_VERSION: (u32, u32, u32) = (2, 6, 12);

/// How many hash slots a healthy Redis Cluster serves.
const ALL_SLOTS: u64 = crate::keys::SLOTS as u64;

/// How the doctor runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorOptions {
    /// How long each node's inspection may take (each of its two round
    /// trips). Default 2 s.
    pub timeout: Duration,
    /// How far a node's clock may be from this machine's, and the nodes'
    /// clocks from each other, before the clock checks warn (on top of the
    /// uncertainty of the measurement, half a round trip). Default 500 ms.
    pub clock_tolerance: Duration,
}

impl DoctorOptions {
    /// The same options with another [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same options with another [`clock_tolerance`](Self::clock_tolerance).
    pub fn with_clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.clock_tolerance = tolerance;
        self
    }
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            timeout: Duration::from_secs(2),
            clock_tolerance: Duration::from_millis(500),
        }
    }
}

/// How a finding bears on Redlock's safety, from least to most serious.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The assumption holds.
    Ok,
    /// The check could not be made (the backend cannot be inspected, the
    /// node is unreachable, a command was refused); the message says why.
    NotChecked,
    /// Safe to run, but weaker than it should be; the message says what to change.
    Warning,
    /// An assumption Redlock's safety rests on does not hold.
    Fail,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Ok => "ok",
            Severity::NotChecked => "skip",
            Severity::Warning => "WARN",
            Severity::Fail => "FAIL",
        })
    }
}

/// What a finding is about; see the [module docs](self) for each check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The node answers.
    Reachable,
    /// The Redis version.
    Version,
    /// Master or replica.
    Role,
    /// Not the same server (or replication group) as another node.
    Independence,
    /// AOF and its fsync policy.
    Persistence,
    /// `maxmemory-policy`.
    Eviction,
    /// The node's clock against this machine's.
    Clock,
    /// Uptime against the restart quarantine window.
    Uptime,
    /// A Redis Cluster serves every slot.
    ClusterSlots,
    /// The number of nodes (the set).
    NodeCount,
    /// The nodes' clocks against each other (the set).
    ClockSpread,
}

impl Check {
    /// The per-node checks, in report order.
    pub const PER_NODE: [Check; 8] = [
        Check::Reachable,
        Check::Version,
        Check::Role,
        Check::Independence,
        Check::Persistence,
        Check::Eviction,
        Check::Clock,
        Check::Uptime,
    ];

    /// The check's name in reports (`eviction`, `node-count`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Check::Reachable => "reachable",
            Check::Version => "version",
            Check::Role => "role",
            Check::Independence => "independence",
            Check::Persistence => "persistence",
            Check::Eviction => "eviction",
            Check::Clock => "clock",
            Check::Uptime => "uptime",
            Check::ClusterSlots => "cluster-slots",
            Check::NodeCount => "node-count",
            Check::ClockSpread => "clock-spread",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One check's verdict on one node (or on the set).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The node, by its name ([`LockBackend::describe`], never a
    /// password); `None` for a finding about the whole set.
    pub node: Option<String>,
    /// For a Redis Cluster backend, the master the finding is about (its
    /// address, `127.0.0.1:7001`); `None` for a standalone node and the set.
    pub server: Option<String>,
    /// What was checked.
    pub check: Check,
    /// The verdict.
    pub severity: Severity,
    /// What was found, and what to change when it is not ok.
    pub message: String,
}

impl Finding {
    fn new(at: Option<At<'_>>, check: Check, severity: Severity, message: String) -> Finding {
        Finding {
            node: at.map(|a| a.node.to_owned()),
            server: at.and_then(|a| a.server.map(str::to_owned)),
            check,
            severity,
            message,
        }
    }
}

impl fmt::Display for Finding {
    /// `FAIL eviction      redis://127.0.0.1:7001: maxmemory-policy is ...`;
    /// a cluster master shows as `<node> @ <address>`, the set as `(all nodes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {:<13} {}",
            self.severity,
            self.check,
            self.node.as_deref().unwrap_or("(all nodes)"),
        )?;
        if let Some(server) = &self.server {
            write!(f, " @ {server}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Which node (and which master of a cluster node) a finding is about.
#[derive(Clone, Copy)]
struct At<'a> {
    node: &'a str,
    server: Option<&'a str>,
}

impl<'a> At<'a> {
    fn node(node: &'a str) -> Option<At<'a>> {
        Some(At { node, server: None })
    }
}

/// The doctor's findings; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorReport {
    /// Every finding: per node in the order of the nodes (each node's checks
    /// in the order of [`Check::PER_NODE`], then `cluster-slots`), then the
    /// set's.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// Whether no finding is a [`Severity::Fail`] (warnings and checks not
    /// made do not fail the report).
    pub fn passed(&self) -> bool {
        self.worst() < Severity::Fail
    }

    /// The most serious severity found ([`Severity::Ok`] for no findings).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// The findings of one check.
    pub fn of(&self, check: Check) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.check == check)
    }

    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The failed findings.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
    }
}

impl fmt::Display for DoctorReport {
    /// One line per finding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, finding) in self.findings.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{finding}")?;
        }
        Ok(())
    }
}

mod checks;
mod gather;
#[cfg(test)]
mod tests;

use checks::*;
pub(crate) use gather::doctor;
use gather::*;
