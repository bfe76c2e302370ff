//! `cargo run --release -p redlock-bench --bin bench -- --nodes 1,3,5 --seconds 3 --reps 3`
//!
//! Starts its own redis-server nodes, measures ours (redis-rs and fred
//! adapters), rslock and the raw-Redis floor interleaved rep by rep, prints a
//! markdown table per workload and then one line of JSON. Progress goes to
//! stderr. See `redlock_bench::bench` for what each workload does.

use std::process::ExitCode;

use redlock_bench::bench::{self, CountingAlloc, Options};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(cycles) = options.profile_cycles {
        return match bench::profile(&options, cycles) {
            Ok(failed) => {
                eprintln!("bench: {cycles} profiled cycles, {failed} failed");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let load = load_average();
    eprintln!(
        "bench: nodes {:?}, {} s per run, {} rep(s), {} worker threads; load average before: {}",
        options.nodes,
        options.seconds,
        options.reps,
        options.threads,
        load.as_deref().unwrap_or("?")
    );
    let mut results = match bench::run(&options, |line| eprintln!("  {line}")) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("bench failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    results.note = Some(format!(
        "Load average before the run: {}; after: {}. {} worker threads, {} s per run, {} rep(s).",
        load.as_deref().unwrap_or("?"),
        load_average().as_deref().unwrap_or("?"),
        options.threads,
        options.seconds,
        options.reps
    ));
    print!("{}", results.markdown());
    println!("{}", results.json_line());
    if results.lost_updates() > 0 {
        eprintln!("bench: LOST UPDATES under contention: the lock did not exclude");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}
