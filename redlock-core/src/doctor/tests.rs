//! The checks on made-up facts.

use super::*;

fn info(run_id: &str, replid: &str, role: &str, extra: &str) -> String {
    format!(
        "# Server\r\nredis_version:7.0.15\r\nrun_id:{run_id}\r\nuptime_in_seconds:3600\r\n\
         # Memory\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n\
         # Replication\r\nrole:{role}\r\nconnected_slaves:0\r\nmaster_replid:{replid}\r\n{extra}"
    )
}

fn pair(k: &str, v: &str) -> Value {
    Value::Array(vec![Value::Text(k.into()), Value::Text(v.into())])
}

fn healthy(run_id: &str, replid: &str) -> Vec<Value> {
    vec![
        Value::Text(info(run_id, replid, "master", "")),
        pair("appendonly", "yes"),
        pair("appendfsync", "always"),
        pair("maxmemory-policy", "noeviction"),
        pair("maxmemory", "0"),
        Value::Error("ERR This instance has cluster support disabled".into()),
    ]
}

fn node(name: &str, replies: Vec<Value>, offset_ms: i128) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        servers: Ok(vec![ServerFacts {
            server: None,
            replies: ServerReplies::node(replies),
            clock: Ok(ClockReading {
                offset_us: offset_ms * 1000,
                uncertainty_us: 200,
            }),
        }]),
    }
}

fn run(nodes: &[NodeFacts]) -> DoctorReport {
    assess(nodes, &Settings::default(), &DoctorOptions::default())
}

fn severity(report: &DoctorReport, check: Check, node: &str) -> Severity {
    report
        .of(check)
        .find(|f| f.node.as_deref() == Some(node))
        .map(|f| f.severity)
        .unwrap_or_else(|| panic!("no {check} finding for {node}:\n{report}"))
}

#[test]
fn a_healthy_set_passes_with_every_check_ok() {
    let report = run(&[
        node("a", healthy("r1", "x1"), 1),
        node("b", healthy("r2", "x2"), -2),
        node("c", healthy("r3", "x3"), 0),
    ]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.worst(), Severity::Ok, "{report}");
    // Eight per node, two for the set.
    assert_eq!(report.findings.len(), 3 * 8 + 2, "{report}");
    assert_eq!(report.to_string().lines().count(), report.findings.len());
    let a: Vec<Check> = report
        .findings
        .iter()
        .filter(|f| f.node.as_deref() == Some("a"))
        .map(|f| f.check)
        .collect();
    assert_eq!(a, Check::PER_NODE);
}

#[test]
fn an_evicting_policy_fails_naming_the_node() {
    let mut replies = healthy("r2", "x2");
    replies[POLICY] = pair("maxmemory-policy", "allkeys-lru");
    let mut volatile = healthy("r3", "x3");
    volatile[POLICY] = pair("maxmemory-policy", "volatile-ttl");
    let report = run(&[
        node("a", healthy("r1", "x1"), 0),
        node("b", replies, 0),
        node("c", volatile, 0),
    ]);
    assert!(!report.passed());
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 2, "{report}");
    assert_eq!(report.count(Severity::Fail), 2);
    assert_eq!(report.count(Severity::Ok), report.findings.len() - 2);
    assert_eq!(failed[0].node.as_deref(), Some("b"));
    assert_eq!(failed[0].check, Check::Eviction);
    assert!(failed[0].message.contains("allkeys-lru"), "{}", failed[0]);
    assert!(failed[1].message.contains("lock keys (they have TTLs)"));
    assert!(
        report.to_string().contains("FAIL eviction      b: "),
        "{report}"
    );
}

#[test]
fn refused_config_falls_back_to_info_and_says_so() {
    let mut replies = healthy("r1", "x1");
    for i in [APPENDONLY, APPENDFSYNC, POLICY, MAXMEMORY] {
        replies[i] = Value::Error(
            "NOPERM this user has no permissions to run the 'config|get' command".into(),
        );
    }
    let report = run(&[node("a", replies, 0)]);
    let persistence = report.of(Check::Persistence).next().expect("finding");
    assert_eq!(persistence.severity, Severity::Warning);
    assert!(
        persistence.message.contains("CONFIG GET refused (NOPERM"),
        "{persistence}"
    );
    assert!(persistence.message.contains("AOF is on"), "{persistence}");
    let eviction = report.of(Check::Eviction).next().expect("finding");
    assert_eq!(eviction.severity, Severity::Ok, "{eviction}");
    assert!(eviction.message.contains("read from INFO"), "{eviction}");
}

#[test]
fn a_server_listed_twice_and_a_replica_fail() {
    let replica = info(
        "r3",
        "x1",
        "slave",
        "master_host:127.0.0.1\r\nmaster_port:7001\r\n",
    );
    let mut replica_replies = healthy("r3", "x1");
    replica_replies[INFO] = Value::Text(replica);
    let report = run(&[
        node("a", healthy("r1", "x1"), 0),
        node("a-again", healthy("r1", "x1"), 0),
        node("c", replica_replies, 0),
    ]);
    assert_eq!(severity(&report, Check::Independence, "a"), Severity::Fail);
    assert_eq!(
        severity(&report, Check::Independence, "a-again"),
        Severity::Fail
    );
    assert_eq!(severity(&report, Check::Independence, "c"), Severity::Fail);
    assert_eq!(severity(&report, Check::Role, "c"), Severity::Fail);
    assert_eq!(severity(&report, Check::Role, "a"), Severity::Ok);
    let twice = report
        .of(Check::Independence)
        .find(|f| f.node.as_deref() == Some("a-again"))
        .expect("finding");
    assert!(twice.message.contains("the same server as a "), "{twice}");
    let role = report
        .of(Check::Role)
        .find(|f| f.node.as_deref() == Some("c"))
        .expect("finding");
    assert!(role.message.contains("replica of 127.0.0.1:7001"), "{role}");
    // Each node's findings stay in check order.
    let c: Vec<Check> = report
        .findings
        .iter()
        .filter(|f| f.node.as_deref() == Some("c"))
        .map(|f| f.check)
        .collect();
    assert_eq!(c, Check::PER_NODE);
}

#[test]
fn set_size_and_clocks() {
    let report = run(&[
        node("a", healthy("r1", "x1"), 0),
        node("b", healthy("r2", "x2"), 0),
    ]);
    let count = report.of(Check::NodeCount).next().expect("finding");
    assert_eq!(count.severity, Severity::Warning);
    assert!(count.node.is_none());
    assert!(report.passed(), "a warning does not fail: {report}");

    let report = run(&[
        node("a", healthy("r1", "x1"), 0),
        node("b", healthy("r2", "x2"), 2000),
        node("c", healthy("r3", "x3"), 100),
        node("d", healthy("r4", "x4"), 0),
    ]);
    assert_eq!(
        report.of(Check::NodeCount).next().map(|f| f.severity),
        Some(Severity::Warning)
    );
    assert_eq!(severity(&report, Check::Clock, "b"), Severity::Warning);
    assert_eq!(severity(&report, Check::Clock, "c"), Severity::Ok);
    let spread = report.of(Check::ClockSpread).next().expect("finding");
    assert_eq!(spread.severity, Severity::Warning, "{spread}");
    assert!(spread.message.contains("b fastest"), "{spread}");
}

#[test]
fn info_refused_fails_reachable_and_skips_the_rest() {
    let mut refused = healthy("r1", "x1");
    refused[INFO] = Value::Error("NOPERM no INFO for you".into());
    let mut odd = healthy("r2", "x2");
    odd[INFO] = Value::Int(1);
    let report = run(&[node("a", refused, 0), node("b", odd, 0)]);
    for name in ["a", "b"] {
        let checks: Vec<(Check, Severity)> = report
            .findings
            .iter()
            .filter(|f| f.node.as_deref() == Some(name))
            .map(|f| (f.check, f.severity))
            .collect();
        assert_eq!(checks.len(), Check::PER_NODE.len(), "{report}");
        assert_eq!(checks[0], (Check::Reachable, Severity::Fail), "{report}");
        assert!(checks[1..].iter().all(|(_, s)| *s == Severity::NotChecked));
    }
    assert!(
        report.to_string().contains("INFO was refused: NOPERM"),
        "{report}"
    );
}

#[test]
fn unreachable_and_uninspectable_nodes() {
    let down = NodeFacts {
        name: "down".into(),
        servers: Err(BackendError::new(ErrorKind::Connection, "refused")),
    };
    let memory = NodeFacts {
        name: "memory".into(),
        servers: Err(BackendError::new(ErrorKind::Unsupported, "no redis")),
    };
    let report = run(&[node("a", healthy("r1", "x1"), 0), down, memory]);
    assert_eq!(severity(&report, Check::Reachable, "down"), Severity::Fail);
    assert_eq!(
        severity(&report, Check::Eviction, "down"),
        Severity::NotChecked
    );
    assert!(report
        .findings
        .iter()
        .filter(|f| f.node.as_deref() == Some("memory"))
        .all(|f| f.severity == Severity::NotChecked && f.message.contains("not checked")));
    assert_eq!(report.failures().count(), 1, "{report}");
}

#[test]
fn quarantine_window_and_persistence() {
    let mut settings = Settings {
        restart_quarantine: Some(Duration::from_secs(7200)),
        ..Settings::default()
    };
    let mut no_aof = healthy("r1", "x1");
    no_aof[APPENDONLY] = pair("appendonly", "no");
    let nodes = [node("a", no_aof, 0)];
    let report = assess(&nodes, &settings, &DoctorOptions::default());
    assert_eq!(severity(&report, Check::Uptime, "a"), Severity::Warning);
    assert_eq!(severity(&report, Check::Persistence, "a"), Severity::Ok);
    settings.fencing = true;
    let report = assess(&nodes, &settings, &DoctorOptions::default());
    assert_eq!(
        severity(&report, Check::Persistence, "a"),
        Severity::Warning
    );
    let report = run(&nodes);
    assert_eq!(severity(&report, Check::Uptime, "a"), Severity::Ok);
    assert_eq!(
        severity(&report, Check::Persistence, "a"),
        Severity::Warning
    );
}

#[test]
fn cluster_masters_and_slot_coverage() {
    let cluster_info = |ok: u64, state: &str| {
        Value::Text(format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{ok}\r\ncluster_slots_ok:{ok}\r\n"
        ))
    };
    let master = |run_id: &str, ok: u64, state: &str| {
        let mut replies = healthy(run_id, run_id);
        replies[INFO] = Value::Text(info(run_id, run_id, "master", "cluster_enabled:1\r\n"));
        replies[CLUSTER_INFO] = cluster_info(ok, state);
        ServerFacts {
            server: Some(format!("127.0.0.1:{run_id}")),
            replies: ServerReplies::node(replies),
            clock: Ok(ClockReading {
                offset_us: 0,
                uncertainty_us: 100,
            }),
        }
    };
    let cluster = NodeFacts {
        name: "redis-cluster[...]".into(),
        servers: Ok(vec![
            master("7001", 16384, "ok"),
            master("7002", 16384, "ok"),
        ]),
    };
    let report = run(&[cluster]);
    let slots = report.of(Check::ClusterSlots).next().expect("finding");
    assert_eq!(slots.severity, Severity::Ok, "{report}");
    let second = report
        .of(Check::Independence)
        .find(|f| f.server.as_deref() == Some("127.0.0.1:7002"))
        .expect("a finding per master");
    assert_eq!(second.severity, Severity::Ok, "{report}");
    assert_eq!(second.node.as_deref(), Some("redis-cluster[...]"));
    assert!(
        second
            .to_string()
            .contains("redis-cluster[...] @ 127.0.0.1:7002: "),
        "{second}"
    );
    let broken = NodeFacts {
        name: "c".into(),
        servers: Ok(vec![
            master("7001", 16384, "ok"),
            master("7002", 10000, "fail"),
        ]),
    };
    let report = run(&[broken]);
    let slots = report.of(Check::ClusterSlots).next().expect("finding");
    assert_eq!(slots.severity, Severity::Fail, "{report}");
    assert!(slots.message.contains("10000 of 16384"), "{slots}");
}
