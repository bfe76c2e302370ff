//! `redlock doctor`: checks the nodes against the assumptions Redlock's
//! safety rests on, prints one line per finding and a summary, and exits
//! non-zero when a check fails.
//!
//! The checks are the library's ([`Redlock::doctor_with`](redlock::Redlock::doctor_with));
//! this module turns options into settings, and the report into output and
//! an exit code.

use std::time::Duration;

use clap::Args;
use redlock::{DoctorOptions, DoctorReport, Settings, Severity};

use crate::exit;
use crate::fail::Failure;
use crate::nodes;
use crate::run::parse_duration;

/// `redlock doctor --help`'s description.
pub const LONG_ABOUT: &str = "\
Check the nodes against Redlock's assumptions.

Per node: reachable, Redis version, role (a replica is not an independent \
node), independence (the same server listed twice, or replicas of one \
master), persistence (AOF with appendfsync always), maxmemory-policy (a \
policy that can evict lock keys or fence counters fails), clock offset \
against this machine, uptime against --restart-quarantine, and a cluster's \
slot coverage. For the set: fewer than 3 nodes, or an even number, is a \
warning; and the nodes' clocks against each other.

Prints one line per finding (ok, WARN, FAIL, or skip for a check that could \
not be made, saying why), naming the node but never its password, then a \
summary line. Exits 0 when no check fails (warnings do not fail), 1 when \
one does. Read-only: it runs INFO, CONFIG GET, CLUSTER INFO and TIME.";

/// The exit codes of `redlock doctor`, for its `--help`.
pub const EXIT_HELP: &str = "\
Exit status:
    0           no check failed (there may be warnings)
    1           a check failed: a FAIL line says which, on which node
   64           bad usage (options, durations, node URLs)";

/// The options of `redlock doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The restart quarantine the clients use (the longest TTL of any
    /// lock), if they use one: the uptime check then warns about nodes
    /// younger than this, and no AOF is no longer a warning for locks
    /// without fencing
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub restart_quarantine: Option<Duration>,

    /// How long each node may take to answer each of its two round trips;
    /// a node that takes longer fails the reachable check
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// How far a node's clock may be from this machine's, and the nodes'
    /// clocks from one another, before the clock checks warn
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub clock_tolerance: Duration,
}

/// `redlock doctor`.
pub async fn doctor(args: DoctorArgs, urls: &[String]) -> Result<u8, Failure> {
    if args.timeout.is_zero() {
        return Err(Failure::usage(
            "--timeout 0s leaves the nodes no time to answer; give a duration such as 2s",
        ));
    }
    let mut settings = Settings::default();
    settings.restart_quarantine = args.restart_quarantine;
    let redlock = nodes::connect(urls, settings).await?;
    let options = DoctorOptions::default()
        .with_timeout(args.timeout)
        .with_clock_tolerance(args.clock_tolerance);
    let report = redlock.doctor_with(&options).await;
    let text = format!("{report}\n{}\n", summary(&report));
    print!("{}", nodes::scrub_all(&text, urls));
    Ok(if report.passed() {
        0
    } else {
        exit::CHECK_FAILED
    })
}

/// `3 FAIL, 2 WARN, 20 ok, 1 skip: failed` (or `passed`).
fn summary(report: &DoctorReport) -> String {
    let verdict = if report.passed() {
        if report.count(Severity::Warning) > 0 {
            "passed, with warnings"
        } else {
            "passed"
        }
    } else {
        "FAILED: Redlock's safety assumptions do not hold (see the FAIL lines)"
    };
    format!(
        "summary: {} FAIL, {} WARN, {} ok, {} skip: {verdict}",
        report.count(Severity::Fail),
        report.count(Severity::Warning),
        report.count(Severity::Ok),
        report.count(Severity::NotChecked),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_and_judges() {
        let passed = summary(&DoctorReport::default());
        assert_eq!(passed, "summary: 0 FAIL, 0 WARN, 0 ok, 0 skip: passed");

        // Two in-memory nodes: the set's node count warns, and the nodes
        // cannot be inspected (skip).
        let redlock =
            redlock::Redlock::new([redlock::MemoryBackend::new(), redlock::MemoryBackend::new()])
                .expect("two nodes make a Redlock");
        let report = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(redlock.doctor());
        let line = summary(&report);
        let skip = report.count(Severity::NotChecked);
        assert!(skip > 0, "{report}");
        assert!(line.starts_with("summary: 0 FAIL, 1 WARN, "), "{line}");
        assert!(
            line.ends_with(&format!("{skip} skip: passed, with warnings")),
            "{line}"
        );
    }
}
