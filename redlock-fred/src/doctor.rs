//! [`LockBackend::inspect`](redlock_core::LockBackend::inspect) over fred:
//! the core's read-only commands (the doctor's and the lock status's), sent
//! as fred custom commands, their replies handed back as
//! [`redlock_core::inspect::Value`]s. What to ask and what the answers mean
//! is the core's.
//!
//! A standalone client runs each command in turn. A cluster client runs an
//! [`Target::EveryServer`] command on every primary it is connected to
//! (fred's per-call `cluster_node` option), and routes a [`Target::ByKey`]
//! command by its key's hash slot.

use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::{ClusterHash, CustomCommand, Value};
use fred::util::redis_keyslot;
use redlock_core::inspect::{Inspection, ServerReplies, Target, Value as Fact};
use redlock_core::{BackendError, ErrorKind};

use crate::errors::{classify, server_code};
use crate::FredBackend;

impl<C: ClientLike + KeysInterface> FredBackend<C> {
    /// Runs `inspection`; see the [module docs](self).
    pub(crate) async fn run_inspection(
        &self,
        inspection: &Inspection,
    ) -> Result<Vec<ServerReplies>, BackendError> {
        if self.clustered && inspection.target == Target::EveryServer {
            let mut servers = Vec::new();
            for server in self.client.active_connections() {
                let options = fred::types::config::Options {
                    cluster_node: Some(server.clone()),
                    ..self.client.options().clone()
                };
                let base: &C = &self.client;
                let client = base.with_options(&options);
                let mut replies = Vec::with_capacity(inspection.commands.len());
                for args in &inspection.commands {
                    let command = CustomCommand::new(name(args), ClusterHash::Random, false);
                    replies.push(self.answer(client.custom(command, rest(args)).await)?);
                }
                servers.push(ServerReplies::server(server.to_string(), replies));
            }
            if servers.is_empty() {
                return Err(BackendError::new(
                    ErrorKind::Connection,
                    format!("{} is connected to no primary", self.name),
                ));
            }
            return Ok(servers);
        }
        let mut replies = Vec::with_capacity(inspection.commands.len());
        for args in &inspection.commands {
            let hash = match (inspection.target, args.get(1)) {
                (Target::ByKey, Some(key)) if self.clustered => {
                    ClusterHash::Custom(redis_keyslot(key.as_bytes()))
                }
                _ => ClusterHash::Random,
            };
            let command = CustomCommand::new(name(args), hash, false);
            replies.push(self.answer(self.client.custom(command, rest(args)).await)?);
        }
        Ok(vec![ServerReplies::node(replies)])
    }

    /// A reply as a fact; a server's error reply takes the command's place,
    /// any other failure fails the inspection.
    fn answer(&self, result: Result<Value, FredError>) -> Result<Fact, BackendError> {
        match result {
            Ok(value) => Ok(fact(&value)),
            Err(error)
                if server_code(&error).is_some()
                    && !matches!(classify(&error), ErrorKind::Connection | ErrorKind::Timeout) =>
            {
                Ok(Fact::Error(error.details().to_owned()))
            }
            Err(error) => Err(self.forget_if_broken(self.explain(error))),
        }
    }
}

/// The command's name (an empty command is sent as an empty name, which the
/// server refuses: its error takes the command's place).
fn name(args: &[String]) -> &str {
    args.first().map(String::as_str).unwrap_or_default()
}

fn rest(args: &[String]) -> Vec<Value> {
    args.iter()
        .skip(1)
        .map(|a| Value::from(a.as_str()))
        .collect()
}

/// A fred value in the core's terms.
fn fact(value: &Value) -> Fact {
    match value {
        Value::Null => Fact::Nil,
        Value::Integer(n) => Fact::Int(*n),
        Value::Boolean(b) => Fact::Int(i64::from(*b)),
        Value::Double(d) => Fact::Text(d.to_string()),
        Value::String(s) => Fact::Text(s.to_string()),
        Value::Bytes(b) => Fact::Text(String::from_utf8_lossy(b).into_owned()),
        Value::Queued => Fact::Text("QUEUED".to_owned()),
        Value::Array(items) => Fact::Array(items.iter().map(fact).collect()),
        Value::Map(map) => Fact::Map(
            map.iter()
                .map(|(k, v)| (Fact::Text(k.as_str_lossy().into_owned()), fact(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_facts() {
        assert_eq!(fact(&Value::Null), Fact::Nil);
        assert_eq!(fact(&Value::Integer(-2)), Fact::Int(-2));
        assert_eq!(fact(&Value::from("v")), Fact::Text("v".into()));
        let time = Value::Array(vec![Value::from("1733212345"), Value::from("12")]);
        assert_eq!(
            fact(&time),
            Fact::Array(vec![
                Fact::Text("1733212345".into()),
                Fact::Text("12".into())
            ])
        );
        assert_eq!(name(&["CONFIG".into(), "GET".into()]), "CONFIG");
        assert_eq!(rest(&["GET".into(), "k".into()]), [Value::from("k")]);
    }
}
