//! The state every task of a proxy shares, and the acknowledgements that
//! make a switch return only once every task applied it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

use super::Mode;

#[derive(Clone, Debug)]
pub(super) struct State {
    pub(super) mode: Mode,
    /// Bumped by every switch; participants acknowledge it.
    pub(super) generation: u64,
    /// Bumped by [`ProxyHandle::reset_connections`].
    pub(super) reset_epoch: u64,
    pub(super) shutdown: bool,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) accepted: AtomicU64,
    pub(super) open: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) garbage_replies: AtomicU64,
    pub(super) bytes_up: AtomicU64,
    pub(super) bytes_down: AtomicU64,
}

/// The tasks that must apply a switch before it returns, and the generation
/// each has applied.
#[derive(Default)]
pub(super) struct Acks {
    pub(super) next_id: u64,
    pub(super) applied: HashMap<u64, u64>,
}

pub(super) struct Shared {
    pub(super) port: u16,
    pub(super) upstream: SocketAddr,
    pub(super) password: Option<String>,
    pub(super) state: watch::Sender<State>,
    pub(super) acks: Mutex<Acks>,
    pub(super) acked: Condvar,
    pub(super) counters: Counters,
}

impl Shared {
    pub(super) fn acks(&self) -> MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A task that acknowledges switches; unregisters when dropped.
pub(super) struct Participant {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
}

impl Participant {
    pub(super) fn register(shared: &Arc<Shared>, generation: u64) -> Participant {
        let mut acks = shared.acks();
        let id = acks.next_id;
        acks.next_id += 1;
        acks.applied.insert(id, generation);
        Participant {
            shared: shared.clone(),
            id,
        }
    }

    pub(super) fn ack(&self, generation: u64) {
        let mut acks = self.shared.acks();
        if let Some(applied) = acks.applied.get_mut(&self.id) {
            *applied = (*applied).max(generation);
        }
        drop(acks);
        self.shared.acked.notify_all();
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.shared.acks().applied.remove(&self.id);
        self.shared.acked.notify_all();
    }
}
