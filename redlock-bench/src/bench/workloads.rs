//! The three workloads and the allocation probe, run on one set of nodes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::aio::MultiplexedConnection;

use super::clients::{Client, Impl};
use super::contended::{contended, Bystander};
use super::measure::{self, cpu_time, cpu_time_of, quantile};
use super::report::Results;
use super::{BenchError, Options, Workload};

/// TTL of the uncontended workloads' locks (long against a cycle; every lock
/// is released, so none expires).
const TTL: Duration = Duration::from_secs(5);

/// Cycles of each implementation before the allocation probe counts.
const ALLOC_WARMUP_CYCLES: usize = 300;

/// Runs the warm-up, the allocation probe and every rep on the nodes at `urls`.
pub(crate) async fn bench_nodes(
    options: &Options,
    urls: &[String],
    pids: &[u32],
    results: &mut Results,
    progress: &mut impl FnMut(&str),
) -> Result<(), BenchError> {
    let n = urls.len();
    let mut clients: Vec<(Impl, Arc<Client>)> = Vec::new();
    for &which in &options.impls {
        clients.push((which, Arc::new(Client::connect(which, urls).await?)));
    }
    let probe = Probe::connect(urls).await?;

    // Warm-up: connections opened, scripts loaded, buffers grown.
    for (which, client) in &clients {
        let prefix = format!("bench:warm:{}", which.key());
        let run = latency(client.clone(), prefix, options.warmup, TTL).await;
        if run.errors > 0 {
            progress(&format!(
                "N={n} warm-up {}: {} errors, first: {}",
                which.label(),
                run.errors,
                run.first_error.as_deref().unwrap_or("?")
            ));
        }
    }

    if options.alloc_cycles > 0 && measure::counting_installed() {
        for (which, client) in &clients {
            let probe_run = alloc_probe(client, *which, options.alloc_cycles).await;
            results.push("alloc_per_cycle", *which, n, probe_run.0);
            results.push("alloc_bytes_per_cycle", *which, n, probe_run.1);
            results.push("alloc_live_growth_bytes_per_cycle", *which, n, probe_run.2);
        }
    }

    for rep in 0..options.reps {
        // Rotate the order from rep to rep so no implementation always runs first.
        let mut order = clients.clone();
        let len = order.len().max(1);
        order.rotate_left(rep % len);
        // Latency and throughput run interleaved (see `SLICE`), all
        // implementations at once; the loop below reports them in order.
        let uncontended: Vec<_> = order
            .iter()
            .filter(|(which, _)| which.uncontended())
            .cloned()
            .collect();
        for &workload in &options.workloads {
            let (mut latencies, mut throughputs) = (BTreeMap::new(), BTreeMap::new());
            match workload {
                Workload::Latency => {
                    let prefix = format!("bench:a:{rep}");
                    let runs = latency_interleaved(&uncontended, &prefix, options.run_time());
                    latencies = keyed(&uncontended, runs.await);
                }
                Workload::Throughput => {
                    let prefix = format!("bench:b:{rep}");
                    let runs = throughput_interleaved(
                        &uncontended,
                        &prefix,
                        options.tasks,
                        options.run_time(),
                        pids,
                    );
                    throughputs = keyed(&uncontended, runs.await);
                }
                Workload::Contended => {}
            }
            for (which, client) in &order {
                let which = *which;
                let line = match workload {
                    Workload::Latency => {
                        let Some(run) = latencies.remove(&which) else {
                            continue;
                        };
                        let left = probe.keys().await;
                        results.push("latency_p50_us", which, n, run.p50_us);
                        results.push("latency_p99_us", which, n, run.p99_us);
                        results.push("latency_cycles", which, n, run.cycles as f64);
                        results.push("latency_errors", which, n, run.errors as f64);
                        if let Some(cpu) = run.cpu_s_per_100k {
                            results.push("latency_cpu_s_per_100k", which, n, cpu);
                        }
                        results.push("keys_left", which, n, left as f64);
                        format!(
                            "p50 {:.0} µs, p99 {:.0} µs, {} cycles, {} errors{}",
                            run.p50_us,
                            run.p99_us,
                            run.cycles,
                            run.errors,
                            error_note(&run.first_error)
                        )
                    }
                    Workload::Throughput => {
                        let Some(run) = throughputs.remove(&which) else {
                            continue;
                        };
                        let server_cpu = run.server_cpu_s_per_100k();
                        let left = probe.keys().await;
                        results.push("throughput_64", which, n, run.per_s());
                        if let Some(cpu) = server_cpu {
                            results.push("throughput_server_cpu_s_per_100k", which, n, cpu);
                        }
                        results.push("throughput_errors", which, n, run.errors as f64);
                        if let Some(cpu) = run.cpu_s_per_100k() {
                            results.push("throughput_cpu_s_per_100k", which, n, cpu);
                        }
                        results.push("keys_left", which, n, left as f64);
                        format!(
                            "{:.0} cycles/s, {} errors, cpu {} client, {} servers{}",
                            run.per_s(),
                            run.errors,
                            run.cpu_s_per_100k()
                                .map_or("?".to_owned(), |c| format!("{c:.2} s/100k")),
                            server_cpu.map_or("?".to_owned(), |c| format!("{c:.2} s/100k")),
                            error_note(&run.first_error)
                        )
                    }
                    Workload::Contended if which.contends() => {
                        let key = format!("bench:c:{}:{rep}", which.key());
                        let warm_key = format!("bench:c:bystander:{}:{rep}", which.key());
                        let bystander = Bystander::start(which, urls, client, &warm_key).await?;
                        let before = bystander.as_ref().map(Bystander::messages);
                        let run = contended(
                            client.clone(),
                            key,
                            options.contenders,
                            options.run_time(),
                            options.contended_ttl,
                        )
                        .await;
                        results.push("contended_handoffs_per_s", which, n, run.handoffs_per_s);
                        results.push("contended_acquires_per_s", which, n, run.acquires_per_s);
                        results.push("contended_wait_p50_us", which, n, run.wait_p50_us);
                        results.push("contended_wait_p99_us", which, n, run.wait_p99_us);
                        results.push("contended_wait_max_us", which, n, run.wait_max_us);
                        results.push("contended_gap_p99_us", which, n, run.gap_p99_us);
                        results.push(
                            "contended_takeover_wait_p99_us",
                            which,
                            n,
                            run.takeover_wait_p99_us,
                        );
                        results.push("contended_lost_updates", which, n, run.lost as f64);
                        results.push("contended_gave_up", which, n, run.gave_up as f64);
                        if let Some(a) = run.attempts_per_acquire {
                            results.push("contended_attempts_per_acquire", which, n, a);
                        }
                        if let (Some(bystander), Some(before)) = (bystander, before) {
                            let received = bystander.messages().saturating_sub(before);
                            results.push("wake_bystander_messages", which, n, received as f64);
                            bystander.finish();
                        }
                        format!(
                            "{:.0} handoffs/s, wait p99 {:.1} ms, new owner's wait p99 {:.1} ms, max {:.1} ms, lost {}",
                            run.handoffs_per_s,
                            run.wait_p99_us / 1e3,
                            run.takeover_wait_p99_us / 1e3,
                            run.wait_max_us / 1e3,
                            run.lost
                        )
                    }
                    _ => continue,
                };
                progress(&format!(
                    "N={n} rep {}/{} {:?} {}: {line}",
                    rep + 1,
                    options.reps,
                    workload,
                    which.label()
                ));
            }
        }
    }
    Ok(())
}

/// The runs of the implementations in `order`, by implementation.
fn keyed<R>(order: &[(Impl, Arc<Client>)], runs: Vec<R>) -> BTreeMap<Impl, R> {
    order.iter().map(|(which, _)| *which).zip(runs).collect()
}

fn error_note(first: &Option<String>) -> String {
    first
        .as_ref()
        .map(|e| format!(" (first error: {e})"))
        .unwrap_or_default()
}

/// A plain connection per node, to count the keys left behind.
struct Probe {
    conns: Vec<MultiplexedConnection>,
}

impl Probe {
    async fn connect(urls: &[String]) -> Result<Probe, BenchError> {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            let conn = async {
                redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection()
                    .await
            }
            .await
            .map_err(|e| BenchError::new(format!("probe connection to {url}: {e}")))?;
            conns.push(conn);
        }
        Ok(Probe { conns })
    }

    /// Keys on all nodes, not counting fence counters (none here) or errors.
    async fn keys(&self) -> u64 {
        let counts = join_all(self.conns.iter().map(|c| {
            let mut c = c.clone();
            async move { redis::cmd("DBSIZE").query_async::<u64>(&mut c).await }
        }))
        .await;
        counts.into_iter().map(|c| c.unwrap_or(0)).sum()
    }
}

pub(crate) struct LatencyRun {
    pub p50_us: f64,
    pub p99_us: f64,
    pub cycles: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub cpu_s_per_100k: Option<f64>,
}

/// The samples of one latency slice.
#[derive(Default)]
struct LatencySlice {
    /// Nanoseconds per cycle.
    samples: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    cpu: Option<Duration>,
}

impl LatencySlice {
    fn absorb(&mut self, slice: LatencySlice, first: bool) {
        self.samples.extend_from_slice(&slice.samples);
        self.errors += slice.errors;
        if self.first_error.is_none() {
            self.first_error = slice.first_error;
        }
        self.cpu = add_time(self.cpu, slice.cpu, first);
    }

    fn finish(mut self) -> LatencyRun {
        self.samples.sort_unstable();
        let cycles = self.samples.len() as u64;
        LatencyRun {
            p50_us: quantile(&self.samples, 0.50) as f64 / 1e3,
            p99_us: quantile(&self.samples, 0.99) as f64 / 1e3,
            cycles,
            errors: self.errors,
            first_error: self.first_error,
            cpu_s_per_100k: per_100k(self.cpu, cycles),
        }
    }
}

/// One task, acquire + release on a fresh resource per cycle.
pub(crate) async fn latency(
    client: Arc<Client>,
    prefix: String,
    run: Duration,
    ttl: Duration,
) -> LatencyRun {
    latency_slice(client, prefix, run, ttl).await.finish()
}

/// The latency workload of one rep for every implementation in `order`,
/// interleaved slice by slice as the throughput workload is (see
/// [`SLICE`]); each gets `run` in all.
pub(crate) async fn latency_interleaved(
    order: &[(Impl, Arc<Client>)],
    prefix: &str,
    run: Duration,
) -> Vec<LatencyRun> {
    let slices = slice_count(run);
    let mut runs: Vec<LatencySlice> = order.iter().map(|_| LatencySlice::default()).collect();
    for s in 0..slices {
        for ((which, client), total) in order.iter().zip(runs.iter_mut()) {
            let prefix = format!("{prefix}:{}:{s}", which.key());
            let part = latency_slice(client.clone(), prefix, run / slices, TTL).await;
            total.absorb(part, s == 0);
        }
    }
    runs.into_iter().map(LatencySlice::finish).collect()
}

async fn latency_slice(
    client: Arc<Client>,
    prefix: String,
    run: Duration,
    ttl: Duration,
) -> LatencySlice {
    let task = tokio::spawn(async move {
        let mut samples: Vec<u64> = Vec::with_capacity(1 << 16);
        let mut key = String::with_capacity(prefix.len() + 24);
        let (mut errors, mut first_error) = (0u64, None);
        let cpu0 = cpu_time();
        let deadline = Instant::now() + run;
        let mut i = 0u64;
        while Instant::now() < deadline {
            key.clear();
            let _ = write!(key, "{prefix}:{i}");
            i += 1;
            let t0 = Instant::now();
            let outcome = match client.acquire(&key, ttl).await {
                Ok(held) => client.release(held, &key).await,
                Err(miss) => Err(miss.to_string()),
            };
            samples.push(t0.elapsed().as_nanos() as u64);
            if let Err(e) = outcome {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
        LatencySlice {
            samples,
            errors,
            first_error,
            cpu: spent(cpu0, cpu_time()),
        }
    });
    task.await.unwrap_or_else(|e| LatencySlice {
        errors: 1,
        first_error: Some(format!("the latency task died: {e}")),
        ..LatencySlice::default()
    })
}

/// CPU time spent between two readings (None if either could not be read).
fn spent(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    before.zip(after).map(|(a, b)| b.saturating_sub(a))
}

/// A CPU time summed over slices: None from the first slice that could not
/// read it on.
fn add_time(total: Option<Duration>, part: Option<Duration>, first: bool) -> Option<Duration> {
    match (total, part) {
        (Some(a), Some(b)) => Some(a + b),
        (None, b) if first => b,
        _ => None,
    }
}

/// Seconds of `time` per 100k cycles (None without cycles or a reading).
fn per_100k(time: Option<Duration>, cycles: u64) -> Option<f64> {
    time.filter(|_| cycles > 0)
        .map(|c| c.as_secs_f64() / cycles as f64 * 1e5)
}

/// How many slices a run of `run` is cut into.
fn slice_count(run: Duration) -> u32 {
    (run.as_secs_f64() / SLICE.as_secs_f64()).round().max(1.0) as u32
}

#[derive(Default)]
pub(crate) struct ThroughputRun {
    pub cycles: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Wall time of the run (summed over slices).
    pub elapsed: Duration,
    /// This process's CPU time (None where it cannot be read).
    pub cpu: Option<Duration>,
    /// The redis-server processes' CPU time.
    pub server_cpu: Option<Duration>,
}

impl ThroughputRun {
    pub(crate) fn per_s(&self) -> f64 {
        self.cycles as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn cpu_s_per_100k(&self) -> Option<f64> {
        per_100k(self.cpu, self.cycles)
    }

    pub(crate) fn server_cpu_s_per_100k(&self) -> Option<f64> {
        per_100k(self.server_cpu, self.cycles)
    }

    /// Adds a slice's figures to these.
    fn absorb(&mut self, slice: ThroughputRun, first: bool) {
        self.cpu = add_time(self.cpu, slice.cpu, first);
        self.server_cpu = add_time(self.server_cpu, slice.server_cpu, first);
        self.cycles += slice.cycles;
        self.errors += slice.errors;
        self.elapsed += slice.elapsed;
        if self.first_error.is_none() {
            self.first_error = slice.first_error;
        }
    }
}

/// How long one slice of the latency and throughput workloads runs. The
/// machine's speed drifts over seconds (on 2 cores shared with the redis-servers it jumps
/// between modes ~1.5x apart), so each rep's run time is cut into slices
/// taken in turn by every implementation: all of them sample the same drift.
const SLICE: Duration = Duration::from_millis(500);

/// The throughput workload of one rep for every implementation in `order`,
/// interleaved slice by slice; each gets `run` in all.
pub(crate) async fn throughput_interleaved(
    order: &[(Impl, Arc<Client>)],
    prefix: &str,
    tasks: usize,
    run: Duration,
    pids: &[u32],
) -> Vec<ThroughputRun> {
    let slices = slice_count(run);
    let slice = run / slices;
    let mut runs: Vec<ThroughputRun> = order.iter().map(|_| ThroughputRun::default()).collect();
    for s in 0..slices {
        for ((which, client), total) in order.iter().zip(runs.iter_mut()) {
            let servers0 = cpu_time_of(pids);
            let mut part = throughput(
                client.clone(),
                format!("{prefix}:{}:{s}", which.key()),
                tasks,
                slice,
                TTL,
            )
            .await;
            part.server_cpu = spent(servers0, cpu_time_of(pids));
            total.absorb(part, s == 0);
        }
    }
    runs
}

/// `tasks` tasks, each cycling on its own resource until the deadline.
pub(crate) async fn throughput(
    client: Arc<Client>,
    prefix: String,
    tasks: usize,
    run: Duration,
    ttl: Duration,
) -> ThroughputRun {
    let cpu0 = cpu_time();
    let start = Instant::now();
    let deadline = start + run;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let client = client.clone();
            let key = format!("{prefix}:{t}");
            tokio::spawn(async move {
                let (mut cycles, mut errors, mut first_error) = (0u64, 0u64, None);
                while Instant::now() < deadline {
                    let outcome = match client.acquire(&key, ttl).await {
                        Ok(held) => client.release(held, &key).await,
                        Err(miss) => Err(miss.to_string()),
                    };
                    match outcome {
                        Ok(()) => cycles += 1,
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (cycles, errors, first_error)
            })
        })
        .collect();
    let (mut cycles, mut errors, mut first_error) = (0u64, 0u64, None);
    for handle in handles {
        match handle.await {
            Ok((c, e, f)) => {
                cycles += c;
                errors += e;
                if first_error.is_none() {
                    first_error = f;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("a task died: {e}"));
            }
        }
    }
    ThroughputRun {
        cycles,
        errors,
        first_error,
        elapsed: start.elapsed(),
        cpu: spent(cpu0, cpu_time()),
        server_cpu: None,
    }
}

/// Sequential cycles with the counting allocator on: allocations and bytes
/// per cycle, and the growth of live heap bytes per cycle (process-wide, so
/// the clients' connection tasks count too). The keys are formatted before
/// counting starts.
async fn alloc_probe(client: &Arc<Client>, which: Impl, cycles: usize) -> (f64, f64, f64) {
    let client = client.clone();
    let task = tokio::spawn(async move {
        let keys: Vec<String> = (0..ALLOC_WARMUP_CYCLES + cycles)
            .map(|i| format!("bench:alloc:{}:{i}", which.key()))
            .collect();
        let (warm, measured) = keys.split_at(ALLOC_WARMUP_CYCLES);
        for key in warm {
            one_cycle(&client, key).await;
        }
        measure::start_counting();
        for key in measured {
            one_cycle(&client, key).await;
        }
        let count = measure::stop_counting();
        let c = cycles.max(1) as f64;
        (
            count.allocs as f64 / c,
            count.bytes as f64 / c,
            count.live_growth() as f64 / c,
        )
    });
    task.await.unwrap_or((f64::NAN, f64::NAN, f64::NAN))
}

async fn one_cycle(client: &Client, key: &str) {
    if let Ok(held) = client.acquire(key, TTL).await {
        let _ = client.release(held, key).await;
    }
}

/// `cycles` cycles of `which` after 500 of warm-up (the `--profile-cycles`
/// mode), spread over `tasks` concurrent tasks each on its own resources.
/// Returns how many failed.
pub(crate) async fn profile(
    which: Impl,
    urls: &[String],
    cycles: usize,
    tasks: usize,
) -> Result<u64, BenchError> {
    let client = Arc::new(Client::connect(which, urls).await?);
    let warm = client.clone();
    tokio::spawn(async move {
        for i in 0..500 {
            one_cycle(&warm, &format!("bench:profile:warm:{i}")).await;
        }
    })
    .await
    .map_err(|e| BenchError::new(format!("the warm-up task died: {e}")))?;
    let tasks = tasks.max(1);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let client = client.clone();
            let share = cycles / tasks + usize::from(t < cycles % tasks);
            let keys: Vec<String> = (0..share)
                .map(|i| format!("bench:profile:{}:{t}:{i}", which.key()))
                .collect();
            tokio::spawn(async move {
                let mut failed = 0u64;
                for key in &keys {
                    match client.acquire(key, TTL).await {
                        Ok(held) => failed += u64::from(client.release(held, key).await.is_err()),
                        Err(_) => failed += 1,
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for handle in handles {
        failed += handle
            .await
            .map_err(|e| BenchError::new(format!("a profile task died: {e}")))?;
    }
    Ok(failed)
}
