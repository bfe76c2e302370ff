//! Wake-on-release: one pattern subscription per backend.
//!
//! With [`Settings::wake_on_release`](redlock_core::Settings::wake_on_release),
//! a release publishes on `redlock:released:<resource>` (the core's release
//! script does it, with the channels in the extra arguments this backend
//! forwards like any others), and an acquisition that found a resource held
//! asks each node to [watch](redlock_core::LockBackend::watch_releases) those
//! channels.
//!
//! A backend built by this crate answers by starting, on the first watch, a
//! fred [`SubscriberClient`] with the same configuration (a connection of its
//! own: a subscribed connection cannot run scripts) that subscribes once to
//! `PSUBSCRIBE redlock:released:*` and resubscribes by itself after a
//! reconnection. Each message goes to a [`ReleaseHub`], which wakes the
//! acquisitions waiting on that channel. A lost message costs a waiter at most
//! its retry delay, which the core keeps as the fallback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::{Builder, ConnectHandle};
use redlock_core::wake::{ReleaseHub, ReleaseWaker, RELEASE_CHANNEL_PATTERN};
use redlock_core::BackendError;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::errors::map_error;

/// The subscription side of one backend.
pub(crate) struct ReleaseWatch {
    builder: Builder,
    hub: ReleaseHub,
    subscriber: Mutex<Option<Arc<Subscriber>>>,
}

struct Subscriber {
    client: SubscriberClient,
    subscribed: AtomicBool,
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

impl ReleaseWatch {
    /// Nothing is opened until the first watch; `builder` is the lock
    /// client's, settings included.
    pub(crate) fn new(builder: Builder) -> Self {
        ReleaseWatch {
            builder,
            hub: ReleaseHub::new(),
            subscriber: Mutex::new(None),
        }
    }

    /// Registers `waker`, and subscribes unless subscribed already, waiting
    /// at most `timeout` (the backend's command timeout) for the subscription.
    pub(crate) async fn watch(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
        timeout: Duration,
    ) -> Result<(), BackendError> {
        self.hub.register(channels, waker);
        let subscriber = self.subscriber()?;
        if subscriber.subscribed.load(Ordering::Acquire) {
            return Ok(());
        }
        // Until the first PSUBSCRIBE succeeds, every watch tries it; after
        // that the client resubscribes on its own after a reconnection.
        let subscribe = subscriber.client.psubscribe(RELEASE_CHANNEL_PATTERN);
        match tokio::time::timeout(timeout, subscribe).await {
            Ok(Ok(())) => {
                subscriber.subscribed.store(true, Ordering::Release);
                Ok(())
            }
            Ok(Err(error)) => Err(map_error(error)),
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
                        hub.notify(&message.channel);
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        let resubscriber = client.manage_subscriptions();
        let connection = client.connect();
        let subscriber = Arc::new(Subscriber {
            client,
            subscribed: AtomicBool::new(false),
            tasks: [listener, resubscriber],
            connection,
        });
        *slot = Some(Arc::clone(&subscriber));
        Ok(subscriber)
    }
}
