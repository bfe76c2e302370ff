//! What the doctor asks each node, and how it reads the answers.

use super::*;

/// The commands of the first round trip, in this order.
pub(super) const INFO: usize = 0;
pub(super) const APPENDONLY: usize = 1;
pub(super) const APPENDFSYNC: usize = 2;
pub(super) const POLICY: usize = 3;
pub(super) const MAXMEMORY: usize = 4;
pub(super) const CLUSTER_INFO: usize = 5;

pub(super) fn facts_commands() -> Vec<Vec<String>> {
    let cmd = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    vec![
        cmd(&["INFO"]),
        cmd(&["CONFIG", "GET", "appendonly"]),
        cmd(&["CONFIG", "GET", "appendfsync"]),
        cmd(&["CONFIG", "GET", "maxmemory-policy"]),
        cmd(&["CONFIG", "GET", "maxmemory"]),
        cmd(&["CLUSTER", "INFO"]),
    ]
}

/// A node's clock against this machine's, from one `TIME` round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClockReading {
    /// Node time minus the middle of the round trip, in microseconds.
    pub(super) offset_us: i128,
    /// Half the round trip, in microseconds.
    pub(super) uncertainty_us: i128,
}

/// What one server behind a backend answered.
#[derive(Clone, Debug)]
pub(crate) struct ServerFacts {
    /// The server's address, for a backend that stands for several.
    pub(super) server: Option<String>,
    pub(super) replies: ServerReplies,
    pub(super) clock: Result<ClockReading, String>,
}

/// What one node (backend) answered, or why it did not.
#[derive(Clone, Debug)]
pub(crate) struct NodeFacts {
    pub(super) name: String,
    pub(super) servers: Result<Vec<ServerFacts>, BackendError>,
}

pub(super) fn micros_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i128,
        Err(e) => -(e.duration().as_micros() as i128),
    }
}

/// `TIME`'s answer, `[seconds, microseconds]`, in microseconds.
pub(super) fn node_time(value: &Value) -> Option<i128> {
    match value {
        Value::Array(items) => match items.as_slice() {
            [s, us] => Some(i128::from(s.as_int()?) * 1_000_000 + i128::from(us.as_int()?)),
            _ => None,
        },
        _ => None,
    }
}

pub(super) async fn bounded<T>(
    runtime: &dyn Runtime,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    let fut = std::pin::pin!(fut);
    match select(fut, runtime.sleep(timeout)).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(BackendError::timeout(timeout)),
    }
}

/// Inspects one node: the facts, then `TIME` on a round trip of its own.
pub(super) async fn gather(
    backend: &dyn LockBackend,
    name: &str,
    runtime: &dyn Runtime,
    timeout: Duration,
) -> NodeFacts {
    let facts = bounded(
        runtime,
        timeout,
        backend.inspect(&Inspection::every_server(facts_commands())),
    )
    .await;
    let servers = match facts {
        Err(e) => Err(e),
        Ok(answers) => {
            let time = vec![vec!["TIME".to_owned()]];
            // The wall clock once, the round trip on the monotonic clock (a
            // wall-clock step during the call cannot distort it).
            let sent_at = SystemTime::now();
            let sent = Instant::now();
            let times = bounded(
                runtime,
                timeout,
                backend.inspect(&Inspection::every_server(time)),
            )
            .await;
            let round_trip = sent.elapsed().as_micros() as i128;
            let uncertainty_us = round_trip / 2;
            let middle = micros_since_epoch(sent_at) + uncertainty_us;
            Ok(answers
                .into_iter()
                .map(|replies| {
                    let clock = match &times {
                        Err(e) => Err(format!("TIME failed: {e}")),
                        Ok(times) => times
                            .iter()
                            .find(|t| t.server == replies.server)
                            .or(times.first().filter(|_| times.len() == 1))
                            .ok_or_else(|| "no answer to TIME".to_owned())
                            .and_then(|t| match t.reply(0) {
                                Value::Error(e) => Err(format!("TIME refused: {e}")),
                                v => node_time(v)
                                    .map(|node| ClockReading {
                                        offset_us: node - middle,
                                        uncertainty_us,
                                    })
                                    .ok_or_else(|| format!("TIME answered {v:?}")),
                            }),
                    };
                    ServerFacts {
                        server: replies.server.clone(),
                        replies,
                        clock,
                    }
                })
                .collect())
        }
    };
    NodeFacts {
        name: name.to_owned(),
        servers,
    }
}

/// Runs the doctor over `backends` (named `names`), each node in parallel.
pub(crate) async fn doctor(
    backends: &[Box<dyn LockBackend>],
    names: &[String],
    runtime: &dyn Runtime,
    settings: &Settings,
    options: &DoctorOptions,
) -> DoctorReport {
    let nodes = join_all(
        backends
            .iter()
            .zip(names)
            .map(|(b, name)| gather(&**b, name, runtime, options.timeout)),
    )
    .await;
    let report = assess(&nodes, settings, options);
    for f in &report.findings {
        tracing::debug!(node = ?f.node, server = ?f.server, check = f.check.name(), severity = ?f.severity, message = %f.message, "doctor finding");
    }
    tracing::info!(
        passed = report.passed(),
        failed = report.count(Severity::Fail),
        warnings = report.count(Severity::Warning),
        not_checked = report.count(Severity::NotChecked),
        "doctor checked {} node(s)",
        nodes.len()
    );
    report
}

/// `key:value` lines of an `INFO` reply.
pub(super) fn parse_info(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// `CONFIG GET name`'s value, or the error line.
pub(super) fn config<'a>(
    replies: &'a ServerReplies,
    i: usize,
    name: &str,
) -> Result<Option<&'a str>, &'a str> {
    match replies.reply(i) {
        Value::Error(e) => Err(e),
        v => Ok(v
            .pairs()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)),
    }
}

pub(super) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub(super) fn millis(us: i128) -> String {
    format!("{:+.1} ms", us as f64 / 1000.0)
}
