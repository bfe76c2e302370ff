//! What this backend knows about its client's connection, from fred's events.
//!
//! fred's own fail-fast check reads the client state, which stays `Connected`
//! from the moment a connection drops until the first reconnection attempt
//! starts. A command sent in that window waits in fred's queue until the node
//! is back (and is then written, however stale). Listening to fred's error and
//! reconnection events closes the window: right after a connection error, and
//! until a connection succeeds or fred's state has caught up, calls fail at
//! once. The last error also says *why* a node is unreachable (a wrong
//! password is `Auth`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface};
use redlock_core::age::NodeClock;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

/// How long after a connection error the listener's word beats fred's client
/// state. fred's state is accurate again once its first reconnection attempt
/// starts (after at most the policy's first delay, ~20 ms); bounding the
/// override also bounds the harm of any misreading of the event order.
const OVERRIDE: Duration = Duration::from_millis(250);

#[derive(Default)]
struct State {
    /// When the last connection error arrived, unless a connection succeeded
    /// since.
    down_since: Option<Instant>,
    /// The last connection error since the last successful connection.
    last_error: Option<FredError>,
}

/// A view of the connection kept current by a small listener task, which
/// ends when the client is dropped.
pub(crate) struct Health {
    state: Arc<Mutex<State>>,
    /// Bumped by the listener after each event it applied.
    events: watch::Receiver<u64>,
}

impl Health {
    /// Subscribes to `client`'s events. Call before `connect`, so that no event
    /// of the first connection is missed. Every connection error and every
    /// (re)connection makes `clock`'s node age unknown (restart quarantine:
    /// a restart always drops the connection).
    pub(crate) fn watch(client: &Client, clock: Option<Arc<NodeClock>>) -> Health {
        let state = Arc::new(Mutex::new(State::default()));
        let mut errors = client.error_rx();
        let mut reconnects = client.reconnect_rx();
        let task_state = Arc::clone(&state);
        let (seen, events) = watch::channel(0u64);
        tokio::spawn(async move {
            loop {
                // Errors first: when both kinds are waiting, the reconnection
                // is applied last, so a misread order errs towards "up" (and
                // fred's own state and timeouts take over).
                tokio::select! {
                    biased;
                    error = errors.recv() => match error {
                        Ok((error, _server)) => {
                            if let Some(clock) = &clock {
                                clock.forget();
                            }
                            let mut state = lock(&task_state);
                            state.down_since = Some(Instant::now());
                            state.last_error = Some(error);
                        }
                        Err(RecvError::Lagged(_)) => {
                            // Missed errors: the node may have restarted.
                            if let Some(clock) = &clock {
                                clock.forget();
                            }
                        }
                        Err(RecvError::Closed) => break,
                    },
                    connected = reconnects.recv() => match connected {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            if let Some(clock) = &clock {
                                clock.forget();
                            }
                            *lock(&task_state) = State::default();
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

    /// Whether a connection error arrived within the last moment and no
    /// connection succeeded since.
    pub(crate) fn is_down(&self) -> bool {
        lock(&self.state)
            .down_since
            .is_some_and(|since| since.elapsed() < OVERRIDE)
    }

    /// The last connection error fred reported since the last successful
    /// connection, if any.
    pub(crate) fn last_error(&self) -> Option<FredError> {
        lock(&self.state).last_error.clone()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
