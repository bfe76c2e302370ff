//! The chaos runner: K clients lock, read-modify-write and release over five
//! real redis-server nodes, each behind a [`FaultProxy`], while a fault
//! schedule hits the nodes; a checker counts what went wrong.
//!
//! # The workload
//!
//! Five independent nodes, each behind its own [`FaultProxy`]. `clients`
//! separate [`Redlock`](redlock_core::Redlock) instances (half through the redis-rs adapter, half
//! through fred; fencing tokens on) loop until the schedule ends: pick one of
//! a few resources, `acquire` it, read the resource's shared record, pause for
//! a random while (sometimes extending the lock halfway through), write the
//! record back plus one *only if the lock still has validity left*
//! ([`Lock::remaining_validity`](redlock_core::Lock::remaining_validity), checked by the record at the moment of the
//! write), and release.
//!
//! # The checker
//!
//! Each critical section is the interval [acquired, min(end, validity
//! deadline)] on the runner's monotonic clock, where `end` is taken after the
//! write and before the release. Per resource, in acquisition order:
//!
//! - an **overlap** is a section acquired before an earlier one's interval ended;
//! - a **lost update** is a write whose record changed since the section read it;
//! - a **token-order violation** is a section whose fencing token is not above
//!   every token of the sections acquired before it.
//!
//! After the clients stop and every fault is healed, the lock keys on every
//! node are counted at once (`keys_at_end`, informative: a release that could
//! not reach a node leaves its key to expire) and again after the TTL
//! (`keys_left`, which must be zero). Fence counters never expire and are not
//! lock keys.
//!
//! # The schedules
//!
//! | schedule | safe | what happens to a minority (1-2 of 5 nodes) |
//! |---|---|---|
//! | `baseline` | yes | nothing |
//! | `latency` | yes | 10-80 ms ± 0-30 ms each way, for 0.3-1 s at a time |
//! | `partition` | yes | blackhole (connections held, nothing answered) or cut off (connections refused), 0.3-1.5 s |
//! | `resets` | yes | all connections reset once, or every connection reset for 0.2-0.8 s |
//! | `pause` | yes | SIGSTOP for 0.3-1.5 s, then SIGCONT |
//! | `restart-aof` | yes | kill -9 and an immediate restart, with `appendonly yes`, `appendfsync always` |
//! | `restart-delayed` | yes | kill -9, restart (empty, no persistence) after TTL + 300 ms |
//! | `mixed` | yes | any of the above, at random (nodes run with AOF) |
//! | `majority-restart-no-aof` | **no** | while a client holds a lock, a majority (3 of 5) is killed and restarted at once without persistence |
//! | `majority-restart-no-aof-quarantine` | yes | the same faults, with [restart quarantine](redlock_core::Settings::restart_quarantine) on (window = the TTL) |
//! | `clock-jump-minority` | yes | the wall clock of a fixed minority (2 of 5) jumps forward by TTL + 0.1-1 s, one or both nodes at a time (libfaketime); a jumped node is out of service (cut off) for TTL + 300 ms, then serves again with its clock ahead; 0.15-0.5 s between jumps |
//! | `clock-jump-majority` | **no** | while a client holds a lock, the wall clock of a majority (3 of 5) jumps forward by TTL + 1 s (libfaketime) |
//!
//! `majority-restart-no-aof` breaks the algorithm's assumption (a restarted
//! node must not forget keys, or must stay down for the longest TTL): the
//! restarted majority comes back empty, another client takes the same lock
//! while the first still holds it, and the checker must report it (overlaps
//! and lost updates, and usually a token that went back, as the fence counters
//! were lost too).
//!
//! The clock schedules run every node under libfaketime (Debian package
//! `faketime`; see [`NodeOptions::fake_clock`]): only the wall clock jumps, as
//! with an NTP step, and Redis expires keys on the wall clock, so a jumped
//! node drops every lock key at once. Jumps only go forward and add up. A node
//! that forgets live keys is, for Redlock, a node restarted without
//! persistence: even one breaks a lock held on a bare quorum that counted it
//! (locked on A, B, C; C's clock jumps; another client locks C, D, E), and
//! under contention bare quorums are common. Unguarded minority jumps did
//! produce that overlap here (in 3 of 4 runs of 6-15 s, one overlap and one
//! lost update in 850-1,850 sections). So in
//! `clock-jump-minority` a jumped node is treated as a restarted one must be:
//! out of service for longer than the TTL, as in `restart-delayed`; the same
//! two nodes jump all run long, and serve between jumps with their clocks
//! ahead. That is safe (and fencing tokens rise: the fence counters do not
//! expire). `clock-jump-majority` has no such guard: a majority drops the
//! holder's keys at once, another client takes the same lock while the first
//! still holds it, and the checker must report it.
//!
//! `majority-restart-no-aof-quarantine` runs the same faults with restart
//! quarantine on: the restarted majority does not vote until the TTL has
//! passed since it came back, so no lock is granted meanwhile and there must
//! be no overlap and no lost update (fence counters are still lost, so token
//! order is reported, not required).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redlock_testkit::probe::Probe;
use redlock_testkit::proxy::{FaultProxy, ProxyHandle};
use redlock_testkit::server::{LaunchError, NodeOptions, RedisNode, RedisNodes};

mod check;
mod client;
mod faults;
mod report;
pub mod sys;

use check::Checker;
use client::{client, connect_client, ClientParams, Ctx, HoldEvent, Tally};
pub use report::{json_line, Failures, Report};

/// "No resource" in the atomics that name one.
const NONE: usize = usize::MAX;

/// A write needs at least this much validity left.
pub const WRITE_MARGIN: Duration = Duration::from_millis(5);

/// The unsafe schedules' TTL: long enough that a client can hold the lock
/// through a majority restart (or clock jump) and the other clients' reconnection.
pub const UNSAFE_MIN_TTL: Duration = Duration::from_secs(2);

/// A fault schedule; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// No faults.
    Baseline,
    /// Latency spikes with jitter on a minority.
    Latency,
    /// A minority blackholed or cut off.
    Partition,
    /// A minority's connections reset.
    Resets,
    /// A minority paused with SIGSTOP.
    Pause,
    /// A minority crashed and restarted at once, with AOF (`appendfsync always`).
    RestartAof,
    /// A minority crashed and restarted empty after more than the TTL.
    RestartDelayed,
    /// Any of the above, at random.
    Mixed,
    /// A majority crashed and restarted at once without persistence while a
    /// lock is held: unsafe.
    MajorityRestartNoAof,
    /// The same faults as [`MajorityRestartNoAof`](Self::MajorityRestartNoAof),
    /// with restart quarantine on: safe.
    MajorityRestartNoAofQuarantine,
    /// The wall clock of a fixed minority jumps forward by more than the TTL,
    /// again and again.
    ClockJumpMinority,
    /// The wall clock of a majority jumps forward by more than the TTL while
    /// a lock is held: unsafe.
    ClockJumpMajority,
}

impl Schedule {
    /// Every schedule, in the order the runner runs them.
    pub const ALL: [Schedule; 12] = [
        Schedule::Baseline,
        Schedule::Latency,
        Schedule::Partition,
        Schedule::Resets,
        Schedule::Pause,
        Schedule::RestartAof,
        Schedule::RestartDelayed,
        Schedule::Mixed,
        Schedule::MajorityRestartNoAof,
        Schedule::MajorityRestartNoAofQuarantine,
        Schedule::ClockJumpMinority,
        Schedule::ClockJumpMajority,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Baseline => "baseline",
            Schedule::Latency => "latency",
            Schedule::Partition => "partition",
            Schedule::Resets => "resets",
            Schedule::Pause => "pause",
            Schedule::RestartAof => "restart-aof",
            Schedule::RestartDelayed => "restart-delayed",
            Schedule::Mixed => "mixed",
            Schedule::MajorityRestartNoAof => "majority-restart-no-aof",
            Schedule::MajorityRestartNoAofQuarantine => "majority-restart-no-aof-quarantine",
            Schedule::ClockJumpMinority => "clock-jump-minority",
            Schedule::ClockJumpMajority => "clock-jump-majority",
        }
    }

    /// The schedule of that name.
    pub fn from_name(name: &str) -> Option<Schedule> {
        Schedule::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the algorithm promises mutual exclusion under this schedule.
    pub fn safe(self) -> bool {
        !matches!(
            self,
            Schedule::MajorityRestartNoAof | Schedule::ClockJumpMajority
        )
    }

    /// Whether fencing tokens are promised to rise: the schedule is safe and
    /// no node forgets its fence counters. `restart-delayed` brings nodes
    /// back empty: that keeps locks safe (they expired) but not the counters,
    /// so token order there is reported, not required (see
    /// `Lock::fencing_token` and `tests/fencing_restart.rs`).
    pub fn fencing_promised(self) -> bool {
        self.safe()
            && !matches!(
                self,
                Schedule::RestartDelayed | Schedule::MajorityRestartNoAofQuarantine
            )
    }

    /// Whether the schedule restarts a majority while a client holds a lock
    /// (and so needs a TTL of at least [`UNSAFE_MIN_TTL`]).
    pub fn majority_restart(self) -> bool {
        matches!(
            self,
            Schedule::MajorityRestartNoAof | Schedule::MajorityRestartNoAofQuarantine
        )
    }

    /// Whether the clients run with restart quarantine (window = the TTL).
    pub fn quarantine(self) -> bool {
        self == Schedule::MajorityRestartNoAofQuarantine
    }

    /// Whether the nodes run with AOF (`appendfsync always`).
    pub fn persistence(self) -> bool {
        matches!(self, Schedule::RestartAof | Schedule::Mixed)
    }

    /// Whether the nodes run under libfaketime, their wall clocks movable.
    pub fn fake_clock(self) -> bool {
        matches!(
            self,
            Schedule::ClockJumpMinority | Schedule::ClockJumpMajority
        )
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The runner's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long the clients work under each schedule (the unsafe schedule
    /// ends as soon as its violation was seen, and runs at least long enough
    /// for it).
    pub seconds: Duration,
    /// Clients (separate Redlock instances): the first half through redis-rs,
    /// the rest through fred.
    pub clients: usize,
    /// Resources the clients contend for.
    pub resources: usize,
    /// Independent nodes (at least 3).
    pub nodes: usize,
    /// The lock TTL (the unsafe schedule uses at least [`UNSAFE_MIN_TTL`]).
    pub ttl: Duration,
    /// The longest pause inside a critical section.
    pub max_pause: Duration,
    /// The share of critical sections that extend their lock halfway.
    pub extend_share: f64,
    /// Seed of the clients' and the schedule's random choices (timing still
    /// varies from run to run).
    pub seed: u64,
    /// Sample the process's memory and open file descriptors every second.
    pub sample_resources: bool,
    /// Print each fault to stderr.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seconds: Duration::from_secs(10),
            clients: 6,
            resources: 3,
            nodes: 5,
            ttl: Duration::from_secs(1),
            max_pause: Duration::from_millis(20),
            extend_share: 0.2,
            seed: 42,
            sample_resources: false,
            verbose: false,
        }
    }
}

/// Why a schedule could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChaosError {
    /// Starting a node.
    Launch(LaunchError),
    /// Starting a proxy or a runtime.
    Io(std::io::Error),
    /// Building a backend or a Redlock.
    Setup(String),
    /// The clients did not stop within a minute of the end: something hangs.
    Hung(String),
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChaosError::Launch(e) => write!(f, "could not start redis-server: {e}"),
            ChaosError::Io(e) => write!(f, "I/O error: {e}"),
            ChaosError::Setup(e) => write!(f, "setup failed: {e}"),
            ChaosError::Hung(e) => write!(f, "hung: {e}"),
        }
    }
}

impl std::error::Error for ChaosError {}

impl From<LaunchError> for ChaosError {
    fn from(e: LaunchError) -> Self {
        ChaosError::Launch(e)
    }
}

impl From<std::io::Error> for ChaosError {
    fn from(e: std::io::Error) -> Self {
        ChaosError::Io(e)
    }
}

/// Lock keys (not fence counters) under `prefix` on every running node. A
/// node that cannot be asked fails the count rather than hide its keys.
fn count_keys(nodes: &[RedisNode], prefix: &str) -> Result<u64, ChaosError> {
    let pattern = format!("{prefix}*");
    let mut total = 0;
    for node in nodes.iter().filter(|n| n.is_running()) {
        let keys: Vec<String> = Probe::new(&node.url())
            .try_query(redis::cmd("KEYS").arg(&pattern))
            .map_err(|e| ChaosError::Setup(format!("counting keys on {}: {e}", node.url())))?;
        total += keys.len() as u64;
    }
    Ok(total)
}

/// Runs one schedule: starts its nodes and proxies, the clients and the
/// faults, and checks what happened.
pub fn run(schedule: Schedule, config: &Config) -> Result<Report, ChaosError> {
    let ttl = if schedule.majority_restart() {
        config.ttl.max(UNSAFE_MIN_TTL)
    } else {
        config.ttl
    };
    let nodes = RedisNodes::start_with(
        config.nodes.max(3),
        NodeOptions {
            persistence: schedule.persistence(),
            fake_clock: schedule.fake_clock(),
            ..NodeOptions::default()
        },
    )?;
    if schedule.quarantine() {
        // The nodes were just started: under quarantine none votes until
        // the window (the TTL, plus the one second uptime is rounded by)
        // has passed. Let them age first, so the clients work normally
        // before the first restart.
        std::thread::sleep(ttl + Duration::from_millis(1500));
    }
    let proxies: Vec<FaultProxy> = nodes
        .iter()
        .map(FaultProxy::for_node)
        .collect::<Result<_, _>>()?;
    let handles: Vec<ProxyHandle> = proxies.iter().map(FaultProxy::handle).collect();
    let urls: Vec<String> = handles.iter().map(ProxyHandle::url).collect();
    let prefix = format!(
        "chaos:{}:{}-{}:",
        schedule.name(),
        std::process::id(),
        config.seed
    );
    let resources: Vec<String> = (0..config.resources.max(1))
        .map(|i| format!("{prefix}r{i}"))
        .collect();
    let (hold_tx, hold_rx) = channel();
    // The longest section: a long hold, or an extended one.
    let longest = ttl * 2 + config.max_pause;
    let ctx = Arc::new(Ctx {
        checker: Checker::new(resources.len(), longest),
        resources,
        stop_clients: AtomicBool::new(false),
        stop_faults: AtomicBool::new(false),
        finish_early: AtomicBool::new(false),
        focus: AtomicUsize::new(NONE),
        hold_request: AtomicUsize::new(NONE),
        holds: Mutex::new(hold_tx),
        sections_started: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let redlocks = runtime.block_on(async {
        let mut redlocks = Vec::with_capacity(config.clients);
        for i in 0..config.clients.max(1) {
            let fred = i >= config.clients.max(1) / 2;
            let quarantine = schedule.quarantine().then_some(ttl);
            redlocks.push(connect_client(&urls, fred, quarantine).await?);
        }
        Ok::<_, ChaosError>(redlocks)
    })?;
    // Sampled once every client is connected.
    let sampler = config.sample_resources.then(sys::Sampler::start);

    let duration = if !schedule.majority_restart() {
        config.seconds
    } else {
        // Long enough for a few hold-and-restart cycles; it ends early once
        // the violation is seen.
        config.seconds.max(ttl * 4 + Duration::from_secs(2))
    };
    let (tally, elapsed, fault_log) = std::thread::scope(|scope| {
        let faults = faults::Faults::new(
            nodes.nodes(),
            &handles,
            &ctx,
            ttl,
            config.seed ^ 0x5eed,
            config.verbose,
        );
        let fault_thread = scope.spawn(move || faults.run(schedule, &hold_rx));
        let started = Instant::now();
        let result = runtime.block_on(async {
            let tasks: Vec<_> = redlocks
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, redlock)| {
                    let params = ClientParams {
                        ttl,
                        max_pause: config.max_pause,
                        extend_share: config.extend_share,
                        seed: config.seed.wrapping_mul(1000).wrapping_add(i as u64),
                    };
                    tokio::spawn(client(redlock, ctx.clone(), params))
                })
                .collect();
            let deadline = started + duration;
            while Instant::now() < deadline && !ctx.finish_early.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let elapsed = started.elapsed();
            ctx.stop_clients.store(true, Ordering::Release);
            let mut tally = Tally::new();
            let joined =
                tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
                    .await
                    .map_err(|_| {
                        ChaosError::Hung("the clients did not stop within 60 s of the end".into())
                    })?;
            for t in joined {
                let t = t.map_err(|e| ChaosError::Hung(format!("a client panicked: {e}")))?;
                tally.merge(&t);
            }
            Ok::<_, ChaosError>((tally, elapsed))
        });
        ctx.stop_faults.store(true, Ordering::Release);
        let fault_log = fault_thread.join().unwrap_or_default();
        result.map(|(tally, elapsed)| (tally, elapsed, fault_log))
    })?;

    let keys_at_end = count_keys(nodes.nodes(), &prefix)?;
    std::thread::sleep(ttl + Duration::from_millis(200));
    let keys_left = count_keys(nodes.nodes(), &prefix)?;
    let figures = ctx.checker.figures();
    let usage = sampler.map(sys::Sampler::stop);
    // The clients' connections close inside the runtime.
    runtime.block_on(async move { drop(redlocks) });
    drop(runtime);
    drop(proxies);
    drop(nodes);

    Ok(Report {
        schedule,
        seconds: elapsed.as_secs_f64(),
        ttl,
        clients: config.clients,
        critical_sections: figures.sections,
        writes: figures.writes,
        writes_skipped: tally.writes_skipped,
        overlaps: figures.overlaps,
        lost_updates: figures.lost_updates,
        token_violations: figures.token_violations,
        acquire_p50_ms: tally.latency.quantile_ms(0.5),
        acquire_p99_ms: tally.latency.quantile_ms(0.99),
        failures: tally.failures,
        extensions: tally.extensions,
        extensions_lost: tally.extensions_lost,
        releases_not_held: tally.releases_not_held,
        release_errors: tally.release_errors,
        keys_at_end,
        keys_left,
        faults_injected: fault_log.injected,
        fault_errors: fault_log.errors,
        resources: usage,
    })
}
