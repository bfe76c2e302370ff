//! Read-only inspection of a node: the I/O behind [`Redlock::doctor`] and
//! [`Redlock::status`], through [`LockBackend::inspect`].
//!
//! The core decides what to ask and reads the answers; a backend only sends
//! commands and hands back what came back. An [`Inspection`] is a list of
//! commands (each an argument vector, such as `["CONFIG", "GET",
//! "maxmemory-policy"]`) and a [`Target`]:
//!
//! - [`Target::EveryServer`]: run every command on every server behind the
//!   backend (the node; for a Redis Cluster, every master), one
//!   [`ServerReplies`] per server, named by its address;
//! - [`Target::ByKey`]: run each command on the server that serves the key in
//!   its second argument (`GET key`, `PTTL key`): one [`ServerReplies`].
//!
//! Each command's answer is a [`Value`]. A server's error reply to one
//! command (`CONFIG` renamed or refused by an ACL, `CLUSTER INFO` on a
//! standalone node) is [`Value::Error`] in that command's place, not a
//! failure of the whole inspection; the core reads it (the doctor says "not
//! checked" or falls back to `INFO`). A client-side failure (the node is
//! unreachable, a timeout) fails the whole call with a [`BackendError`].
//!
//! A Redis backend translates, nothing more:
//!
//! | inspection | standalone node | Redis Cluster |
//! |---|---|---|
//! | `EveryServer` | each command in turn on the node | each command on every master (`AllMasters`), answers keyed by address |
//! | `ByKey` | each command in turn on the node | each command routed by its key's slot |
//!
//! Backends that are not Redis keep the default, which answers
//! [`ErrorKind::Unsupported`]: the doctor then says "not checked" for their
//! nodes, and [`Redlock::status`] reports the node as not read.
//! [`MemoryBackend`](crate::MemoryBackend) answers the status's `GET` and
//! `PTTL` (a [`Target::ByKey`] inspection), and leaves the doctor's
//! unsupported.
//!
//! [`Redlock::doctor`]: crate::Redlock::doctor
//! [`Redlock::status`]: crate::Redlock::status
//! [`LockBackend::inspect`]: crate::LockBackend::inspect
//! [`BackendError`]: crate::BackendError
//! [`ErrorKind::Unsupported`]: crate::ErrorKind::Unsupported

use std::fmt;

/// Where the commands of an [`Inspection`] run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every command on every server behind the backend: the node, or every
    /// master of a Redis Cluster.
    EveryServer,
    /// Each command on the server that serves its key, the command's second
    /// argument (`GET <key>`).
    ByKey,
}

/// Commands to run on a node, and where: see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The commands, each as its arguments (the command name first).
    pub commands: Vec<Vec<String>>,
    /// Where they run.
    pub target: Target,
}

impl Inspection {
    /// Commands for every server behind the backend.
    pub fn every_server(commands: Vec<Vec<String>>) -> Inspection {
        Inspection {
            commands,
            target: Target::EveryServer,
        }
    }

    /// Commands routed by their key (the second argument).
    pub fn by_key(commands: Vec<Vec<String>>) -> Inspection {
        Inspection {
            commands,
            target: Target::ByKey,
        }
    }
}

/// One answer to one command, in the core's terms (what an adapter converts
/// its client's reply value to).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A nil reply (`GET` of a missing key).
    Nil,
    /// An integer reply.
    Int(i64),
    /// A simple, bulk or verbatim string (as UTF-8, lossily).
    Text(String),
    /// An array (or set) reply.
    Array(Vec<Value>),
    /// A map reply (RESP3), as pairs in the order received.
    Map(Vec<(Value, Value)>),
    /// The server answered this command with an error (the whole line, such
    /// as `NOPERM this user has no permissions ...`).
    Error(String),
}

impl Value {
    /// The text of a string reply.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// An integer reply, or a string reply that holds an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The error line of an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Value::Error(e) => Some(e),
            _ => None,
        }
    }

    /// `CONFIG GET`'s answer as name/value pairs: a flat array
    /// `[name, value, ...]` (RESP2) or a map (RESP3).
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        match self {
            Value::Array(items) => items
                .chunks_exact(2)
                .filter_map(|p| Some((p[0].as_text()?, p[1].as_text()?)))
                .collect(),
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_text()?, v.as_text()?)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(n) => write!(f, "{n}"),
            // INFO replies are long: keep debug output readable.
            Value::Text(s) if s.len() > 120 => write!(f, "{:?}...", cut(s, 120)),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Array(items) => f.debug_list().entries(items).finish(),
            Value::Map(pairs) => f
                .debug_map()
                .entries(pairs.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Error(e) => write!(f, "error({e:?})"),
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What one server answered to an [`Inspection`]: one [`Value`] per command,
/// in order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerReplies {
    /// The server's address (`127.0.0.1:7001`) when a backend stands for
    /// several servers (a Redis Cluster's masters); `None` for the backend's
    /// one node.
    pub server: Option<String>,
    /// One answer per command, in the order of the inspection.
    pub replies: Vec<Value>,
}

impl ServerReplies {
    /// The answers of the backend's one node.
    pub fn node(replies: Vec<Value>) -> ServerReplies {
        ServerReplies {
            server: None,
            replies,
        }
    }

    /// The answers of the server at `address`, one of several behind a backend.
    pub fn server(address: impl Into<String>, replies: Vec<Value>) -> ServerReplies {
        ServerReplies {
            server: Some(address.into()),
            replies,
        }
    }

    /// The answer to command `i`, or [`Value::Nil`] if the backend answered
    /// fewer commands than asked.
    pub fn reply(&self, i: usize) -> &Value {
        self.replies.get(i).unwrap_or(&Value::Nil)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_get_pairs_in_both_protocols() {
        let resp2 = Value::Array(vec![
            Value::Text("maxmemory-policy".into()),
            Value::Text("noeviction".into()),
        ]);
        assert_eq!(resp2.pairs(), [("maxmemory-policy", "noeviction")]);
        let resp3 = Value::Map(vec![(
            Value::Text("appendonly".into()),
            Value::Text("yes".into()),
        )]);
        assert_eq!(resp3.pairs(), [("appendonly", "yes")]);
        assert!(Value::Error("NOPERM".into()).pairs().is_empty());
    }

    #[test]
    fn integers_from_either_kind_of_reply() {
        assert_eq!(Value::Int(-2).as_int(), Some(-2));
        assert_eq!(Value::Text("1733212345".into()).as_int(), Some(1733212345));
        assert_eq!(Value::Nil.as_int(), None);
        let long = Value::Text("é".repeat(100));
        assert!(format!("{long:?}").ends_with("..."));
    }
}
