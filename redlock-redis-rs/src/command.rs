//! Sending the core's calls: a [`Call`] as a redis-rs command, the core's
//! fallback (`EVAL` after a `NOSCRIPT`), the replies in the core's terms, and
//! restart quarantine's bookkeeping around a call, since it wraps the send.

use super::*;

impl<C> RedisBackend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Sends `call` (see [`redlock_core::protocol`]) and reads its reply.
    /// Under restart quarantine (`quarantine`, an acquire's
    /// [`Request::restart_quarantine`]), the node votes only if its age,
    /// read on the current connection, is at least the window, and the
    /// connection did not break during the call.
    pub(crate) async fn run(
        &self,
        call: Call<'_>,
        quarantine: Option<(Duration, &[String])>,
    ) -> Result<Reply, BackendError> {
        let admitted = match quarantine {
            Some((max_ttl, resources)) => Some(self.admit(max_ttl, resources)?),
            None => None,
        };
        let mut conn = self.conn.clone();
        let value = match send(&mut conn, call).await {
            Err(err) if broke(&err) => {
                // Forgotten in the poll that saw the break (the one in which
                // the connection manager starts reconnecting), before
                // anything else is sent.
                self.forget();
                // The command never left: a connection manager that saw the
                // node die has just started reconnecting, so one more try
                // finds a node that came back.
                if err.is_connection_refusal() {
                    send(&mut conn, call).await
                } else {
                    Err(err)
                }
            }
            other => other,
        }
        .map_err(|err| self.mapped(err))?;
        if let Some(generation) = admitted {
            self.confirm(generation)?;
        }
        call.reply(raw_reply(&value))
    }

    /// Maps a redis-rs error; one that broke a connection forgets the age.
    pub(crate) fn mapped(&self, err: RedisError) -> BackendError {
        if broke(&err) {
            self.forget();
        }
        error::mapped(err, Some(self.cluster))
    }

    /// Before an acquire under restart quarantine: the node's (or, on a
    /// cluster, the slot's master's) admission ticket.
    fn admit(&self, max_ttl: Duration, resources: &[String]) -> Result<u64, BackendError> {
        #[cfg(feature = "cluster")]
        if let Some(ages) = &self.cluster_ages {
            return ages.admit(resources, max_ttl);
        }
        let _ = resources;
        if self.cluster {
            return Err(cluster_quarantine_unsupported());
        }
        self.clock.admit(max_ttl)
    }

    /// After the reply to an admitted acquire: whether its vote counts.
    fn confirm(&self, generation: u64) -> Result<(), BackendError> {
        #[cfg(feature = "cluster")]
        if let Some(ages) = &self.cluster_ages {
            return ages.confirm(generation);
        }
        self.clock.confirm(generation)
    }

    /// A connection broke: every age this backend knows is unknown.
    fn forget(&self) {
        #[cfg(feature = "cluster")]
        if let Some(ages) = &self.cluster_ages {
            ages.forget();
        }
        self.clock.forget();
    }
}

/// Whether `err` means the connection broke or may have been replaced (so
/// the node may have restarted): I/O errors, refused or dropped
/// connections, timeouts, and whatever the connection manager reconnects on.
pub(crate) fn broke(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_unrecoverable_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
}

/// Sends `call`, and the core's fallback for the error it met, if any (`EVAL`
/// after a `NOSCRIPT`).
async fn send<C: ConnectionLike>(conn: &mut C, call: Call<'_>) -> Result<Value, RedisError> {
    match command(call).query_async(conn).await {
        Err(err) => match err.code().and_then(|code| call.fallback(code)) {
            Some(next) => command(next).query_async(conn).await,
            None => Err(err),
        },
        ok => ok,
    }
}

/// The core's call as a redis-rs command, its buffers sized up front: growing
/// them argument by argument costs several reallocations per call.
fn command(call: Call<'_>) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(call.arg_count() + 1, call.byte_len_hint());
    cmd.arg(call.name());
    call.for_each_arg(|arg| {
        match arg {
            Arg::Str(s) => cmd.arg(s),
            Arg::Int(n) => cmd.arg(n),
        };
    });
    cmd
}

/// A redis-rs reply in the core's terms.
fn raw_reply(value: &Value) -> RawReply<'_> {
    match value {
        Value::Int(n) => RawReply::Integer(*n),
        Value::Array(items) => match items.as_slice() {
            [Value::Int(a), Value::Int(b)] => RawReply::Pair(*a, *b),
            _ => RawReply::Other(value),
        },
        Value::Okay => RawReply::Okay,
        Value::Nil => RawReply::Nil,
        other => RawReply::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-rs would write for `cmd`, one string per argument.
    fn written(cmd: &redis::Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn calls_become_commands() {
        let resources = vec!["r".to_owned()];
        let fences = vec!["redlock:fence:{r}".to_owned()];
        let token = vec!["42".to_owned()];
        let script = redlock_core::Script::new("return 1");
        let request = Request::new(&resources, "v", Duration::from_millis(7), &script)
            .with_extra_keys(&fences)
            .with_extra_args(&token);
        let call = Call::script(&request);
        let tail = ["2", "r", "redlock:fence:{r}", "v", "7", "42"];
        assert_eq!(written(&command(call))[..2], ["EVALSHA", script.sha1()]);
        assert_eq!(written(&command(call))[2..], tail);
        let eval = call.fallback("NOSCRIPT").expect("EVAL after NOSCRIPT");
        assert_eq!(written(&command(eval))[..2], ["EVAL", "return 1"]);
        assert_eq!(written(&command(eval))[2..], tail);

        let scripts = redlock_core::Scripts::default();
        let plain = Request::new(&resources, "v", Duration::from_millis(7), scripts.acquire())
            .with_plain_set_nx(true);
        assert_eq!(
            written(&command(Call::acquire(&plain))),
            ["SET", "r", "v", "NX", "PX", "7"]
        );
    }

    #[test]
    fn replies() {
        let pair = Value::Array(vec![Value::Int(2), Value::Int(9)]);
        assert!(matches!(raw_reply(&Value::Int(3)), RawReply::Integer(3)));
        assert!(matches!(raw_reply(&pair), RawReply::Pair(2, 9)));
        assert!(matches!(raw_reply(&Value::Okay), RawReply::Okay));
        assert!(matches!(raw_reply(&Value::Nil), RawReply::Nil));
        for other in [
            Value::BulkString(b"1".to_vec()),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Int(1), Value::Nil]),
        ] {
            assert!(matches!(raw_reply(&other), RawReply::Other(_)), "{other:?}");
        }
    }
}
