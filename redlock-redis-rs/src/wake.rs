//! Wake-on-release: one pattern subscription per backend.
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release),
//! a release publishes on `redlock:released:<resource>` (the core's release
//! script does that, through the extra arguments this adapter forwards), and an
//! acquisition that found a resource held asks each node to
//! [watch](redlock_core::LockBackend::watch_releases) those channels.
//!
//! A backend built by [`RedisBackend::connect`](crate::RedisBackend::connect)
//! answers by opening, on the first watch, a second connection to its node (a
//! cluster backend: to its first seed node; classic pub/sub messages reach
//! every node of a cluster over the cluster bus).
//! That connection speaks RESP3, so that redis-rs can deliver published
//! messages as pushes to a callback without a task of ours. It subscribes
//! once, with `PSUBSCRIBE redlock:released:*`. Each message is handed to a
//! [`ReleaseHub`], which wakes the acquisitions waiting on that channel. The
//! lock connection itself is untouched and keeps the protocol you chose.
//!
//! Every watch sends the `PSUBSCRIBE` again. Subscribing twice to the same
//! pattern changes nothing, but it makes the connection manager notice a
//! broken connection and reconnect (it also resubscribes on its own after a
//! reconnect). A lost message costs a waiter at most its retry delay, which
//! the core keeps as the fallback, so correctness never depends on this path.

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use redlock_core::wake::{ReleaseHub, ReleaseWaker, RELEASE_CHANNEL_PATTERN};
use redlock_core::BackendError;

use crate::error::backend_error;

/// The subscription side of one standalone backend.
pub(crate) struct ReleaseWatch {
    info: ConnectionInfo,
    config: ConnectionManagerConfig,
    hub: ReleaseHub,
    subscription: Mutex<Option<ConnectionManager>>,
}

impl ReleaseWatch {
    /// Nothing is opened here; `info` and `config` are those of the lock
    /// connection, and the subscription switches to RESP3.
    pub(crate) fn new(info: &ConnectionInfo, config: &ConnectionManagerConfig) -> Self {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        ReleaseWatch {
            info: info.clone().set_redis_settings(settings),
            config: config.clone(),
            hub: ReleaseHub::new(),
            subscription: Mutex::new(None),
        }
    }

    pub(crate) async fn watch(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.hub.register(channels, waker);
        let mut conn = self.subscription()?;
        conn.psubscribe(RELEASE_CHANNEL_PATTERN)
            .await
            .map_err(backend_error)
    }

    /// The subscription connection, built (lazily) on first use.
    fn subscription(&self) -> Result<ConnectionManager, BackendError> {
        let mut slot = self
            .subscription
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let hub = self.hub.clone();
        let config = self
            .config
            .clone()
            .set_push_sender(move |push: PushInfo| {
                if let Some(channel) = pmessage_channel(&push) {
                    hub.notify(channel);
                }
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription();
        let client = redis::Client::open(self.info.clone()).map_err(backend_error)?;
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(backend_error)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// The channel of a `pmessage` push: `[pattern, channel, payload]`.
fn pmessage_channel(push: &PushInfo) -> Option<&str> {
    if push.kind != PushKind::PMessage {
        return None;
    }
    match push.data.get(1)? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// Shared by a backend and its clones.
pub(crate) type SharedWatch = Option<Arc<ReleaseWatch>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_channel_of_pattern_messages_only() {
        let push = |kind, channel: &str| PushInfo {
            kind,
            data: vec![
                Value::BulkString(RELEASE_CHANNEL_PATTERN.as_bytes().to_vec()),
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::BulkString(b"released".to_vec()),
            ],
        };
        let message = push(PushKind::PMessage, "redlock:released:a");
        assert_eq!(pmessage_channel(&message), Some("redlock:released:a"));
        assert_eq!(pmessage_channel(&push(PushKind::Message, "x")), None);
        let empty = PushInfo {
            kind: PushKind::PMessage,
            data: vec![],
        };
        assert_eq!(pmessage_channel(&empty), None);
    }
}
