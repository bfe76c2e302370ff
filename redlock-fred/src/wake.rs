//! Wake-on-release: subscriptions that follow the waiters.
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release)
//! (the default), a release announces each resource on its channel (the
//! core's release script does it, with the channels in the extra arguments
//! this backend forwards like any others), and an acquisition that found a
//! resource held asks each node to
//! [watch](redlock_core::LockBackend::watch_releases) those channels.
//!
//! A backend built by this crate answers by starting, on the first watch, a
//! fred [`SubscriberClient`] with the same configuration (a connection of its
//! own: a subscribed connection cannot run scripts). It subscribes to the
//! channels of the resources this process waits on: `SUBSCRIBE` on a
//! standalone node, `SSUBSCRIBE` on a Redis Cluster (each channel hashes to
//! its resource's slot, so fred sends it to the shard that owns the lock and
//! the release's `SPUBLISH` stays there). After a reconnection it subscribes
//! again to the channels still waited on. Each message goes to a [`ReleaseHub`], which wakes the
//! acquisitions waiting on that channel; the hub also decides what to drop
//! once no acquisition of this process waits on a channel any more
//! ([`unwatch_releases`](redlock_core::LockBackend::unwatch_releases)), and
//! once none is left the subscriber is closed (the next watch starts anew). A lost
//! message costs a waiter at most its retry delay, which the core keeps as
//! the fallback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::{Builder, ConnectHandle};
use redlock_core::wake::{ReleaseHub, ReleaseWaker};
use redlock_core::BackendError;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::errors::map_error;

/// The subscription side of one backend.
pub(crate) struct ReleaseWatch {
    builder: Builder,
    /// Shard channels (`SSUBSCRIBE`) on a cluster, classic ones otherwise.
    sharded: bool,
    hub: ReleaseHub,
    subscriber: Mutex<Option<Arc<Subscriber>>>,
}

struct Subscriber {
    client: SubscriberClient,
    tasks: [JoinHandle<()>; 2],
    connection: ConnectHandle,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.connection.abort();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One command for a node; one per channel on a cluster, where the channels
/// of different locks live in different slots.
async fn subscribe(
    client: &SubscriberClient,
    channels: &[String],
    sharded: bool,
) -> Result<(), fred::error::Error> {
    if !sharded {
        return client.subscribe(channels.to_vec()).await;
    }
    for channel in channels {
        client.ssubscribe(channel.as_str()).await?;
    }
    Ok(())
}

/// As [`subscribe`], the other way.
async fn unsubscribe(
    client: &SubscriberClient,
    channels: &[String],
    sharded: bool,
) -> Result<(), fred::error::Error> {
    if !sharded {
        return client.unsubscribe(channels.to_vec()).await;
    }
    for channel in channels {
        client.sunsubscribe(channel.as_str()).await?;
    }
    Ok(())
}

impl ReleaseWatch {
    /// Nothing is opened until the first watch; `builder` is the lock
    /// client's, settings included.
    pub(crate) fn new(builder: Builder) -> Self {
        let sharded = builder
            .get_config()
            .is_some_and(|config| config.server.is_clustered());
        ReleaseWatch {
            builder,
            sharded,
            hub: ReleaseHub::new(),
            subscriber: Mutex::new(None),
        }
    }

    /// Registers `waker`, and returns once the node listens on `channels`,
    /// waiting at most `timeout` (the backend's command timeout).
    pub(crate) async fn watch(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
        timeout: Duration,
    ) -> Result<(), BackendError> {
        self.hub.register(channels, waker);
        self.apply(channels, timeout).await
    }

    /// Drops the channels no live waiter needs, waiting at most `timeout`.
    pub(crate) async fn unwatch(&self, timeout: Duration) -> Result<(), BackendError> {
        self.apply(&[], timeout).await
    }

    /// How many release messages the subscription delivered.
    pub(crate) fn received(&self) -> u64 {
        self.hub.received()
    }

    /// Applies the hub's changes, and subscribes to `renew` again (a no-op
    /// for the server, which makes fred notice a broken connection).
    async fn apply(&self, renew: &[String], timeout: Duration) -> Result<(), BackendError> {
        let work = async {
            let mut changes = self.hub.changes().await;
            if changes.is_empty() && renew.is_empty() {
                return Ok(());
            }
            if changes.leaves_none() && renew.is_empty() {
                // Nobody waits: close the subscriber, which drops its
                // subscriptions on the node for sure.
                let closed = self
                    .subscriber
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                drop(closed);
                changes.unsubscribed();
                return Ok(());
            }
            let subscriber = self.subscriber()?;
            if !changes.to_unsubscribe().is_empty() {
                unsubscribe(&subscriber.client, changes.to_unsubscribe(), self.sharded)
                    .await
                    .map_err(map_error)?;
                changes.unsubscribed();
            }
            let mut channels = changes.to_subscribe().to_vec();
            for channel in renew {
                if !channels.contains(channel) {
                    channels.push(channel.clone());
                }
            }
            if !channels.is_empty() {
                subscribe(&subscriber.client, &channels, self.sharded)
                    .await
                    .map_err(map_error)?;
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::timeout(timeout)),
        }
    }

    /// The subscriber, started on first use.
    fn subscriber(&self) -> Result<Arc<Subscriber>, BackendError> {
        let mut slot = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(subscriber) = slot.as_ref() {
            return Ok(Arc::clone(subscriber));
        }
        let client = self.builder.build_subscriber_client().map_err(map_error)?;
        let mut messages = client.message_rx();
        let hub = self.hub.clone();
        let listener = tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        hub.notify(
                            &message.channel,
                            message.value.as_bytes().unwrap_or_default(),
                        );
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        // Not fred's `manage_subscriptions`: it resubscribes to the set it
        // read when the (re)connection event came, which can land after an
        // unsubscribe we sent meanwhile and bring the channel back for good.
        // Ours takes the hub's turn, so it is ordered with our changes.
        let resubscriber = {
            let mut reconnections = client.reconnect_rx();
            let (client, hub, sharded) = (client.clone(), self.hub.clone(), self.sharded);
            tokio::spawn(async move {
                while let Ok(_) | Err(RecvError::Lagged(_)) = reconnections.recv().await {
                    let _turn = hub.changes().await;
                    let channels = hub.subscribed();
                    if !channels.is_empty() {
                        // A failure leaves waiters on their retry delay.
                        let _ = subscribe(&client, &channels, sharded).await;
                    }
                }
            })
        };
        let connection = client.connect();
        let subscriber = Arc::new(Subscriber {
            client,
            tasks: [listener, resubscriber],
            connection,
        });
        *slot = Some(Arc::clone(&subscriber));
        Ok(subscriber)
    }
}
