//! Wake-on-release: subscriptions that follow the waiters.
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release)
//! (the default), a release announces each resource on its channel (the
//! core's release script does that, through the extra arguments this adapter
//! forwards), and an acquisition that found a resource held asks each node to
//! [watch](redlock_core::LockBackend::watch_releases) those channels.
//!
//! A backend built by [`RedisBackend::connect`](crate::RedisBackend::connect)
//! answers by opening, on the first watch, a second connection to its node,
//! and subscribes it (`SUBSCRIBE`) to the channels of the resources waited
//! on. A cluster backend opens a second cluster connection and subscribes
//! with `SSUBSCRIBE`: each channel hashes to its resource's slot, so redis-rs
//! sends it to the shard that owns the lock, and the release's `SPUBLISH`
//! stays on that shard. Both speak RESP3, so that redis-rs delivers the
//! messages as pushes to a callback without a task of ours, and both
//! resubscribe by themselves after a reconnection. Each message is handed to
//! a [`ReleaseHub`], which wakes the acquisitions waiting on that channel.
//! The lock connection itself is untouched and keeps the protocol you chose.
//!
//! The hub decides what to (un)subscribe: a channel is subscribed while some
//! acquisition of this process waits on it, and dropped by the core's
//! [`unwatch_releases`](redlock_core::LockBackend::unwatch_releases) once none
//! does; once no channel is left, the subscription connection is closed
//! (the next watch opens a new one). Every watch subscribes to its channels
//! again (a no-op for the server) so that a broken subscription connection
//! is noticed and rebuilt.
//! A lost message costs a waiter at most its retry delay, which the core
//! keeps as the fallback, so correctness never depends on this path.

use std::sync::{Arc, Mutex};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisResult, Value};
use redlock_core::wake::{ReleaseHub, ReleaseWaker};
use redlock_core::BackendError;

use crate::error::backend_error;

/// Where the subscription connects.
enum Target {
    /// One standalone node: the lock connection's address, in RESP3.
    Node {
        info: Box<ConnectionInfo>,
        config: Box<ConnectionManagerConfig>,
    },
    /// A Redis Cluster, through its seed nodes.
    #[cfg(feature = "cluster")]
    Cluster { infos: Vec<ConnectionInfo> },
}

/// The subscription connection, cheap to clone.
#[derive(Clone)]
enum Subscription {
    Node(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Subscription {
    /// One command for a node; one per channel on a cluster, where the
    /// channels of different locks live in different slots.
    async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscription::Node(conn) => conn.subscribe(channels).await,
            #[cfg(feature = "cluster")]
            Subscription::Cluster(conn) => {
                for channel in channels {
                    conn.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscription::Node(conn) => conn.unsubscribe(channels).await,
            #[cfg(feature = "cluster")]
            Subscription::Cluster(conn) => {
                for channel in channels {
                    conn.sunsubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }
}

/// The subscription side of one backend.
pub(crate) struct ReleaseWatch {
    target: Target,
    hub: ReleaseHub,
    subscription: Mutex<Option<Subscription>>,
}

impl ReleaseWatch {
    /// For a standalone node. Nothing is opened here; `info` and `config`
    /// are those of the lock connection, and the subscription switches to
    /// RESP3.
    pub(crate) fn node(info: &ConnectionInfo, config: &ConnectionManagerConfig) -> Self {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        Self::new(Target::Node {
            info: Box::new(info.clone().set_redis_settings(settings)),
            config: Box::new(config.clone()),
        })
    }

    /// For a Redis Cluster reached through `infos`. Nothing is opened here.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(infos: Vec<ConnectionInfo>) -> Self {
        Self::new(Target::Cluster { infos })
    }

    fn new(target: Target) -> Self {
        ReleaseWatch {
            target,
            hub: ReleaseHub::new(),
            subscription: Mutex::new(None),
        }
    }

    /// Registers `waker` and returns once the node listens on `channels`.
    pub(crate) async fn watch(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.hub.register(channels, waker);
        self.apply(channels).await
    }

    /// Drops the channels no live waiter needs.
    pub(crate) async fn unwatch(&self) -> Result<(), BackendError> {
        self.apply(&[]).await
    }

    /// How many release messages the subscription delivered.
    pub(crate) fn received(&self) -> u64 {
        self.hub.received()
    }

    /// Applies the hub's changes, and subscribes to `renew` again.
    async fn apply(&self, renew: &[String]) -> Result<(), BackendError> {
        let mut changes = self.hub.changes().await;
        if changes.is_empty() && renew.is_empty() {
            return Ok(());
        }
        if changes.leaves_none() && renew.is_empty() {
            // Nobody waits: close the subscription connection, which drops
            // its subscriptions on the node for sure (redis-rs could replay
            // one it tracked across a reconnection).
            *self.slot() = None;
            changes.unsubscribed();
            return Ok(());
        }
        let mut conn = self.subscription()?;
        if !changes.to_unsubscribe().is_empty() {
            conn.unsubscribe(changes.to_unsubscribe())
                .await
                .map_err(backend_error)?;
            changes.unsubscribed();
        }
        let mut subscribe = changes.to_subscribe().to_vec();
        for channel in renew {
            if !subscribe.contains(channel) {
                subscribe.push(channel.clone());
            }
        }
        if !subscribe.is_empty() {
            conn.subscribe(&subscribe).await.map_err(backend_error)?;
        }
        Ok(())
    }

    /// The subscription connection, built (lazily) on first use.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Subscription>> {
        self.subscription
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn subscription(&self) -> Result<Subscription, BackendError> {
        let mut slot = self.slot();
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let hub = self.hub.clone();
        let on_push = move |push: PushInfo| {
            if let Some((channel, message)) = release_message(&push) {
                hub.notify(channel, message);
            }
            Ok::<(), std::convert::Infallible>(())
        };
        let conn = match &self.target {
            Target::Node { info, config } => {
                let config = (**config)
                    .clone()
                    .set_push_sender(on_push)
                    .set_automatic_resubscription();
                let client = redis::Client::open((**info).clone()).map_err(backend_error)?;
                Subscription::Node(
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(backend_error)?,
                )
            }
            #[cfg(feature = "cluster")]
            Target::Cluster { infos } => {
                let client = crate::cluster_builder(infos.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(on_push)
                    .build()
                    .map_err(backend_error)?;
                Subscription::Cluster(
                    client.get_pending_async_connection_with_config(crate::cluster_config()),
                )
            }
        };
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// The channel of a `message` or `smessage` push: `[channel, payload]`.
fn release_message(push: &PushInfo) -> Option<(&str, &[u8])> {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return None;
    }
    let channel = match push.data.first()? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?,
        Value::SimpleString(text) => text,
        _ => return None,
    };
    let message: &[u8] = match push.data.get(1) {
        Some(Value::BulkString(bytes)) => bytes,
        Some(Value::SimpleString(text)) => text.as_bytes(),
        _ => &[],
    };
    Some((channel, message))
}

/// Shared by a backend and its clones.
pub(crate) type SharedWatch = Option<Arc<ReleaseWatch>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_channel_and_payload_of_messages_only() {
        let push = |kind, channel: &str| PushInfo {
            kind,
            data: vec![
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::BulkString(b"released".to_vec()),
            ],
        };
        let channel = "redlock:released:{a}";
        assert_eq!(
            release_message(&push(PushKind::Message, channel)),
            Some((channel, &b"released"[..]))
        );
        assert_eq!(
            release_message(&push(PushKind::SMessage, channel)),
            Some((channel, &b"released"[..]))
        );
        assert_eq!(release_message(&push(PushKind::Subscribe, channel)), None);
        let empty = PushInfo {
            kind: PushKind::Message,
            data: vec![],
        };
        assert_eq!(release_message(&empty), None);
    }
}
