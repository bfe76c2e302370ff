//! The benchmark: ours (through the redis-rs and the fred adapters), rslock
//! and the raw-Redis floor, on the same real redis-server nodes, in one run.
//!
//! For every node count N the run starts N fresh `redis-server` processes
//! (the testkit launchers), connects every implementation to them, warms them
//! up, and then measures rep by rep: in each rep every workload runs every
//! implementation once, in an order that rotates from rep to rep, so that the
//! machine's drift (another process, thermal throttling) hits all of them
//! alike. The figures are medians over the reps, with their min-max.
//!
//! The workloads:
//! - **latency**: one task, acquire + release on a fresh resource per cycle;
//!   p50 and p99 of the cycle time.
//! - **throughput**: 64 tasks (by default), each on its own resource; cycles
//!   per second, and the client's CPU time (user + sys, from
//!   `/proc/self/stat`) per 100k cycles.
//! - **contended**: 8 tasks (by default) on ONE resource, each acquire ->
//!   read a shared counter, yield, write it + 1 -> release, with the
//!   libraries' default settings (ours: wake-on-release, with node-redlock's
//!   200 ms ± 100 ms retry delay as the fallback; rslock: its own retry
//!   delay, uniform 0..200 ms). Changes of owner per second, the wait for a
//!   successful acquire (p99 and max, a waiter still waiting at the end
//!   counted with its wait so far), and lost updates (the counter against
//!   the critical sections run; must be 0). Beside each of ours, a bystander
//!   process that waited once on another resource (so its subscription is
//!   open) and then waits on nothing counts the release messages it receives
//!   during the run (`wake_bystander_messages`; must be 0).
//!
//! The floor is the `redis` crate used directly: one multiplexed connection
//! per node, `SET key value NX PX ttl` to all N in parallel, then the
//! compare-and-delete script by `EVALSHA` to all N in parallel. Two round
//! trips, which no correct implementation can do with fewer. The fred floor
//! (`fred_floor`) does the same through the `fred` crate used directly (fred's
//! `set` and `evalsha`, one client per node with fred's defaults): what the
//! fred adapter is measured against, so that fred's own cost and the
//! adapter's can be told apart.
//!
//! An allocation probe (when the binary installs [`CountingAlloc`]) runs
//! sequential cycles of every implementation and reports allocations and bytes
//! per cycle and the growth of live heap bytes, and every workload checks that
//! the nodes hold no key afterwards (no lock-table growth on the servers).

mod clients;
mod contended;
mod measure;
mod report;
mod workloads;

use std::fmt;
use std::time::Duration;

use redlock_testkit::server::RedisNodes;

pub use clients::Impl;
pub use measure::{cpu_time, CountingAlloc};
pub use report::Results;

/// What to run; see [`Options::parse`] for the command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// Node counts, each run on its own fresh nodes.
    pub nodes: Vec<usize>,
    /// Length of each measured run.
    pub seconds: f64,
    /// Repetitions (each runs every workload and implementation once).
    pub reps: usize,
    /// Warm-up per implementation and node count, before the first rep.
    pub warmup: Duration,
    /// Tasks of the throughput workload.
    pub tasks: usize,
    /// Tasks of the contended workload.
    pub contenders: usize,
    /// TTL of the contended workload's lock.
    pub contended_ttl: Duration,
    /// Cycles of the allocation probe, per implementation (0: no probe).
    pub alloc_cycles: usize,
    /// Worker threads of the tokio runtime.
    pub threads: usize,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Implementations to run (those that a workload does not support are
    /// skipped for it).
    pub impls: Vec<Impl>,
    /// Instead of the benchmark: this many sequential acquire + release
    /// cycles of the first implementation on the first node count, after a
    /// warm-up, then exit; for instruction counts (run it under
    /// `valgrind --tool=callgrind` with two counts and take the difference).
    pub profile_cycles: Option<usize>,
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One task, acquire + release on fresh resources.
    Latency,
    /// Many tasks, each on its own resource.
    Throughput,
    /// Several tasks on one resource.
    Contended,
}

impl Workload {
    fn parse(s: &str) -> Option<Workload> {
        match s {
            "a" | "latency" => Some(Workload::Latency),
            "b" | "throughput" => Some(Workload::Throughput),
            "c" | "contended" => Some(Workload::Contended),
            _ => None,
        }
    }
}

/// The usage text.
pub const USAGE: &str = "\
usage: bench [--nodes 1,3,5] [--seconds 3] [--reps 3] [--quick]
             [--workloads a,b,c] [--impls ours,fred,floor,fred_floor,rslock,ours_mux]
             [--tasks 64] [--contenders 8] [--contended-ttl-ms 1000]
             [--warmup-ms 500] [--alloc-cycles 3000] [--threads 2]
       bench --profile-cycles K [--nodes N] [--impls IMPL] [--tasks T]

Starts its own redis-server nodes (fresh ones per node count) and measures ours
(through the redis-rs and fred adapters), rslock and the raw-Redis floor,
interleaved rep by rep. Prints a markdown table per workload, then one line of
JSON with every figure. --quick: one short rep of everything (under a minute).
--profile-cycles K: only K sequential cycles of one implementation (for
valgrind --tool=callgrind: run two counts, divide the difference).";

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: vec![1, 3, 5],
            seconds: 3.0,
            reps: 3,
            warmup: Duration::from_millis(500),
            tasks: 64,
            contenders: 8,
            contended_ttl: Duration::from_millis(1000),
            alloc_cycles: 3000,
            threads: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            workloads: vec![Workload::Latency, Workload::Throughput, Workload::Contended],
            impls: Impl::ALL.to_vec(),
            profile_cycles: None,
        }
    }
}

/// A command-line or setup error.
#[derive(Debug)]
pub struct BenchError(String);

impl BenchError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        BenchError(message.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl Options {
    /// Parses the arguments after the program name. `--help` gives an error
    /// holding [`USAGE`].
    pub fn parse<I, S>(args: I) -> Result<Options, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut options = Options::default();
        let mut quick = false;
        let mut seconds_set = false;
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| BenchError::new(format!("{name} needs a value\n\n{USAGE}")))
            };
            match flag.as_str() {
                "-h" | "--help" => return Err(BenchError::new(USAGE)),
                "--quick" => quick = true,
                "--nodes" => {
                    options.nodes = list(&value("--nodes")?, "--nodes", |s| {
                        s.parse::<usize>().ok().filter(|&n| n > 0)
                    })?;
                }
                "--seconds" => {
                    options.seconds = number(&value("--seconds")?, "--seconds")?;
                    seconds_set = true;
                }
                "--reps" => options.reps = number(&value("--reps")?, "--reps")?,
                "--tasks" => options.tasks = number(&value("--tasks")?, "--tasks")?,
                "--contenders" => {
                    options.contenders = number(&value("--contenders")?, "--contenders")?;
                }
                "--contended-ttl-ms" => {
                    options.contended_ttl = Duration::from_millis(number(
                        &value("--contended-ttl-ms")?,
                        "--contended-ttl-ms",
                    )?);
                }
                "--warmup-ms" => {
                    options.warmup =
                        Duration::from_millis(number(&value("--warmup-ms")?, "--warmup-ms")?);
                }
                "--alloc-cycles" => {
                    options.alloc_cycles = number(&value("--alloc-cycles")?, "--alloc-cycles")?;
                }
                "--threads" => options.threads = number(&value("--threads")?, "--threads")?,
                "--workloads" => {
                    options.workloads =
                        list(&value("--workloads")?, "--workloads", Workload::parse)?;
                }
                "--impls" => options.impls = list(&value("--impls")?, "--impls", Impl::parse)?,
                "--profile-cycles" => {
                    options.profile_cycles =
                        Some(number(&value("--profile-cycles")?, "--profile-cycles")?);
                }
                other => {
                    return Err(BenchError::new(format!(
                        "unknown argument {other:?}\n\n{USAGE}"
                    )))
                }
            }
        }
        if quick {
            options.reps = 1;
            if !seconds_set {
                options.seconds = 0.8;
            }
            options.warmup = Duration::from_millis(150);
            options.alloc_cycles = options.alloc_cycles.min(1000);
        }
        if !(options.seconds > 0.0 && options.seconds.is_finite()) {
            return Err(BenchError::new("--seconds must be positive"));
        }
        if options.reps == 0 || options.tasks == 0 || options.contenders == 0 {
            return Err(BenchError::new(
                "--reps, --tasks and --contenders must be at least 1",
            ));
        }
        if options.threads == 0 {
            return Err(BenchError::new("--threads must be at least 1"));
        }
        if options.contended_ttl < Duration::from_millis(100) {
            return Err(BenchError::new("--contended-ttl-ms must be at least 100"));
        }
        Ok(options)
    }

    /// The length of each measured run.
    pub fn run_time(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

fn number<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, BenchError> {
    s.trim()
        .parse()
        .map_err(|_| BenchError::new(format!("{name}: not a number: {s:?}")))
}

fn list<T>(s: &str, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, BenchError> {
    let items: Option<Vec<T>> = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect();
    match items {
        Some(items) if !items.is_empty() => Ok(items),
        _ => Err(BenchError::new(format!("{name}: cannot read {s:?}"))),
    }
}

/// The `--profile-cycles` mode: fresh nodes (the first node count), the
/// first implementation, a warm-up of 500 cycles, then `cycles` acquire +
/// release cycles on fresh resources, spread over `--tasks` concurrent tasks
/// (give `--tasks 1` for sequential cycles). Returns the cycles that failed.
pub fn profile(options: &Options, cycles: usize) -> Result<u64, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("cannot build the tokio runtime: {e}")))?;
    let n = options.nodes.first().copied().unwrap_or(1);
    let which = options.impls.first().copied().unwrap_or(Impl::Ours);
    let nodes = RedisNodes::start(n)
        .map_err(|e| BenchError::new(format!("cannot start {n} redis-server nodes: {e}")))?;
    let urls = nodes.urls();
    runtime.block_on(workloads::profile(which, &urls, cycles, options.tasks))
}

/// Runs the whole benchmark: for each node count, fresh nodes, then every rep.
/// `progress` receives a line per finished run (for stderr).
pub fn run(options: &Options, mut progress: impl FnMut(&str)) -> Result<Results, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads)
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(format!("cannot build the tokio runtime: {e}")))?;
    let mut results = Results::new(options);
    for &n in &options.nodes {
        progress(&format!("starting {n} redis-server node(s)"));
        let nodes = RedisNodes::start(n)
            .map_err(|e| BenchError::new(format!("cannot start {n} redis-server nodes: {e}")))?;
        let urls = nodes.urls();
        let pids: Vec<u32> = nodes.iter().filter_map(|node| node.pid()).collect();
        runtime.block_on(workloads::bench_nodes(
            options,
            &urls,
            &pids,
            &mut results,
            &mut progress,
        ))?;
        drop(nodes);
    }
    Ok(results)
}
