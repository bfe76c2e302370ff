//! Wake-on-release: waiters retry the moment a holder releases, instead of
//! sleeping out `retry_delay ± jitter`.
//!
//! [`Settings::wake_on_release`](crate::Settings::wake_on_release) is on by
//! default. A release publishes one message per resource on
//! [`release_channel`]`(resource)`, but only where a process listens on that
//! channel (the release script asks the node first, so a lock nobody waits
//! for costs no message). An acquisition that found the resource held asks
//! every node to [watch](crate::LockBackend::watch_releases) those channels,
//! tries once more at once (a release during the subscription is not missed),
//! and then waits for whichever comes first: a notification, or the jittered
//! retry delay (kept as the fallback, so a lost message costs at most one
//! delay). Correctness never depends on a message arriving.
//!
//! # Cost follows interest
//!
//! A process subscribes only to the channels of the resources it is waiting
//! on, and drops them once no acquisition of the process waits on them any
//! more: the core calls [`unwatch_releases`](crate::LockBackend::unwatch_releases)
//! at the end of a failed acquisition and with the next release after a
//! waiting acquisition ended. A process that waits on nothing receives no
//! release messages, however busy the locks of others are
//! ([`ReleaseHub::received`] counts them).
//!
//! The channel of a resource hashes to the resource's own Redis Cluster slot
//! (see [`keys`](crate::keys)), so on a cluster a backend can subscribe with
//! `SSUBSCRIBE` on the shard that owns the lock, and the release's `SPUBLISH`
//! stays on that shard. Standalone nodes use `SUBSCRIBE` and `PUBLISH`.
//!
//! # The pieces, all runtime-neutral
//! - [`ReleaseWait`] belongs to one waiting acquisition; it counts
//!   notifications and wakes its task.
//! - [`ReleaseWaker`] is the weak handle a backend keeps; once the acquisition
//!   ends it is [closed](ReleaseWaker::is_closed) and can be dropped.
//! - [`ReleaseHub`] is for backend authors: it keeps the waiters of each
//!   channel, says which channels to subscribe to and which to drop
//!   ([`ReleaseHub::changes`]), and [`ReleaseHub::notify`] wakes the longest
//!   waiter of a channel when a message arrives.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use crate::keys::beside;

/// The channel a release of `resource` is published on:
/// `redlock:released:{<resource>}`, or `<resource>:redlock:released` when
/// the resource has a hash tag of its own. Either way it hashes to the
/// resource's Redis Cluster slot.
pub fn release_channel(resource: &str) -> String {
    beside(resource, "released")
}

/// Which pub/sub a backend's waiters subscribe with, and so how a release
/// on it is announced (see [`LockBackend::pubsub_kind`](crate::LockBackend::pubsub_kind)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PubSubKind {
    /// `SUBSCRIBE` and `PUBLISH`: a standalone node.
    #[default]
    Classic,
    /// `SSUBSCRIBE` and `SPUBLISH` (Redis 7+): a Redis Cluster, where a shard
    /// message stays on the shard that owns the resource.
    Sharded,
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

/// How many recent releases the process remembers.
const RECENT_RELEASES: usize = 64;

/// The last releases heard by any hub of the process: the fingerprint of
/// each (channel and released value) and the waiter its first message woke,
/// newest at `next - 1`.
struct Recent {
    heard: [Option<(u64, ReleaseWaker)>; RECENT_RELEASES],
    next: usize,
}

static RECENT: Mutex<Recent> = Mutex::new(Recent {
    heard: [const { None }; RECENT_RELEASES],
    next: 0,
});

/// Whom a release message wakes. The first message of a release wakes the
/// longest waiter of the channel (`first`), and is remembered with it. The
/// same channel and payload from another node is the same release (lock
/// values are 128 random bits, never reused): it wakes that same waiter
/// again while it still waits, since its attempt may have met the nodes that
/// had not deleted the key yet, and nobody once it has ended, so one release
/// never sets a second waiter racing for the lock it just gave away. An
/// empty payload, or the constant one of earlier versions, cannot tell
/// releases apart: it always wakes `first`.
fn whom_to_wake(
    channel: &str,
    message: &[u8],
    first: Option<ReleaseWaker>,
) -> Option<ReleaseWaker> {
    if message.is_empty() || message == b"released" {
        return first;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    channel.hash(&mut hasher);
    message.hash(&mut hasher);
    let fingerprint = hasher.finish();
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, woken)) = recent
        .heard
        .iter()
        .flatten()
        .find(|(f, _)| *f == fingerprint)
    {
        return (!woken.is_closed()).then(|| woken.clone());
    }
    let first = first?;
    let at = recent.next;
    recent.heard[at] = Some((fingerprint, first.clone()));
    recent.next = (at + 1) % RECENT_RELEASES;
    Some(first)
}

#[derive(Debug, Default)]
struct HubState {
    /// The waiters of each channel, longest first.
    waiters: HashMap<String, Vec<ReleaseWaker>>,
    /// The channels the backend's subscription listens on.
    subscribed: HashSet<String>,
}

impl HubState {
    /// Forgets closed waiters, and channels left without one.
    fn prune(&mut self) {
        self.waiters.retain(|_, list| {
            list.retain(|w| !w.is_closed());
            !list.is_empty()
        });
    }
}

#[derive(Debug, Default)]
struct HubInner {
    state: Mutex<HubState>,
    /// One subscription change at a time, so an `UNSUBSCRIBE` decided before
    /// a new waiter came cannot overtake that waiter's `SUBSCRIBE`.
    turn: futures::lock::Mutex<()>,
    received: AtomicU64,
}

/// The waiters of one backend's subscription, by channel. For backend
/// authors:
/// 1. In [`watch_releases`](crate::LockBackend::watch_releases),
///    [`register`](Self::register) the waker, then apply
///    [`changes`](Self::changes): subscribe to the channels it lists, and
///    unsubscribe from those nobody waits on any more.
/// 2. In [`unwatch_releases`](crate::LockBackend::unwatch_releases), apply
///    [`changes`](Self::changes) again.
/// 3. Call [`notify`](Self::notify) for every message the subscription
///    delivers.
///
/// Closed waiters are pruned as it goes, so it does not grow.
#[derive(Clone, Debug, Default)]
pub struct ReleaseHub {
    inner: Arc<HubInner>,
}

impl ReleaseHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `waker` for every channel in `channels`.
    pub fn register(&self, channels: &[String], waker: &ReleaseWaker) {
        let mut state = self.state();
        for channel in channels {
            let list = state.waiters.entry(channel.clone()).or_default();
            list.retain(|w| !w.is_closed());
            list.push(waker.clone());
        }
    }

    /// Wakes the live waiter of `channel` that has waited longest (the
    /// first registered), and forgets the closed ones.
    ///
    /// `message` is the message's payload: the built-in release script
    /// publishes the released lock's value, so the messages of one release
    /// heard from several nodes (one per node), across every hub of the
    /// process, all go to the waiter the first one woke: again while it
    /// still waits (its attempt may have met nodes that had not deleted the
    /// key yet), to nobody once it has ended. Pass an empty payload when it
    /// is unknown: every such message wakes the longest waiter.
    ///
    /// One waiter, not all: a release frees the lock for one new owner, and
    /// waking every waiter of this process made all of them race for it,
    /// each losing attempt costing a round trip and a script run on every
    /// node, with the winner picked at random (a long tail of waits). The
    /// longest waiter retries at once; the others keep their jittered retry
    /// timer and are woken in turn by the next releases, first come, first
    /// served. Waiters in other processes are woken by their own hubs. A
    /// waiter that was woken and lost the race stays first in line.
    pub fn notify(&self, channel: &str, message: &[u8]) {
        self.inner.received.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut state = self.state();
            match state.waiters.get_mut(channel) {
                Some(list) => {
                    list.retain(|w| !w.is_closed());
                    let first = list.first().cloned();
                    if list.is_empty() {
                        state.waiters.remove(channel);
                    }
                    first
                }
                None => None,
            }
        };
        if let Some(waker) = whom_to_wake(channel, message, first) {
            waker.wake();
        }
    }

    /// How many release messages [`notify`](Self::notify) was given so far,
    /// whether or not a waiter wanted them. With subscriptions that follow
    /// interest, a process that waits on nothing receives none.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// The subscription changes that bring the subscription in line with the
    /// live waiters. Waits its turn: one set of changes is applied at a time.
    ///
    /// The channels to subscribe count as subscribed from here on: a
    /// `SUBSCRIBE` that fails, or whose future is dropped on a timeout, may
    /// still have reached the node, so they are listed for unsubscription
    /// once nobody waits on them (unsubscribing from a channel one does not
    /// listen on is harmless). A watch should subscribe to its own channels
    /// in any case. Confirm an unsubscription with
    /// [`SubscriptionChanges::unsubscribed`]; one not confirmed is listed
    /// again next time.
    pub async fn changes(&self) -> SubscriptionChanges<'_> {
        let turn = self.inner.turn.lock().await;
        let mut state = self.state();
        state.prune();
        let HubState {
            waiters,
            subscribed,
        } = &*state;
        let subscribe: Vec<String> = waiters
            .keys()
            .filter(|c| !subscribed.contains(*c))
            .cloned()
            .collect();
        let unsubscribe: Vec<String> = subscribed
            .iter()
            .filter(|c| !waiters.contains_key(*c))
            .cloned()
            .collect();
        state.subscribed.extend(subscribe.iter().cloned());
        let leaves_none = state.subscribed.len() == unsubscribe.len();
        drop(state);
        SubscriptionChanges {
            hub: self,
            _turn: turn,
            subscribe,
            unsubscribe,
            leaves_none,
        }
    }

    /// Channels with at least one registered waiter (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.state().waiters.len()
    }

    /// Whether no channel has a waiter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channels the subscription may listen on: those it was asked to
    /// subscribe to, less those it confirmed it dropped.
    pub fn subscribed(&self) -> Vec<String> {
        let mut channels: Vec<String> = self.state().subscribed.iter().cloned().collect();
        channels.sort();
        channels
    }
}

/// What [`ReleaseHub::changes`] asks a backend to do. Holds the hub's turn
/// until dropped.
#[derive(Debug)]
pub struct SubscriptionChanges<'a> {
    hub: &'a ReleaseHub,
    _turn: futures::lock::MutexGuard<'a, ()>,
    subscribe: Vec<String>,
    unsubscribe: Vec<String>,
    leaves_none: bool,
}

impl SubscriptionChanges<'_> {
    /// Whether, once applied, the subscription listens on no channel at all:
    /// the backend may then close its subscription connection instead of
    /// unsubscribing (the node forgets every subscription of a closed
    /// connection, whatever a client library would resubscribe by itself),
    /// and open a new one on the next watch.
    pub fn leaves_none(&self) -> bool {
        self.leaves_none
    }

    /// Channels with a waiter that the subscription does not listen on yet.
    pub fn to_subscribe(&self) -> &[String] {
        &self.subscribe
    }

    /// Channels the subscription listens on that no live waiter needs.
    pub fn to_unsubscribe(&self) -> &[String] {
        &self.unsubscribe
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.unsubscribe.is_empty()
    }

    /// Confirms that the subscription no longer listens on
    /// [`to_unsubscribe`](Self::to_unsubscribe).
    pub fn unsubscribed(&mut self) {
        let channels = std::mem::take(&mut self.unsubscribe);
        let mut state = self.hub.state();
        for channel in &channels {
            state.subscribed.remove(channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The release scripts name the channel in Lua by one test, whether the
    /// resource has a `}` (see `RELEASE_NOTIFY_LUA`); `release_channel`
    /// must give the same names. (The conformance case
    /// `release_names_the_channel` checks the Lua side on a real node.)
    #[test]
    fn release_channels_follow_the_rule_the_release_scripts_use() {
        for resource in [
            "invoice",
            "a{b}c",
            "{user:1}:cart",
            "a}b",
            "a{}b",
            "a{b",
            "",
            "}",
        ] {
            let lua = if resource.contains('}') {
                format!("{resource}:redlock:released")
            } else {
                format!("redlock:released:{{{resource}}}")
            };
            assert_eq!(release_channel(resource), lua, "{resource:?}");
        }
    }

    #[test]
    fn notify_wakes_only_live_waiters_of_the_channel_and_prunes() {
        let hub = ReleaseHub::new();
        let wait = ReleaseWait::new();
        let channels = [release_channel("a")];
        hub.register(&channels, &wait.waker());
        hub.notify(&release_channel("b"), b"");
        assert_eq!(wait.generation(), 0);
        hub.notify(&release_channel("a"), b"");
        assert_eq!(wait.generation(), 1);
        drop(wait);
        hub.notify(&release_channel("a"), b"");
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
        hub.notify(&channels[0], b"");
        let generations = |waits: [&ReleaseWait; 3]| waits.map(ReleaseWait::generation);
        assert_eq!(generations([&first, &second, &third]), [1, 0, 0]);
        // Still waiting (it lost the race): it stays first in line.
        hub.notify(&channels[0], b"");
        assert_eq!(generations([&first, &second, &third]), [2, 0, 0]);
        // Once it got the lock (its wait ends), the next one is woken.
        drop(first);
        hub.notify(&channels[0], b"");
        assert_eq!([second.generation(), third.generation()], [1, 0]);
    }

    #[test]
    fn one_release_heard_from_several_nodes_wakes_only_the_waiter_it_woke() {
        let (first_node, second_node) = (ReleaseHub::new(), ReleaseHub::new());
        let (wait, next) = (ReleaseWait::new(), ReleaseWait::new());
        let channels = [release_channel("heard-once")];
        for node in [&first_node, &second_node] {
            node.register(&channels, &wait.waker());
            node.register(&channels, &next.waker());
        }
        // Woken by the first node's message; the second node's message of
        // the same release wakes it again while it waits (its attempt may
        // have found that node still holding the key), never the next waiter.
        first_node.notify(&channels[0], b"5f0c9a1e-one-release");
        assert_eq!((wait.generation(), next.generation()), (1, 0));
        second_node.notify(&channels[0], b"5f0c9a1e-one-release");
        assert_eq!((wait.generation(), next.generation()), (2, 0));
        // Once the woken waiter has ended (it got the lock), the rest of that
        // release's messages wake nobody: the lock is taken again.
        drop(wait);
        second_node.notify(&channels[0], b"5f0c9a1e-one-release");
        assert_eq!(next.generation(), 0, "the same release, its waiter gone");
        // Another release goes to the longest waiter left.
        second_node.notify(&channels[0], b"5f0c9a1e-next-release");
        assert_eq!(next.generation(), 1, "another release");
        // Payloads that cannot tell releases apart always wake.
        first_node.notify(&channels[0], b"released");
        second_node.notify(&channels[0], b"released");
        assert_eq!(next.generation(), 3);
        assert_eq!(first_node.received() + second_node.received(), 6);
    }

    #[test]
    fn changes_follow_the_live_waiters() {
        let hub = ReleaseHub::new();
        let changes = |hub: &ReleaseHub| {
            let changes = futures::executor::block_on(hub.changes());
            (
                changes.to_subscribe().to_vec(),
                changes.to_unsubscribe().to_vec(),
            )
        };
        let none = (vec![], vec![]);
        assert_eq!(changes(&hub), none, "nobody waits: nothing to do");
        let (a, b) = (release_channel("a"), release_channel("b"));
        let first = ReleaseWait::new();
        hub.register(std::slice::from_ref(&a), &first.waker());
        assert_eq!(changes(&hub), (vec![a.clone()], vec![]));
        // Asked once, it counts as subscribed (even if the SUBSCRIBE failed).
        assert_eq!(hub.subscribed(), std::slice::from_ref(&a));
        assert_eq!(changes(&hub), none, "subscribed already");
        // A second waiter on the same channel changes nothing; another
        // channel is added.
        let second = ReleaseWait::new();
        hub.register(&[a.clone(), b.clone()], &second.waker());
        assert_eq!(changes(&hub), (vec![b.clone()], vec![]));
        // `a` is dropped only once neither waiter waits on it.
        drop(first);
        assert_eq!(changes(&hub), none);
        assert!(!futures::executor::block_on(hub.changes()).leaves_none());
        drop(second);
        assert!(futures::executor::block_on(hub.changes()).leaves_none());
        let mut both = changes(&hub).1;
        both.sort();
        assert_eq!(both, [a.clone(), b.clone()]);
        // Not confirmed (the UNSUBSCRIBE failed): listed again.
        assert_eq!(changes(&hub).1.len(), 2);
        futures::executor::block_on(hub.changes()).unsubscribed();
        assert!(hub.subscribed().is_empty());
        assert_eq!(changes(&hub), none);
        assert!(hub.is_empty(), "closed waiters are pruned");
    }

    #[test]
    fn messages_are_counted_whether_or_not_someone_waits() {
        let hub = ReleaseHub::new();
        hub.notify(&release_channel("nobody"), b"");
        let wait = ReleaseWait::new();
        hub.register(&[release_channel("a")], &wait.waker());
        hub.notify(&release_channel("a"), b"");
        assert_eq!(hub.received(), 2);
        assert_eq!(wait.generation(), 1);
    }

    #[test]
    fn channels_share_the_resources_slot_tag() {
        assert_eq!(release_channel("invoice"), "redlock:released:{invoice}");
        assert_eq!(
            release_channel("{org42}invoice"),
            "{org42}invoice:redlock:released"
        );
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
