//! Sending the core's calls: a plain `SET NX PX` through fred's own `set`,
//! the scripts as custom commands, the `EVAL` fallback, and the replies in
//! the core's terms. Restart quarantine's bookkeeping around a call lives here
//! too, since it wraps the send.

use super::*;

impl<C: ClientLike + KeysInterface> FredBackend<C> {
    /// Sends `call` (see [`redlock_core::protocol`]), and the core's fallback
    /// for the error it met, if any (`EVAL` after a `NOSCRIPT`).
    pub(crate) async fn run(
        &self,
        call: Call<'_>,
        request: &Request<'_>,
    ) -> Result<Reply, BackendError> {
        let mut result = self.send(call, request).await;
        let next = match &result {
            Err(error) => errors::server_code(error).and_then(|code| call.fallback(code)),
            Ok(_) => None,
        };
        if let Some(next) = next {
            result = self.send(next, request).await;
        }
        match result {
            Ok(value) => call.reply(raw_reply(&value)),
            Err(error) => Err(self.forget_if_broken(self.explain(error))),
        }
    }

    /// Restart quarantine: a call that failed on the connection (broken,
    /// refused, timed out) makes the node's age unknown until read again.
    pub(crate) fn forget_if_broken(&self, error: BackendError) -> BackendError {
        if matches!(error.kind(), ErrorKind::Connection | ErrorKind::Timeout) {
            if let Some(clock) = &self.clock {
                clock.forget();
            }
            if let Some(Some(ages)) = self.followed.get() {
                ages.forget();
            }
        }
        error
    }

    /// An acquire under restart quarantine: admitted only if the node's age,
    /// read on the current connection, is at least the window, and counted
    /// only if no connection error or reconnection happened meanwhile.
    pub(crate) async fn acquire_quarantined(
        &self,
        request: &Request<'_>,
        max_ttl: Duration,
        followed: Option<&cluster_age::ClusterAges>,
    ) -> Result<Reply, BackendError> {
        if let Some(ages) = followed {
            let generation = ages.admit(request.resources(), max_ttl)?;
            let reply = self.run(Call::acquire(request), request).await?;
            ages.confirm(generation)?;
            return Ok(reply);
        }
        let Some(clock) = &self.clock else {
            return Err(quarantine_unsupported());
        };
        let generation = clock.admit(max_ttl)?;
        let reply = self.run(Call::acquire(request), request).await?;
        clock.confirm(generation)?;
        Ok(reply)
    }

    /// The core's call as a fred command: a plain `SET ... NX PX` through
    /// fred's own `set`, anything else (the scripts) as a custom command.
    ///
    /// fred flushes the socket after every custom command, but writes its own
    /// `SET`s back to back while more commands are queued (one `writev` for
    /// many under load), and builds them without the custom command's extra
    /// allocations; the per-call options apply to both.
    async fn send(&self, call: Call<'_>, request: &Request<'_>) -> Result<Value, FredError> {
        if let Some((key, value, ttl)) = plain_set(&call, request) {
            return self
                .client
                .set(
                    key,
                    value,
                    Some(Expiration::PX(ttl)),
                    Some(SetOptions::NX),
                    false,
                )
                .await;
        }
        // A cluster client routes by the first key's slot, as fred's own
        // `evalsha` does; a standalone client has no use for it.
        let hash = match request.keys().next() {
            Some(key) if self.clustered => ClusterHash::Custom(redis_keyslot(key.as_bytes())),
            _ => ClusterHash::Random,
        };
        let command = CustomCommand::new_static(call.name(), hash, false);
        let mut args = Vec::with_capacity(call.arg_count());
        call.for_each_arg(|arg| {
            args.push(match arg {
                Arg::Str(s) => Value::from(s),
                Arg::Int(n) => Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
            })
        });
        self.client.custom(command, args).await
    }
}

/// Key, value and TTL of a call that is a plain `SET key value NX PX ttl`,
/// read from the request (not parsed back from the arguments).
fn plain_set<'a>(call: &Call<'a>, request: &Request<'a>) -> Option<(&'a str, &'a str, i64)> {
    if call.command() != Command::Set {
        return None;
    }
    let key = request.plain_set_nx()?;
    Some((
        key,
        request.value(),
        i64::try_from(request.ttl_millis()).ok()?,
    ))
}

/// A fred reply in the core's terms.
fn raw_reply(value: &Value) -> RawReply<'_> {
    match value {
        Value::Integer(n) => RawReply::Integer(*n),
        Value::Array(items) => match items.as_slice() {
            [Value::Integer(a), Value::Integer(b)] => RawReply::Pair(*a, *b),
            _ => RawReply::Other(value),
        },
        Value::Null => RawReply::Nil,
        ok if ok.is_ok() => RawReply::Okay,
        other => RawReply::Other(other),
    }
}
