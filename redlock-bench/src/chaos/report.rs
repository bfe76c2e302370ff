//! What a schedule showed: the [`Report`] of one run, its table row and its
//! JSON line.

use std::time::Duration;

use redlock_core::Error;
use serde_json::{json, Value};

use super::sys;
use super::Schedule;

/// Failed acquisitions, by the error's variant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    /// `Error::Held`: another client held the resource.
    pub held: u64,
    /// `Error::NoQuorum`: too few nodes answered in time.
    pub no_quorum: u64,
    /// `Error::Rejected`: a node refused for good.
    pub rejected: u64,
    /// Any other error.
    pub other: u64,
}

impl Failures {
    pub(crate) fn count(&mut self, e: &Error) {
        match e {
            Error::Held(_) => self.held += 1,
            Error::NoQuorum(_) => self.no_quorum += 1,
            Error::Rejected(_) => self.rejected += 1,
            _ => self.other += 1,
        }
    }

    pub(crate) fn merge(&mut self, o: &Failures) {
        self.held += o.held;
        self.no_quorum += o.no_quorum;
        self.rejected += o.rejected;
        self.other += o.other;
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.held + self.no_quorum + self.rejected + self.other
    }
}

/// What one schedule showed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The schedule.
    pub schedule: Schedule,
    /// How long the clients worked.
    pub seconds: f64,
    /// The TTL used.
    pub ttl: Duration,
    /// Clients.
    pub clients: usize,
    /// Critical sections run (locks acquired).
    pub critical_sections: u64,
    /// Sections that wrote the record.
    pub writes: u64,
    /// Sections that did not write: the lock's validity ran out first.
    pub writes_skipped: u64,
    /// Sections acquired while an earlier one's interval was still open.
    pub overlaps: u64,
    /// Writes over a record that changed since it was read.
    pub lost_updates: u64,
    /// Sections whose fencing token was not above all earlier ones'.
    pub token_violations: u64,
    /// Failed acquisitions by reason.
    pub failures: Failures,
    /// Extensions that succeeded.
    pub extensions: u64,
    /// Extensions that failed (the section went on with the lock it had).
    pub extensions_lost: u64,
    /// Releases that found the lock no longer held on a quorum.
    pub releases_not_held: u64,
    /// Releases that failed (too many nodes unreachable).
    pub release_errors: u64,
    /// Median latency of a successful acquire (retries included), ms.
    pub acquire_p50_ms: Option<f64>,
    /// 99th percentile of the same, ms.
    pub acquire_p99_ms: Option<f64>,
    /// Lock keys on the nodes right after the clients stopped.
    pub keys_at_end: u64,
    /// Lock keys on the nodes after the TTL had passed.
    pub keys_left: u64,
    /// Fault actions injected.
    pub faults_injected: u64,
    /// Errors controlling the nodes.
    pub fault_errors: Vec<String>,
    /// Memory and descriptor samples, when asked for.
    pub resources: Option<sys::Usage>,
}

impl Report {
    /// Whether the algorithm promises safety under this schedule.
    pub fn safe(&self) -> bool {
        self.schedule.safe()
    }

    /// Whether the checker found a safety violation.
    pub fn violation(&self) -> bool {
        self.overlaps > 0
            || self.lost_updates > 0
            || (self.token_violations > 0 && self.schedule.fencing_promised())
    }

    /// Whether the schedule showed what it should: no violation, no key left
    /// and some work done on a safe schedule; a violation on the unsafe one.
    pub fn passed(&self) -> bool {
        let sound = self.keys_left == 0 && self.critical_sections > 0;
        if self.safe() {
            sound && !self.violation()
        } else {
            sound && (self.overlaps > 0 || self.lost_updates > 0)
        }
    }

    /// The report as a JSON object.
    pub fn to_json(&self, command: &str) -> Value {
        let mut v = json!({
            "name": self.schedule.name(),
            "safe": self.safe(),
            "fencing_promised": self.schedule.fencing_promised(),
            "passed": self.passed(),
            "seconds": (self.seconds * 10.0).round() / 10.0,
            "clients": self.clients,
            "ttl_ms": self.ttl.as_millis() as u64,
            "critical_sections": self.critical_sections,
            "writes": self.writes,
            "writes_skipped": self.writes_skipped,
            "overlaps": self.overlaps,
            "lost_updates": self.lost_updates,
            "token_violations": self.token_violations,
            "failed_acquisitions": {
                "held": self.failures.held,
                "no_quorum": self.failures.no_quorum,
                "rejected": self.failures.rejected,
                "other": self.failures.other,
            },
            "extensions": self.extensions,
            "extensions_lost": self.extensions_lost,
            "releases_not_held": self.releases_not_held,
            "release_errors": self.release_errors,
            "acquire_p50_ms": self.acquire_p50_ms,
            "acquire_p99_ms": self.acquire_p99_ms,
            "keys_at_end": self.keys_at_end,
            "keys_left": self.keys_left,
            "faults_injected": self.faults_injected,
            "fault_errors": self.fault_errors,
            "command": command,
        });
        if let (Some(usage), Some(map)) = (&self.resources, v.as_object_mut()) {
            map.insert("resources".into(), usage.to_json());
        }
        v
    }

    /// One line for a human.
    pub fn summary(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "{:<24} safe={:<5} sections={:<6} writes={:<6} overlaps={:<3} lost={:<3} token_viol={:<3} \
             failed(held/noq/rej/other)={}/{}/{}/{} ext={}/lost {} skipped={} p50={}ms p99={}ms \
             keys_end={} keys_left={} faults={} {}",
            self.schedule.name(),
            self.safe(),
            self.critical_sections,
            self.writes,
            self.overlaps,
            self.lost_updates,
            self.token_violations,
            self.failures.held,
            self.failures.no_quorum,
            self.failures.rejected,
            self.failures.other,
            self.extensions,
            self.extensions_lost,
            self.writes_skipped,
            ms(self.acquire_p50_ms),
            ms(self.acquire_p99_ms),
            self.keys_at_end,
            self.keys_left,
            self.faults_injected,
            if self.passed() { "PASS" } else { "FAIL" },
        )
    }
}

/// The final line of the binary's output: `{"schedules": [...]}` (and the
/// soak's figures, when it ran).
pub fn json_line(rows: &[(Report, String)], soak: Option<Value>) -> String {
    let schedules: Vec<Value> = rows.iter().map(|(r, cmd)| r.to_json(cmd)).collect();
    let mut v = json!({ "schedules": schedules });
    if let (Some(soak), Some(map)) = (soak, v.as_object_mut()) {
        map.insert("soak".into(), soak);
    }
    v.to_string()
}
