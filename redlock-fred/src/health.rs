//! What this backend knows about its client's connection, from fred's events.
//!
//! fred's own fail-fast check reads the client state, which stays `Connected`
//! from the moment a connection drops until the first reconnection attempt
//! starts. A command sent in that window waits in fred's queue until the node
//! is back (and is then written, however stale). Listening to fred's error and
//! reconnection events closes the window: after a connection error and before
//! the next successful connection, calls fail at once. The last error also
//! says *why* a node is unreachable (a wrong password is `Auth`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

#[derive(Default)]
struct State {
    down: AtomicBool,
    last_error: Mutex<Option<FredError>>,
}

/// A view of the connection kept current by a small listener task, which
/// ends when the client is dropped.
pub(crate) struct Health {
    state: Arc<State>,
    /// Bumped by the listener after each event it applied.
    events: watch::Receiver<u64>,
}

impl Health {
    /// Subscribes to `client`'s events. Call before `connect`, so that no event
    /// of the first connection is missed.
    pub(crate) fn watch(client: &Client) -> Health {
        let state = Arc::new(State::default());
        let mut errors = client.error_rx();
        let mut reconnects = client.reconnect_rx();
        let task_state = Arc::clone(&state);
        let (seen, events) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    error = errors.recv() => match error {
                        Ok((error, _server)) => {
                            if let Ok(mut last) = task_state.last_error.lock() {
                                *last = Some(error);
                            }
                            task_state.down.store(true, Ordering::Release);
                        }
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                    connected = reconnects.recv() => match connected {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            task_state.down.store(false, Ordering::Release);
                        }
                        Err(RecvError::Closed) => break,
                    },
                }
                seen.send_modify(|n| *n = n.wrapping_add(1));
            }
        });
        Health { state, events }
    }

    /// Waits until `client` is connected, a connection error was reported, or
    /// `limit` has passed. (A cluster client reports a connection per node
    /// before it is ready, so the client state is what says "connected".)
    pub(crate) async fn first_outcome(&mut self, client: &Client, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while !client.is_connected() && !self.is_down() {
            let tick = tokio::time::Instant::now() + Duration::from_millis(10);
            if tick > deadline {
                break;
            }
            tokio::select! {
                changed = self.events.changed() => {
                    if changed.is_err() {
                        // The listener has ended (the client is gone): just tick.
                        tokio::time::sleep_until(tick).await;
                    }
                }
                _ = tokio::time::sleep_until(tick) => {}
            }
        }
    }

    /// Whether the last connection event was an error.
    pub(crate) fn is_down(&self) -> bool {
        self.state.down.load(Ordering::Acquire)
    }

    /// The last connection error fred reported, if any.
    pub(crate) fn last_error(&self) -> Option<FredError> {
        self.state.last_error.lock().ok()?.clone()
    }
}
