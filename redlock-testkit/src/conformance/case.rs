//! One running case: its nodes, its key prefix, the checks it makes on the
//! nodes (on the node itself where the fixture can look, through the lock
//! elsewhere), and the final "nothing left behind" check.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redlock_core::{Error, ErrorKind, Lock, Redlock, RedlockBuilder};

use super::support::{build, fast_builder, sleep, unique_prefix};
use super::CaseInfo;
use crate::fixture::{Fixture, Inspect, Nodes};
use crate::probe::Probe;
use crate::server::NodeOptions;

/// Whether `fixture` can run case `name` (a row of the table); if not,
/// prints `skipped: <label>: <reason>`.
pub(super) fn runnable<F: Fixture>(fixture: &F, name: &str, label: &str) -> bool {
    match skip_reason(fixture, name) {
        None => true,
        Some(reason) => {
            eprintln!("skipped: {label}: {reason}");
            false
        }
    }
}

/// Why `fixture` cannot run the case called `name`, or `None` if it can:
/// the fixture lacks one of the case's [needs](crate::fixture::Need), or the
/// backend does not declare one of its [capabilities](crate::Capabilities).
///
/// # Panics
///
/// If no case is called `name`.
pub fn skip_reason<F: Fixture>(fixture: &F, name: &str) -> Option<String> {
    let info =
        CaseInfo::of(name).unwrap_or_else(|| panic!("case `{name}` has no row in the case table"));
    if let Some(need) = info.needs.iter().find(|need| !fixture.provides(**need)) {
        return Some(format!(
            "{} cannot provide {} ({need:?})",
            fixture.describe(),
            need.describe()
        ));
    }
    let missing = info.capabilities.missing_from(fixture.capabilities());
    (!missing.is_empty()).then(|| {
        format!(
            "the backend does not declare the capability {}",
            missing.names().collect::<Vec<_>>().join(", ")
        )
    })
}

/// A case's nodes, its key prefix and the final check.
pub(super) struct Case<'f, F: Fixture> {
    pub(super) fixture: &'f F,
    pub(super) label: String,
    prefix: String,
    pub(super) nodes: F::Nodes,
    keys: Mutex<Vec<String>>,
}

impl<'f, F: Fixture> Case<'f, F> {
    /// Starts `n` nodes for the case `name`, or returns `None` after printing
    /// why this fixture cannot run it.
    pub(super) fn start(fixture: &'f F, name: &'static str, n: usize) -> Option<Self> {
        Self::start_with(fixture, name, n, NodeOptions::default())
    }

    /// As [`start`](Self::start), with node options (persistence, password).
    pub(super) fn start_with(
        fixture: &'f F,
        name: &'static str,
        n: usize,
        options: NodeOptions,
    ) -> Option<Self> {
        let sized = CaseInfo::of(name).is_some_and(|info| !info.sizes.is_empty());
        let label = if sized {
            format!("{name} ({n} nodes)")
        } else {
            name.to_owned()
        };
        if !runnable(fixture, name, &label) {
            return None;
        }
        let nodes = fixture
            .start(name, n, &options)
            .unwrap_or_else(|e| panic!("case `{label}`: {e}"));
        Some(Case {
            fixture,
            label,
            prefix: unique_prefix(name),
            nodes,
            keys: Mutex::new(Vec::new()),
        })
    }

    /// A key of this case (checked by [`finish`](Self::finish)).
    pub(super) fn key(&self, suffix: &str) -> String {
        let key = format!("{}:{suffix}", self.prefix);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.clone());
        key
    }

    /// A fresh backend for node `i`.
    pub(super) async fn backend(&self, i: usize) -> F::Backend {
        self.fixture
            .backend(&self.nodes, i)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "case `{}`: making a backend for node {i} failed: {e}; it must succeed even \
                     when the node is down",
                    self.label
                )
            })
    }

    /// Fresh backends for every node (one "process").
    pub(super) async fn backends(&self) -> Vec<F::Backend> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            out.push(self.backend(i).await);
        }
        out
    }

    /// A builder over every node, through fresh backends.
    pub(super) async fn builder(&self) -> RedlockBuilder {
        fast_builder(self.backends().await)
    }

    /// A Redlock over every node, through fresh backends.
    pub(super) async fn redlock(&self) -> Redlock {
        build(self.builder().await)
    }

    /// A Redlock over node `i` alone that tries once: another owner, or a
    /// check of one node.
    async fn one_node(&self, i: usize) -> Redlock {
        build(fast_builder(vec![self.backend(i).await]).retry_count(0))
    }

    /// Another owner takes `keys` on node `i` alone (each node its own
    /// value): what a minority or majority held by someone else looks like.
    pub(super) async fn hold_foreign(&self, i: usize, keys: &[&str], ttl: Duration) -> Lock {
        expect_lock(
            self.one_node(i).await.acquire(keys, ttl).await,
            &format!("another owner taking {keys:?} on node {i}"),
        )
    }

    /// Releases a foreign hold, asserting it was intact (every key still
    /// its own).
    pub(super) async fn release_foreign(&self, foreign: Lock, what: &str) {
        let release = foreign
            .release()
            .await
            .unwrap_or_else(|e| panic!("{what}: releasing the other owner's lock: {e:?}"));
        assert!(
            release.was_held() && release.released == 1,
            "{what}: the other owner's keys must be untouched: {release:?}"
        );
    }

    /// The view of node `i`, if the fixture can look at it.
    pub(super) fn inspect(&self, i: usize) -> Option<&dyn Inspect> {
        self.nodes.inspect(i)
    }

    /// The Redis probe of node `i`, if the fixture runs real redis-servers.
    pub(super) fn redis_if_real(&self, i: usize) -> Option<&Probe> {
        self.nodes.redis(i)
    }

    /// The Redis probe of node `i` (the case declared a Redis-only need).
    pub(super) fn redis(&self, i: usize) -> &Probe {
        self.nodes.redis(i).unwrap_or_else(|| {
            panic!(
                "case `{}` needs a real redis-server, yet its fixture provided this need",
                self.label
            )
        })
    }

    /// Whether node `i` is free of `key`: on the node itself if the fixture
    /// can look, else by taking and releasing it on that node alone.
    async fn is_free(&self, i: usize, key: &str) -> Result<(), String> {
        if let Some(view) = self.inspect(i) {
            return match view.value(key) {
                None => Ok(()),
                Some(value) => Err(format!("it holds {value:?}")),
            };
        }
        match self
            .one_node(i)
            .await
            .acquire(&[key], Duration::from_secs(5))
            .await
        {
            Ok(lock) => {
                let release = lock.release().await.map_err(|e| format!("{e:?}"))?;
                release
                    .was_held()
                    .then_some(())
                    .ok_or_else(|| format!("the check lock was not released: {release:?}"))
            }
            Err(e) => Err(format!("another owner is refused: {e:?}")),
        }
    }

    /// Asserts what node `i` holds under `key`: `Some(value)`, or nothing.
    /// Without a view of the node, `Some` is checked as "held" (another
    /// owner is refused) and `None` as "free".
    pub(super) async fn assert_value(
        &self,
        i: usize,
        key: &str,
        expected: Option<&str>,
        what: &str,
    ) {
        if let Some(view) = self.inspect(i) {
            assert_eq!(
                view.value(key).as_deref(),
                expected,
                "{what}: node {i}, key {key}"
            );
            return;
        }
        match expected {
            None => {
                if let Err(e) = self.is_free(i, key).await {
                    panic!("{what}: node {i} must not hold {key}, but {e}");
                }
            }
            Some(_) => {
                self.assert_taken(i, key, what).await;
            }
        }
    }

    /// Asserts that node `i` holds `key` (for anyone) and returns its value
    /// where the fixture can look; elsewhere checks that another owner is
    /// refused and returns `None`.
    pub(super) async fn assert_taken(&self, i: usize, key: &str, what: &str) -> Option<String> {
        if let Some(view) = self.inspect(i) {
            let value = view.value(key);
            assert!(value.is_some(), "{what}: node {i} must hold {key}");
            return value;
        }
        let result = self
            .one_node(i)
            .await
            .acquire(&[key], Duration::from_secs(5))
            .await;
        assert!(
            matches!(result, Err(Error::Held(_))),
            "{what}: node {i} must hold {key} (another owner refused), got {result:?}"
        );
        None
    }

    /// Asserts that node `i`'s `key` has a TTL in (`low`, `high`] ms, where
    /// the fixture can look (no check elsewhere).
    pub(super) fn assert_ttl_in(&self, i: usize, key: &str, low: i64, high: i64, what: &str) {
        if let Some(view) = self.inspect(i) {
            assert_ttl_in(view.ttl_millis(key), low, high, what);
        }
    }

    /// Waits up to `limit` until node `i` no longer holds `key`.
    pub(super) async fn gone_within(&self, i: usize, key: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.is_free(i, key).await.is_ok() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills node `i`.
    pub(super) fn kill(&self, i: usize) {
        self.nodes
            .kill(i)
            .unwrap_or_else(|e| panic!("case `{}`: kill node {i}: {e}", self.label));
    }

    /// Pauses node `i`.
    pub(super) fn pause(&self, i: usize) {
        self.nodes
            .pause(i)
            .unwrap_or_else(|e| panic!("case `{}`: pause node {i}: {e}", self.label));
    }

    /// Resumes node `i`.
    pub(super) fn resume(&self, i: usize) {
        self.nodes
            .resume(i)
            .unwrap_or_else(|e| panic!("case `{}`: resume node {i}: {e}", self.label));
    }

    /// Restarts node `i`, keeping its keys.
    pub(super) fn restart(&self, i: usize) {
        self.nodes
            .restart(i)
            .unwrap_or_else(|e| panic!("case `{}`: restart node {i}: {e}", self.label));
    }

    /// Asserts that no running node holds a key of this case (foreign keys
    /// must have been released by the case after checking them). Resumes
    /// paused nodes first; skips nodes that are down. On a real node every
    /// key under the case's prefix counts, elsewhere every key the case made.
    pub(super) async fn finish(self) {
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for i in 0..self.nodes.len() {
            if self.nodes.is_paused(i) {
                let _ = self.nodes.resume(i);
            }
            if !self.nodes.is_up(i) {
                continue;
            }
            let left: Vec<(String, String)> = match self.nodes.redis(i) {
                Some(probe) => probe
                    .keys(&format!("{}*", glob_escape(&self.prefix)))
                    .into_iter()
                    .map(|k| {
                        let value = format!("{:?}", probe.get(&k));
                        (k, value)
                    })
                    .collect(),
                None => {
                    let mut left = Vec::new();
                    for key in &keys {
                        if let Err(e) = self.is_free(i, key).await {
                            left.push((key.clone(), e));
                        }
                    }
                    left
                }
            };
            assert!(
                left.is_empty(),
                "case `{}`: keys left behind on node {i}: {left:?}; every lock must be released \
                 (and every partial lock undone) before the call returns",
                self.label
            );
        }
    }
}

/// Escapes glob characters so a prefix matches itself only.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The lock, or a panic naming `what` and the error.
pub(super) fn expect_lock(result: Result<Lock, Error>, what: &str) -> Lock {
    result.unwrap_or_else(|e| panic!("{what}: expected the lock to be acquired, got {e:?}"))
}

/// Asserts that `result` is `Error::Held`, naming `what`.
pub(super) fn assert_held<T: std::fmt::Debug>(result: &Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::Held(_))),
        "{what}: expected Error::Held, got {result:?}"
    );
}

/// Asserts that `result` is `Error::Rejected` at the first attempt (a
/// permanent error: no retries) with a rejection of `kind`.
pub(super) fn assert_rejected(result: &Result<Lock, Error>, kind: ErrorKind, what: &str) {
    match result {
        Err(e @ Error::Rejected(failure)) => {
            let rejection = e.failure().and_then(|f| f.rejection()).map(|r| r.kind());
            assert_eq!(
                rejection,
                Some(kind),
                "{what}: the rejection must be {kind:?}: {e}"
            );
            assert_eq!(
                failure.attempts.total(),
                1,
                "{what}: {kind:?} is permanent: no retries"
            );
        }
        other => panic!("{what}: expected Error::Rejected with {kind:?}, got {other:?}"),
    }
}

/// Asserts a `PTTL` answer in (`low_exclusive`, `high`] ms.
pub(super) fn assert_ttl_in(pttl: Option<i64>, low_exclusive: i64, high: i64, what: &str) {
    assert!(
        matches!(pttl, Some(ms) if ms > low_exclusive && ms <= high),
        "{what}: expected PTTL in ({low_exclusive}, {high}] ms, the node says {pttl:?}"
    );
}

/// The quorum of `n` nodes.
pub(super) fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The largest minority of `n`.
pub(super) fn minority(n: usize) -> usize {
    (n - 1) / 2
}
