//! Restart quarantine on a Redis Cluster backend: each master is a node, and
//! its age is kept per slot by the core's
//! [`ClusterClock`](redlock_core::cluster_age::ClusterClock).
//!
//! fred's cluster client broadcasts a reconnection event for every
//! connection it makes to a node (the first ones too), after the handshake
//! and **before** the connection joins the set that commands are written
//! to; a broken connection also broadcasts an error. [`ClusterAges`] holds
//! its own receivers of both and drains them, without waiting, each time it
//! answers (age, admission, confirmation, learning): any event forgets every
//! master's age. A reply that came over a new connection therefore always
//! finds the event already queued, and an acquire admitted before it is not
//! counted. No task is spawned for it, so nothing depends on a listener
//! being scheduled in time.
//!
//! The same serves a standalone fred [`Client`] passed to
//! [`FredBackend::new`](crate::FredBackend::new) (fred broadcasts its
//! reconnection the same way, before the connection is used): it is one
//! node, so every request maps to one entry.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::config::Server;
use fred::types::Value;
use redlock_core::age::ServerInfo;
use redlock_core::cluster_age::ClusterClock;
use redlock_core::{BackendError, ErrorKind, NodeAge};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver;

/// How many times a read of a master's age is repeated when a connection
/// was made while it ran.
pub(crate) const READS: usize = 3;

struct Events {
    errors: Receiver<(FredError, Option<Server>)>,
    reconnects: Receiver<Server>,
}

/// A cluster backend's quarantine state: see the [module docs](self).
pub(crate) struct ClusterAges {
    clock: ClusterClock,
    events: Mutex<Events>,
    /// To subscribe again if fred replaces its channels (after `QUIT`).
    client: Client,
    /// A standalone client: one node, whatever the slot.
    single: bool,
}

impl ClusterAges {
    /// Subscribes to `client`'s events. Every age starts unknown, so events
    /// from before this call do not matter.
    pub(crate) fn watch(client: &Client) -> ClusterAges {
        ClusterAges {
            clock: ClusterClock::new(),
            events: Mutex::new(Events {
                errors: client.error_rx(),
                reconnects: client.reconnect_rx(),
            }),
            client: client.clone(),
            single: !client.is_clustered(),
        }
    }

    fn events(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the connection events fred has broadcast so far: any of
    /// them (or a missed one) forgets every age.
    fn sync(&self) {
        let mut events = self.events();
        let mut changed = false;
        let mut closed = false;
        loop {
            match events.errors.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
        }
        loop {
            match events.reconnects.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            // fred replaced its channels (the client quit): listen to the
            // new ones; what happened in between is unknown.
            events.errors = self.client.error_rx();
            events.reconnects = self.client.reconnect_rx();
            changed = true;
        }
        if changed {
            self.clock.forget();
        }
    }

    /// The age of the master serving `resources`, without I/O.
    pub(crate) fn age(&self, resources: &[String]) -> NodeAge {
        self.sync();
        match self.slot(resources) {
            Ok(slot) => self.clock.age(slot),
            Err(_) => NodeAge::Unknown,
        }
    }

    /// Admits an acquire on `resources` under a window of `max_ttl`: the
    /// generation to confirm after the reply.
    pub(crate) fn admit(
        &self,
        resources: &[String],
        max_ttl: Duration,
    ) -> Result<u64, BackendError> {
        self.sync();
        self.clock.admit(self.slot(resources)?, max_ttl)
    }

    /// After the reply: whether the vote counts.
    pub(crate) fn confirm(&self, generation: u64) -> Result<(), BackendError> {
        self.sync();
        self.clock.confirm(generation)
    }

    /// A call failed on a connection.
    pub(crate) fn forget(&self) {
        self.clock.forget();
    }

    /// The generation a read of an age begins at.
    pub(crate) fn generation(&self) -> u64 {
        self.sync();
        self.clock.generation()
    }

    /// Records the `INFO server` reply `value` of `slot`'s master, read from
    /// `generation` and received at `received`: false if a connection
    /// changed meanwhile (read again).
    pub(crate) fn learn(
        &self,
        slot: u16,
        generation: u64,
        value: &Value,
        received: Instant,
    ) -> Result<bool, BackendError> {
        let info = value
            .as_str()
            .and_then(|text| ServerInfo::parse(&text))
            .ok_or_else(|| {
                BackendError::new(
                    ErrorKind::Protocol,
                    "INFO server (from the slot's master) answered without uptime_in_seconds",
                )
            })?;
        self.sync();
        Ok(self.clock.learn(slot, generation, &info, received))
    }
}

impl ClusterAges {
    /// The entry of a request's resources: their hash slot on a cluster,
    /// 0 on a standalone node.
    pub(crate) fn slot(&self, resources: &[String]) -> Result<u16, BackendError> {
        if self.single {
            return Ok(0);
        }
        ClusterClock::slot_of(resources).ok_or_else(|| {
            BackendError::new(
                ErrorKind::Other,
                "restart quarantine on a cluster needs a resource to find its master",
            )
        })
    }
}
