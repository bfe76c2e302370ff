//! Each check: facts in, findings out. Pure, so the unit tests feed it facts.

use super::*;

/// One server's identity, for the set's independence check.
pub(super) struct Identity<'a> {
    node: usize,
    /// Where its independence finding goes among the findings.
    position: usize,
    at: At<'a>,
    label: String,
    run_id: Option<&'a str>,
    replid: Option<&'a str>,
    is_replica: bool,
}

/// Turns the facts into findings. Pure: the unit tests feed it facts.
pub(crate) fn assess(
    nodes: &[NodeFacts],
    settings: &Settings,
    options: &DoctorOptions,
) -> DoctorReport {
    let mut findings = Vec::new();
    let tolerance_us = options.clock_tolerance.as_micros() as i128;
    let mut identities: Vec<Identity<'_>> = Vec::new();
    let mut clocks: Vec<(String, ClockReading)> = Vec::new();

    for (index, node) in nodes.iter().enumerate() {
        let servers = match &node.servers {
            Ok(servers) if !servers.is_empty() => servers,
            Ok(_) => {
                let e = BackendError::new(ErrorKind::Protocol, "no server answered");
                not_checked_node(&mut findings, &node.name, &e);
                continue;
            }
            Err(e) => {
                not_checked_node(&mut findings, &node.name, e);
                continue;
            }
        };
        let mut cluster_slots: Option<(Severity, String)> = None;
        for server in servers {
            let label = match &server.server {
                Some(addr) => format!("{} @ {addr}", node.name),
                None => node.name.clone(),
            };
            let at = Some(At {
                node: &node.name,
                server: server.server.as_deref(),
            });
            let text = match server.replies.reply(INFO) {
                Value::Text(text) => text.as_str(),
                other => {
                    let why = match other {
                        Value::Error(e) => format!("connected, but INFO was refused: {e}"),
                        other => format!("INFO answered {other:?}, not its text"),
                    };
                    findings.push(Finding::new(at, Check::Reachable, Severity::Fail, why));
                    for check in &Check::PER_NODE[1..] {
                        findings.push(Finding::new(
                            at,
                            *check,
                            Severity::NotChecked,
                            "not checked: INFO unreadable".to_owned(),
                        ));
                    }
                    continue;
                }
            };
            let info = parse_info(text);
            findings.push(Finding::new(
                at,
                Check::Reachable,
                Severity::Ok,
                "answers".to_owned(),
            ));
            findings.push(version(at, &info));
            let is_replica = matches!(info.get("role"), Some(&"slave") | Some(&"replica"));
            findings.push(role(at, &info));
            identities.push(Identity {
                node: index,
                position: findings.len(),
                at: At {
                    node: &node.name,
                    server: server.server.as_deref(),
                },
                label: label.clone(),
                run_id: info.get("run_id").copied().filter(|s| !s.is_empty()),
                replid: info.get("master_replid").copied().filter(|s| !s.is_empty()),
                is_replica,
            });
            findings.push(persistence(at, &info, &server.replies, settings));
            findings.push(eviction(at, &info, &server.replies));
            findings.push(match &server.clock {
                Err(e) => Finding::new(at, Check::Clock, Severity::NotChecked, e.clone()),
                Ok(reading) => {
                    clocks.push((label.clone(), *reading));
                    let off = reading.offset_us.abs() - reading.uncertainty_us;
                    let (severity, advice) = if off > tolerance_us {
                        (
                            Severity::Warning,
                            format!(
                                "; more than {} ms off: check that the node's clock is synchronised (NTP), \
                                 Redis expires keys by its wall clock",
                                options.clock_tolerance.as_millis()
                            ),
                        )
                    } else {
                        (Severity::Ok, String::new())
                    };
                    Finding::new(
                        at,
                        Check::Clock,
                        severity,
                        format!(
                            "offset {} against this machine (± {:.1} ms){advice}",
                            millis(reading.offset_us),
                            reading.uncertainty_us as f64 / 1000.0
                        ),
                    )
                }
            });
            findings.push(uptime(at, &info, settings));
            if info.get("cluster_enabled") == Some(&"1") {
                let slots = slot_coverage(server.replies.reply(CLUSTER_INFO));
                if cluster_slots
                    .as_ref()
                    .is_none_or(|(worst, _)| slots.0 > *worst)
                {
                    cluster_slots = Some(slots);
                }
            }
        }
        if let Some((severity, message)) = cluster_slots {
            findings.push(Finding::new(
                At::node(&node.name),
                Check::ClusterSlots,
                severity,
                message,
            ));
        }
    }

    // Independence: a server must appear once, and belong to no other
    // node's replication group.
    let mut inserts: Vec<(usize, Finding)> = Vec::new();
    for (k, identity) in identities.iter().enumerate() {
        let same_server = identities
            .iter()
            .take(k)
            .chain(identities.iter().skip(k + 1))
            .find(|o| identity.run_id.is_some() && o.run_id == identity.run_id);
        let same_group = identities
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != k && o.node != identity.node)
            .map(|(_, o)| o)
            .find(|o| {
                identity.replid.is_some()
                    && o.replid == identity.replid
                    && o.run_id != identity.run_id
            });
        let finding = match (same_server, same_group) {
            (Some(other), _) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Fail,
                format!(
                    "the same server as {} (run_id {}): a server listed twice votes twice",
                    other.label,
                    short(identity.run_id.unwrap_or_default())
                ),
            ),
            (None, Some(other)) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Fail,
                format!(
                    "same replication id as {} ({}): {} of one master, not independent nodes",
                    other.label,
                    short(identity.replid.unwrap_or_default()),
                    if identity.is_replica || other.is_replica {
                        "a master and its replica, or replicas"
                    } else {
                        "copies"
                    }
                ),
            ),
            (None, None) if identity.run_id.is_none() => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::NotChecked,
                "INFO reports no run_id".to_owned(),
            ),
            (None, None) => Finding::new(
                Some(identity.at),
                Check::Independence,
                Severity::Ok,
                format!(
                    "run_id {} and replication id unique in the set",
                    short(identity.run_id.unwrap_or_default())
                ),
            ),
        };
        inserts.push((identity.position, finding));
    }
    // Insert from the back, so earlier positions stay valid.
    for (position, finding) in inserts.into_iter().rev() {
        findings.insert(position, finding);
    }

    findings.push(node_count(nodes.len()));
    findings.push(clock_spread(&clocks, options));
    DoctorReport { findings }
}

pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Every per-node check of a node that could not be inspected.
pub(super) fn not_checked_node(findings: &mut Vec<Finding>, name: &str, e: &BackendError) {
    let at = At::node(name);
    let (severity, why) = if e.kind() == ErrorKind::Unsupported {
        (
            Severity::NotChecked,
            format!(
                "not checked: this backend cannot be inspected ({})",
                e.message()
            ),
        )
    } else {
        (Severity::Fail, format!("unreachable: {e}"))
    };
    findings.push(Finding::new(at, Check::Reachable, severity, why));
    for check in &Check::PER_NODE[1..] {
        let message = if e.kind() == ErrorKind::Unsupported {
            "not checked: backend cannot be inspected".to_owned()
        } else {
            "not checked: node unreachable".to_owned()
        };
        findings.push(Finding::new(at, *check, Severity::NotChecked, message));
    }
}

pub(super) fn version(at: Option<At<'_>>, info: &HashMap<&str, &str>) -> Finding {
    match info.get("redis_version") {
        None => Finding::new(
            at,
            Check::Version,
            Severity::Warning,
            "INFO reports no redis_version: not a Redis server the library knows".to_owned(),
        ),
        Some(v) => match parse_version(v) {
            Some(found) if found < MIN_VERSION => Finding::new(
                at,
                Check::Version,
                Severity::Fail,
                format!(
                    "Redis {v} is older than {}.{}.{}, which SET ... NX PX needs",
                    MIN_VERSION.0, MIN_VERSION.1, MIN_VERSION.2
                ),
            ),
            Some(_) => Finding::new(at, Check::Version, Severity::Ok, format!("Redis {v}")),
            None => Finding::new(
                at,
                Check::Version,
                Severity::Warning,
                format!("unrecognised redis_version {v:?}"),
            ),
        },
    }
}

pub(super) fn role(at: Option<At<'_>>, info: &HashMap<&str, &str>) -> Finding {
    match info.get("role").copied() {
        Some("master") => {
            let replicas = info
                .get("connected_slaves")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if replicas > 0 {
                Finding::new(
                    at,
                    Check::Role,
                    Severity::Warning,
                    format!(
                        "master with {replicas} replica(s): replication is asynchronous, so a \
                         failover to a replica can lose locks; Redlock wants independent masters"
                    ),
                )
            } else {
                Finding::new(at, Check::Role, Severity::Ok, "master".to_owned())
            }
        }
        Some("slave") | Some("replica") => {
            let of = match (info.get("master_host"), info.get("master_port")) {
                (Some(h), Some(p)) => format!(" of {h}:{p}"),
                _ => String::new(),
            };
            Finding::new(
                at,
                Check::Role,
                Severity::Fail,
                format!(
                    "a replica{of}: it is not an independent node (it copies its master, and \
                     refuses writes); list independent masters only"
                ),
            )
        }
        other => Finding::new(
            at,
            Check::Role,
            Severity::Warning,
            format!("unrecognised role {other:?}"),
        ),
    }
}

pub(super) fn persistence(
    at: Option<At<'_>>,
    info: &HashMap<&str, &str>,
    replies: &ServerReplies,
    settings: &Settings,
) -> Finding {
    let covered = settings.restart_quarantine.is_some() && !settings.fencing;
    let without_aof = |how: &str| {
        if covered {
            Finding::new(
                at,
                Check::Persistence,
                Severity::Ok,
                format!(
                    "no AOF ({how}); restart quarantine keeps a restarted node from voting \
                     until its lost locks have expired"
                ),
            )
        } else {
            Finding::new(
                at,
                Check::Persistence,
                Severity::Warning,
                format!(
                    "no AOF ({how}): a restarted node forgets its locks{} at once; set \
                     appendonly yes with appendfsync always, or turn on restart_quarantine",
                    if settings.fencing {
                        " and fence counters (fencing tokens can go backwards)"
                    } else {
                        ""
                    }
                ),
            )
        }
    };
    match (
        config(replies, APPENDONLY, "appendonly"),
        config(replies, APPENDFSYNC, "appendfsync"),
    ) {
        (Ok(Some(aof)), Ok(fsync)) => {
            if !aof.eq_ignore_ascii_case("yes") {
                return without_aof("appendonly no");
            }
            match fsync {
                Some(f) if f.eq_ignore_ascii_case("always") => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::Ok,
                    "AOF on, appendfsync always".to_owned(),
                ),
                other => Finding::new(
                    at,
                    Check::Persistence,
                    if covered {
                        Severity::Ok
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "AOF on, appendfsync {}: a crash can lose the last writes (locks{}); \
                         use appendfsync always{}",
                        other.unwrap_or("unknown"),
                        if settings.fencing {
                            ", fence counters"
                        } else {
                            ""
                        },
                        if covered {
                            " (restart quarantine covers the locks)"
                        } else {
                            ", or restart_quarantine"
                        }
                    ),
                ),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            let refused = format!("CONFIG GET refused ({})", e.trim());
            match info.get("aof_enabled").copied() {
                Some("1") => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::Warning,
                    format!(
                        "{refused}: INFO says AOF is on, but appendfsync cannot be read; \
                         make sure it is always"
                    ),
                ),
                Some("0") => without_aof(&format!("{refused}; INFO says aof_enabled:0")),
                _ => Finding::new(
                    at,
                    Check::Persistence,
                    Severity::NotChecked,
                    format!("{refused}, and INFO reports no aof_enabled"),
                ),
            }
        }
        (Ok(None), Ok(_)) => match info.get("aof_enabled").copied() {
            Some("1") => Finding::new(
                at,
                Check::Persistence,
                Severity::Warning,
                "CONFIG GET appendonly answered nothing; INFO says AOF is on, appendfsync unknown"
                    .to_owned(),
            ),
            Some("0") => without_aof("INFO says aof_enabled:0"),
            _ => Finding::new(
                at,
                Check::Persistence,
                Severity::NotChecked,
                "neither CONFIG GET nor INFO report AOF".to_owned(),
            ),
        },
    }
}

pub(super) fn eviction(
    at: Option<At<'_>>,
    info: &HashMap<&str, &str>,
    replies: &ServerReplies,
) -> Finding {
    let (policy, source) = match config(replies, POLICY, "maxmemory-policy") {
        Ok(Some(p)) => (Some(p), String::new()),
        Ok(None) => (
            info.get("maxmemory_policy").copied(),
            " (from INFO)".to_owned(),
        ),
        Err(e) => (
            info.get("maxmemory_policy").copied(),
            format!(" (CONFIG GET refused: {}; read from INFO)", e.trim()),
        ),
    };
    let maxmemory = match config(replies, MAXMEMORY, "maxmemory") {
        Ok(Some(m)) => Some(m),
        _ => info.get("maxmemory").copied(),
    };
    let limit = match maxmemory {
        Some("0") => " (maxmemory 0, no limit yet: any limit set later makes it evict)".to_owned(),
        Some(m) => format!(" (maxmemory {m})"),
        None => String::new(),
    };
    match policy {
        None => Finding::new(
            at,
            Check::Eviction,
            Severity::NotChecked,
            format!("maxmemory-policy not readable{source}"),
        ),
        Some("noeviction") => Finding::new(
            at,
            Check::Eviction,
            Severity::Ok,
            format!("maxmemory-policy noeviction{source}"),
        ),
        Some(p) => {
            let what = if p.starts_with("volatile") {
                "lock keys (they have TTLs)"
            } else {
                "lock keys and fence counters"
            };
            Finding::new(
                at,
                Check::Eviction,
                Severity::Fail,
                format!(
                    "maxmemory-policy {p}{source}{limit} can evict {what}, releasing locks \
                     early; set maxmemory-policy noeviction"
                ),
            )
        }
    }
}

pub(super) fn uptime(
    at: Option<At<'_>>,
    info: &HashMap<&str, &str>,
    settings: &Settings,
) -> Finding {
    let Some(up) = info
        .get("uptime_in_seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
    else {
        return Finding::new(
            at,
            Check::Uptime,
            Severity::NotChecked,
            "INFO reports no uptime_in_seconds".to_owned(),
        );
    };
    match settings.restart_quarantine {
        None => Finding::new(
            at,
            Check::Uptime,
            Severity::Ok,
            format!("up {} (restart quarantine off)", human(up)),
        ),
        Some(window) if up < window => Finding::new(
            at,
            Check::Uptime,
            Severity::Warning,
            format!(
                "up {}, inside the restart quarantine window of {}: it does not vote for \
                 acquires for another {}",
                human(up),
                human(window),
                human(window - up)
            ),
        ),
        Some(window) => Finding::new(
            at,
            Check::Uptime,
            Severity::Ok,
            format!(
                "up {}, past the restart quarantine window of {}",
                human(up),
                human(window)
            ),
        ),
    }
}

/// The severity and message of a master's `CLUSTER INFO`.
pub(super) fn slot_coverage(value: &Value) -> (Severity, String) {
    let text = match value {
        Value::Text(t) => t,
        Value::Error(e) => return (Severity::NotChecked, format!("CLUSTER INFO refused: {e}")),
        other => {
            return (
                Severity::NotChecked,
                format!("CLUSTER INFO answered {other:?}"),
            )
        }
    };
    let info = parse_info(text);
    let state = info.get("cluster_state").copied().unwrap_or("unknown");
    let ok = info
        .get("cluster_slots_ok")
        .and_then(|n| n.parse::<u64>().ok());
    match ok {
        Some(ALL_SLOTS) if state == "ok" => (
            Severity::Ok,
            format!("cluster_state ok, all {ALL_SLOTS} slots served"),
        ),
        Some(n) => (
            Severity::Fail,
            format!(
                "cluster_state {state}, {n} of {ALL_SLOTS} slots served: locks on the others fail"
            ),
        ),
        None => (
            Severity::NotChecked,
            "CLUSTER INFO reports no cluster_slots_ok".to_owned(),
        ),
    }
}

pub(super) fn node_count(n: usize) -> Finding {
    let quorum = n / 2 + 1;
    let (severity, message) = if n < 3 {
        (
            Severity::Warning,
            format!(
                "{n} node(s), quorum {quorum}: no node may fail; use at least 3 (an odd number)"
            ),
        )
    } else if n.is_multiple_of(2) {
        (
            Severity::Warning,
            format!(
                "{n} nodes, quorum {quorum}: an even number tolerates no more failures ({}) \
                 than {} nodes would; use an odd number",
                n - quorum,
                n - 1
            ),
        )
    } else {
        (
            Severity::Ok,
            format!("{n} nodes, quorum {quorum}: {} may fail", n - quorum),
        )
    };
    Finding::new(None, Check::NodeCount, severity, message)
}

pub(super) fn clock_spread(clocks: &[(String, ClockReading)], options: &DoctorOptions) -> Finding {
    let (Some(low), Some(high)) = (
        clocks.iter().min_by_key(|(_, c)| c.offset_us),
        clocks.iter().max_by_key(|(_, c)| c.offset_us),
    ) else {
        return Finding::new(
            None,
            Check::ClockSpread,
            Severity::NotChecked,
            "no node's clock was read".to_owned(),
        );
    };
    let spread = high.1.offset_us - low.1.offset_us;
    let slack = high.1.uncertainty_us + low.1.uncertainty_us;
    let tolerance = options.clock_tolerance.as_micros() as i128;
    if clocks.len() < 2 {
        return Finding::new(
            None,
            Check::ClockSpread,
            Severity::Ok,
            "one clock read: nothing to compare".to_owned(),
        );
    }
    let message = format!(
        "{} ms between the nodes' clocks ({} fastest, {} slowest; ± {:.1} ms)",
        spread / 1000,
        high.0,
        low.0,
        slack as f64 / 1000.0
    );
    if spread - slack > tolerance {
        Finding::new(
            None,
            Check::ClockSpread,
            Severity::Warning,
            format!(
                "{message}: more than {} ms; synchronise the nodes' clocks",
                options.clock_tolerance.as_millis()
            ),
        )
    } else {
        Finding::new(None, Check::ClockSpread, Severity::Ok, message)
    }
}
