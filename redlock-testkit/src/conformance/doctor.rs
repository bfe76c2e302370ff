//! The node doctor and the lock status, on real nodes through the backend's
//! [`inspect`](redlock_core::LockBackend::inspect).

use std::time::{Duration, Instant};

use redlock_core::{Check, DoctorOptions, DoctorReport, KeyState, LockStatus, Redlock, Severity};

use super::case::{expect_lock, Case};
use super::cluster::ClusterCase;
use super::support::{build, fast_builder, sleep, within};
use crate::fixture::Fixture;
use crate::server::NodeOptions;
use crate::Capabilities;

/// Generous: nothing here asserts timing, it only polls.
const PATIENCE: Duration = Duration::from_secs(40);

/// The doctor's options in these cases: a long timeout, so that a loaded
/// machine does not turn a slow answer into a failed check.
fn patient() -> DoctorOptions {
    DoctorOptions::default().with_timeout(Duration::from_secs(20))
}

/// The per-node timeout of the Redlocks whose status these cases read.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// The finding of `check` on node `node` (by its name), or a panic showing
/// the report.
fn severity_of(report: &DoctorReport, check: Check, node: &str) -> Severity {
    report
        .of(check)
        .find(|f| f.node.as_deref() == Some(node))
        .map(|f| f.severity)
        .unwrap_or_else(|| panic!("no {check} finding for {node}:\n{report}"))
}

fn name(redlock: &Redlock, i: usize) -> String {
    redlock
        .node_name(i)
        .unwrap_or_else(|| panic!("no node {i}"))
        .to_owned()
}

/// Panics if the backend declared inspection yet a node was not inspected.
fn assert_inspected(report: &DoctorReport) {
    let skipped: Vec<_> = report
        .of(Check::Reachable)
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert!(
        skipped.is_empty(),
        "the backend declares inspection, and every node runs: every node must be inspected:\n{report}"
    );
}

/// 3 nodes with AOF (`appendfsync always`) and the default `noeviction`:
/// every finding is ok (local nodes share this machine's clock), and the
/// report prints one line per finding, naming each node.
pub async fn doctor_healthy_set<F: Fixture>(fixture: &F) {
    let options = NodeOptions {
        persistence: true,
        ..NodeOptions::default()
    };
    let Some(case) = Case::start_with(fixture, "doctor_healthy_set", 3, options) else {
        return;
    };
    let redlock = case.redlock().await;
    let report = redlock.doctor_with(&patient()).await;
    assert_inspected(&report);
    assert!(report.passed(), "a healthy set passes:\n{report}");
    assert_eq!(
        report.worst(),
        Severity::Ok,
        "every check of a healthy set is ok:\n{report}"
    );
    for i in 0..3 {
        let node = name(&redlock, i);
        for check in Check::PER_NODE {
            assert_eq!(
                severity_of(&report, check, &node),
                Severity::Ok,
                "{check} on {node}:\n{report}"
            );
        }
    }
    let printed = report.to_string();
    assert_eq!(printed.lines().count(), report.findings.len(), "{printed}");
    assert!(printed.contains("ok   persistence"), "{printed}");
    case.finish().await;
}

/// One of 3 nodes set to `maxmemory-policy allkeys-lru`: the report fails,
/// on that node's eviction check only, naming the node and the policy.
pub async fn doctor_evicting_policy<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_evicting_policy", 3) else {
        return;
    };
    case.redis(1).query::<()>(
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("allkeys-lru"),
    );
    let redlock = case.redlock().await;
    let report = redlock.doctor_with(&patient()).await;
    assert_inspected(&report);
    assert!(!report.passed(), "an evicting policy fails:\n{report}");
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(
        failures.len(),
        1,
        "only the eviction check fails:\n{report}"
    );
    let node = name(&redlock, 1);
    assert_eq!(failures[0].check, Check::Eviction, "{report}");
    assert_eq!(failures[0].node.as_deref(), Some(node.as_str()), "{report}");
    assert!(
        failures[0].message.contains("allkeys-lru"),
        "{}",
        failures[0]
    );
    assert!(
        report
            .to_string()
            .contains(&format!("FAIL eviction      {node}: ")),
        "{report}"
    );
    for i in [0, 2] {
        assert_eq!(
            severity_of(&report, Check::Eviction, &name(&redlock, i)),
            Severity::Ok,
            "{report}"
        );
    }
    case.finish().await;
}

/// The same node given twice (3 backends over 2 servers): both entries of
/// that server fail the independence check (same `run_id`); the other node
/// passes it.
pub async fn doctor_node_listed_twice<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_node_listed_twice", 2) else {
        return;
    };
    let backends = vec![
        case.backend(0).await,
        case.backend(1).await,
        case.backend(0).await,
    ];
    let redlock = build(fast_builder(backends));
    let report = redlock.doctor_with(&patient()).await;
    assert_inspected(&report);
    assert!(!report.passed(), "a node listed twice fails:\n{report}");
    let independence: Vec<_> = report.of(Check::Independence).collect();
    assert_eq!(independence.len(), 3, "{report}");
    assert_eq!(independence[0].severity, Severity::Fail, "{report}");
    assert_eq!(independence[1].severity, Severity::Ok, "{report}");
    assert_eq!(independence[2].severity, Severity::Fail, "{report}");
    assert!(
        independence[2].message.contains("the same server as")
            && independence[2].message.contains("run_id"),
        "{}",
        independence[2]
    );
    assert!(
        report.failures().all(|f| f.check == Check::Independence),
        "only independence fails:\n{report}"
    );
    case.finish().await;
}

/// Node 2 made a replica of node 0 (`REPLICAOF`): its role fails (a
/// replica), and, once it has synced, its independence (node 0's
/// replication id); node 0's role warns (a master with a replica).
pub async fn doctor_replica_caught<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_replica_caught", 3) else {
        return;
    };
    let master = case.redis(0).url().to_owned();
    let port = master
        .rsplit(':')
        .next()
        .unwrap_or_else(|| panic!("no port in {master}"))
        .trim_end_matches('/');
    case.redis(2)
        .query::<()>(redis::cmd("REPLICAOF").arg("127.0.0.1").arg(port));
    let redlock = case.redlock().await;
    let replica = name(&redlock, 2);
    let deadline = Instant::now() + PATIENCE;
    let report = loop {
        let report = redlock.doctor_with(&patient()).await;
        assert_inspected(&report);
        let synced = severity_of(&report, Check::Independence, &replica) == Severity::Fail;
        if synced {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never shared its master's replication id within {PATIENCE:?}:\n{report}"
        );
        sleep(Duration::from_millis(200)).await;
    };
    assert!(!report.passed(), "{report}");
    assert_eq!(severity_of(&report, Check::Role, &replica), Severity::Fail);
    let role = report
        .of(Check::Role)
        .find(|f| f.node.as_deref() == Some(replica.as_str()))
        .expect("a role finding");
    assert!(
        role.message
            .contains(&format!("replica of 127.0.0.1:{port}")),
        "{role}"
    );
    assert_eq!(
        severity_of(&report, Check::Role, &name(&redlock, 0)),
        Severity::Warning,
        "a master with a replica:\n{report}"
    );
    assert_eq!(
        severity_of(&report, Check::Role, &name(&redlock, 1)),
        Severity::Ok
    );
    case.redis(2)
        .query::<()>(redis::cmd("REPLICAOF").arg("NO").arg("ONE"));
    case.finish().await;
}

/// Two nodes: the set's node count is a warning, which does not fail the
/// report. With a restart quarantine of an hour, the freshly started nodes
/// warn on their uptime (they do not vote for acquires yet), and their
/// missing AOF is covered by the quarantine (persistence ok).
pub async fn doctor_two_nodes_warn<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_two_nodes_warn", 2) else {
        return;
    };
    let report = case.redlock().await.doctor_with(&patient()).await;
    assert_inspected(&report);
    let count: Vec<_> = report.of(Check::NodeCount).collect();
    assert_eq!(count.len(), 1, "{report}");
    assert_eq!(count[0].severity, Severity::Warning, "{report}");
    assert!(count[0].node.is_none(), "a finding about the set: {report}");
    assert!(report.passed(), "warnings do not fail:\n{report}");
    assert!(
        report
            .of(Check::Persistence)
            .all(|f| f.severity == Severity::Warning),
        "no AOF and no quarantine:\n{report}"
    );

    let quarantined = build(
        case.builder()
            .await
            .restart_quarantine(Duration::from_secs(3600)),
    );
    let report = quarantined.doctor_with(&patient()).await;
    assert_inspected(&report);
    for check in [Check::Uptime, Check::Persistence] {
        let expected = if check == Check::Uptime {
            Severity::Warning
        } else {
            Severity::Ok
        };
        let found: Vec<_> = report.of(check).collect();
        assert_eq!(found.len(), 2, "{report}");
        assert!(
            found.iter().all(|f| f.severity == expected),
            "{check} under a 1 h quarantine:\n{report}"
        );
    }
    assert!(
        report
            .of(Check::Uptime)
            .all(|f| f.message.contains("restart quarantine window of 60 min")),
        "{report}"
    );
    case.finish().await;
}

fn states(status: &LockStatus) -> Vec<&KeyState> {
    status
        .nodes
        .iter()
        .map(|n| match &n.keys {
            Ok(keys) if keys.len() == 1 => &keys[0].state,
            other => panic!("node {}: one key expected, got {other:?}", n.node),
        })
        .collect()
}

/// The lock status: a lock on 3 nodes shows with its TTL on each node that
/// took it (a quorum at least), held by a quorum under the lock's value (which the printed status never shows);
/// with fencing declared, the fence counter equals the token on a quorum; a
/// key held on one node only is not held by a quorum; after release every
/// node is free.
pub async fn lock_status<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "lock_status", 3) else {
        return;
    };
    let key = case.key("job");
    let fencing = fixture.capabilities().contains(Capabilities::FENCING);
    let redlock = build(
        case.builder()
            .await
            .fencing(fencing)
            .node_timeout(STATUS_TIMEOUT),
    );
    let ttl = Duration::from_secs(30);
    let lock = expect_lock(redlock.acquire(&[&key], ttl).await, "the lock");

    let status = redlock.status(&[&key]).await.expect("valid resources");
    assert_eq!(status.quorum_size, 2);
    // The acquisition returns once a quorum voted for: the third node's
    // vote may have been left unanswered (and its key never written).
    let holding = match status.holder() {
        Some((value, n)) if value == lock.value() && n >= 2 => n,
        other => panic!("a quorum holds the lock under its value, got {other:?}:\n{status}"),
    };
    for state in states(&status) {
        match state {
            KeyState::Held {
                value,
                ttl: Some(left),
            } => {
                assert_eq!(value, lock.value());
                assert!(*left > Duration::ZERO && *left <= ttl, "{status}");
            }
            KeyState::Free => {}
            other => panic!("a node holds the lock with a TTL, or nothing: {other:?}"),
        }
    }
    if let Some(token) = lock.fencing_token() {
        let counters = status
            .nodes
            .iter()
            .filter_map(|n| n.keys.as_ref().ok()?.first()?.fence)
            .filter(|fence| *fence == token)
            .count();
        assert!(
            counters >= 2,
            "a quorum keeps the fence counter {token}: {status:?}"
        );
    }
    let printed = status.to_string();
    assert!(
        printed.contains(&format!("HELD by a quorum: {holding} of 3")),
        "{printed}"
    );
    assert!(
        !printed.contains(lock.value()),
        "no lock value printed: {printed}"
    );
    assert_eq!(printed.lines().count(), 4, "{printed}");
    lock.release().await.expect("release");

    // Another owner on node 0 alone: there, but no quorum.
    let foreign = case.hold_foreign(0, &[&key], ttl).await;
    let status = redlock.status(&[&key]).await.expect("valid resources");
    assert!(!status.held_by_quorum(), "{status}");
    assert_eq!(status.nodes_holding(), 1, "{status}");
    let seen = states(&status);
    assert_eq!(seen[0].value(), Some(foreign.value()), "{status}");
    assert_eq!(*seen[1], KeyState::Free, "{status}");
    assert_eq!(*seen[2], KeyState::Free, "{status}");
    assert!(
        status.to_string().contains("NOT HELD by a quorum"),
        "{status}"
    );
    case.release_foreign(foreign, "after the status").await;

    let status = redlock.status(&[&key]).await.expect("valid resources");
    assert!(
        states(&status).iter().all(|s| **s == KeyState::Free),
        "released everywhere: {status}"
    );
    assert!(!status.held_by_quorum());
    case.finish().await;
}

/// A Redis Cluster (3 masters) as one node: the doctor inspects every
/// master (one finding per master and check, each naming its address),
/// finds all 16384 slots served, and nothing fails (the single node is a
/// node-count warning); the lock status of a hash-tagged pair, read by slot,
/// shows both keys held with a TTL, and free after release.
pub async fn doctor_cluster<F: Fixture>(fixture: &F) {
    let Some(case) = ClusterCase::start(fixture, "doctor_cluster") else {
        return;
    };
    let redlock = build(case.builder().await.node_timeout(STATUS_TIMEOUT));
    let report = redlock.doctor_with(&patient()).await;
    assert_inspected(&report);
    let node = name(&redlock, 0);
    let masters: Vec<_> = report.of(Check::Reachable).collect();
    assert_eq!(masters.len(), 3, "one finding per master:\n{report}");
    assert!(
        masters
            .iter()
            .all(|f| f.node.as_deref() == Some(node.as_str())
                && f.server
                    .as_deref()
                    .is_some_and(|s| s.starts_with("127.0.0.1:"))),
        "{report}"
    );
    assert!(
        report
            .to_string()
            .contains(&format!("ok   reachable     {node} @ 127.0.0.1:")),
        "{report}"
    );
    let slots: Vec<_> = report.of(Check::ClusterSlots).collect();
    assert_eq!(slots.len(), 1, "{report}");
    assert_eq!(slots[0].severity, Severity::Ok, "{report}");
    assert!(slots[0].message.contains("16384"), "{report}");
    assert!(report.passed(), "{report}");
    for check in [Check::Role, Check::Independence, Check::Eviction] {
        assert!(
            report.of(check).all(|f| f.severity == Severity::Ok),
            "{check}:\n{report}"
        );
    }

    let a = format!("{{{}}}:a", case.prefix);
    let b = format!("{{{}}}:b", case.prefix);
    let ttl = Duration::from_secs(30);
    let lock = expect_lock(redlock.acquire(&[&a, &b], ttl).await, "the lock");
    let status = redlock.status(&[&a, &b]).await.expect("valid resources");
    assert_eq!(status.holder(), Some((lock.value(), 1)), "{status}");
    let keys = status.nodes[0].keys.as_ref().expect("read");
    assert!(
        keys.iter().all(
            |k| matches!(&k.state, KeyState::Held { value, ttl: Some(left) }
            if value == lock.value() && *left <= ttl)
        ),
        "{status}"
    );
    lock.release().await.expect("release");
    let status = redlock.status(&[&a, &b]).await.expect("valid resources");
    assert_eq!(status.nodes_holding(), 0, "{status}");
    case.finish();
}

/// `CONFIG` refused by an ACL (`ACL SETUSER default -config`): the
/// persistence and eviction checks say so, and fall back to `INFO` (no AOF
/// there: a warning; `noeviction` there: ok); nothing fails.
pub async fn doctor_config_refused<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_config_refused", 3) else {
        return;
    };
    for i in 0..3 {
        case.redis(i).query::<()>(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("default")
                .arg("-config"),
        );
    }
    let redlock = case.redlock().await;
    let report = redlock.doctor_with(&patient()).await;
    assert_inspected(&report);
    assert!(report.passed(), "{report}");
    for i in 0..3 {
        let node = name(&redlock, i);
        let find = |check: Check| {
            report
                .of(check)
                .find(|f| f.node.as_deref() == Some(node.as_str()))
                .unwrap_or_else(|| panic!("no {check} finding for {node}:\n{report}"))
        };
        let persistence = find(Check::Persistence);
        assert_eq!(persistence.severity, Severity::Warning, "{report}");
        assert!(
            persistence.message.contains("CONFIG GET refused (NOPERM")
                && persistence.message.contains("aof_enabled:0"),
            "{persistence}"
        );
        let eviction = find(Check::Eviction);
        assert_eq!(eviction.severity, Severity::Ok, "{report}");
        assert!(
            eviction.message.contains("refused") && eviction.message.contains("INFO"),
            "{eviction}"
        );
    }
    case.finish().await;
}

/// One of 3 nodes killed: the doctor fails its reachability, marks its other
/// checks not checked, and the status reports it unread while the two others
/// still make the quorum that holds the lock.
pub async fn doctor_dead_node<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_dead_node", 3) else {
        return;
    };
    case.kill(2);
    let redlock = build(case.builder().await.node_timeout(STATUS_TIMEOUT));
    let report = redlock.doctor_with(&patient()).await;
    let dead = name(&redlock, 2);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0].check, Check::Reachable, "{report}");
    assert_eq!(failures[0].node.as_deref(), Some(dead.as_str()), "{report}");
    assert!(
        report
            .findings
            .iter()
            .filter(|f| f.node.as_deref() == Some(dead.as_str()) && f.check != Check::Reachable)
            .all(|f| f.severity == Severity::NotChecked),
        "{report}"
    );
    for i in 0..2 {
        assert_eq!(
            severity_of(&report, Check::Reachable, &name(&redlock, i)),
            Severity::Ok,
            "{report}"
        );
    }

    let key = case.key("job");
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(30)).await,
        "the lock on two of three nodes",
    );
    let status = redlock.status(&[&key]).await.expect("valid resources");
    assert_eq!(status.holder(), Some((lock.value(), 2)), "{status}");
    assert_eq!(status.unreadable_nodes(), 1, "{status}");
    assert!(status.nodes[2].keys.is_err(), "{status}");
    assert!(
        status.to_string().contains(&format!("{dead}  not read")),
        "{status}"
    );
    lock.release().await.expect("release");
    case.finish().await;
}

/// One of 3 nodes paused (it accepts connections, answers nothing): the
/// doctor gives up on it (by its timeout at the latest: reachable fails,
/// its other checks not checked) and reports the other two; the status
/// reports it unread.
pub async fn doctor_paused_node<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "doctor_paused_node", 3) else {
        return;
    };
    let redlock = build(case.builder().await.node_timeout(Duration::from_secs(5)));
    // Connect first, so the pause meets an open connection.
    assert_inspected(&redlock.doctor_with(&patient()).await);
    case.pause(1);
    let options = DoctorOptions::default().with_timeout(Duration::from_secs(5));
    let report = within(
        PATIENCE,
        "the doctor with a paused node",
        redlock.doctor_with(&options),
    )
    .await;
    let paused = name(&redlock, 1);
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1, "{report}");
    assert_eq!(failures[0].check, Check::Reachable, "{report}");
    assert_eq!(
        failures[0].node.as_deref(),
        Some(paused.as_str()),
        "{report}"
    );
    // Which gives up first (the doctor's timeout, the client's own response
    // timeout or its unresponsive-connection check) is the client's affair.
    assert!(
        failures[0].message.starts_with("unreachable: "),
        "{}",
        failures[0]
    );
    for i in [0, 2] {
        assert_eq!(
            severity_of(&report, Check::Reachable, &name(&redlock, i)),
            Severity::Ok,
            "{report}"
        );
    }
    let key = case.key("job");
    let status = within(
        PATIENCE,
        "the status with a paused node",
        redlock.status(&[&key]),
    )
    .await
    .expect("valid resources");
    assert!(status.nodes[1].keys.is_err(), "{status}");
    assert_eq!(status.unreadable_nodes(), 1, "{status}");
    case.resume(1);
    case.finish().await;
}
