//! The conformance suite every backend runs, in the shape of object_store's
//! `integration` module: one public async function per behaviour, generic
//! over a [`Fixture`](crate::fixture::Fixture): real `redis-server` processes reached through an
//! adapter's [`Connector`](crate::Connector)
//! ([`RedisFixture`](crate::fixture::RedisFixture)), or in-process nodes
//! ([`InProcess`](crate::fixture::InProcess)) for a backend that is not Redis.
//!
//! Each case starts its own nodes (so cases run in parallel test threads),
//! uses a unique key prefix, builds [`Redlock`](redlock_core::Redlock)s over
//! fresh backends (one set per simulated process), asserts with
//! `assert!`/`assert_eq!` (a failing case panics with what it expected), and
//! ends by checking that no key of its own is left on any node. Where the
//! fixture can look at a node ([`Need::Inspect`]:
//! `GET`/`PTTL` on Redis, `MemoryBackend`'s own view in process), the case
//! checks values and TTLs on the node itself; elsewhere it checks them
//! through the lock (another owner is refused, or gets the resource).
//!
//! A case that needs what the fixture lacks (a [`Need`])
//! or a capability the backend does not declare
//! ([`Capabilities`]) is skipped: it prints
//! `skipped: <case>: <reason>` and returns. A declared capability must work:
//! an `ErrorKind::Unsupported` answer fails the case.
//!
//! The cases are runtime neutral: they spawn nothing, sleep with
//! `futures-timer`, and run concurrent work with `join_all` in their own task.
//! Run them with any executor through [`conformance_tests!`](crate::conformance_tests),
//! or call them yourself:
//!
//! ```no_run
//! use redlock_testkit::fixture::InProcess;
//!
//! #[test]
//! fn exclusivity() {
//!     let fixture = InProcess::new(redlock_core::MemoryBackend::new);
//!     redlock_testkit::block_on_futures(redlock_testkit::conformance::exclusivity(&fixture));
//! }
//! # fn main() {}
//! ```
//!
//! The Redlocks the cases build use [`NeutralRuntime`](redlock_core::NeutralRuntime) for time, short retry
//! delays (20 ± 10 ms), 3 retries and a 1 s per-node timeout, unless a case
//! says otherwise.
//!
//! # The cases
//!
//! Generated from the one table of cases, which also generates the tests
//! and [`CASES`]. "Needs" are what the fixture must provide, "capabilities"
//! what the backend must declare.
//!
#![doc = crate::conformance_cases!(__conformance_doc_table {})]

use std::future::Future;
use std::time::Duration;

use crate::fixture::Need;
use crate::Capabilities;

mod basics;
mod case;
mod cluster;
mod cluster_quarantine;
mod contention;
mod doctor;
mod faults;
mod fencing;
mod input;
mod quarantine;
mod quorum;
mod scripts;
mod support;
mod using;
mod wake;

pub use basics::{
    acquire_extend_release, automatic_expiry, exclusivity, multi_resource_all_or_nothing,
    overlapping_multi_locks, release_and_extend_only_by_owner, release_of_expired_lock,
};
pub use case::skip_reason;
pub use cluster::{
    cluster_cross_slot_rejected, cluster_hash_tagged_multi_resource, cluster_wake_is_sharded,
};
pub use cluster_quarantine::cluster_restart_quarantine;
pub use contention::contention;
pub use doctor::{
    doctor_cluster, doctor_config_refused, doctor_dead_node, doctor_evicting_policy,
    doctor_healthy_set, doctor_node_listed_twice, doctor_paused_node, doctor_replica_caught,
    doctor_two_nodes_warn, lock_status,
};
pub use faults::{
    node_restart_with_persistence, password_in_url, paused_node_times_out,
    unreachable_node_refused, wrong_password_rejected,
};
pub use fencing::{
    fencing_carries_legacy_counters_over, fencing_counters_are_bounded, fencing_race,
    fencing_slot_shared_across_resources, fencing_tokens,
};
pub use input::bad_input_reaches_no_node;
pub use quarantine::restart_quarantine;
pub use quorum::{majority_held, majority_killed, minority_held, minority_killed};
pub use scripts::{custom_scripts, noscript_fallback};
pub use support::{sleep, unique_prefix, within};
pub use using::{using_keeps_lock_while_routine_runs, using_returns_routine_error};
pub use wake::{release_names_the_channel, wake_follows_interest, wake_on_release};

/// How long one case may take before [`conformance_tests!`](crate::conformance_tests)
/// fails it as hung.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `case`, failing it if it takes longer than [`CASE_DEADLINE`]: a hung
/// backend fails its test instead of hanging the suite.
pub async fn with_deadline<F: Future>(name: &str, case: F) -> F::Output {
    within(CASE_DEADLINE, &format!("conformance case `{name}`"), case).await
}

/// One row of the case table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseInfo {
    /// The case's function in this module.
    pub name: &'static str,
    /// For a case run at several sizes, each test's name and node count;
    /// empty for a case whose test is named after the function.
    pub sizes: &'static [(&'static str, usize)],
    /// How many nodes it runs on, as documented ("1", "3, 5", "cluster").
    pub nodes: &'static str,
    /// What the fixture must provide.
    pub needs: &'static [Need],
    /// What the backend must declare.
    pub capabilities: Capabilities,
    /// What it checks, in one line.
    pub checks: &'static str,
}

impl CaseInfo {
    /// The names of the `#[test]`s it becomes.
    pub fn tests(&self) -> Vec<&'static str> {
        if self.sizes.is_empty() {
            vec![self.name]
        } else {
            self.sizes.iter().map(|(test, _)| *test).collect()
        }
    }

    /// The row of the case called `name`.
    pub fn of(name: &str) -> Option<&'static CaseInfo> {
        CASES.iter().find(|case| case.name == name)
    }
}

/// Every case, in the order of the table (generated from it, as are the
/// tests and the documentation).
pub const CASES: &[CaseInfo] = crate::conformance_cases!(__conformance_case_infos {});

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn test_names_are_unique_and_follow_their_sizes() {
        let mut seen = HashSet::new();
        for case in CASES {
            for test in case.tests() {
                assert!(seen.insert(test), "two tests named {test}");
            }
            for (test, n) in case.sizes {
                assert!(
                    test.starts_with(case.name) && test.ends_with(&format!("_{n}")),
                    "{test} is not named after {} and its size {n}",
                    case.name
                );
            }
        }
        assert_eq!(seen.len(), 50, "the real-Redis suite has 50 tests");
    }

    #[test]
    fn the_documented_table_has_a_row_per_case() {
        let table = crate::conformance_cases!(__conformance_doc_table {});
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(rows.len(), CASES.len());
        for (row, case) in rows.iter().zip(CASES) {
            assert!(
                row.starts_with(&format!("| [`{}`] | {} |", case.name, case.nodes)),
                "{row}"
            );
            assert!(row.contains(case.checks), "{row}");
        }
    }
}
