//! The chaos runner: every fault schedule (or those named) over five real
//! redis-server nodes behind fault proxies; see `redlock_bench::chaos`.
//!
//! ```text
//! cargo run -p redlock-bench --release --bin chaos -- --seconds 60
//! cargo run -p redlock-bench --release --bin chaos -- --seconds 60 --schedule pause
//! cargo run -p redlock-bench --release --bin chaos -- --soak-seconds 600
//! ```
//!
//! Options: `--seconds S` (per schedule, default 10), `--schedule NAME`
//! (repeatable; default all), `--clients K` (6), `--resources R` (3),
//! `--ttl-ms T` (1000), `--max-pause-ms P` (20), `--seed N` (42),
//! `--soak-seconds S` (the mixed schedule for S seconds, with memory and file
//! descriptors sampled every second), `--verbose` (print each fault),
//! `--list`. One line per schedule as it ends, then a line of JSON:
//! `{"schedules": [{"name": ..., "safe": ..., "critical_sections": ..., ...}]}`.
//! Exits with 1 if a schedule did not show what it should (a violation on a
//! safe schedule, none on the unsafe one, keys left behind), 2 on bad usage.

use std::process::ExitCode;
use std::time::Duration;

use redlock_bench::chaos::{self, Config, Report, Schedule};

fn usage() -> String {
    let names: Vec<&str> = Schedule::ALL.iter().map(|s| s.name()).collect();
    format!(
        "usage: chaos [--seconds S] [--schedule NAME]... [--clients K] [--resources R] \
         [--ttl-ms T] [--max-pause-ms P] [--seed N] [--soak-seconds S] [--verbose] [--list]\n\
         schedules: {}",
        names.join(", ")
    )
}

struct Args {
    config: Config,
    schedules: Vec<Schedule>,
    soak: Option<u64>,
    /// The options to repeat in each row's command (everything but --schedule).
    common: Vec<String>,
}

fn parse() -> Result<Option<Args>, String> {
    let mut config = Config::default();
    let mut schedules = Vec::new();
    let mut soak = None;
    let mut common = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a whole number: {v:?}"))
        };
        match arg.as_str() {
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .ok_or_else(|| format!("--seconds: not a duration in seconds: {v:?}"))?;
                config.seconds = Duration::from_secs_f64(s);
                common.extend([arg.clone(), v]);
            }
            "--schedule" => {
                let v = value("--schedule")?;
                let schedule = Schedule::from_name(&v)
                    .ok_or_else(|| format!("unknown schedule {v:?}\n{}", usage()))?;
                schedules.push(schedule);
            }
            "--clients" => {
                let v = value("--clients")?;
                config.clients = number("--clients", v.clone())?.clamp(2, 64) as usize;
                common.extend([arg.clone(), v]);
            }
            "--resources" => {
                let v = value("--resources")?;
                config.resources = number("--resources", v.clone())?.clamp(1, 64) as usize;
                common.extend([arg.clone(), v]);
            }
            "--ttl-ms" => {
                let v = value("--ttl-ms")?;
                config.ttl =
                    Duration::from_millis(number("--ttl-ms", v.clone())?.clamp(200, 60_000));
                common.extend([arg.clone(), v]);
            }
            "--max-pause-ms" => {
                let v = value("--max-pause-ms")?;
                config.max_pause =
                    Duration::from_millis(number("--max-pause-ms", v.clone())?.min(10_000));
                common.extend([arg.clone(), v]);
            }
            "--seed" => {
                let v = value("--seed")?;
                config.seed = number("--seed", v.clone())?;
                common.extend([arg.clone(), v]);
            }
            "--soak-seconds" => {
                let v = value("--soak-seconds")?;
                soak = Some(number("--soak-seconds", v)?.clamp(1, 86_400));
            }
            "--verbose" => config.verbose = true,
            "--list" => {
                for s in Schedule::ALL {
                    println!("{:<24} safe={}", s.name(), s.safe());
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(None);
            }
            other => return Err(format!("unknown option {other:?}\n{}", usage())),
        }
    }
    if schedules.is_empty() {
        schedules = Schedule::ALL.to_vec();
    }
    Ok(Some(Args {
        config,
        schedules,
        soak,
        common,
    }))
}

fn command(common: &[String], tail: &str) -> String {
    let mut cmd = "cargo run -p redlock-bench --release --bin chaos --".to_owned();
    for part in common {
        cmd.push(' ');
        cmd.push_str(part);
    }
    cmd.push(' ');
    cmd.push_str(tail);
    cmd
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut rows: Vec<(Report, String)> = Vec::new();
    let mut soak_json = None;
    let mut failed = false;
    if let Some(seconds) = args.soak {
        let mut config = args.config.clone();
        config.seconds = Duration::from_secs(seconds);
        config.sample_resources = true;
        println!("soak: the mixed schedule for {seconds} s, sampling memory and file descriptors");
        match chaos::run(Schedule::Mixed, &config) {
            Ok(report) => {
                println!("{}", report.summary());
                if let Some(usage) = &report.resources {
                    let (s, w, e, m) = (usage.start(), usage.warm(), usage.end(), usage.max());
                    let show = |x: Option<chaos::sys::Sample>| {
                        x.map_or("-".into(), |x| {
                            format!("{} KiB / {} fds (t={} s)", x.rss_kib, x.fds, x.at_s)
                        })
                    };
                    println!("soak: start {}", show(s));
                    println!("soak: warm  {}", show(w));
                    println!("soak: end   {}", show(e));
                    println!("soak: max   {} KiB / {} fds", m.rss_kib, m.fds);
                    soak_json = Some(usage.to_json());
                }
                failed |= !report.passed();
                let cmd = command(&args.common, &format!("--soak-seconds {seconds}"));
                rows.push((report, cmd));
            }
            Err(e) => {
                eprintln!("soak: {e}");
                failed = true;
            }
        }
    } else {
        for schedule in &args.schedules {
            match chaos::run(*schedule, &args.config) {
                Ok(report) => {
                    println!("{}", report.summary());
                    for e in &report.fault_errors {
                        println!("    fault error: {e}");
                    }
                    failed |= !report.passed();
                    let cmd = command(&args.common, &format!("--schedule {}", schedule.name()));
                    rows.push((report, cmd));
                }
                Err(e) => {
                    eprintln!("{}: {e}", schedule.name());
                    failed = true;
                }
            }
        }
    }
    println!("{}", chaos::json_line(&rows, soak_json));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
