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

/// The commands of the first round trip, in this order.
const INFO: usize = 0;
const APPENDONLY: usize = 1;
const APPENDFSYNC: usize = 2;
const POLICY: usize = 3;
const MAXMEMORY: usize = 4;
const CLUSTER_INFO: usize = 5;

fn facts_commands() -> Vec<Vec<String>> {
    let cmd = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    vec![
        cmd(&["INFO"]),
        cmd(&["CONFIG", "GET", "appendonly"]),
        cmd(&["CONFIG", "GET", "appendfsync"]),
        cmd(&["CONFIG", "GET", "maxmemory-policy"]),
        cmd(&["CONFIG", "GET", "maxmemory"]),
        cmd(&["CLUSTER", "INFO"]),
    ]
}

/// A node's clock against this machine's, from one `TIME` round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClockReading {
    /// Node time minus the middle of the round trip, in microseconds.
    offset_us: i128,
    /// Half the round trip, in microseconds.
    uncertainty_us: i128,
}

/// What one server behind a backend answered.
#[derive(Clone, Debug)]
pub(crate) struct ServerFacts {
    /// The server's address, for a backend that stands for several.
    server: Option<String>,
    replies: ServerReplies,
    clock: Result<ClockReading, String>,
}

/// What one node (backend) answered, or why it did not.
#[derive(Clone, Debug)]
pub(crate) struct NodeFacts {
    name: String,
    servers: Result<Vec<ServerFacts>, BackendError>,
}

fn micros_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i128,
        Err(e) => -(e.duration().as_micros() as i128),
    }
}

/// `TIME`'s answer, `[seconds, microseconds]`, in microseconds.
fn node_time(value: &Value) -> Option<i128> {
    match value {
        Value::Array(items) => match items.as_slice() {
            [s, us] => Some(i128::from(s.as_int()?) * 1_000_000 + i128::from(us.as_int()?)),
            _ => None,
        },
        _ => None,
    }
}

async fn bounded<T>(
    runtime: &dyn Runtime,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    let fut = std::pin::pin!(fut);
    match select(fut, runtime.sleep(timeout)).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(BackendError::timeout(timeout)),
    }
}

/// Inspects one node: the facts, then `TIME` on a round trip of its own.
async fn gather(
    backend: &dyn LockBackend,
    name: &str,
    runtime: &dyn Runtime,
    timeout: Duration,
) -> NodeFacts {
    let facts = bounded(
        runtime,
        timeout,
        backend.inspect(&Inspection::every_server(facts_commands())),
    )
    .await;
    let servers = match facts {
        Err(e) => Err(e),
        Ok(answers) => {
            let time = vec![vec!["TIME".to_owned()]];
            // The wall clock once, the round trip on the monotonic clock (a
            // wall-clock step during the call cannot distort it).
            let sent_at = SystemTime::now();
            let sent = Instant::now();
            let times = bounded(
                runtime,
                timeout,
                backend.inspect(&Inspection::every_server(time)),
            )
            .await;
            let round_trip = sent.elapsed().as_micros() as i128;
            let uncertainty_us = round_trip / 2;
            let middle = micros_since_epoch(sent_at) + uncertainty_us;
            Ok(answers
                .into_iter()
                .map(|replies| {
                    let clock = match &times {
                        Err(e) => Err(format!("TIME failed: {e}")),
                        Ok(times) => times
                            .iter()
                            .find(|t| t.server == replies.server)
                            .or(times.first().filter(|_| times.len() == 1))
                            .ok_or_else(|| "no answer to TIME".to_owned())
                            .and_then(|t| match t.reply(0) {
                                Value::Error(e) => Err(format!("TIME refused: {e}")),
                                v => node_time(v)
                                    .map(|node| ClockReading {
                                        offset_us: node - middle,
                                        uncertainty_us,
                                    })
                                    .ok_or_else(|| format!("TIME answered {v:?}")),
                            }),
                    };
                    ServerFacts {
                        server: replies.server.clone(),
                        replies,
                        clock,
                    }
                })
                .collect())
        }
    };
    NodeFacts {
        name: name.to_owned(),
        servers,
    }
}

/// Runs the doctor over `backends` (named `names`), each node in parallel.
pub(crate) async fn doctor(
    backends: &[Box<dyn LockBackend>],
    names: &[String],
    runtime: &dyn Runtime,
    settings: &Settings,
    options: &DoctorOptions,
) -> DoctorReport {
    let nodes = join_all(
        backends
            .iter()
            .zip(names)
            .map(|(b, name)| gather(&**b, name, runtime, options.timeout)),
    )
    .await;
    let report = assess(&nodes, settings, options);
    for f in &report.findings {
        tracing::debug!(node = ?f.node, server = ?f.server, check = f.check.name(), severity = ?f.severity, message = %f.message, "doctor finding");
    }
    tracing::info!(
        passed = report.passed(),
        failed = report.count(Severity::Fail),
        warnings = report.count(Severity::Warning),
        not_checked = report.count(Severity::NotChecked),
        "doctor checked {} node(s)",
        nodes.len()
    );
    report
}

/// `key:value` lines of an `INFO` reply.
fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// `CONFIG GET name`'s value, or the error line.
fn config<'a>(
    replies: &'a ServerReplies,
    i: usize,
    name: &str,
) -> Result<Option<&'a str>, &'a str> {
    match replies.reply(i) {
        Value::Error(e) => Err(e),
        v => Ok(v
            .pairs()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)),
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

fn millis(us: i128) -> String {
    format!("{:+.1} ms", us as f64 / 1000.0)
}

/// One server's identity, for the set's independence check.
struct Identity<'a> {
    node: usize,
    /// Where its independence finding goes among the findings.
    position: usize,
    at: At<'a>,
    label: String,
    run_id: Option<&'a str>,
    replid: Option<&'a str>,
    is_replica: bool,
}

/// Turns the facts into findings. Pure: the unit tests feed it facts.
pub(crate) fn assess(
    nodes: &[NodeFacts],
    settings: &Settings,
    options: &DoctorOptions,
) -> DoctorReport {
    let mut findings = Vec::new();
    let tolerance_us = options.clock_tolerance.as_micros() as i128;
    let mut identities: Vec<Identity<'_>> = Vec::new();
    let mut clocks: Vec<(String, ClockReading)> = Vec::new();

    for (index, node) in nodes.iter().enumerate() {
        let servers = match &node.servers {
            Ok(servers) if !servers.is_empty() => servers,
            Ok(_) => {
                let e = BackendError::new(ErrorKind::Protocol, "no server answered");
                not_checked_node(&mut findings, &node.name, &e);
                continue;
            }
            Err(e) => {
                not_checked_node(&mut findings, &node.name, e);
                continue;
            }
        };
        let mut cluster_slots: Option<(Severity, String)> = None;
        for server in servers {
            let label = match &server.server {
                Some(addr) => format!("{} @ {addr}", node.name),
                None => node.name.clone(),
            };
            let at = Some(At {
                node: &node.name,
                server: server.server.as_deref(),
            });
            let text = match server.replies.reply(INFO) {
                Value::Text(text) => text.as_str(),
                other => {
                    let why = match other {
                        Value::Error(e) => format!("connected, but INFO was refused: {e}"),
                        other => format!("INFO answered {other:?}, not its text"),
                    };
                    findings.push(Finding::new(at, Check::Reachable, Severity::Fail, why));
                    for check in &Check::PER_NODE[1..] {
                        findings.push(Finding::new(
                            at,
                            *check,
                            Severity::NotChecked,
                            "not checked: INFO unreadable".to_owned(),
                        ));
                    }
                    continue;
                }
            };
            let info = parse_info(text);
            findings.push(Finding::new(
                at,
                Check::Reachable,
                Severity::Ok,
                "answers".to_owned(),
            ));
            findings.push(version(at, &info));
            let is_replica = matches!(info.get("role"), Some(&"slave") | Some(&"replica"));
            findings.push(role(at, &info));
            identities.push(Identity {
                node: index,
                position: findings.len(),
                at: At {
                    node: &node.name,
                    server: server.server.as_deref(),
                },
                label: label.clone(),
                run_id: info.get("run_id").copied().filter(|s| !s.is_empty()),
                replid: info.get("master_replid").copied().filter(|s| !s.is_empty()),
                is_replica,
            });
            findings.push(persistence(at, &info, &server.replies, settings));
            findings.push(eviction(at, &info, &server.replies));
            findings.push(match &server.clock {
                Err(e) => Finding::new(at, Check::Clock, Severity::NotChecked, e.clone()),
                Ok(reading) => {
                    clocks.push((label.clone(), *reading));
                    let off = reading.offset_us.abs() - reading.uncertainty_us;
                    let (severity, advice) = if off > tolerance_us {
                        (
                            Severity::Warning,
                            format!(
                                "; more than {} ms off: check that the node's clock is synchronised (NTP), \
                                 Redis expires keys by its wall clock",
                                options.clock_tolerance.as_millis()
                            ),
                        )
                    } else {
                        (Severity::Ok, String::new())
                    };
                    Finding::new(
                        at,
                        Check::Clock,
                        severity,
                        format!(
                            "offset {} against this machine (± {:.1} ms){advice}",
                            millis(reading.offset_us),
                            reading.uncertainty_us as f64 / 1000.0
                        ),
                    )
                }
            });
            findings.push(uptime(at, &info, settings));
            if info.get("cluster_enabled") == Some(&"1") {
                let slots = slot_coverage(server.replies.reply(CLUSTER_INFO));
                if cluster_slots
                    .as_ref()
                    .is_none_or(|(worst, _)| slots.0 > *worst)
                {
                    cluster_slots = Some(slots);
                }
            }
        }
        if let Some((severity, message)) = cluster_slots {
            findings.push(Finding::new(
                At::node(&node.name),
                Check::ClusterSlots,
                severity,
                message,
            ));
        }
    }

    // Independence: a server must appear once, and belong to no other
    // node's replication group.
    let mut inserts: Vec<(usize, Finding)> = Vec::new();
    for (k, identity) in identities.iter().enumerate() {
        let same_server = identities
            .iter()
            .take(k)
            .chain(identities.iter().skip(k + 1))
            .find(|o| identity.run_id.is_some() && o.run_id == identity.run_id);
        let same_group = identities
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != k && o.node != identity.node)
            .map(|(_, o)| o)
            .find(|o| {
                identity.replid.is_some()
                    && o.replid == identity.replid
                    && o.run_id != identity.run_id
            });
        let finding = match (same_server, same_group) {
            (Some(other), _) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Fail,
                format!(
                    "the same server as {} (run_id {}): a server listed twice votes twice",
                    other.label,
                    short(identity.run_id.unwrap_or_default())
                ),
            ),
            (None, Some(other)) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Fail,
                format!(
                    "same replication id as {} ({}): {} of one master, not independent nodes",
                    other.label,
                    short(identity.replid.unwrap_or_default()),
                    if identity.is_replica || other.is_replica {
                        "a master and its replica, or replicas"
                    } else {
                        "copies"
                    }
                ),
            ),
            (None, None) if identity.run_id.is_none() => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::NotChecked,
                "INFO reports no run_id".to_owned(),
            ),
            (None, None) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Ok,
                format!(
                    "run_id {} and replication id unique in the set",
                    short(identity.run_id.unwrap_or_default())
                ),
            ),
        };
        inserts.push((identity.position, finding));
    }
    // Insert from the back, so earlier positions stay valid.
    for (position, finding) in inserts.into_iter().rev() {
        findings.insert(position, finding);
    }

    findings.push(node_count(nodes.len()));
    findings.push(clock_spread(&clocks, options));
    DoctorReport { findings }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Every per-node check of a node that could not be inspected.
fn not_checked_node(findings: &mut Vec<Finding>, name: &str, e: &BackendError) {
    let at = At::node(name);
    let (severity, why) = if e.kind() == ErrorKind::Unsupported {
        (
            Severity::NotChecked,
            format!(
                "not checked: this backend cannot be inspected ({})",
                e.message()
            ),
        )
    } else {
        (Severity::Fail, format!("unreachable: {e}"))
    };
    findings.push(Finding::new(at, Check::Reachable, severity, why));
    for check in &Check::PER_NODE[1..] {
        let message = if e.kind() == ErrorKind::Unsupported {
            "not checked: backend cannot be inspected".to_owned()
        } else {
            "not checked: node unreachable".to_owned()
        };
        findings.push(Finding::new(at, *check, Severity::NotChecked, message));
    }
}

fn version(at: Option<At<'_>>, info: &HashMap<&str, &str>) -> Finding {
    match info.get("redis_version") {
        None => Finding::new(
            at,
            Check::Version,
            Severity::Warning,
            "INFO reports no redis_version: not a Redis server the library knows".to_owned(),
        ),
        Some(v) => match parse_version(v) {
            Some(found) if found < MIN_VERSION => Finding::new(
                at,
                Check::Version,
                Severity::Fail,
                format!(
                    "Redis {v} is older than {}.{}.{}, which SET ... NX PX needs",
                    MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
                ),
            ),
            Some(_) => Finding::new(at, Check::Version, Severity::Ok, format!("Redis {v}")),
            None => Finding::new(
                at,
                Check::Version,
                Severity::Warning,
                format!("unrecognised redis_version {v:?}"),
            ),
        },
    }
}

fn role(at: Option<At<'_>>, info: &HashMap<&str, &str>) -> Finding {
    match info.get("role").copied() {
        Some("master") => {
            let replicas = info
                .get("connected_slaves")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if replicas > 0 {
                Finding::new(
                    at,
                    Check::Role,
                    Severity::Warning,
                    format!(
                        "master with {replicas} replica(s): replication is asynchronous, so a \
                         failover to a replica can lose locks; Redlock wants independent masters"
                    ),
                )
            } else {
                Finding::new(at, Check::Role, Severity::Ok, "master".to_owned())
            }
        }
        Some("slave") | Some("replica") => {
            let of = match (info.get("master_host"), info.get("master_port")) {
                (Some(h), Some(p)) => format!(" of {h}:{p}"),
                _ => String::new(),
            };
            Finding::new(
                at,
                Check::Role,
                Severity::Fail,
                format!(
                    "a replica{of}: it is not an independent node (it copies its master, and \
                     refuses writes); list independent masters only"
                ),
            )
        }
        other => Finding::new(
            at,
            Check::Role,
            Severity::Warning,
            format!("unrecognised role {other:?}"),
        ),
    }
}

fn persistence(
    at: Option<At<'_>>,
    info: &HashMap<&str, &str>,
    replies: &ServerReplies,
    settings: &Settings,
) -> Finding {
    let covered = settings.restart_quarantine.is_some() && !settings.fencing;
    let without_aof = |how: &str| {
        if covered {
            Finding::new(
                at,
                Check::Persistence,
                Severity::Ok,
                format!(
                    "no AOF ({how}); restart quarantine keeps a restarted node from voting \
                     until its lost locks have expired"
                ),
            )
        } else {
            Finding::new(
                at,
                Check::Persistence,
                Severity::Warning,
                format!(
                    "no AOF ({how}): a restarted node forgets its locks{} at once; set \
                     appendonly yes with appendfsync always, or turn on restart_quarantine",
                    if settings.fencing {
                        " and fence counters (fencing tokens can go backwards)"
                    } else {
                        ""
                    }
                ),
            )
        }
    };
    match (
        config(replies, APPENDONLY, "appendonly"),
        config(replies, APPENDFSYNC, "appendfsync"),
    ) {
        (Ok(Some(aof)), Ok(fsync)) => {
            if !aof.eq_ignore_ascii_case("yes") {
                return without_aof("appendonly no");
            }
            match fsync {
                Some(f) if f.eq_ignore_ascii_case("always") => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::Ok,
                    "AOF on, appendfsync always".to_owned(),
                ),
                other => Finding::new(
                    at,
                    Check::Persistence,
                    if covered {
                        Severity::Ok
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "AOF on, appendfsync {}: a crash can lose the last writes (locks{}); \
                         use appendfsync always{}",
                        other.unwrap_or("unknown"),
                        if settings.fencing {
                            ", fence counters"
                        } else {
                            ""
                        },
                        if covered {
                            " (restart quarantine covers the locks)"
                        } else {
                            ", or restart_quarantine"
                        }
                    ),
                ),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            let refused = format!("CONFIG GET refused ({})", e.trim());
            match info.get("aof_enabled").copied() {
                Some("1") => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::Warning,
                    format!(
                        "{refused}: INFO says AOF is on, but appendfsync cannot be read; \
                         make sure it is always"
                    ),
                ),
                Some("0") => without_aof(&format!("{refused}; INFO says aof_enabled:0")),
                _ => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::NotChecked,
                    format!("{refused}, and INFO reports no aof_enabled"),
                ),
            }
        }
        (Ok(None), Ok(_)) => match info.get("aof_enabled").copied() {
            Some("1") => Finding::new(
                at,
                Check::Persistence,
                Severity::Warning,
                "CONFIG GET appendonly answered nothing; INFO says AOF is on, appendfsync unknown"
                    .to_owned(),
            ),
            Some("0") => without_aof("INFO says aof_enabled:0"),
            _ => Finding::new(
                at,
                Check::Persistence,
                Severity::NotChecked,
                "neither CONFIG GET nor INFO report AOF".to_owned(),
            ),
        },
    }
}

fn eviction(at: Option<At<'_>>, info: &HashMap<&str, &str>, replies: &ServerReplies) -> Finding {
    let (policy, source) = match config(replies, POLICY, "maxmemory-policy") {
        Ok(Some(p)) => (Some(p), String::new()),
        Ok(None) => (
            info.get("maxmemory_policy").copied(),
            " (from INFO)".to_owned(),
        ),
        Err(e) => (
            info.get("maxmemory_policy").copied(),
            format!(" (CONFIG GET refused: {}; read from INFO)", e.trim()),
        ),
    };
    let maxmemory = match config(replies, MAXMEMORY, "maxmemory") {
        Ok(Some(m)) => Some(m),
        _ => info.get("maxmemory").copied(),
    };
    let limit = match maxmemory {
        Some("0") => " (maxmemory 0, no limit yet: any limit set later makes it evict)".to_owned(),
        Some(m) => format!(" (maxmemory {m})"),
        None => String::new(),
    };
    match policy {
        None => Finding::new(
            at,
            Check::Eviction,
            Severity::NotChecked,
            format!("maxmemory-policy not readable{source}"),
        ),
        Some("noeviction") => Finding::new(
            at,
            Check::Eviction,
            Severity::Ok,
            format!("maxmemory-policy noeviction{source}"),
        ),
        Some(p) => {
            let what = if p.starts_with("volatile") {
                "lock keys (they have TTLs)"
            } else {
                "lock keys and fence counters"
            };
            Finding::new(
                at,
                Check::Eviction,
                Severity::Fail,
                format!(
                    "maxmemory-policy {p}{source}{limit} can evict {what}, releasing locks \
                     early; set maxmemory-policy noeviction"
                ),
            )
        }
    }
}

fn uptime(at: Option<At<'_>>, info: &HashMap<&str, &str>, settings: &Settings) -> Finding {
    let Some(up) = info
        .get("uptime_in_seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
    else {
        return Finding::new(
            at,
            Check::Uptime,
            Severity::NotChecked,
            "INFO reports no uptime_in_seconds".to_owned(),
        );
    };
    match settings.restart_quarantine {
        None => Finding::new(
            at,
            Check::Uptime,
            Severity::Ok,
            format!("up {} (restart quarantine off)", human(up)),
        ),
        Some(window) if up < window => Finding::new(
            at,
            Check::Uptime,
            Severity::Warning,
            format!(
                "up {}, inside the restart quarantine window of {}: it does not vote for \
                 acquires for another {}",
                human(up),
                human(window),
                human(window - up)
            ),
        ),
        Some(window) => Finding::new(
            at,
            Check::Uptime,
            Severity::Ok,
            format!(
                "up {}, past the restart quarantine window of {}",
                human(up),
                human(window)
            ),
        ),
    }
}

/// The severity and message of a master's `CLUSTER INFO`.
fn slot_coverage(value: &Value) -> (Severity, String) {
    let text = match value {
        Value::Text(t) => t,
        Value::Error(e) => return (Severity::NotChecked, format!("CLUSTER INFO refused: {e}")),
        other => {
            return (
                Severity::NotChecked,
                format!("CLUSTER INFO answered {other:?}"),
            )
        }
    };
    let info = parse_info(text);
    let state = info.get("cluster_state").copied().unwrap_or("unknown");
    let ok = info
        .get("cluster_slots_ok")
        .and_then(|n| n.parse::<u64>().ok());
    match ok {
        Some(ALL_SLOTS) if state == "ok" => (
            Severity::Ok,
            format!("cluster_state ok, all {ALL_SLOTS} slots served"),
        ),
        Some(n) => (
            Severity::Fail,
            format!(
                "cluster_state {state}, {n} of {ALL_SLOTS} slots served: locks on the others fail"
            ),
        ),
        None => (
            Severity::NotChecked,
            "CLUSTER INFO reports no cluster_slots_ok".to_owned(),
        ),
    }
}

fn node_count(n: usize) -> Finding {
    let quorum = n / 2 + 1;
    let (severity, message) = if n < 3 {
        (
            Severity::Warning,
            format!(
                "{n} node(s), quorum {quorum}: no node may fail; use at least 3 (an odd number)"
            ),
        )
    } else if n.is_multiple_of(2) {
        (
            Severity::Warning,
            format!(
                "{n} nodes, quorum {quorum}: an even number tolerates no more failures ({}) \
                 than {} nodes would; use an odd number",
                n - quorum,
                n - 1
            ),
        )
    } else {
        (
            Severity::Ok,
            format!("{n} nodes, quorum {quorum}: {} may fail", n - quorum),
        )
    };
    Finding::new(None, Check::NodeCount, severity, message)
}

fn clock_spread(clocks: &[(String, ClockReading)], options: &DoctorOptions) -> Finding {
    let (Some(low), Some(high)) = (
        clocks.iter().min_by_key(|(_, c)| c.offset_us),
        clocks.iter().max_by_key(|(_, c)| c.offset_us),
    ) else {
        return Finding::new(
            None,
            Check::ClockSpread,
            Severity::NotChecked,
            "no node's clock was read".to_owned(),
        );
    };
    let spread = high.1.offset_us - low.1.offset_us;
    let slack = high.1.uncertainty_us + low.1.uncertainty_us;
    let tolerance = options.clock_tolerance.as_micros() as i128;
    if clocks.len() < 2 {
        return Finding::new(
            None,
            Check::ClockSpread,
            Severity::Ok,
            "one clock read: nothing to compare".to_owned(),
        );
    }
    let message = format!(
        "{} ms between the nodes' clocks ({} fastest, {} slowest; ± {:.1} ms)",
        spread / 1000,
        high.0,
        low.0,
        slack as f64 / 1000.0
    );
    if spread - slack > tolerance {
        Finding::new(
            None,
            Check::ClockSpread,
            Severity::Warning,
            format!(
                "{message}: more than {} ms; synchronise the nodes' clocks",
                options.clock_tolerance.as_millis()
            ),
        )
    } else {
        Finding::new(None, Check::ClockSpread, Severity::Ok, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(run_id: &str, replid: &str, role: &str, extra: &str) -> String {
        format!(
            "# Server\r\nredis_version:7.0.15\r\nrun_id:{run_id}\r\nuptime_in_seconds:3600\r\n\
             # Memory\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n\
             # Replication\r\nrole:{role}\r\nconnected_slaves:0\r\nmaster_replid:{replid}\r\n{extra}"
        )
    }

    fn pair(k: &str, v: &str) -> Value {
        Value::Array(vec![Value::Text(k.into()), Value::Text(v.into())])
    }

    fn healthy(run_id: &str, replid: &str) -> Vec<Value> {
        vec![
            Value::Text(info(run_id, replid, "master", "")),
            pair("appendonly", "yes"),
            pair("appendfsync", "always"),
            pair("maxmemory-policy", "noeviction"),
            pair("maxmemory", "0"),
            Value::Error("ERR This instance has cluster support disabled".into()),
        ]
    }

    fn node(name: &str, replies: Vec<Value>, offset_ms: i128) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            servers: Ok(vec![ServerFacts {
                server: None,
                replies: ServerReplies::node(replies),
                clock: Ok(ClockReading {
                    offset_us: offset_ms * 1000,
                    uncertainty_us: 200,
                }),
            }]),
        }
    }

    fn run(nodes: &[NodeFacts]) -> DoctorReport {
        assess(nodes, &Settings::default(), &DoctorOptions::default())
    }

    fn severity(report: &DoctorReport, check: Check, node: &str) -> Severity {
        report
            .of(check)
            .find(|f| f.node.as_deref() == Some(node))
            .map(|f| f.severity)
            .unwrap_or_else(|| panic!("no {check} finding for {node}:\n{report}"))
    }

    #[test]
    fn a_healthy_set_passes_with_every_check_ok() {
        let report = run(&[
            node("a", healthy("r1", "x1"), 1),
            node("b", healthy("r2", "x2"), -2),
            node("c", healthy("r3", "x3"), 0),
        ]);
        assert!(report.passed(), "{report}");
        assert_eq!(report.worst(), Severity::Ok, "{report}");
        // Eight per node, two for the set.
        assert_eq!(report.findings.len(), 3 * 8 + 2, "{report}");
        assert_eq!(report.to_string().lines().count(), report.findings.len());
        let a: Vec<Check> = report
            .findings
            .iter()
            .filter(|f| f.node.as_deref() == Some("a"))
            .map(|f| f.check)
            .collect();
        assert_eq!(a, Check::PER_NODE);
    }

    #[test]
    fn an_evicting_policy_fails_naming_the_node() {
        let mut replies = healthy("r2", "x2");
        replies[POLICY] = pair("maxmemory-policy", "allkeys-lru");
        let mut volatile = healthy("r3", "x3");
        volatile[POLICY] = pair("maxmemory-policy", "volatile-ttl");
        let report = run(&[
            node("a", healthy("r1", "x1"), 0),
            node("b", replies, 0),
            node("c", volatile, 0),
        ]);
        assert!(!report.passed());
        let failed: Vec<_> = report.failures().collect();
        assert_eq!(failed.len(), 2, "{report}");
        assert_eq!(report.count(Severity::Fail), 2);
        assert_eq!(report.count(Severity::Ok), report.findings.len() - 2);
        assert_eq!(failed[0].node.as_deref(), Some("b"));
        assert_eq!(failed[0].check, Check::Eviction);
        assert!(failed[0].message.contains("allkeys-lru"), "{}", failed[0]);
        assert!(failed[1].message.contains("lock keys (they have TTLs)"));
        assert!(
            report.to_string().contains("FAIL eviction      b: "),
            "{report}"
        );
    }

    #[test]
    fn refused_config_falls_back_to_info_and_says_so() {
        let mut replies = healthy("r1", "x1");
        for i in [APPENDONLY, APPENDFSYNC, POLICY, MAXMEMORY] {
            replies[i] = Value::Error(
                "NOPERM this user has no permissions to run the 'config|get' command".into(),
            );
        }
        let report = run(&[node("a", replies, 0)]);
        let persistence = report.of(Check::Persistence).next().expect("finding");
        assert_eq!(persistence.severity, Severity::Warning);
        assert!(
            persistence.message.contains("CONFIG GET refused (NOPERM"),
            "{persistence}"
        );
        assert!(persistence.message.contains("AOF is on"), "{persistence}");
        let eviction = report.of(Check::Eviction).next().expect("finding");
        assert_eq!(eviction.severity, Severity::Ok, "{eviction}");
        assert!(eviction.message.contains("read from INFO"), "{eviction}");
    }

    #[test]
    fn a_server_listed_twice_and_a_replica_fail() {
        let replica = info(
            "r3",
            "x1",
            "slave",
            "master_host:127.0.0.1\r\nmaster_port:7001\r\n",
        );
        let mut replica_replies = healthy("r3", "x1");
        replica_replies[INFO] = Value::Text(replica);
        let report = run(&[
            node("a", healthy("r1", "x1"), 0),
            node("a-again", healthy("r1", "x1"), 0),
            node("c", replica_replies, 0),
        ]);
        assert_eq!(severity(&report, Check::Independence, "a"), Severity::Fail);
        assert_eq!(
            severity(&report, Check::Independence, "a-again"),
            Severity::Fail
        );
        assert_eq!(severity(&report, Check::Independence, "c"), Severity::Fail);
        assert_eq!(severity(&report, Check::Role, "c"), Severity::Fail);
        assert_eq!(severity(&report, Check::Role, "a"), Severity::Ok);
        let twice = report
            .of(Check::Independence)
            .find(|f| f.node.as_deref() == Some("a-again"))
            .expect("finding");
        assert!(twice.message.contains("the same server as a "), "{twice}");
        let role = report
            .of(Check::Role)
            .find(|f| f.node.as_deref() == Some("c"))
            .expect("finding");
        assert!(role.message.contains("replica of 127.0.0.1:7001"), "{role}");
        // Each node's findings stay in check order.
        let c: Vec<Check> = report
            .findings
            .iter()
            .filter(|f| f.node.as_deref() == Some("c"))
            .map(|f| f.check)
            .collect();
        assert_eq!(c, Check::PER_NODE);
    }

    #[test]
    fn set_size_and_clocks() {
        let report = run(&[
            node("a", healthy("r1", "x1"), 0),
            node("b", healthy("r2", "x2"), 0),
        ]);
        let count = report.of(Check::NodeCount).next().expect("finding");
        assert_eq!(count.severity, Severity::Warning);
        assert!(count.node.is_none());
        assert!(report.passed(), "a warning does not fail: {report}");

        let report = run(&[
            node("a", healthy("r1", "x1"), 0),
            node("b", healthy("r2", "x2"), 2000),
            node("c", healthy("r3", "x3"), 100),
            node("d", healthy("r4", "x4"), 0),
        ]);
        assert_eq!(
            report.of(Check::NodeCount).next().map(|f| f.severity),
            Some(Severity::Warning)
        );
        assert_eq!(severity(&report, Check::Clock, "b"), Severity::Warning);
        assert_eq!(severity(&report, Check::Clock, "c"), Severity::Ok);
        let spread = report.of(Check::ClockSpread).next().expect("finding");
        assert_eq!(spread.severity, Severity::Warning, "{spread}");
        assert!(spread.message.contains("b fastest"), "{spread}");
    }

    #[test]
    fn info_refused_fails_reachable_and_skips_the_rest() {
        let mut refused = healthy("r1", "x1");
        refused[INFO] = Value::Error("NOPERM no INFO for you".into());
        let mut odd = healthy("r2", "x2");
        odd[INFO] = Value::Int(1);
        let report = run(&[node("a", refused, 0), node("b", odd, 0)]);
        for name in ["a", "b"] {
            let checks: Vec<(Check, Severity)> = report
                .findings
                .iter()
                .filter(|f| f.node.as_deref() == Some(name))
                .map(|f| (f.check, f.severity))
                .collect();
            assert_eq!(checks.len(), Check::PER_NODE.len(), "{report}");
            assert_eq!(checks[0], (Check::Reachable, Severity::Fail), "{report}");
            assert!(checks[1..].iter().all(|(_, s)| *s == Severity::NotChecked));
        }
        assert!(
            report.to_string().contains("INFO was refused: NOPERM"),
            "{report}"
        );
    }

    #[test]
    fn unreachable_and_uninspectable_nodes() {
        let down = NodeFacts {
            name: "down".into(),
            servers: Err(BackendError::new(ErrorKind::Connection, "refused")),
        };
        let memory = NodeFacts {
            name: "memory".into(),
            servers: Err(BackendError::new(ErrorKind::Unsupported, "no redis")),
        };
        let report = run(&[node("a", healthy("r1", "x1"), 0), down, memory]);
        assert_eq!(severity(&report, Check::Reachable, "down"), Severity::Fail);
        assert_eq!(
            severity(&report, Check::Eviction, "down"),
            Severity::NotChecked
        );
        assert!(report
            .findings
            .iter()
            .filter(|f| f.node.as_deref() == Some("memory"))
            .all(|f| f.severity == Severity::NotChecked && f.message.contains("not checked")));
        assert_eq!(report.failures().count(), 1, "{report}");
    }

    #[test]
    fn quarantine_window_and_persistence() {
        let mut settings = Settings {
            restart_quarantine: Some(Duration::from_secs(7200)),
            ..Settings::default()
        };
        let mut no_aof = healthy("r1", "x1");
        no_aof[APPENDONLY] = pair("appendonly", "no");
        let nodes = [node("a", no_aof, 0)];
        let report = assess(&nodes, &settings, &DoctorOptions::default());
        assert_eq!(severity(&report, Check::Uptime, "a"), Severity::Warning);
        assert_eq!(severity(&report, Check::Persistence, "a"), Severity::Ok);
        settings.fencing = true;
        let report = assess(&nodes, &settings, &DoctorOptions::default());
        assert_eq!(
            severity(&report, Check::Persistence, "a"),
            Severity::Warning
        );
        let report = run(&nodes);
        assert_eq!(severity(&report, Check::Uptime, "a"), Severity::Ok);
        assert_eq!(
            severity(&report, Check::Persistence, "a"),
            Severity::Warning
        );
    }

    #[test]
    fn cluster_masters_and_slot_coverage() {
        let cluster_info = |ok: u64, state: &str| {
            Value::Text(format!(
                "cluster_state:{state}\r\ncluster_slots_assigned:{ok}\r\ncluster_slots_ok:{ok}\r\n"
            ))
        };
        let master = |run_id: &str, ok: u64, state: &str| {
            let mut replies = healthy(run_id, run_id);
            replies[INFO] = Value::Text(info(run_id, run_id, "master", "cluster_enabled:1\r\n"));
            replies[CLUSTER_INFO] = cluster_info(ok, state);
            ServerFacts {
                server: Some(format!("127.0.0.1:{run_id}")),
                replies: ServerReplies::node(replies),
                clock: Ok(ClockReading {
                    offset_us: 0,
                    uncertainty_us: 100,
                }),
            }
        };
        let cluster = NodeFacts {
            name: "redis-cluster[...]".into(),
            servers: Ok(vec![
                master("7001", 16384, "ok"),
                master("7002", 16384, "ok"),
            ]),
        };
        let report = run(&[cluster]);
        let slots = report.of(Check::ClusterSlots).next().expect("finding");
        assert_eq!(slots.severity, Severity::Ok, "{report}");
        let second = report
            .of(Check::Independence)
            .find(|f| f.server.as_deref() == Some("127.0.0.1:7002"))
            .expect("a finding per master");
        assert_eq!(second.severity, Severity::Ok, "{report}");
        assert_eq!(second.node.as_deref(), Some("redis-cluster[...]"));
        assert!(
            second
                .to_string()
                .contains("redis-cluster[...] @ 127.0.0.1:7002: "),
            "{second}"
        );
        let broken = NodeFacts {
            name: "c".into(),
            servers: Ok(vec![
                master("7001", 16384, "ok"),
                master("7002", 10000, "fail"),
            ]),
        };
        let report = run(&[broken]);
        let slots = report.of(Check::ClusterSlots).next().expect("finding");
        assert_eq!(slots.severity, Severity::Fail, "{report}");
        assert!(slots.message.contains("10000 of 16384"), "{slots}");
    }
}
