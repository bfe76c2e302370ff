//! [`Redlock::status`]: who holds a lock, node by node, and whether a
//! quorum does.
//!
//! For each node the status reads, for every resource, the key (`GET`), its
//! remaining time to live (`PTTL`) and the resource's fence counter (`GET`
//! of [`fence_key`], and of the older per-resource [`legacy_fence_key`]; the
//! higher counts), through [`LockBackend::inspect`]
//! with [`Target::ByKey`](crate::inspect::Target::ByKey). The reads of one node are not atomic: a key that
//! expires between its `GET` and its `PTTL` shows as held with no time left.
//!
//! A node holds the lock when every resource holds one and the same value; a
//! quorum holds it when at least [`quorum_size`](LockStatus::quorum_size)
//! nodes hold it under the same value ([`LockStatus::holder`]). The values
//! themselves are in [`KeyState::Held`] for programs (and in `tracing`
//! events at debug level), never in the [`Display`](fmt::Display) output,
//! which only says "held".
//!
//! ```
//! # futures::executor::block_on(async {
//! use redlock_core::{MemoryBackend, Redlock};
//! use std::time::Duration;
//!
//! let nodes = [MemoryBackend::new(), MemoryBackend::new(), MemoryBackend::new()];
//! let redlock = Redlock::new(nodes.clone())?;
//! let lock = redlock.acquire(&["job"], Duration::from_secs(10)).await?;
//!
//! let status = redlock.status(&["job"]).await?;
//! assert!(status.held_by_quorum());
//! assert_eq!(status.holder().map(|(value, _)| value), Some(lock.value()));
//! println!("{status}"); // a verdict, then per node: held, ttl ..., no lock value
//!
//! lock.release().await?;
//! assert!(!redlock.status(&["job"]).await?.held_by_quorum());
//! # Ok::<(), redlock_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! [`Redlock::status`]: crate::Redlock::status

use std::fmt;
use std::time::Duration;

use futures::future::join_all;

use crate::backend::{BackendError, ErrorKind, LockBackend};
use crate::inspect::{Inspection, ServerReplies, Value};
use crate::keys::{fence_key, legacy_fence_key};
use crate::runtime::Runtime;

/// Commands per resource: `GET`, `PTTL`, and `GET` of both fence counters.
const PER_RESOURCE: usize = 4;

/// What one node holds under one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// The key does not exist: nobody holds the resource on this node.
    Free,
    /// The key holds `value`, expiring in `ttl` (`None`: the key has no
    /// expiry, which no lock sets; someone wrote it by other means).
    Held {
        /// The lock value: the holder's secret. Never printed by `Display`.
        value: String,
        /// The time to live left (`PTTL`), `None` for a key without expiry.
        ttl: Option<Duration>,
    },
    /// The key could not be read as a lock (`WRONGTYPE`: another kind of
    /// key), with the server's error.
    Unreadable(String),
}

impl KeyState {
    /// The value, if held.
    pub fn value(&self) -> Option<&str> {
        match self {
            KeyState::Held { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// One resource on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// The resource (the key).
    pub resource: String,
    /// Whether the key is there, and its time to live.
    pub state: KeyState,
    /// The resource's fence counter on this node (the last fencing token
    /// issued for its slot, see [`fence_key`]), if any.
    pub fence: Option<u64>,
}

/// One node's view of the lock.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's name ([`LockBackend::describe`]; never a password).
    pub node: String,
    /// One entry per resource, in order, or why the node could not be read
    /// (unreachable, timed out, or a backend that cannot be inspected:
    /// [`ErrorKind::Unsupported`]).
    pub keys: Result<Vec<KeyStatus>, BackendError>,
}

impl NodeStatus {
    /// The value this node holds every resource under, if it holds them all
    /// under one value.
    pub fn holder(&self) -> Option<&str> {
        let keys = self.keys.as_ref().ok()?;
        let first = keys.first()?.state.value()?;
        keys.iter()
            .all(|k| k.state.value() == Some(first))
            .then_some(first)
    }
}

/// A lock's status on every node; see the [module docs](self).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockStatus {
    /// The resources asked about.
    pub resources: Vec<String>,
    /// How many nodes make a quorum.
    pub quorum_size: usize,
    /// One entry per node, in the order the nodes were given.
    pub nodes: Vec<NodeStatus>,
}

impl LockStatus {
    /// The value a quorum of nodes holds every resource under, and how many
    /// nodes hold it; `None` when no value has a quorum.
    pub fn holder(&self) -> Option<(&str, usize)> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for value in self.nodes.iter().filter_map(NodeStatus::holder) {
            match counts.iter_mut().find(|(v, _)| *v == value) {
                Some((_, n)) => *n += 1,
                None => counts.push((value, 1)),
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .filter(|(_, n)| *n >= self.quorum_size)
    }

    /// Whether a quorum of nodes holds every resource under one value: the
    /// lock is held (by someone).
    pub fn held_by_quorum(&self) -> bool {
        self.holder().is_some()
    }

    /// How many nodes hold every resource (under any value).
    pub fn nodes_holding(&self) -> usize {
        self.nodes.iter().filter(|n| n.holder().is_some()).count()
    }

    /// How many nodes could not be read.
    pub fn unreadable_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.keys.is_err()).count()
    }
}

impl fmt::Display for LockStatus {
    /// A verdict line, then one line per node and resource. No lock value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nodes.len();
        let verdict = match self.holder() {
            Some((_, holding)) => format!(
                "HELD by a quorum: {holding} of {n} nodes hold it under one value (quorum {})",
                self.quorum_size
            ),
            None => format!(
                "NOT HELD by a quorum: {} of {n} nodes hold it (quorum {}), {} unreadable",
                self.nodes_holding(),
                self.quorum_size,
                self.unreadable_nodes()
            ),
        };
        write!(f, "{}: {verdict}", self.resources.join(", "))?;
        for node in &self.nodes {
            match &node.keys {
                Err(e) => write!(f, "\n{}  not read: {e}", node.node)?,
                Ok(keys) => {
                    for key in keys {
                        write!(f, "\n{}  {}  ", node.node, key.resource)?;
                        match &key.state {
                            KeyState::Free => f.write_str("free")?,
                            KeyState::Held { ttl: Some(ttl), .. } => {
                                write!(f, "held, ttl {} ms", ttl.as_millis())?
                            }
                            KeyState::Held { ttl: None, .. } => f.write_str("held, NO TTL")?,
                            KeyState::Unreadable(e) => write!(f, "unreadable: {e}")?,
                        }
                        match key.fence {
                            Some(fence) => write!(f, ", fence counter {fence}")?,
                            None => f.write_str(", no fence counter")?,
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The commands that read `resources` on one node.
fn commands(resources: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(resources.len() * PER_RESOURCE);
    for r in resources {
        out.push(vec!["GET".to_owned(), r.clone()]);
        out.push(vec!["PTTL".to_owned(), r.clone()]);
        out.push(vec!["GET".to_owned(), fence_key(r)]);
        out.push(vec!["GET".to_owned(), legacy_fence_key(r)]);
    }
    out
}

fn counter(value: &Value) -> Option<u64> {
    value.as_int().and_then(|n| u64::try_from(n).ok())
}

/// Reads one node's answers to [`commands`].
fn read(resources: &[String], answers: &[ServerReplies]) -> Result<Vec<KeyStatus>, BackendError> {
    let replies = answers
        .first()
        .ok_or_else(|| BackendError::new(ErrorKind::Protocol, "the node answered no inspection"))?;
    resources
        .iter()
        .enumerate()
        .map(|(i, resource)| {
            let at = |k: usize| replies.reply(i * PER_RESOURCE + k);
            let state = match (at(0), at(1)) {
                (Value::Error(e), _) => KeyState::Unreadable(e.clone()),
                (Value::Nil, _) => KeyState::Free,
                (Value::Text(value), pttl) => KeyState::Held {
                    value: value.clone(),
                    ttl: match pttl.as_int() {
                        Some(-1) => None,
                        Some(ms) => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
                        None => Some(Duration::ZERO),
                    },
                },
                (other, _) => {
                    return Err(BackendError::new(
                        ErrorKind::Protocol,
                        format!("GET {resource} answered {other:?}"),
                    ))
                }
            };
            let fence = counter(at(2)).max(counter(at(3)));
            Ok(KeyStatus {
                resource: resource.clone(),
                state,
                fence,
            })
        })
        .collect()
}

/// Reads `resources` on every node, each bounded by `timeout`.
pub(crate) async fn status(
    backends: &[Box<dyn LockBackend>],
    names: &[String],
    runtime: &dyn Runtime,
    resources: &[String],
    quorum_size: usize,
    timeout: Duration,
) -> LockStatus {
    let inspection = Inspection::by_key(commands(resources));
    let inspection = &inspection;
    let reads = backends.iter().map(|backend| async move {
        let read = std::pin::pin!(backend.inspect(inspection));
        match futures::future::select(read, runtime.sleep(timeout)).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => Err(BackendError::timeout(timeout)),
        }
    });
    let nodes = join_all(reads)
        .await
        .into_iter()
        .zip(names)
        .map(|(result, name)| {
            let keys = result.and_then(|answers| read(resources, &answers));
            if let Ok(keys) = &keys {
                for key in keys {
                    tracing::debug!(node = %name, resource = %key.resource, state = ?key.state, fence = ?key.fence, "lock status");
                }
            }
            NodeStatus {
                node: name.clone(),
                keys,
            }
        })
        .collect();
    LockStatus {
        resources: resources.to_vec(),
        quorum_size,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    fn node(name: &str, keys: Result<Vec<KeyStatus>, BackendError>) -> NodeStatus {
        NodeStatus {
            node: name.to_owned(),
            keys,
        }
    }

    #[test]
    fn reads_values_ttls_and_the_higher_fence_counter() {
        let resources = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let replies = ServerReplies::node(vec![
            text("v1"),
            Value::Int(9000),
            text("7"),
            Value::Nil,
            Value::Nil,
            Value::Int(-2),
            text("3"),
            text("12"),
            text("w"),
            Value::Int(-1),
            Value::Nil,
            Value::Nil,
        ]);
        let keys = read(&resources, &[replies]).expect("read");
        assert_eq!(
            keys[0].state,
            KeyState::Held {
                value: "v1".into(),
                ttl: Some(Duration::from_millis(9000))
            }
        );
        assert_eq!(keys[0].fence, Some(7));
        assert_eq!(keys[1].state, KeyState::Free);
        assert_eq!(keys[1].fence, Some(12), "the legacy counter is higher");
        assert_eq!(keys[2].state.value(), Some("w"));
        assert_eq!(
            keys[2].state,
            KeyState::Held {
                value: "w".into(),
                ttl: None
            }
        );
        assert_eq!(keys[2].fence, None);
    }

    #[test]
    fn a_quorum_holds_it_only_under_one_value() {
        let held = |v: &str| {
            Ok(vec![KeyStatus {
                resource: "r".into(),
                state: KeyState::Held {
                    value: v.into(),
                    ttl: Some(Duration::from_secs(1)),
                },
                fence: None,
            }])
        };
        let down = || Err(BackendError::new(ErrorKind::Connection, "refused"));
        let status = LockStatus {
            resources: vec!["r".into()],
            quorum_size: 2,
            nodes: vec![
                node("n1", held("secret-x")),
                node("n2", held("secret-y")),
                node("n3", down()),
            ],
        };
        assert_eq!(status.nodes_holding(), 2);
        assert!(!status.held_by_quorum(), "split between two owners");
        let shown = status.to_string();
        assert!(shown.starts_with("r: NOT HELD"), "{shown}");
        assert!(!shown.contains("secret"), "no lock value printed: {shown}");
        assert!(shown.contains("n3  not read"), "{shown}");

        let status = LockStatus {
            nodes: vec![
                node("n1", held("secret-x")),
                node("n2", held("secret-x")),
                node("n3", down()),
            ],
            ..status
        };
        assert_eq!(status.holder(), Some(("secret-x", 2)));
        let shown = status.to_string();
        assert!(shown.contains("HELD by a quorum: 2 of 3"), "{shown}");
        assert!(shown.contains("n1  r  held, ttl 1000 ms"), "{shown}");
    }
}
