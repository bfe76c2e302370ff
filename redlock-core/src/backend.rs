//! The [`LockBackend`] trait: one node's view of the lock.
//!
//! A backend is one independent Redis node (or one Redis Cluster, or anything
//! else that can hold keys with a TTL). It knows nothing about quorums, drift or
//! retries: it runs one operation on its node and reports how many of the keys
//! the operation applied to, or why it could not ask. The algorithm in
//! [`Redlock`](crate::Redlock) turns those replies into votes.
//!
//! # Writing a backend
//!
//! Implement the three operations. A Redis backend runs
//! [`Request::script`] (by `EVALSHA`, falling back to `EVAL` on `NOSCRIPT`) with
//! `KEYS = request.keys()` (the resources, then any [extra keys](Request::extra_keys)),
//! `ARGV = [request.value(), request.ttl_millis()]` followed by
//! [`Request::extra_args`], and returns [`Reply::from_script_integer`] with the
//! integer the script answered (or [`Reply::from_script_pair`] when it answered
//! a two-integer array, as the fenced acquire does). [`protocol`](crate::protocol)
//! spells out those commands, reads the replies and classifies the server's
//! error codes, so a Redis backend only sends what it describes. A backend
//! that does not run Lua implements the semantics of the built-in scripts (see
//! [`scripts`](crate::scripts)) and refuses a custom script with
//! [`ErrorKind::Unsupported`]. Map every failure to a [`BackendError`] of the
//! closest [`ErrorKind`], keeping the client's error as the source. Then run the
//! conformance suite in `redlock-testkit` against it.
//!
//! ```
//! use redlock_core::{async_trait, BackendError, LockBackend, Reply, Request};
//!
//! struct AlwaysBusy;
//!
//! #[async_trait]
//! impl LockBackend for AlwaysBusy {
//!     async fn acquire(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
//!         Ok(Reply::applied(0)) // someone else holds every key
//!     }
//!     async fn extend(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
//!         Ok(Reply::applied(0))
//!     }
//!     async fn release(&self, _: &Request<'_>) -> Result<Reply, BackendError> {
//!         Ok(Reply::applied(0))
//!     }
//! }
//! ```

mod error;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::inspect::{Inspection, ServerReplies};
use crate::scripts::Script;
use crate::wake::{PubSubKind, ReleaseWaker};

pub use self::error::{BackendError, ErrorKind};

/// One operation's arguments, as a backend receives them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Request<'a> {
    resources: &'a [String],
    value: &'a str,
    ttl: Duration,
    script: &'a Script,
    extra_keys: &'a [String],
    extra_args: &'a [String],
    plain_set_nx: bool,
    restart_quarantine: Option<Duration>,
    sharded_script: Option<&'a Script>,
}

impl<'a> Request<'a> {
    /// Builds a request. The algorithm builds these; a backend's own tests may too.
    pub fn new(resources: &'a [String], value: &'a str, ttl: Duration, script: &'a Script) -> Self {
        Request {
            resources,
            value,
            ttl,
            script,
            extra_keys: &[],
            extra_args: &[],
            plain_set_nx: false,
            restart_quarantine: None,
            sharded_script: None,
        }
    }

    /// The same request with `script` in place of [`script`](Self::script)
    /// for backends whose [`LockBackend::pubsub_kind`] is
    /// [`PubSubKind::Sharded`] (a release that announces itself).
    pub(crate) fn with_sharded_script(mut self, script: &'a Script) -> Self {
        self.sharded_script = Some(script);
        self
    }

    /// The sharded variant of this request, for a backend of pub/sub `kind`,
    /// when it differs from this request.
    pub(crate) fn for_pubsub(&self, kind: PubSubKind) -> Option<Request<'a>> {
        match (kind, self.sharded_script) {
            (PubSubKind::Sharded, Some(script)) => Some(Request {
                script,
                sharded_script: None,
                ..*self
            }),
            _ => None,
        }
    }

    /// Marks an acquire made under
    /// [`Settings::restart_quarantine`](crate::Settings::restart_quarantine).
    pub fn with_restart_quarantine(mut self, max_ttl: Option<Duration>) -> Self {
        self.restart_quarantine = max_ttl;
        self
    }

    /// On an acquire under restart quarantine, the quarantine window. The
    /// core has already checked [`LockBackend::node_age`] before sending; a
    /// backend that tracks node ages re-checks it on the connection it
    /// actually uses, and answers [`ErrorKind::Quarantined`] (without
    /// voting) when that connection is newer than the age it reported or
    /// the node is younger than this. `None` for every other request.
    pub fn restart_quarantine(&self) -> Option<Duration> {
        self.restart_quarantine
    }

    /// Allows the backend to run this acquire as a plain `SET` (see
    /// [`plain_set_nx`](Self::plain_set_nx)). The algorithm sets it only where
    /// that is equivalent to the script; it has no effect otherwise.
    pub fn with_plain_set_nx(mut self, allowed: bool) -> Self {
        self.plain_set_nx = allowed;
        self
    }

    /// The key, when this acquire may run as a plain
    /// `SET key value NX PX ttl` (reply `OK`: a vote for, one key applied;
    /// `nil`: held, none applied) instead of its script. A Redis node runs a
    /// plain `SET NX` for less CPU than a Lua script.
    ///
    /// The algorithm allows it only where the two are the same: one resource,
    /// no extra keys or arguments, the built-in acquire script, and a value no
    /// node can hold yet, that is the first attempt of an acquisition, whose
    /// value was just drawn. (The built-in script also re-takes a key that
    /// holds our own value; only a retry can meet one, left by its own earlier
    /// attempt, and retries run the script.) A backend may ignore this and
    /// always run the script.
    pub fn plain_set_nx(&self) -> Option<&'a str> {
        match self.resources {
            [key]
                if self.plain_set_nx
                    && self.script.is_builtin()
                    && self.extra_keys.is_empty()
                    && self.extra_args.is_empty() =>
            {
                Some(key.as_str())
            }
            _ => None,
        }
    }

    /// Adds keys sent after the resources (for example the fence counters of a
    /// fenced acquire). They are in the same cluster slot as their resource.
    pub fn with_extra_keys(mut self, keys: &'a [String]) -> Self {
        self.extra_keys = keys;
        self
    }

    /// Adds arguments sent after the value and the TTL.
    pub fn with_extra_args(mut self, args: &'a [String]) -> Self {
        self.extra_args = args;
        self
    }

    /// Keys sent after the resources; empty for the plain operations.
    pub fn extra_keys(&self) -> &'a [String] {
        self.extra_keys
    }

    /// Arguments sent after the value and the TTL; empty for the plain operations.
    pub fn extra_args(&self) -> &'a [String] {
        self.extra_args
    }

    /// Every key to send as `KEYS`: the resources, then the extra keys.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.resources
            .iter()
            .chain(self.extra_keys)
            .map(String::as_str)
    }

    /// How many `KEYS` there are (the `numkeys` of `EVALSHA`).
    pub fn key_count(&self) -> usize {
        self.resources.len() + self.extra_keys.len()
    }

    /// The keys, exactly the resource names the caller gave (no prefix added).
    pub fn resources(&self) -> &'a [String] {
        self.resources
    }

    /// The lock value: at least 128 random bits, as a plain string.
    pub fn value(&self) -> &'a str {
        self.value
    }

    /// The time to live the keys get.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The TTL in whole milliseconds, as `PX` takes it. The algorithm only sends
    /// TTLs of at least one millisecond that fit in `u64`.
    pub fn ttl_millis(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The script to run (built-in or custom).
    pub fn script(&self) -> &'a Script {
        self.script
    }
}

/// What a node did with one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// How many of the request's resources the operation applied to: set
    /// (acquire), re-armed (extend) or deleted (release).
    pub applied: usize,
    /// For a fenced acquire: the highest fence counter the node holds for the
    /// resources.
    pub fence: Option<u64>,
}

impl Reply {
    /// A reply that applied to `n` keys.
    pub fn applied(n: usize) -> Self {
        Reply {
            applied: n,
            fence: None,
        }
    }

    /// The same reply, carrying a fence counter.
    pub fn with_fence(mut self, fence: u64) -> Self {
        self.fence = Some(fence);
        self
    }

    /// A reply from a script's two-integer answer `{applied, fence}` (the
    /// fenced acquire's); negative integers count as zero.
    pub fn from_script_pair(applied: i64, fence: i64) -> Self {
        Reply::from_script_integer(applied).with_fence(u64::try_from(fence).unwrap_or(0))
    }

    /// A reply from a script's integer answer; a negative integer (which no
    /// built-in script returns) counts as zero.
    pub fn from_script_integer(n: i64) -> Self {
        Reply::applied(usize::try_from(n).unwrap_or(0))
    }
}

/// How long a node has been up, as its backend knows it without I/O (see
/// [`LockBackend::node_age`]). Used only by restart quarantine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeAge {
    /// The backend does not track ages (the default, and
    /// [`MemoryBackend`](crate::MemoryBackend)): the node is never quarantined.
    Untracked,
    /// The backend tracks ages but has not read this node's since it
    /// (re)connected: with quarantine on, the node counts as quarantined
    /// until [`LockBackend::refresh_node_age`] reads it.
    Unknown,
    /// The node came up at this instant (on the monotonic clock of
    /// [`Instant::now`]), or later: backends round towards the latest
    /// possible boot, so that an age is never overestimated.
    UpSince(Instant),
}

/// One node's view of the lock: run one operation on one node.
///
/// Object safe, so `Vec<Box<dyn LockBackend>>` and wrappers (fault injection,
/// metrics) work; `Box<B>`, `Arc<B>` and `&B` are backends too. Every method
/// must return promptly on a dead node (the algorithm also bounds each call by
/// its per-node timeout and drops the future when it expires, so a method must
/// be cancellation safe: dropping it may leave the operation applied or not,
/// never half-applied, which Lua scripts guarantee).
///
/// New optional capabilities arrive as provided methods with a default that
/// answers [`ErrorKind::Unsupported`], so adding one never breaks a backend.
///
/// # A backend that is not Redis
///
/// Implement [`acquire`](Self::acquire), [`extend`](Self::extend) and
/// [`release`](Self::release) with the semantics of the built-in scripts,
/// and answer [`ErrorKind::Unsupported`] to a request whose
/// [`script`](Request::script) is not [built in](Script::is_builtin) (a
/// user's own Lua). Two optional protocols ride on the same calls;
/// `examples/custom_backend.rs` implements both and runs the conformance
/// suite on them:
///
/// - **Fencing tokens** ([`Settings::fencing`](crate::Settings::fencing)).
///   A fenced acquire is an [`acquire`](Self::acquire) whose
///   [`extra_keys`](Request::extra_keys) name fence counters: the first
///   `resources().len()` are the resources' counters
///   ([`crate::keys::fence_key`]), any after them are counters that older
///   versions kept per resource in Redis (a new backend has none). Take the
///   resources as usual and, in the same atomic step, reply the highest
///   counter with [`Reply::with_fence`] (0 when none exists). The core then
///   picks the token (above the highest reply of the quorum) and calls
///   [`fence`](Self::fence) with it in `extra_args()[0]`: if every resource
///   still holds the request's value, raise each resource's counter to the
///   token (never lower it) and reply the resource count, else reply 0.
///   Counters must never expire or be evicted, or a token can repeat.
/// - **Wake-on-release**
///   ([`Settings::wake_on_release`](crate::Settings::wake_on_release)). A
///   release made with it carries one channel per resource, in the same
///   order, as [`extra_args`](Request::extra_args): announce each resource
///   it deleted on that resource's channel, with the released value as the
///   message. [`watch_releases`](Self::watch_releases) registers a waiter
///   for some channels; a [`ReleaseHub`](crate::wake::ReleaseHub) does the
///   bookkeeping on the receiving side (`register`, then `notify` for each
///   announcement heard). Without it, waiters fall back to their retry
///   timer, which is correct, only slower.
#[async_trait]
pub trait LockBackend: Send + Sync {
    /// Sets every key in [`Request::resources`] to [`Request::value`] with
    /// [`Request::ttl`] if none is held by another value; otherwise sets none.
    /// Replies with the number of keys set (all of them, or 0).
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError>;

    /// Resets the TTL of every key if all still hold [`Request::value`];
    /// otherwise changes nothing. Replies with the number of keys extended.
    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError>;

    /// Deletes each key that holds [`Request::value`]. Replies with the number
    /// of keys deleted.
    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError>;

    /// Raises the fence counters in [`Request::extra_keys`] to the token in
    /// `extra_args()[0]` (never lowers them), if every resource still holds
    /// [`Request::value`]. Replies with the number of resources (all, or 0).
    /// Only needed for fencing tokens; a Redis backend runs the request's script
    /// exactly as for [`acquire`](Self::acquire).
    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        let _ = request;
        Err(BackendError::new(
            ErrorKind::Unsupported,
            "this backend does not implement fencing tokens",
        ))
    }

    /// Registers `waker` to be woken whenever a release is published on one
    /// of `channels` ([`release_channel`](crate::wake::release_channel) of
    /// each resource) on this node, until the waker is
    /// [closed](crate::wake::ReleaseWaker::is_closed), and returns once the
    /// node will deliver those releases (the subscription is in place).
    /// Optional: used only with
    /// [`Settings::wake_on_release`](crate::Settings::wake_on_release); the
    /// default answers [`ErrorKind::Unsupported`] and waiters fall back to
    /// their retry delay. See [`ReleaseHub`](crate::wake::ReleaseHub), which
    /// does the bookkeeping.
    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        let _ = (channels, waker);
        Err(BackendError::new(
            ErrorKind::Unsupported,
            "this backend does not implement wake-on-release",
        ))
    }

    /// Drops the subscriptions that no live waiter needs any more (see
    /// [`ReleaseHub::changes`](crate::wake::ReleaseHub::changes)), so that a
    /// process receives only the releases it waits for. The core calls it at
    /// the end of a failed acquisition that watched, and with the next release
    /// after a waiting acquisition ended. The default does nothing.
    async fn unwatch_releases(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Which pub/sub [`watch_releases`](Self::watch_releases) subscribes
    /// with, and so which release script announces a release on this
    /// backend: [`PubSubKind::Classic`] (`PUBLISH`, the default) or
    /// [`PubSubKind::Sharded`] (`SPUBLISH`, for a Redis Cluster). Only the
    /// built-in release scripts look at it; a backend that runs no Lua can
    /// ignore it.
    fn pubsub_kind(&self) -> PubSubKind {
        PubSubKind::Classic
    }

    /// Restart quarantine: when the node that serves `resources` came up,
    /// as far as the backend knows **without I/O** (the core asks it before
    /// every acquire made with
    /// [`Settings::restart_quarantine`](crate::Settings::restart_quarantine),
    /// and never otherwise). A Redis backend reads `INFO server`
    /// (`uptime_in_seconds`, `run_id`) on every (re)connection, since a
    /// restart always drops the connection, and forgets the age
    /// ([`NodeAge::Unknown`]) the moment it sees the connection break. A
    /// cluster backend answers for the master that serves the resources'
    /// slot (each master is a node; see [`cluster_age`](crate::cluster_age)).
    /// The default, [`NodeAge::Untracked`], never quarantines.
    fn node_age(&self, resources: &[String]) -> NodeAge {
        let _ = resources;
        NodeAge::Untracked
    }

    /// Reads the age of the node serving `resources` (an `INFO server`), so
    /// that [`node_age`](Self::node_age) stops answering
    /// [`NodeAge::Unknown`]. The core calls it, within the per-node timeout,
    /// in place of an acquire when quarantine is on and the age is unknown.
    /// The default does nothing.
    async fn refresh_node_age(&self, resources: &[String]) -> Result<(), BackendError> {
        let _ = resources;
        Ok(())
    }

    /// Runs the read-only commands of `inspection` (see
    /// [`inspect`](crate::inspect)) and returns what each server behind
    /// this backend answered: the I/O of [`Redlock::doctor`](crate::Redlock::doctor)
    /// and [`Redlock::status`](crate::Redlock::status). A server's error
    /// reply to one command is [`Value::Error`](crate::inspect::Value::Error)
    /// in its place; only a client-side failure (unreachable, timed out)
    /// fails the call. Optional: the default answers
    /// [`ErrorKind::Unsupported`], and the doctor then reports the node's
    /// checks as not checked.
    async fn inspect(&self, inspection: &Inspection) -> Result<Vec<ServerReplies>, BackendError> {
        let _ = inspection;
        Err(BackendError::new(
            ErrorKind::Unsupported,
            "this backend cannot be inspected (it runs no Redis commands)",
        ))
    }

    /// A short name for statistics, logs and the error hook, such as
    /// `redis://127.0.0.1:7001`.
    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(std::any::type_name::<Self>())
    }
}

/// The boxed future every async method of [`LockBackend`] returns once
/// `async_trait` has expanded it.
type BoxedCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// The four request methods of [`forward_backend`], alike but for the name.
macro_rules! forward_requests {
    ($($method:ident),*) => {$(
        fn $method<'s, 'r, 'v, 'f>(&'s self, request: &'r Request<'v>) -> BoxedCall<'f, Reply>
        where
            's: 'f,
            'r: 'f,
            'v: 'f,
            Self: 'f,
        {
            (**self).$method(request)
        }
    )*};
}

/// `LockBackend` for a pointer to a backend. Each method hands back the
/// pointee's own boxed future instead of boxing a second future around it:
/// a `Redlock` keeps its nodes as `Box<dyn LockBackend>`, so every node call
/// goes through here, and a second box cost an allocation, a copy and a poll
/// per call.
macro_rules! forward_backend {
    ($($ptr:ty),*) => {$(
        impl<B: LockBackend + ?Sized> LockBackend for $ptr {
            forward_requests!(acquire, extend, release, fence);
            fn watch_releases<'s, 'c, 'w, 'f>(
                &'s self,
                channels: &'c [String],
                waker: &'w ReleaseWaker,
            ) -> BoxedCall<'f, ()>
            where
                's: 'f,
                'c: 'f,
                'w: 'f,
                Self: 'f,
            {
                (**self).watch_releases(channels, waker)
            }
            fn unwatch_releases<'s, 'f>(&'s self) -> BoxedCall<'f, ()>
            where
                's: 'f,
                Self: 'f,
            {
                (**self).unwatch_releases()
            }
            fn pubsub_kind(&self) -> PubSubKind {
                (**self).pubsub_kind()
            }
            fn node_age(&self, resources: &[String]) -> NodeAge {
                (**self).node_age(resources)
            }
            fn refresh_node_age<'s, 'r, 'f>(&'s self, resources: &'r [String]) -> BoxedCall<'f, ()>
            where
                's: 'f,
                'r: 'f,
                Self: 'f,
            {
                (**self).refresh_node_age(resources)
            }
            fn inspect<'s, 'i, 'f>(
                &'s self,
                inspection: &'i Inspection,
            ) -> BoxedCall<'f, Vec<ServerReplies>>
            where
                's: 'f,
                'i: 'f,
                Self: 'f,
            {
                (**self).inspect(inspection)
            }
            fn describe(&self) -> Cow<'_, str> {
                (**self).describe()
            }
        }
    )*};
}

forward_backend!(Box<B>, Arc<B>, &B);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Scripts;

    #[test]
    fn plain_set_nx_only_for_one_resource_with_the_builtin_script() {
        let scripts = Scripts::default();
        let one = vec!["r".to_owned()];
        let two = vec!["a".to_owned(), "b".to_owned()];
        let ttl = Duration::from_secs(1);
        let plain = |r: Request<'_>| r.plain_set_nx().map(str::to_owned);

        // Off unless the algorithm allows it.
        assert_eq!(plain(Request::new(&one, "v", ttl, scripts.acquire())), None);
        assert_eq!(
            plain(Request::new(&one, "v", ttl, scripts.acquire()).with_plain_set_nx(true)),
            Some("r".to_owned())
        );
        // Never for several keys, a custom script, or extra keys or arguments.
        assert_eq!(
            plain(Request::new(&two, "v", ttl, scripts.acquire()).with_plain_set_nx(true)),
            None
        );
        let custom = Script::new("return 1");
        assert_eq!(
            plain(Request::new(&one, "v", ttl, &custom).with_plain_set_nx(true)),
            None
        );
        let extra = vec!["x".to_owned()];
        assert_eq!(
            plain(
                Request::new(&one, "v", ttl, scripts.acquire())
                    .with_extra_keys(&extra)
                    .with_plain_set_nx(true)
            ),
            None
        );
        assert_eq!(
            plain(
                Request::new(&one, "v", ttl, scripts.acquire())
                    .with_extra_args(&extra)
                    .with_plain_set_nx(true)
            ),
            None
        );
    }
}
