//! Wake-on-release: waiters retry the moment a holder releases, instead of
//! sleeping out `retry_delay ± jitter`.
//!
//! With [`Settings::wake_on_release`](crate::Settings::wake_on_release) on, a
//! release publishes one message per resource on
//! [`release_channel`]`(resource)`, and an acquisition that found the resource
//! held asks every node to [watch](crate::LockBackend::watch_releases) those
//! channels, then waits for whichever comes first: a notification, or the
//! jittered retry delay (kept as the fallback, so a lost message costs at most
//! one delay). Correctness never depends on a message arriving.
//!
//! The pieces, all runtime-neutral:
//! - [`ReleaseWait`] belongs to one waiting acquisition; it counts
//!   notifications and wakes its task.
//! - [`ReleaseWaker`] is the weak handle a backend keeps; once the acquisition
//!   ends it is [closed](ReleaseWaker::is_closed) and can be dropped.
//! - [`ReleaseHub`] is for backend authors: one subscription per connection
//!   (for Redis, `PSUBSCRIBE` to [`RELEASE_CHANNEL_PATTERN`]) feeds
//!   [`ReleaseHub::notify`], which wakes the longest waiter of that channel
//!   (the others are woken by the next releases, in the order they came).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

/// The channel prefix of every release notification.
pub const RELEASE_CHANNEL_PREFIX: &str = "redlock:released:";

/// A glob pattern matching every release channel, for `PSUBSCRIBE`.
pub const RELEASE_CHANNEL_PATTERN: &str = "redlock:released:*";

/// The channel a release of `resource` is published on.
pub fn release_channel(resource: &str) -> String {
    format!("{RELEASE_CHANNEL_PREFIX}{resource}")
}

#[derive(Debug, Default)]
struct WaitState {
    generation: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl WaitState {
    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One waiting acquisition's end of a watch. See the [module docs](self).
#[derive(Debug, Default)]
pub struct ReleaseWait {
    state: Arc<WaitState>,
}

impl ReleaseWait {
    /// A wait nobody has notified yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle to give backends.
    pub fn waker(&self) -> ReleaseWaker {
        ReleaseWaker {
            state: Arc::downgrade(&self.state),
        }
    }

    /// How many notifications arrived so far.
    pub fn generation(&self) -> u64 {
        self.state.generation.load(Ordering::Acquire)
    }

    /// Completes once a notification arrives after `generation` was read.
    pub fn changed(&self, generation: u64) -> Changed<'_> {
        Changed {
            wait: self,
            generation,
        }
    }
}

/// The future of [`ReleaseWait::changed`].
#[derive(Debug)]
pub struct Changed<'a> {
    wait: &'a ReleaseWait,
    generation: u64,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.wait.state;
        if state.generation.load(Ordering::Acquire) != self.generation {
            return Poll::Ready(());
        }
        *state.waker() = Some(cx.waker().clone());
        // A notification between the check and the registration is not lost.
        if state.generation.load(Ordering::Acquire) != self.generation {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// A backend's handle on a waiting acquisition. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReleaseWaker {
    state: Weak<WaitState>,
}

impl ReleaseWaker {
    /// Tells the acquisition that one of its resources was released.
    pub fn wake(&self) {
        if let Some(state) = self.state.upgrade() {
            state.generation.fetch_add(1, Ordering::AcqRel);
            if let Some(waker) = state.waker().take() {
                waker.wake();
            }
        }
    }

    /// Whether the acquisition has ended; a closed waker can be dropped.
    pub fn is_closed(&self) -> bool {
        self.state.strong_count() == 0
    }
}

/// Fans release notifications out to the waiters of each channel. For
/// backend authors: register waiters in
/// [`watch_releases`](crate::LockBackend::watch_releases), and call
/// [`notify`](Self::notify) for every message the subscription delivers.
/// Closed waiters are pruned as it goes, so it does not grow.
#[derive(Clone, Debug, Default)]
pub struct ReleaseHub {
    channels: Arc<Mutex<HashMap<String, Vec<ReleaseWaker>>>>,
}

impl ReleaseHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, Vec<ReleaseWaker>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waker` for every channel in `channels`.
    pub fn register(&self, channels: &[String], waker: &ReleaseWaker) {
        let mut map = self.channels();
        for channel in channels {
            let list = map.entry(channel.clone()).or_default();
            list.retain(|w| !w.is_closed());
            list.push(waker.clone());
        }
        if map.len() > 64 {
            map.retain(|_, list| {
                list.retain(|w| !w.is_closed());
                !list.is_empty()
            });
        }
    }

    /// Wakes the live waiter of `channel` that has waited longest (the
    /// first registered), and forgets the closed ones.
    ///
    /// One waiter, not all: a release frees the lock for one new owner, and
    /// waking every waiter of this process made all of them race for it,
    /// each losing attempt costing a round trip and a script run on every
    /// node, with the winner picked at random (a long tail of waits). The
    /// longest waiter retries at once; the others keep their jittered retry
    /// timer and are woken in turn by the next releases, first come, first
    /// served. Waiters in other processes are woken by their own hubs. A
    /// waiter that was woken and lost the race stays first in line.
    pub fn notify(&self, channel: &str) {
        let waker = {
            let mut map = self.channels();
            let Some(list) = map.get_mut(channel) else {
                return;
            };
            list.retain(|w| !w.is_closed());
            let first = list.first().cloned();
            if list.is_empty() {
                map.remove(channel);
            }
            first
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Channels with at least one registered waiter (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.channels().len()
    }

    /// Whether no channel has a waiter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_only_live_waiters_of_the_channel_and_prunes() {
        let hub = ReleaseHub::new();
        let wait = ReleaseWait::new();
        let channels = [release_channel("a")];
        hub.register(&channels, &wait.waker());
        hub.notify(&release_channel("b"));
        assert_eq!(wait.generation(), 0);
        hub.notify(&release_channel("a"));
        assert_eq!(wait.generation(), 1);
        drop(wait);
        hub.notify(&release_channel("a"));
        assert!(hub.is_empty(), "closed waiters are pruned");
    }

    #[test]
    fn notify_wakes_the_longest_live_waiter_first_come_first_served() {
        let hub = ReleaseHub::new();
        let channels = [release_channel("a")];
        let (first, second, third) = (ReleaseWait::new(), ReleaseWait::new(), ReleaseWait::new());
        for wait in [&first, &second, &third] {
            hub.register(&channels, &wait.waker());
        }
        hub.notify(&channels[0]);
        let generations = |waits: [&ReleaseWait; 3]| waits.map(ReleaseWait::generation);
        assert_eq!(generations([&first, &second, &third]), [1, 0, 0]);
        // Still waiting (it lost the race): it stays first in line.
        hub.notify(&channels[0]);
        assert_eq!(generations([&first, &second, &third]), [2, 0, 0]);
        // Once it got the lock (its wait ends), the next one is woken.
        drop(first);
        hub.notify(&channels[0]);
        assert_eq!([second.generation(), third.generation()], [1, 0]);
    }

    #[test]
    fn changed_completes_after_a_notification() {
        let wait = ReleaseWait::new();
        let seen = wait.generation();
        let waker = wait.waker();
        std::thread::spawn(move || waker.wake());
        futures::executor::block_on(wait.changed(seen));
        assert_eq!(wait.generation(), 1);
    }
}
