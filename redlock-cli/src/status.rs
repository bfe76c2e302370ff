//! `redlock status`: who holds a lock, node by node, and whether a quorum
//! does. Read-only; it never takes, extends or releases anything.
//!
//! The reading is the library's ([`Redlock::status`](redlock::Redlock::status));
//! this module decides the verdict and the exit code, and prints it for
//! people. Lock values (the holder's secret) are never printed.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use redlock::{Error, KeyState, LockStatus, Settings};

use crate::exit;
use crate::fail::Failure;
use crate::nodes;
use crate::run::parse_duration;

/// `redlock status --help`'s description.
pub const LONG_ABOUT: &str = "\
Show who holds a lock, node by node.

Reads RESOURCE... (the keys `redlock run` or the library lock) on every \
node: whether the key is there, its remaining time to live, and the \
resource's fence counter (the last fencing token issued). The first line is \
the verdict: HELD when a quorum of nodes holds every resource under one \
value (one holder), FREE when no holder can have a quorum, and UNKNOWN when \
the nodes that could not be read might make one. Lock values are never shown.

With --json, prints one JSON object instead (see README.md for its fields).

Exits 0 when a quorum of nodes could be read, whether or not the lock is \
held (read the verdict); 69 when fewer could be read, since the answer is \
then unknown.";

/// The exit codes of `redlock status`, for its `--help`.
pub const EXIT_HELP: &str = "\
Exit status:
    0           a quorum of nodes was read; the first line says HELD, FREE
                or UNKNOWN
   64           bad usage (options, durations, node URLs, resource names)
   69           fewer than a quorum of nodes could be read: status unknown";

/// The options of `redlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How long each node may take to answer
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print one JSON object instead of text: verdict, quorum, and per node
    /// each key's state, TTL in milliseconds and fence counter
    #[arg(long)]
    pub json: bool,

    /// The resources (Redis keys, taken as given), as they were locked
    #[arg(value_name = "RESOURCE", required = true)]
    pub resources: Vec<String>,
}

/// What the nodes that were read say about the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A quorum holds every resource under one value.
    Held,
    /// No value can have a quorum, even counting every unread node for it.
    Free,
    /// No quorum seen, but the unread nodes could complete one.
    Unknown,
}

impl Verdict {
    fn of(status: &LockStatus) -> Verdict {
        if status.held_by_quorum() {
            return Verdict::Held;
        }
        // The most nodes any one value is held on.
        let mut best = 0;
        for node in &status.nodes {
            if let Some(value) = node.holder() {
                let same = status
                    .nodes
                    .iter()
                    .filter(|n| n.holder() == Some(value))
                    .count();
                best = best.max(same);
            }
        }
        if best + status.unreadable_nodes() < status.quorum_size {
            Verdict::Free
        } else {
            Verdict::Unknown
        }
    }
}

/// `redlock status`.
pub async fn status(args: StatusArgs, urls: &[String]) -> Result<u8, Failure> {
    let mut settings = Settings::default();
    settings.node_timeout = args.timeout;
    let redlock = nodes::connect(urls, settings).await?;
    let status = redlock
        .status(&args.resources)
        .await
        .map_err(|error| match error {
            Error::InvalidInput(_) | Error::InvalidConfig(_) => Failure::usage(error.to_string()),
            _ => Failure::new(exit::UNAVAILABLE, error.to_string()),
        })?;
    let text = if args.json {
        format!("{}\n", to_json(&status))
    } else {
        render(&status)
    };
    print!("{}", nodes::scrub_all(&text, urls));
    let read = status.nodes.len() - status.unreadable_nodes();
    if read < status.quorum_size {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            format!(
                "could read only {read} of {} nodes, fewer than a quorum ({}): the status is \
                 unknown; check that most of the nodes are up, reachable, and accept the \
                 password in their URL",
                status.nodes.len(),
                status.quorum_size
            ),
        ));
    }
    Ok(0)
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Free => "free",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The status as one JSON object (no lock value):
///
/// ```text
/// {"resources":["job"],"verdict":"held","quorum":2,"nodes_holding":3,
///  "nodes_unread":0,"nodes":[{"node":"redis://10.0.0.1:6379","error":null,
///  "keys":[{"resource":"job","state":"held","ttl_ms":27412,"fence":41}]}]}
/// ```
///
/// `nodes_holding` counts the nodes that hold every resource (under any
/// value). `state` is `free`, `held` or `unreadable` (with `error`); `ttl_ms` is
/// null for a key without expiry; `fence` is null without a counter; a node
/// not read has `error` set and `keys` null.
fn to_json(status: &LockStatus) -> serde_json::Value {
    use serde_json::json;
    let nodes: Vec<_> = status
        .nodes
        .iter()
        .map(|node| match &node.keys {
            Err(error) => json!({"node": node.node, "error": error.to_string(), "keys": null}),
            Ok(keys) => {
                let keys: Vec<_> = keys
                    .iter()
                    .map(|key| {
                        let (state, ttl, error) = match &key.state {
                            KeyState::Free => ("free", None, None),
                            KeyState::Held { ttl, .. } => (
                                "held",
                                ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                                None,
                            ),
                            KeyState::Unreadable(error) => {
                                ("unreadable", None, Some(error.clone()))
                            }
                            _ => ("unknown", None, None),
                        };
                        let mut entry = json!({
                            "resource": key.resource,
                            "state": state,
                            "fence": key.fence,
                        });
                        if state == "held" {
                            entry["ttl_ms"] = json!(ttl);
                        }
                        if let Some(error) = error {
                            entry["error"] = json!(error);
                        }
                        entry
                    })
                    .collect();
                json!({"node": node.node, "error": null, "keys": keys})
            }
        })
        .collect();
    json!({
        "resources": status.resources,
        "verdict": Verdict::of(status).name(),
        "quorum": status.quorum_size,
        "nodes_holding": status.nodes_holding(),
        "nodes_unread": status.unreadable_nodes(),
        "nodes": nodes,
    })
}

/// `29.870s`: a TTL to the millisecond, easy to read and to parse.
fn seconds(ttl: Duration) -> String {
    format!("{}.{:03}s", ttl.as_secs(), ttl.subsec_millis())
}

/// The verdict line, then one line per node and resource, columns aligned;
/// ends with a newline.
fn render(status: &LockStatus) -> String {
    let n = status.nodes.len();
    let q = status.quorum_size;
    let resources = status.resources.join(" ");
    let mut out = match Verdict::of(status) {
        Verdict::Held => {
            let holding = status.holder().map_or(0, |(_, k)| k);
            format!(
                "HELD: {resources} is held by a quorum: {holding} of {n} nodes hold it under one value (quorum {q})\n"
            )
        }
        Verdict::Free => format!(
            "FREE: {resources} is not held by a quorum: {} of {n} nodes hold it (quorum {q}), {} not read\n",
            status.nodes_holding(),
            status.unreadable_nodes()
        ),
        Verdict::Unknown => format!(
            "UNKNOWN: {resources} is not held by a quorum of the nodes read: {} of {n} nodes \
             hold it (quorum {q}), but the {} not read could make one\n",
            status.nodes_holding(),
            status.unreadable_nodes()
        ),
    };
    let node_width = status
        .nodes
        .iter()
        .map(|node| node.node.len())
        .max()
        .unwrap_or(0);
    let key_width = status.resources.iter().map(String::len).max().unwrap_or(0);
    for node in &status.nodes {
        let keys = match &node.keys {
            Ok(keys) => keys,
            Err(error) => {
                let _ = writeln!(out, "  {:<node_width$}  not read: {error}", node.node);
                continue;
            }
        };
        for key in keys {
            let state = match &key.state {
                KeyState::Free => "free".to_owned(),
                KeyState::Held { ttl: Some(ttl), .. } => format!("held, ttl {}", seconds(*ttl)),
                KeyState::Held { ttl: None, .. } => {
                    "held, NO TTL (not set by a lock: it never expires)".to_owned()
                }
                KeyState::Unreadable(error) => format!("not a lock key: {error}"),
                // `KeyState` is non-exhaustive.
                _ => "in a state this redlock does not know".to_owned(),
            };
            let fence = match key.fence {
                Some(fence) => format!("fence counter {fence}"),
                None => "no fence counter".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<node_width$}  {:<key_width$}  {state}; {fence}",
                node.node, key.resource
            );
        }
    }
    out
}
