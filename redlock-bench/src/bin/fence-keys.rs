//! How many fence counters a node holds after fencing many distinct
//! resources: starts one real redis-server (through the testkit), takes and
//! releases a fenced lock on each of N distinct resources (K at a time), and
//! prints one line of JSON with the node's key counts.
//!
//! ```text
//! cargo run -p redlock-bench --release --bin fence-keys
//! cargo run -p redlock-bench --release --bin fence-keys -- --resources 100000 --at-once 64 --adapter fred
//! ```
//!
//! Options: `--resources N` (default 100000), `--at-once K` (64),
//! `--adapter redis-rs|fred` (redis-rs). Output:
//! `{"resources": N, "distinct_slots": ..., "fence_keys": ..., "legacy_fence_keys": ...,
//! "dbsize": ..., "max_token": ..., "slot_tag_table_ms": ..., "seconds": ...}`:
//! `fence_keys` counts `redlock:fence-slot:*` (one per slot at most, 16,384),
//! `legacy_fence_keys` the per-resource counters of earlier releases (none
//! are created), `dbsize` every key (the locks are released). Exits with 1
//! if a lock could not be taken or the node could not be started, 2 on bad
//! usage.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use redlock_core::keys::{key_slot, slot_tag, FENCE_SLOT_PREFIX};
use redlock_core::{LockBackend, Redlock};
use redlock_fred::FredBackend;
use redlock_redis_rs::RedisBackend;
use redlock_testkit::server::RedisNode;

const USAGE: &str = "usage: fence-keys [--resources N] [--at-once K] [--adapter redis-rs|fred]";

struct Args {
    resources: usize,
    at_once: usize,
    fred: bool,
}

fn parse() -> Result<Args, String> {
    let mut out = Args {
        resources: 100_000,
        at_once: 64,
        fred: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        let number = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("not a positive whole number: {v:?}\n{USAGE}"))
        };
        match arg.as_str() {
            "--resources" => out.resources = number(value()?)?,
            "--at-once" => out.at_once = number(value()?)?,
            "--adapter" => {
                out.fred = match value()?.as_str() {
                    "redis-rs" => false,
                    "fred" => true,
                    other => return Err(format!("unknown adapter {other:?}\n{USAGE}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok(out)
}

async fn run(args: &Args) -> Result<String, String> {
    // The slot-tag table is built on first use: time it alone.
    let started = Instant::now();
    let _ = slot_tag(0);
    let table_ms = started.elapsed().as_secs_f64() * 1000.0;

    let node = RedisNode::start().map_err(|e| format!("starting redis-server: {e}"))?;
    let url = node.url();
    let backend: Box<dyn LockBackend> = if args.fred {
        Box::new(
            FredBackend::connect(&url)
                .await
                .map_err(|e| format!("fred backend: {e}"))?,
        )
    } else {
        Box::new(
            RedisBackend::connect(&url)
                .await
                .map_err(|e| format!("redis-rs backend: {e}"))?,
        )
    };
    let redlock = Redlock::builder(vec![backend])
        .fencing(true)
        .build()
        .map_err(|e| format!("building the Redlock: {e}"))?;
    let names: Vec<String> = (0..args.resources)
        .map(|i| format!("invoice:{i}"))
        .collect();

    let started = Instant::now();
    let tokens: Vec<Result<u64, String>> = stream::iter(&names)
        .map(|name| {
            let redlock = &redlock;
            async move {
                let lock = redlock
                    .acquire(&[name], Duration::from_secs(10))
                    .await
                    .map_err(|e| format!("acquire {name}: {e}"))?;
                let token = lock
                    .fencing_token()
                    .ok_or("a fenced lock without a token")?;
                lock.release()
                    .await
                    .map_err(|e| format!("release {name}: {e}"))?;
                Ok(token)
            }
        })
        .buffer_unordered(args.at_once)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut max_token = 0;
    for token in tokens {
        max_token = max_token.max(token?);
    }

    let probe = node.probe();
    let slots: HashSet<u16> = names.iter().map(|n| key_slot(n)).collect();
    let fence_keys = probe.count_keys(&format!("{FENCE_SLOT_PREFIX}*"));
    let legacy = probe.count_keys("redlock:fence:*") + probe.count_keys("*:redlock:fence");
    Ok(serde_json::json!({
        "resources": args.resources,
        "adapter": if args.fred { "fred" } else { "redis-rs" },
        "at_once": args.at_once,
        "distinct_slots": slots.len(),
        "fence_keys": fence_keys,
        "legacy_fence_keys": legacy,
        "dbsize": probe.dbsize(),
        "max_token": max_token,
        "slot_tag_table_ms": (table_ms * 100.0).round() / 100.0,
        "seconds": (seconds * 100.0).round() / 100.0,
    })
    .to_string())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fence-keys: {e}");
            ExitCode::FAILURE
        }
    }
}
