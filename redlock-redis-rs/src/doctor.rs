//! [`LockBackend::inspect`](redlock_core::LockBackend::inspect) over
//! redis-rs: the core's read-only commands (the doctor's and the lock
//! status's), sent as they are, their replies handed back as
//! [`redlock_core::inspect::Value`]s. What to ask and what the answers mean
//! is the core's.
//!
//! A standalone node runs each command in turn. A cluster connection runs an
//! [`Target::EveryServer`] command on every master (`AllMasters`, no
//! aggregation: one answer per master, keyed by address), and routes a
//! [`Target::ByKey`] command by its key, as redis-rs routes any keyed command.

use redis::aio::ConnectionLike;
use redis::{RedisError, Value};
#[cfg(feature = "cluster")]
use redlock_core::inspect::Target;
use redlock_core::inspect::{Inspection, ServerReplies, Value as Fact};
use redlock_core::BackendError;

/// Runs `inspection` on `conn`. `broke` tells a client-side failure (which
/// fails the call) from a server's error reply (which takes the command's
/// place as [`Fact::Error`]).
pub(crate) async fn inspect<C>(
    conn: &C,
    inspection: &Inspection,
    map_error: impl Fn(RedisError) -> BackendError,
) -> Result<Vec<ServerReplies>, BackendError>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    #[cfg(feature = "cluster")]
    if inspection.target == Target::EveryServer {
        let any: &dyn std::any::Any = conn;
        if let Some(cluster) = any.downcast_ref::<redis::cluster_async::ClusterConnection>() {
            return every_master(cluster.clone(), inspection, map_error).await;
        }
    }
    let mut conn = conn.clone();
    let mut replies = Vec::with_capacity(inspection.commands.len());
    for args in &inspection.commands {
        match command(args).query_async::<Value>(&mut conn).await {
            Ok(value) => replies.push(fact(&value)),
            Err(err) => match server_error_line(&err) {
                Some(line) => replies.push(Fact::Error(line)),
                None => return Err(map_error(err)),
            },
        }
    }
    Ok(vec![ServerReplies::node(replies)])
}

/// Each command on every master of the cluster, collated per master.
#[cfg(feature = "cluster")]
async fn every_master(
    mut cluster: redis::cluster_async::ClusterConnection,
    inspection: &Inspection,
    map_error: impl Fn(RedisError) -> BackendError,
) -> Result<Vec<ServerReplies>, BackendError> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

    let n = inspection.commands.len();
    let mut servers: Vec<ServerReplies> = Vec::new();
    for (i, args) in inspection.commands.iter().enumerate() {
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let answers = match cluster.route_command(command(args), routing).await {
            Ok(Value::Map(per_master)) => per_master
                .iter()
                .map(|(addr, value)| (address(addr), fact(value)))
                .collect::<Vec<_>>(),
            Ok(other) => vec![(None, fact(&other))],
            Err(err) => match server_error_line(&err) {
                // The same refusal for every master known so far.
                Some(line) if !servers.is_empty() => servers
                    .iter()
                    .map(|s| (s.server.clone(), Fact::Error(line.clone())))
                    .collect(),
                Some(line) => vec![(None, Fact::Error(line))],
                None => return Err(map_error(err)),
            },
        };
        for (server, answer) in answers {
            let at = match servers.iter().position(|s| s.server == server) {
                Some(at) => at,
                None => {
                    // A master first seen now: earlier commands have no
                    // answer from it.
                    let mut replies = vec![Fact::Nil; i];
                    replies.reserve(n - i);
                    servers.push(match &server {
                        Some(addr) => ServerReplies::server(addr.clone(), replies),
                        None => ServerReplies::node(replies),
                    });
                    servers.len() - 1
                }
            };
            servers[at].replies.push(answer);
        }
        // A master that did not answer this command gets a nil in its place.
        for s in &mut servers {
            s.replies.resize(i + 1, Fact::Nil);
        }
    }
    Ok(servers)
}

#[cfg(feature = "cluster")]
fn address(value: &Value) -> Option<String> {
    match fact(value) {
        Fact::Text(addr) => Some(addr),
        _ => None,
    }
}

fn command(args: &[String]) -> redis::Cmd {
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(arg.as_str());
    }
    cmd
}

/// The error line of a server's error reply (`NOPERM ...`), or `None` for a
/// client-side failure.
fn server_error_line(err: &RedisError) -> Option<String> {
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
    {
        return None;
    }
    let code = err.code()?;
    Some(match err.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    })
}

/// A redis-rs value in the core's terms.
pub(crate) fn fact(value: &Value) -> Fact {
    match value {
        Value::Nil => Fact::Nil,
        Value::Int(n) => Fact::Int(*n),
        Value::BulkString(bytes) => Fact::Text(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Fact::Text(s.clone()),
        Value::VerbatimString { text, .. } => Fact::Text(text.clone()),
        Value::Okay => Fact::Text("OK".to_owned()),
        Value::Array(items) | Value::Set(items) => Fact::Array(items.iter().map(fact).collect()),
        Value::Map(pairs) => Fact::Map(pairs.iter().map(|(k, v)| (fact(k), fact(v))).collect()),
        Value::Attribute { data, .. } => fact(data),
        Value::Double(d) => Fact::Text(d.to_string()),
        Value::Boolean(b) => Fact::Int(i64::from(*b)),
        Value::ServerError(e) => Fact::Error(match e.details() {
            Some(detail) => format!("{} {detail}", e.code()),
            None => e.code().to_owned(),
        }),
        other => Fact::Text(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_facts() {
        assert_eq!(fact(&Value::Nil), Fact::Nil);
        assert_eq!(fact(&Value::Int(-2)), Fact::Int(-2));
        assert_eq!(
            fact(&Value::BulkString(b"v".to_vec())),
            Fact::Text("v".into())
        );
        let time = Value::Array(vec![
            Value::BulkString(b"1733212345".to_vec()),
            Value::BulkString(b"123".to_vec()),
        ]);
        assert_eq!(
            fact(&time),
            Fact::Array(vec![
                Fact::Text("1733212345".into()),
                Fact::Text("123".into())
            ])
        );
        let map = Value::Map(vec![(
            Value::SimpleString("appendonly".into()),
            Value::BulkString(b"yes".to_vec()),
        )]);
        assert_eq!(fact(&map).pairs(), [("appendonly", "yes")]);
    }
}
