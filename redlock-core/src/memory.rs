//! [`MemoryBackend`]: an in-process node with real TTLs, the embedded default.
//!
//! Each `MemoryBackend::new()` is one independent node; clones share it, so
//! several [`Redlock`](crate::Redlock)s (one per simulated process) can contend
//! on the same nodes, and N backends make a quorum. It implements the
//! semantics of the built-in scripts without Lua, and refuses custom scripts
//! with [`ErrorKind::Unsupported`]. Use it for examples, for fast tests of code
//! that takes a lock, and for the algorithm's own tests; it is no stand-in for
//! Redis in a test about Redis.
//!
//! A TTL longer than the clock can count from now (the algorithm never sends
//! one: it refuses TTLs above [`MAX_TTL`](crate::MAX_TTL), but a hand-built
//! [`Request`] or [`MemoryBackend::set`] can) is capped at the furthest
//! instant the clock can represent: the key then outlives the process.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::{BackendError, ErrorKind, LockBackend, Reply, Request};
use crate::inspect::{Inspection, ServerReplies, Target, Value};
use crate::runtime::{NeutralRuntime, Runtime};
use crate::wake::{ReleaseHub, ReleaseWaker};

/// An in-process lock node with real TTLs. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct MemoryBackend {
    inner: Arc<Node>,
}

#[derive(Debug)]
struct Node {
    name: String,
    runtime: Arc<dyn Runtime>,
    keys: Mutex<Keys>,
    hub: ReleaseHub,
}

#[derive(Debug, Default)]
struct Keys {
    map: HashMap<String, Entry>,
    /// Fence counters: never expire, only rise (legacy per-resource ones
    /// are folded into the per-slot ones and removed).
    fences: HashMap<String, u64>,
    /// Size after the last sweep of expired keys; the next sweep runs when the
    /// map has doubled, so expired keys never pile up.
    swept_at: usize,
}

#[derive(Debug)]
struct Entry {
    value: String,
    expires: Instant,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A new, empty node on the system clock.
    pub fn new() -> Self {
        Self::with_runtime(NeutralRuntime)
    }

    /// A new, empty node whose TTLs follow `runtime`'s clock (share the
    /// Redlock's runtime when a test drives time).
    pub fn with_runtime(runtime: impl Runtime) -> Self {
        Self::with_shared_runtime(Arc::new(runtime))
    }

    /// As [`with_runtime`](Self::with_runtime), with a shared runtime.
    pub fn with_shared_runtime(runtime: Arc<dyn Runtime>) -> Self {
        MemoryBackend {
            inner: Arc::new(Node {
                name: "memory".to_owned(),
                runtime,
                keys: Mutex::new(Keys::default()),
                hub: ReleaseHub::new(),
            }),
        }
    }

    /// Names the node in statistics and logs.
    pub fn named(self, name: impl Into<String>) -> Self {
        MemoryBackend {
            inner: Arc::new(Node {
                name: name.into(),
                runtime: self.inner.runtime.clone(),
                keys: Mutex::new(Keys::default()),
                hub: ReleaseHub::new(),
            }),
        }
    }

    fn keys(&self) -> MutexGuard<'_, Keys> {
        // Every critical section leaves the map consistent, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        self.inner.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of a live key.
    pub fn get(&self, key: &str) -> Option<String> {
        let now = self.inner.runtime.now();
        self.keys()
            .map
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone())
    }

    /// The time to live left on a live key.
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let now = self.inner.runtime.now();
        self.keys()
            .map
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.expires - now)
    }

    /// Sets a key as another owner would (for tests).
    pub fn set(&self, key: &str, value: &str, ttl: Duration) {
        let expires = expiry(self.inner.runtime.now(), ttl);
        self.keys().map.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires,
            },
        );
    }

    /// How many live keys the node holds.
    pub fn len(&self) -> usize {
        let now = self.inner.runtime.now();
        self.keys().map.values().filter(|e| e.expires > now).count()
    }

    /// Whether the node holds no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fence counter stored under `key` (see [`crate::keys::fence_key`]
    /// and [`crate::keys::legacy_fence_key`]).
    pub fn fence_counter(&self, key: &str) -> Option<u64> {
        self.keys().fences.get(key).copied()
    }

    /// Sets a fence counter (for tests: a node whose counter is ahead or behind).
    pub fn set_fence_counter(&self, key: &str, value: u64) {
        self.keys().fences.insert(key.to_owned(), value);
    }

    /// The names of the fence counters the node holds (per-slot and legacy
    /// alike), sorted: at most [`SLOTS`](crate::keys::SLOTS) per-slot ones,
    /// however many resources were fenced.
    pub fn fence_counter_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.keys().fences.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Keys stored, live or expired-but-not-yet-swept (to check that memory does
    /// not grow).
    pub fn stored(&self) -> usize {
        self.keys().map.len()
    }

    fn run(
        &self,
        request: &Request<'_>,
        op: impl FnOnce(&mut Keys, Instant) -> Reply,
    ) -> Result<Reply, BackendError> {
        if !request.script().is_builtin() {
            return Err(BackendError::new(
                ErrorKind::Unsupported,
                "MemoryBackend does not run Lua; custom scripts need a Redis backend",
            ));
        }
        let now = self.inner.runtime.now();
        let mut keys = self.keys();
        if keys.map.len() >= 2 * keys.swept_at.max(64) {
            keys.map.retain(|_, e| e.expires > now);
            keys.swept_at = keys.map.len();
        }
        Ok(op(&mut keys, now))
    }
}

/// `now + ttl`, or the furthest instant after `now` the clock can represent
/// when that overflows (never a panic).
fn expiry(now: Instant, ttl: Duration) -> Instant {
    if let Some(at) = now.checked_add(ttl) {
        return at;
    }
    // Largest representable step: halve until it fits, then add back halves.
    let (mut at, mut step) = (now, ttl);
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(next) => at = next,
            None => step /= 2,
        }
    }
    at
}

fn holds(keys: &Keys, key: &str, value: &str, now: Instant) -> bool {
    keys.map
        .get(key)
        .is_some_and(|e| e.expires > now && e.value == value)
}

#[async_trait]
impl LockBackend for MemoryBackend {
    async fn acquire(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.run(request, |keys, now| {
            let value = request.value();
            let blocked = request.resources().iter().any(|k| {
                keys.map
                    .get(k.as_str())
                    .is_some_and(|e| e.expires > now && e.value != value)
            });
            if blocked {
                return Reply::applied(0);
            }
            let expires = expiry(now, request.ttl());
            for k in request.resources() {
                keys.map.insert(
                    k.clone(),
                    Entry {
                        value: value.to_owned(),
                        expires,
                    },
                );
            }
            let reply = Reply::applied(request.resources().len());
            // A fenced acquire (the request with the fence counters as extra
            // keys) also reads the highest counter, in the same step.
            if request.extra_keys().is_empty() {
                return reply;
            }
            let fence = request
                .extra_keys()
                .iter()
                .filter_map(|k| keys.fences.get(k))
                .max()
                .copied()
                .unwrap_or(0);
            reply.with_fence(fence)
        })
    }

    async fn fence(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        let token = request
            .extra_args()
            .first()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| {
                BackendError::new(ErrorKind::Protocol, "fence request without a token")
            })?;
        self.run(request, |keys, now| {
            if !request
                .resources()
                .iter()
                .all(|k| holds(keys, k, request.value(), now))
            {
                return Reply::applied(0);
            }
            // As `FENCE_LUA`: the extra keys are the slot counters, then
            // (when there are as many again) the legacy per-resource
            // counters, each folded into its slot counter and deleted.
            let extra = request.extra_keys();
            let n = request.resources().len();
            let (slots, legacy) = if extra.len() == 2 * n {
                extra.split_at(n)
            } else {
                (extra, &[][..])
            };
            for (i, k) in slots.iter().enumerate() {
                let old = legacy.get(i).and_then(|l| keys.fences.remove(l));
                let counter = keys.fences.entry(k.clone()).or_insert(0);
                *counter = (*counter).max(token).max(old.unwrap_or(0));
            }
            Reply::applied(request.resources().len())
        })
    }

    async fn extend(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        self.run(request, |keys, now| {
            let value = request.value();
            if !request
                .resources()
                .iter()
                .all(|k| holds(keys, k, value, now))
            {
                return Reply::applied(0);
            }
            let expires = expiry(now, request.ttl());
            for k in request.resources() {
                if let Some(e) = keys.map.get_mut(k.as_str()) {
                    e.expires = expires;
                }
            }
            Reply::applied(request.resources().len())
        })
    }

    async fn release(&self, request: &Request<'_>) -> Result<Reply, BackendError> {
        // With wake-on-release the channels come in the extra args, one per
        // resource; each released resource is announced on its channel.
        let mut released = Vec::new();
        let reply = self.run(request, |keys, now| {
            for (i, k) in request.resources().iter().enumerate() {
                if holds(keys, k, request.value(), now) {
                    keys.map.remove(k.as_str());
                    released.push(i);
                }
            }
            Reply::applied(released.len())
        })?;
        for i in released {
            if let Some(channel) = request.extra_args().get(i) {
                self.inner.hub.notify(channel, request.value().as_bytes());
            }
        }
        Ok(reply)
    }

    async fn watch_releases(
        &self,
        channels: &[String],
        waker: &ReleaseWaker,
    ) -> Result<(), BackendError> {
        self.inner.hub.register(channels, waker);
        Ok(())
    }

    /// Answers the lock status's reads ([`Target::ByKey`]: `GET` of a key
    /// or a fence counter, `PTTL`), so that
    /// [`Redlock::status`](crate::Redlock::status) works in process. Any
    /// other command is an error reply in its place; the doctor's
    /// inspection ([`Target::EveryServer`]) is [`ErrorKind::Unsupported`]:
    /// there is no server to check, so its checks say "not checked".
    async fn inspect(&self, inspection: &Inspection) -> Result<Vec<ServerReplies>, BackendError> {
        if inspection.target != Target::ByKey {
            return Err(BackendError::new(
                ErrorKind::Unsupported,
                "MemoryBackend is no Redis server: there is nothing for the doctor to check",
            ));
        }
        let replies = inspection
            .commands
            .iter()
            .map(|args| match args.as_slice() {
                [cmd, key] if cmd.eq_ignore_ascii_case("GET") => match self.get(key) {
                    Some(value) => Value::Text(value),
                    None => self
                        .fence_counter(key)
                        .map_or(Value::Nil, |n| Value::Text(n.to_string())),
                },
                [cmd, key] if cmd.eq_ignore_ascii_case("PTTL") => match self.ttl(key) {
                    Some(ttl) => Value::Int(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
                    None => Value::Int(-2),
                },
                other => Value::Error(format!(
                    "ERR MemoryBackend answers only GET and PTTL, not {other:?}"
                )),
            })
            .collect();
        Ok(vec![ServerReplies::node(replies)])
    }

    fn describe(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.inner.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Scripts;

    #[test]
    fn the_lock_status_works_in_process() {
        futures::executor::block_on(async {
            let nodes = [
                MemoryBackend::new().named("a"),
                MemoryBackend::new().named("b"),
                MemoryBackend::new().named("c"),
            ];
            let redlock = crate::Redlock::builder(nodes.clone())
                .fencing(true)
                .build()
                .expect("valid");
            let lock = redlock
                .acquire(&["job"], Duration::from_secs(10))
                .await
                .expect("acquired");
            nodes[2].set("other", "x", Duration::from_secs(10));
            let status = redlock.status(&["job"]).await.expect("valid");
            // A quorum at least: the last vote may be left unanswered.
            assert!(
                matches!(status.holder(), Some((v, n)) if v == lock.value() && n >= 2),
                "{status}"
            );
            let holding = status
                .nodes
                .iter()
                .find(|n| n.holder().is_some())
                .expect("a node holds it");
            let keys = holding.keys.as_ref().expect("read");
            assert!(
                matches!(keys[0].state, crate::KeyState::Held { ttl: Some(ttl), .. } if ttl <= Duration::from_secs(10))
            );
            let fenced = status
                .nodes
                .iter()
                .filter(|n| n.keys.as_ref().ok().and_then(|k| k[0].fence) == lock.fencing_token())
                .count();
            assert!(fenced >= 2, "a quorum keeps the fence counter: {status:?}");
            lock.release().await.expect("released");
            let status = redlock.status(&["job", "other"]).await.expect("valid");
            assert_eq!(status.nodes_holding(), 0, "{status}");
            assert_eq!(
                status.nodes[2].keys.as_ref().expect("read")[1]
                    .state
                    .value(),
                Some("x")
            );
            // The doctor has no server to check.
            let report = redlock.doctor().await;
            assert!(report.passed(), "{report}");
            assert_eq!(report.of(crate::Check::Eviction).count(), 3);
            assert!(report
                .of(crate::Check::Eviction)
                .all(|f| f.severity == crate::Severity::NotChecked));
        });
    }

    #[test]
    fn a_huge_ttl_is_capped_not_a_panic() {
        let node = MemoryBackend::new();
        node.set("k", "v", Duration::MAX);
        assert_eq!(node.get("k").as_deref(), Some("v"));
        assert!(node
            .ttl("k")
            .is_some_and(|t| t > Duration::from_secs(1 << 40)));

        let scripts = Scripts::default();
        let resources = vec!["r".to_owned()];
        let request = Request::new(&resources, "v", Duration::MAX, scripts.acquire());
        let reply = futures::executor::block_on(node.acquire(&request)).expect("acquire");
        assert_eq!(reply.applied, 1);
        let request = Request::new(&resources, "v", Duration::MAX, scripts.extend());
        let reply = futures::executor::block_on(node.extend(&request)).expect("extend");
        assert_eq!(reply.applied, 1);
        assert!(node
            .ttl("r")
            .is_some_and(|t| t > Duration::from_secs(1 << 40)));
    }

    #[test]
    fn expiry_adds_when_it_can() {
        let now = Instant::now();
        assert_eq!(
            expiry(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = expiry(now, Duration::MAX);
        assert!(far > now && far.checked_add(Duration::from_secs(1)).is_none());
    }
}
