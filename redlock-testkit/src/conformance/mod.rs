//! The conformance suite every Redis backend runs, in the shape of
//! object_store's `integration` module: one public async function per
//! behaviour, generic over a [`Connector`].
//!
//! Each case starts its own real `redis-server` processes (so cases run in
//! parallel test threads), builds [`Redlock`]s over
//! [`Connector::standalone`] (or [`Connector::cluster`]) backends, asserts
//! with `assert!`/`assert_eq!` (a failing case panics with what it expected),
//! and ends by checking with a [`Probe`] that no key of its own (each case has
//! a unique key prefix) is left on any node.
//!
//! The cases are runtime neutral: they spawn nothing, sleep with
//! `futures-timer`, and run concurrent work with `join_all` in their own task.
//! Run them with any executor through [`conformance_tests!`](crate::conformance_tests),
//! or call them yourself:
//!
//! ```no_run
//! # use redlock_core::{async_trait, BackendError, MemoryBackend};
//! # struct MyConnector;
//! # #[async_trait]
//! # impl redlock_testkit::Connector for MyConnector {
//! #     type Backend = MemoryBackend;
//! #     async fn standalone(&self, _: &str) -> Result<MemoryBackend, BackendError> {
//! #         Ok(MemoryBackend::new())
//! #     }
//! #     async fn cluster(&self, _: &[String]) -> Option<Result<MemoryBackend, BackendError>> {
//! #         None
//! #     }
//! # }
//! #[test]
//! fn exclusivity() {
//!     redlock_testkit::block_on_tokio(redlock_testkit::conformance::exclusivity(&MyConnector));
//! }
//! # fn main() {}
//! ```
//!
//! The Redlocks the cases build use [`NeutralRuntime`](redlock_core::NeutralRuntime) for time, short retry
//! delays (20 ± 10 ms), 3 retries and a 1 s per-node timeout, unless a case
//! says otherwise.
//!
//! # The cases
//!
//! | case | nodes | what it checks |
//! |---|---|---|
//! | [`acquire_extend_release`] | 1 | `GET` = value, `PTTL` in (0, ttl], extend resets the TTL, release deletes |
//! | [`multi_resource_all_or_nothing`] | 1 | one key held by another value: `Held`, the other keys not written |
//! | [`overlapping_multi_locks`] | 1 | {a,b} held: {b,c} `Held`, {c,d} acquired |
//! | [`exclusivity`] | 3 | a second owner gets `Held` after exactly retry_count+1 attempts |
//! | [`automatic_expiry`] | 1 | the key vanishes at its TTL; another owner acquires |
//! | [`release_and_extend_only_by_owner`] | 1 | foreign value: extend `Expired`, release `was_held() == false`, key untouched |
//! | [`release_of_expired_lock`] | 1 | `Ok`, not held, one round |
//! | [`minority_held`] / [`majority_held`] | 3, 5 | acquired / `Held`; foreign keys untouched, no key of ours left |
//! | [`minority_killed`] / [`majority_killed`] | 3, 5 | acquired / `NoQuorum`; no key left on live nodes |
//! | [`noscript_fallback`] | 1 | `SCRIPT FLUSH` before acquire, extend and release |
//! | [`custom_scripts`] | 1 | custom acquire, extend and release scripts leave server-side markers |
//! | [`using_keeps_lock_while_routine_runs`] | 1 | 300 ms TTL held through a 1 s routine; released on return |
//! | [`using_returns_routine_error`] | 1 | the routine's error, unmasked; released |
//! | [`cluster_hash_tagged_multi_resource`] | cluster | tagged keys acquired/extended/released; fencing on a cluster |
//! | [`cluster_cross_slot_rejected`] | cluster | `Rejected` with `CrossSlot`, no retries, nothing written |
//! | [`unreachable_node_refused`] | 3 | dead node: acquired, its outcome `Failed(Connection/Timeout)` |
//! | [`paused_node_times_out`] | 3 | SIGSTOPped node: acquire and release return (per-node timeout) |
//! | [`node_restart_with_persistence`] | 1 | the lock survives a crash+restart; the backend reconnects |
//! | [`password_in_url`] / [`wrong_password_rejected`] | 1 | `redis://:pw@...` works; a wrong one is `Rejected(Auth)` |
//! | [`contention`] | 3 | 4 owners × 10 rounds: no lost update, no overlap, real contention |
//! | [`bad_input_reaches_no_node`] | 1 | `InvalidInput`, `DBSIZE` 0, no script ran |
//! | [`fencing_tokens`] | 3 | tokens rise across owners and with a node down (skipped if unsupported) |
//! | [`wake_on_release`] | 3 | a 5 s retry delay is cut short by the release (skipped if unsupported) |
//!
//! [`node_independent`] holds the cases that need no Redis process, for any
//! [`LockBackend`](redlock_core::LockBackend) (run by
//! [`node_independent_tests!`](crate::node_independent_tests)).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use redlock_core::scripts::{ACQUIRE_LUA, EXTEND_LUA, RELEASE_LUA};
use redlock_core::{
    Error, ErrorKind, InvalidInput, Lock, NodeOutcome, Redlock, RedlockBuilder, RetryCount, Script,
    Scripts,
};

use crate::probe::{ClusterProbe, Probe};
use crate::server::{NodeOptions, RedisCluster, RedisNode, RedisNodes};
use crate::Connector;

pub mod node_independent;
mod support;

use support::{build, fast_builder};
pub use support::{sleep, unique_prefix, within};

/// How long one case may take before [`conformance_tests!`](crate::conformance_tests)
/// fails it as hung.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `case`, failing it if it takes longer than [`CASE_DEADLINE`]: a hung
/// backend fails its test instead of hanging the suite.
pub async fn with_deadline<F: Future>(name: &str, case: F) -> F::Output {
    within(CASE_DEADLINE, &format!("conformance case `{name}`"), case).await
}

// ---------------------------------------------------------------------------
// The fixture

/// A case's nodes, its key prefix and the final check.
struct Case {
    name: &'static str,
    prefix: String,
    nodes: RedisNodes,
    probes: Vec<Probe>,
}

impl Case {
    fn start(name: &'static str, n: usize) -> Case {
        Self::start_with(name, n, NodeOptions::default())
    }

    fn start_with(name: &'static str, n: usize, options: NodeOptions) -> Case {
        let nodes = RedisNodes::start_with(n, options).unwrap_or_else(|e| {
            panic!("case `{name}`: could not start {n} redis-server node(s): {e}")
        });
        let probes = nodes.probes();
        Case {
            name,
            prefix: unique_prefix(name),
            nodes,
            probes,
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    fn probe(&self, i: usize) -> &Probe {
        &self.probes[i]
    }

    async fn backends<C: Connector>(&self, connector: &C) -> Vec<C::Backend> {
        backends(connector, &self.nodes.urls()).await
    }

    /// A builder over every node, through fresh backends (one "process").
    async fn builder<C: Connector>(&self, connector: &C) -> RedlockBuilder {
        fast_builder(self.backends(connector).await)
    }

    async fn redlock<C: Connector>(&self, connector: &C) -> Redlock {
        build(self.builder(connector).await)
    }

    /// Keys of this case on node `i`.
    fn keys_on(&self, i: usize) -> Vec<String> {
        self.probes[i].keys(&format!("{}*", glob_escape(&self.prefix)))
    }

    /// Asserts that no node holds a key of this case (foreign keys must have
    /// been deleted by the case after checking them). Resumes paused nodes
    /// first; skips nodes that are down.
    fn finish(self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_paused() {
                let _ = node.resume();
            }
            if !node.is_running() {
                continue;
            }
            let left = self.keys_on(i);
            assert!(
                left.is_empty(),
                "case `{}`: keys left behind on node {i} ({}): {:?}; every lock must be released \
                 (and every partial lock undone) before the call returns",
                self.name,
                node.url(),
                left.iter()
                    .map(|k| (k, self.probes[i].get(k)))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// Escapes glob characters so a prefix matches itself only.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn backends<C: Connector>(connector: &C, urls: &[String]) -> Vec<C::Backend> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let backend = connector.standalone(url).await.unwrap_or_else(|e| {
            panic!("connector.standalone({url:?}) failed: {e}; it must succeed even when the node is down")
        });
        out.push(backend);
    }
    out
}

fn expect_lock(result: Result<Lock, Error>, what: &str) -> Lock {
    result.unwrap_or_else(|e| panic!("{what}: expected the lock to be acquired, got {e:?}"))
}

fn assert_pttl_in(pttl: Option<i64>, low_exclusive: i64, high: i64, what: &str) {
    assert!(
        matches!(pttl, Some(ms) if ms > low_exclusive && ms <= high),
        "{what}: expected PTTL in ({low_exclusive}, {high}] ms, the server says {pttl:?}"
    );
}

/// Waits until `check` holds, up to `limit`, polling every 10 ms.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

const FOREIGN: &str = "foreign-owner-value";

// ---------------------------------------------------------------------------
// One node

/// Acquire, extend and release on one node, checked on the server: `GET`
/// equals the lock's value, `PTTL` is within the TTL after acquire, is reset
/// (not added to) by extend, and the key is gone after release.
pub async fn acquire_extend_release<C: Connector>(connector: &C) {
    let case = Case::start("acquire_extend_release", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(lock.value()),
        "after acquire, GET {key} must be the lock's value"
    );
    assert_pttl_in(probe.pttl(&key), 0, 10_000, "after acquire with a 10 s TTL");
    assert_eq!(
        lock.attempts().total(),
        1,
        "a free resource is acquired at the first attempt"
    );
    assert!(
        lock.remaining_validity() > Duration::from_secs(9),
        "validity left: {lock:?}"
    );

    let extended = lock
        .extend(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("extend: expected the lock to be extended, got {e:?}"));
    assert_eq!(extended.value(), lock.value(), "extend keeps the value");
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(lock.value()),
        "after extend, GET {key}"
    );
    // Reset to 20 s, not 10 s + 20 s.
    assert_pttl_in(
        probe.pttl(&key),
        10_000,
        20_000,
        "after extend to 20 s (a reset, not an addition)",
    );
    assert!(
        extended.expiration() > lock.expiration(),
        "the extended lock expires later"
    );

    let release = extended
        .release()
        .await
        .unwrap_or_else(|e| panic!("release: expected Ok, got {e:?}"));
    assert!(
        release.was_held(),
        "release of a held lock reports was_held: {release:?}"
    );
    assert_eq!(release.released, 1, "one node deleted the key: {release:?}");
    assert_eq!(probe.get(&key), None, "after release, {key} must be gone");
    case.finish();
}

/// A multi-resource lock is all or nothing: with one key held by another
/// value, acquisition fails with `Error::Held` and writes none of the other
/// keys; with all keys free, every key gets the value.
pub async fn multi_resource_all_or_nothing<C: Connector>(connector: &C) {
    let case = Case::start("multi_resource_all_or_nothing", 1);
    let (a, b, c) = (case.key("a"), case.key("b"), case.key("c"));
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    probe.set_px(&b, FOREIGN, 10_000);
    let result = redlock
        .acquire(&[&a, &b, &c], Duration::from_secs(10))
        .await;
    assert!(
        matches!(result, Err(Error::Held(_))),
        "acquire [a, b, c] with b held by another value: expected Error::Held, got {result:?}"
    );
    assert_eq!(probe.get(&a), None, "a must not be written when b is held");
    assert_eq!(probe.get(&c), None, "c must not be written when b is held");
    assert_eq!(
        probe.get(&b).as_deref(),
        Some(FOREIGN),
        "the foreign b is untouched"
    );
    assert_pttl_in(probe.pttl(&b), 0, 10_000, "the foreign b keeps its TTL");
    assert!(probe.del(&b));

    let d = case.key("d");
    let lock = expect_lock(
        redlock
            .acquire(&[&a, &c, &d], Duration::from_secs(10))
            .await,
        "acquire [a, c, d], all free",
    );
    for key in [&a, &c, &d] {
        assert_eq!(
            probe.get(key).as_deref(),
            Some(lock.value()),
            "GET {key} after a multi-resource acquire"
        );
        assert_pttl_in(
            probe.pttl(key),
            0,
            10_000,
            "each key of a multi-resource lock",
        );
    }
    let release = lock
        .release()
        .await
        .expect("release of a multi-resource lock");
    assert!(release.was_held(), "{release:?}");
    for key in [&a, &c, &d] {
        assert_eq!(probe.get(key), None, "{key} must be gone after release");
    }
    case.finish();
}

/// Overlapping multi-resource locks exclude each other: with {a, b} held,
/// {b, c} fails (and c is not written), {c, d} succeeds.
pub async fn overlapping_multi_locks<C: Connector>(connector: &C) {
    let case = Case::start("overlapping_multi_locks", 1);
    let (a, b, c, d) = (case.key("a"), case.key("b"), case.key("c"), case.key("d"));
    let probe = case.probe(0);
    let first = case.redlock(connector).await;
    let second = build(case.builder(connector).await.retry_count(1));

    let ab = expect_lock(
        first.acquire(&[&a, &b], Duration::from_secs(10)).await,
        "acquire {a, b}",
    );
    let bc = second.acquire(&[&b, &c], Duration::from_secs(10)).await;
    assert!(
        matches!(bc, Err(Error::Held(_))),
        "acquire {{b, c}} while {{a, b}} is held: expected Error::Held, got {bc:?}"
    );
    assert_eq!(
        probe.get(&c),
        None,
        "c must not be written by the failed {{b, c}}"
    );
    assert_eq!(
        probe.get(&b).as_deref(),
        Some(ab.value()),
        "b still belongs to {{a, b}}"
    );

    let cd = expect_lock(
        second.acquire(&[&c, &d], Duration::from_secs(10)).await,
        "acquire {c, d} while {a, b} is held",
    );
    assert_eq!(probe.get(&c).as_deref(), Some(cd.value()));
    assert_eq!(probe.get(&d).as_deref(), Some(cd.value()));

    assert!(ab.release().await.expect("release {a, b}").was_held());
    assert!(cd.release().await.expect("release {c, d}").was_held());
    case.finish();
}

/// While one Redlock holds a resource on 3 nodes, a second one (its own
/// connections, as another process) fails with `Error::Held` after its
/// retries, and the keys still hold the first lock's value.
pub async fn exclusivity<C: Connector>(connector: &C) {
    let case = Case::start("exclusivity", 3);
    let key = case.key("resource");
    let first = case.redlock(connector).await;
    let second = build(case.builder(connector).await.retry_count(2));

    let lock = expect_lock(
        first.acquire(&[&key], Duration::from_secs(10)).await,
        "first acquire",
    );
    let other = second.acquire(&[&key], Duration::from_secs(10)).await;
    match &other {
        Err(Error::Held(failure)) => assert_eq!(
            failure.attempts.total(),
            3,
            "retry_count 2 means 3 attempts: {failure}"
        ),
        other => panic!("a second owner must fail with Error::Held, got {other:?}"),
    }
    // A quorum holds the first owner's value (a node not awaited once the
    // quorum was reached may hold nothing), and no node holds anything else.
    let values: Vec<Option<String>> = (0..3).map(|i| case.probe(i).get(&key)).collect();
    let holding = values
        .iter()
        .filter(|v| v.as_deref() == Some(lock.value()))
        .count();
    assert!(
        holding >= 2
            && values
                .iter()
                .all(|v| v.is_none() || v.as_deref() == Some(lock.value())),
        "after the second owner failed, a quorum must still hold the first owner's value {:?} \
         and no node another value: {values:?}",
        lock.value()
    );
    assert!(lock.release().await.expect("release").was_held());
    let again = expect_lock(
        second.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire after release",
    );
    assert!(again.release().await.expect("release").was_held());
    case.finish();
}

/// A short-TTL lock's key disappears from the server at its TTL, and another
/// owner can then acquire the resource.
pub async fn automatic_expiry<C: Connector>(connector: &C) {
    let case = Case::start("automatic_expiry", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let first = case.redlock(connector).await;
    let second = build(case.builder(connector).await.retry_count(0));

    let ttl = Duration::from_millis(200);
    let started = Instant::now();
    let lock = expect_lock(
        first.acquire(&[&key], ttl).await,
        "acquire with a 200 ms TTL",
    );
    match probe.pttl(&key) {
        Some(ms) => assert!(ms > 0 && ms <= 200, "a 200 ms lock: PTTL {ms} ms"),
        // Only a stalled machine gets here: the key may be gone already.
        None => assert!(
            started.elapsed() >= Duration::from_millis(150),
            "the key of a 200 ms lock vanished after {:?}",
            started.elapsed()
        ),
    }
    let gone = eventually(Duration::from_secs(3), || probe.get(&key).is_none()).await;
    assert!(gone, "the key of a 200 ms lock must expire on the server");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the key vanished after {:?}, long before its 200 ms TTL",
        started.elapsed()
    );
    assert!(lock.is_expired(), "the Lock knows it expired");

    let next = expect_lock(
        second.acquire(&[&key], ttl * 5).await,
        "acquire after expiry",
    );
    assert_eq!(probe.get(&key).as_deref(), Some(next.value()));
    assert!(next.release().await.expect("release").was_held());
    case.finish();
}

/// Only the owner can release or extend: with a foreign value in the key,
/// release leaves it untouched and reports `was_held() == false`, and extend
/// fails with `Error::Expired`.
pub async fn release_and_extend_only_by_owner<C: Connector>(connector: &C) {
    let case = Case::start("release_and_extend_only_by_owner", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );
    // Someone else now holds the key (as after an expiry and a new owner).
    probe.set_px(&key, FOREIGN, 10_000);

    let extended = lock.extend(Duration::from_secs(10)).await;
    assert!(
        matches!(extended, Err(Error::Expired { .. })),
        "extend of a lock whose key holds another value: expected Error::Expired, got {extended:?}"
    );
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(FOREIGN),
        "a failed extend leaves the foreign value"
    );
    assert_pttl_in(
        probe.pttl(&key),
        0,
        10_000,
        "a failed extend leaves the foreign TTL",
    );

    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release of a lock no longer held must be Ok, got {e:?}"));
    assert!(
        !release.was_held(),
        "release must report was_held false: {release:?}"
    );
    assert_eq!(release.not_held, 1, "{release:?}");
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(FOREIGN),
        "release must not delete another owner's key"
    );
    assert!(probe.del(&key));
    case.finish();
}

/// Releasing a lock that already expired is `Ok` with `was_held() == false`,
/// in one round (no retry storm).
pub async fn release_of_expired_lock<C: Connector>(connector: &C) {
    let case = Case::start("release_of_expired_lock", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_millis(100)).await,
        "acquire",
    );
    assert!(
        eventually(Duration::from_secs(3), || probe.get(&key).is_none()).await,
        "the 100 ms key must expire"
    );
    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release of an expired lock must be Ok, got {e:?}"));
    assert!(!release.was_held(), "{release:?}");
    assert_eq!(
        release.not_held, 1,
        "the node answered that it did not hold it: {release:?}"
    );
    assert_eq!(release.failed, 0, "{release:?}");
    assert_eq!(
        release.attempts.total(),
        1,
        "a node that answered is never asked again: one release round, got {:?}",
        release.attempts
    );
    case.finish();
}

// ---------------------------------------------------------------------------
// N independent nodes

fn minority(n: usize) -> usize {
    (n - 1) / 2
}

fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// On `n` nodes (3 or 5 in the suite), a minority holding the resource under
/// another value does not stop the acquisition; the foreign keys are untouched.
pub async fn minority_held<C: Connector>(connector: &C, n: usize) {
    let case = Case::start("minority_held", n);
    let key = case.key("resource");
    let held = minority(n);
    for i in 0..held {
        case.probe(i).set_px(&key, FOREIGN, 10_000);
    }
    let redlock = case.redlock(connector).await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        &format!("acquire with {held} of {n} nodes held by another value"),
    );
    // With n odd and a minority held, the quorum needs every free node.
    for i in 0..n {
        let expected = if i < held { FOREIGN } else { lock.value() };
        assert_eq!(
            case.probe(i).get(&key).as_deref(),
            Some(expected),
            "node {i} of {n}"
        );
    }
    let release = lock.release().await.expect("release");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.not_held, held,
        "the foreign nodes answer not-held: {release:?}"
    );
    for i in 0..held {
        assert_eq!(
            case.probe(i).get(&key).as_deref(),
            Some(FOREIGN),
            "foreign key on node {i} untouched"
        );
        assert_pttl_in(
            case.probe(i).pttl(&key),
            0,
            10_000,
            "the foreign key keeps its TTL",
        );
        assert!(case.probe(i).del(&key));
    }
    case.finish();
}

/// On `n` nodes, with a minority killed (connections refused), acquisition
/// succeeds and every live node holds the value.
pub async fn minority_killed<C: Connector>(connector: &C, n: usize) {
    let case = Case::start("minority_killed", n);
    let key = case.key("resource");
    let dead = minority(n);
    let redlock = case.redlock(connector).await;
    for i in 0..dead {
        case.nodes[i].kill();
    }
    let lock = expect_lock(
        within(
            Duration::from_secs(10),
            "acquire with a minority killed",
            redlock.acquire(&[&key], Duration::from_secs(10)),
        )
        .await,
        &format!("acquire with {dead} of {n} nodes killed"),
    );
    // With a minority dead, the quorum needs... every live node when n is odd.
    let live_holding = (dead..n)
        .filter(|&i| case.probe(i).get(&key).as_deref() == Some(lock.value()))
        .count();
    assert!(
        live_holding >= quorum(n),
        "a quorum of live nodes holds the value ({live_holding} of {n})"
    );
    let release = within(
        Duration::from_secs(10),
        "release with a minority killed",
        lock.release(),
    )
    .await
    .expect("release with a minority killed");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.failed, dead,
        "the killed nodes fail the release: {release:?}"
    );
    case.finish();
}

/// On `n` nodes, a majority holding the resource under another value makes
/// acquisition fail with `Error::Held`; no key of ours is left on any node
/// and the foreign keys are untouched.
pub async fn majority_held<C: Connector>(connector: &C, n: usize) {
    let case = Case::start("majority_held", n);
    let key = case.key("resource");
    let held = quorum(n);
    for i in 0..held {
        case.probe(i).set_px(&key, FOREIGN, 10_000);
    }
    let redlock = build(case.builder(connector).await.retry_count(1));
    let result = redlock.acquire(&[&key], Duration::from_secs(10)).await;
    match &result {
        Err(Error::Held(failure)) => {
            assert_eq!(
                failure.attempts.total(),
                2,
                "retry_count 1: two attempts: {failure}"
            );
            let last = failure.attempts.last().expect("attempt statistics");
            assert!(
                last.votes_against() >= 1,
                "the holders vote against: {last:?}"
            );
        }
        other => {
            panic!("acquire with {held} of {n} nodes held: expected Error::Held, got {other:?}")
        }
    }
    for i in 0..n {
        if i < held {
            assert_eq!(
                case.probe(i).get(&key).as_deref(),
                Some(FOREIGN),
                "foreign key on node {i} untouched"
            );
            assert_pttl_in(
                case.probe(i).pttl(&key),
                0,
                10_000,
                "the foreign key keeps its TTL",
            );
            assert!(case.probe(i).del(&key));
        } else {
            assert_eq!(
                case.probe(i).get(&key),
                None,
                "node {i}: a failed acquisition must undo its partial lock"
            );
        }
    }
    case.finish();
}

/// On `n` nodes, a majority killed makes acquisition fail with
/// `Error::NoQuorum` (not `Held`), leaving no key on the live nodes.
pub async fn majority_killed<C: Connector>(connector: &C, n: usize) {
    let case = Case::start("majority_killed", n);
    let key = case.key("resource");
    let dead = quorum(n);
    let redlock = build(case.builder(connector).await.retry_count(1));
    for i in 0..dead {
        case.nodes[i].kill();
    }
    let result = within(
        Duration::from_secs(10),
        "acquire with a majority killed",
        redlock.acquire(&[&key], Duration::from_secs(10)),
    )
    .await;
    match &result {
        Err(Error::NoQuorum(failure)) => {
            let last = failure.attempts.last().expect("attempt statistics");
            assert!(last.failures() >= 1, "failed nodes are counted: {last:?}");
            for (node, e) in last.errors() {
                assert!(
                    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
                    "node {node} is down: its error should be Connection or Timeout, got {e:?}"
                );
            }
        }
        other => panic!(
            "acquire with {dead} of {n} nodes killed: expected Error::NoQuorum, got {other:?}"
        ),
    }
    for i in dead..n {
        assert_eq!(
            case.probe(i).get(&key),
            None,
            "live node {i}: the partial lock must be undone"
        );
    }
    case.finish();
}

// ---------------------------------------------------------------------------
// Scripts

/// After `SCRIPT FLUSH` the adapter's `EVALSHA` gets `NOSCRIPT` and must fall
/// back to `EVAL`: acquire, extend and release keep working.
pub async fn noscript_fallback<C: Connector>(connector: &C) {
    let case = Case::start("noscript_fallback", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    // Warm up so the scripts are cached, then forget them.
    let warm = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "first acquire",
    );
    assert!(warm.release().await.expect("first release").was_held());
    assert!(
        probe.command_calls("evalsha") >= 1,
        "a Redis adapter sends its scripts by EVALSHA (with an EVAL fallback on NOSCRIPT); \
         the node saw no EVALSHA"
    );

    probe.script_flush();
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire after SCRIPT FLUSH (NOSCRIPT must fall back to EVAL)",
    );
    assert_eq!(probe.get(&key).as_deref(), Some(lock.value()));
    probe.script_flush();
    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend after SCRIPT FLUSH: {e:?}"));
    probe.script_flush();
    let release = lock
        .release()
        .await
        .unwrap_or_else(|e| panic!("release after SCRIPT FLUSH: {e:?}"));
    assert!(
        release.was_held(),
        "release after SCRIPT FLUSH: {release:?}"
    );
    assert_eq!(probe.get(&key), None);
    case.finish();
}

/// Custom acquire, extend and release scripts reach Redis: each one here does
/// something observable besides the lock (marker keys), and the markers are
/// checked on the server.
pub async fn custom_scripts<C: Connector>(connector: &C) {
    let case = Case::start("custom_scripts", 1);
    let key = case.key("resource");
    let acquired = case.key("custom-ran");
    let extended = case.key("custom-extend-ran");
    let probe = case.probe(0);

    let scripts = Scripts::default()
        .with_acquire(Script::new(format!(
            "redis.call('SET', '{acquired}', '1', 'PX', 60000)\n{ACQUIRE_LUA}"
        )))
        .with_extend(Script::new(format!(
            "redis.call('SET', '{extended}', '1', 'PX', 60000)\n{EXTEND_LUA}"
        )))
        .with_release(Script::new(format!(
            "redis.call('DEL', '{acquired}', '{extended}')\n{RELEASE_LUA}"
        )));
    let redlock = build(case.builder(connector).await.scripts(scripts));

    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire with a custom script",
    );
    assert_eq!(probe.get(&key).as_deref(), Some(lock.value()));
    assert_eq!(
        probe.get(&acquired).as_deref(),
        Some("1"),
        "the custom acquire script must run on the server (it sets {acquired}); was the built-in one sent?"
    );
    assert!(
        probe.pttl(&acquired).is_some_and(|ms| ms > 0),
        "the marker was set with PX"
    );
    assert_eq!(probe.get(&extended), None);

    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend with a custom script: {e:?}"));
    assert_eq!(
        probe.get(&extended).as_deref(),
        Some("1"),
        "the custom extend script must run on the server (it sets {extended})"
    );

    let release = lock.release().await.expect("release with a custom script");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(probe.get(&key), None);
    assert_eq!(
        (probe.get(&acquired), probe.get(&extended)),
        (None, None),
        "the custom release script must run on the server (it deletes both markers)"
    );
    case.finish();
}

// ---------------------------------------------------------------------------
// using()

#[derive(Debug, PartialEq)]
enum CaseError {
    Lock(String),
    Routine(&'static str),
}

impl From<Error> for CaseError {
    fn from(e: Error) -> Self {
        CaseError::Lock(format!("{e:?}"))
    }
}

/// `using` with a 600 ms TTL and a 300 ms threshold keeps the lock through a
/// routine that runs 2 s (the key holds the same value mid-way and near the
/// end, the signal never aborts), returns the routine's value, and the key is
/// gone as soon as `using` returns.
pub async fn using_keeps_lock_while_routine_runs<C: Connector>(connector: &C) {
    let case = Case::start("using_keeps_lock_while_routine_runs", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = build(
        case.builder(connector)
            .await
            .automatic_extension_threshold(Duration::from_millis(300)),
    );

    // A 600 ms TTL extended at 300 ms of validity left: margins wide enough
    // for a loaded 2-core CI machine.
    let result: Result<u32, CaseError> = redlock
        .using(&[&key], Duration::from_millis(600), |signal| {
            let (key, probe) = (&key, probe);
            async move {
                let value = probe.get(key);
                assert!(value.is_some(), "the key exists when the routine starts");
                for (wait, when) in [(900, "after 900 ms"), (600, "after 1.5 s"), (500, "after 2 s")] {
                    sleep(Duration::from_millis(wait)).await;
                    assert!(!signal.is_aborted(), "{when}: the lock was lost: {:?}", signal.error());
                    assert_eq!(
                        probe.get(key),
                        value,
                        "{when} (3 TTLs of 600 ms) the key must still hold our value: it is being extended"
                    );
                    assert_pttl_in(probe.pttl(key), 0, 600, when);
                }
                Ok(7)
            }
        })
        .await;
    assert_eq!(result, Ok(7), "using returns the routine's value");
    assert_eq!(
        probe.get(&key),
        None,
        "the key is released as soon as using() returns"
    );
    case.finish();
}

/// `using` returns the routine's own error unchanged, and still releases.
pub async fn using_returns_routine_error<C: Connector>(connector: &C) {
    let case = Case::start("using_returns_routine_error", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;

    let inside = (&key, probe);
    let result: Result<(), CaseError> = redlock
        .using(&[&key], Duration::from_secs(5), move |_signal| async move {
            let (key, probe) = inside;
            assert!(probe.exists(key), "the key exists inside the routine");
            Err(CaseError::Routine("routine failed"))
        })
        .await;
    assert_eq!(
        result,
        Err(CaseError::Routine("routine failed")),
        "using must return the routine's error, not mask it"
    );
    assert_eq!(
        probe.get(&key),
        None,
        "the key is released after a failed routine"
    );
    case.finish();
}

// ---------------------------------------------------------------------------
// Redis Cluster

struct ClusterCase {
    prefix: String,
    cluster: RedisCluster,
    probe: ClusterProbe,
}

impl ClusterCase {
    fn start(name: &str) -> ClusterCase {
        let cluster = RedisCluster::start(3)
            .unwrap_or_else(|e| panic!("case `{name}`: could not start a Redis Cluster: {e}"));
        let probe = cluster.probe();
        ClusterCase {
            prefix: unique_prefix(name),
            cluster,
            probe,
        }
    }

    async fn redlock<C: Connector>(&self, connector: &C, name: &str) -> Option<Redlock> {
        Some(build(self.builder(connector, name).await?))
    }

    async fn builder<C: Connector>(&self, connector: &C, name: &str) -> Option<RedlockBuilder> {
        match connector.cluster(&self.cluster.urls()).await {
            None => {
                eprintln!("note: case `{name}` skipped: this connector has no cluster mode (cluster() returned None)");
                None
            }
            Some(backend) => {
                let backend = backend.unwrap_or_else(|e| {
                    panic!("connector.cluster({:?}) failed: {e}", self.cluster.urls())
                });
                Some(fast_builder(vec![backend]))
            }
        }
    }

    fn finish(self) {
        let left = self.probe.keys(&format!("*{}*", glob_escape(&self.prefix)));
        assert!(left.is_empty(), "keys left behind on the cluster: {left:?}");
        drop(self.cluster);
    }
}

/// Through [`Connector::cluster`], a multi-resource lock whose keys share a
/// hash tag (`{tag}:a`, `{tag}:b`) is acquired, extended and released on the
/// master that owns the slot. Skipped (with a note) when `cluster` returns `None`.
pub async fn cluster_hash_tagged_multi_resource<C: Connector>(connector: &C) {
    let name = "cluster_hash_tagged_multi_resource";
    let case = ClusterCase::start(name);
    let Some(redlock) = case.redlock(connector, name).await else {
        return;
    };
    let a = format!("{{{}}}:a", case.prefix);
    let b = format!("{{{}}}:b", case.prefix);
    let probe = &case.probe;
    assert_eq!(
        probe.keyslot(&a),
        probe.keyslot(&b),
        "hash-tagged keys share a slot"
    );

    let lock = expect_lock(
        redlock.acquire(&[&a, &b], Duration::from_secs(10)).await,
        "acquire hash-tagged keys on a cluster",
    );
    for key in [&a, &b] {
        assert_eq!(
            probe.get(key).as_deref(),
            Some(lock.value()),
            "GET {key} on its master"
        );
        assert_pttl_in(probe.pttl(key), 0, 10_000, "a hash-tagged key");
    }
    let lock = lock
        .extend(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("extend on a cluster: {e:?}"));
    assert_pttl_in(probe.pttl(&a), 10_000, 20_000, "after extend on a cluster");
    let release = lock.release().await.expect("release on a cluster");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        (probe.get(&a), probe.get(&b)),
        (None, None),
        "released on the cluster"
    );

    // Fencing on a cluster: the counters land in their resource's slot (for
    // the tagged pair and for an untagged single resource alike).
    let fenced = build(
        case.builder(connector, name)
            .await
            .expect("a cluster backend")
            .fencing(true),
    );
    let single = format!("{}:single", case.prefix);
    let mut tokens = Vec::new();
    for resources in [vec![&a, &b], vec![&single], vec![&a, &b]] {
        match fenced.acquire(&resources, Duration::from_secs(10)).await {
            Err(e) if is_unsupported(&e) => {
                eprintln!("note: fencing on a cluster skipped: the backend does not implement fencing ({e})");
                break;
            }
            result => {
                let lock = expect_lock(result, "a fenced acquire on a cluster");
                tokens.push((resources.len(), lock.fencing_token().expect("a token")));
                assert!(lock.release().await.expect("release").was_held());
            }
        }
    }
    if let [(2, t1), (1, _), (2, t2)] = tokens[..] {
        assert!(
            t2 > t1,
            "the tagged pair's token rises on a cluster: {t1} then {t2}"
        );
    }
    for resource in [&a, &b, &single] {
        probe.del(&redlock_core::keys::fence_key(resource));
    }
    case.finish();
}

/// Through [`Connector::cluster`], keys in different slots (no hash tag) fail
/// with `Error::Rejected` whose rejection is `ErrorKind::CrossSlot`, at once
/// (no retries), writing nothing. Checked for two keys on the same master and
/// for two keys on different masters. Skipped when `cluster` returns `None`.
pub async fn cluster_cross_slot_rejected<C: Connector>(connector: &C) {
    let name = "cluster_cross_slot_rejected";
    let case = ClusterCase::start(name);
    let Some(redlock) = case.redlock(connector, name).await else {
        return;
    };
    let probe = &case.probe;
    let first = format!("{}:k0", case.prefix);
    let (slot, owner) = (probe.keyslot(&first), probe.owner_of(&first));
    let mut same_master = None;
    let mut other_master = None;
    for i in 1..10_000 {
        let key = format!("{}:k{i}", case.prefix);
        if probe.keyslot(&key) == slot {
            continue;
        }
        if probe.owner_of(&key) == owner {
            same_master.get_or_insert(key);
        } else {
            other_master.get_or_insert(key);
        }
        if same_master.is_some() && other_master.is_some() {
            break;
        }
    }
    let pairs = [
        (
            "same master, different slots",
            same_master.expect("a key in another slot of the same master"),
        ),
        (
            "different masters",
            other_master.expect("a key on another master"),
        ),
    ];
    for (what, second) in pairs {
        let result = within(
            Duration::from_secs(10),
            "a cross-slot acquire",
            redlock.acquire(&[&first, &second], Duration::from_secs(10)),
        )
        .await;
        match &result {
            Err(e @ Error::Rejected(failure)) => {
                let kind = e.failure().and_then(|f| f.rejection()).map(|r| r.kind());
                assert_eq!(
                    kind,
                    Some(ErrorKind::CrossSlot),
                    "keys in different slots ({what}): the rejection must be CrossSlot: {e}"
                );
                assert_eq!(failure.attempts.total(), 1, "CROSSSLOT is permanent: no retries ({what})");
            }
            other => panic!(
                "acquire of keys in different slots ({what}) on a cluster: expected Error::Rejected with \
                 ErrorKind::CrossSlot, got {other:?}"
            ),
        }
        assert_eq!(
            (probe.get(&first), probe.get(&second)),
            (None, None),
            "a rejected cross-slot acquire writes nothing ({what})"
        );
    }
    case.finish();
}

// ---------------------------------------------------------------------------
// Faults

/// One of 3 nodes killed (connection refused): acquisition succeeds, and the
/// dead node's statistics say `Failed` with kind `Connection` (or `Timeout`).
pub async fn unreachable_node_refused<C: Connector>(connector: &C) {
    let case = Case::start("unreachable_node_refused", 3);
    let key = case.key("resource");
    let redlock = case.redlock(connector).await;
    case.nodes[2].kill();

    let lock = expect_lock(
        within(
            Duration::from_secs(10),
            "acquire with a dead node",
            redlock.acquire(&[&key], Duration::from_secs(10)),
        )
        .await,
        "acquire with 1 of 3 nodes killed",
    );
    let attempt = lock.attempts().last().expect("attempt statistics");
    let dead = attempt
        .nodes
        .iter()
        .find(|r| r.node == 2)
        .expect("a result for node 2");
    match &dead.outcome {
        NodeOutcome::Failed(e) => assert!(
            matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
            "a refused connection is a Connection (or Timeout) error, got {e:?}"
        ),
        // The quorum may be decided before a refusal arrives; the release
        // below awaits every node and is checked strictly.
        NodeOutcome::Unanswered => {}
        other => panic!("the dead node cannot vote: {other:?}"),
    }
    for i in 0..2 {
        assert_eq!(
            case.probe(i).get(&key).as_deref(),
            Some(lock.value()),
            "live node {i}"
        );
    }
    let release = within(
        Duration::from_secs(10),
        "release with a dead node",
        lock.release(),
    )
    .await
    .expect("release with 1 of 3 nodes killed");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(release.failed, 1, "{release:?}");
    let last = release.attempts.last().expect("release statistics");
    let dead = last
        .nodes
        .iter()
        .find(|r| r.node == 2)
        .expect("a result for node 2");
    assert!(
        matches!(&dead.outcome, NodeOutcome::Failed(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)),
        "release: the dead node's outcome must be Failed(Connection or Timeout), got {:?}",
        dead.outcome
    );
    case.finish();
}

/// One of 3 nodes paused (SIGSTOP: it accepts connections and answers
/// nothing): acquisition still succeeds and returns, the paused node's
/// outcome is `Failed(Timeout)` or `Unanswered`, and release returns too (the
/// per-node timeout works).
pub async fn paused_node_times_out<C: Connector>(connector: &C) {
    let case = Case::start("paused_node_times_out", 3);
    let key = case.key("resource");
    let redlock = build(
        case.builder(connector)
            .await
            .node_timeout(Duration::from_millis(500)),
    );
    case.nodes[1].pause().expect("SIGSTOP a node");

    let ttl = Duration::from_secs(2);
    let lock = expect_lock(
        within(
            Duration::from_secs(5),
            "acquire with a paused node (the per-node timeout must bound it)",
            redlock.acquire(&[&key], ttl),
        )
        .await,
        "acquire with 1 of 3 nodes paused",
    );
    let attempt = lock.attempts().last().expect("attempt statistics");
    let paused = attempt
        .nodes
        .iter()
        .find(|r| r.node == 1)
        .expect("a result for node 1");
    assert!(
        matches!(&paused.outcome, NodeOutcome::Unanswered)
            || matches!(&paused.outcome, NodeOutcome::Failed(e) if e.kind() == ErrorKind::Timeout),
        "a paused node is Failed(Timeout) or Unanswered, got {:?}",
        paused.outcome
    );
    let release = within(
        Duration::from_secs(5),
        "release with a paused node (the per-node timeout must bound it)",
        lock.release(),
    )
    .await
    .expect("release with 1 of 3 nodes paused");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.failed, 1,
        "the paused node fails the release: {release:?}"
    );

    case.nodes[1].resume().expect("SIGCONT the node");
    // The resumed node now runs what was queued (maybe the acquire after the
    // release): release again, then wait out the TTL if need be.
    sleep(Duration::from_millis(100)).await;
    let _ = within(
        Duration::from_secs(5),
        "release after resume",
        lock.release(),
    )
    .await;
    let probe = case.probe(1);
    assert!(
        eventually(ttl + Duration::from_secs(1), || probe.get(&key).is_none()).await,
        "the resumed node's key must be released or expire"
    );
    case.finish();
}

/// A node restarted with persistence (`appendfsync always`) keeps the lock:
/// another owner is still refused, and the original owner's backend
/// reconnects and releases it.
pub async fn node_restart_with_persistence<C: Connector>(connector: &C) {
    let case = Case::start_with(
        "node_restart_with_persistence",
        1,
        NodeOptions {
            persistence: true,
            ..NodeOptions::default()
        },
    );
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire",
    );

    case.nodes[0].restart().expect("restart the node");
    assert_eq!(
        probe.get(&key).as_deref(),
        Some(lock.value()),
        "the key survives a restart with persistence"
    );
    let other = build(case.builder(connector).await.retry_count(0));
    let result = other.acquire(&[&key], Duration::from_secs(10)).await;
    assert!(
        matches!(result, Err(Error::Held(_))),
        "after the restart the lock is still held: {result:?}"
    );

    // The original backend's connection died with the process: it must
    // reconnect by itself within a few calls.
    let mut released = false;
    for _ in 0..40 {
        if let Ok(release) = lock.release().await {
            if release.was_held() {
                released = true;
                break;
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        released,
        "the backend must reconnect after a node restart and release the lock"
    );
    assert_eq!(probe.get(&key), None);
    case.finish();
}

/// A password-protected node is reached through a URL that carries the
/// password (`redis://:PASSWORD@127.0.0.1:PORT`).
pub async fn password_in_url<C: Connector>(connector: &C) {
    let case = Case::start_with(
        "password_in_url",
        1,
        NodeOptions {
            password: Some("s3cret-pass".to_owned()),
            ..NodeOptions::default()
        },
    );
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        "acquire with a password",
    );
    assert_eq!(probe.get(&key).as_deref(), Some(lock.value()));
    assert!(lock.release().await.expect("release").was_held());
    case.finish();
}

/// A wrong password fails with `Error::Rejected` (kind `Auth`, permanent: no
/// retries), not as a node being down.
pub async fn wrong_password_rejected<C: Connector>(connector: &C) {
    let case = Case::start_with(
        "wrong_password_rejected",
        1,
        NodeOptions {
            password: Some("right-pass".to_owned()),
            ..NodeOptions::default()
        },
    );
    let key = case.key("resource");
    let url = format!("redis://:wrong-pass@127.0.0.1:{}", case.nodes[0].port());
    let redlock = build(fast_builder(backends(connector, &[url]).await));
    let result = within(
        Duration::from_secs(10),
        "acquire with a wrong password",
        redlock.acquire(&[&key], Duration::from_secs(10)),
    )
    .await;
    match &result {
        Err(e @ Error::Rejected(failure)) => {
            let kind = e.failure().and_then(|f| f.rejection()).map(|r| r.kind());
            assert_eq!(
                kind,
                Some(ErrorKind::Auth),
                "a wrong password is ErrorKind::Auth: {e}"
            );
            assert_eq!(failure.attempts.total(), 1, "Auth is permanent: no retries");
        }
        other => {
            panic!("acquire with a wrong password: expected Error::Rejected (Auth), got {other:?}")
        }
    }
    assert_eq!(case.probe(0).dbsize(), 0);
    case.finish();
}

// ---------------------------------------------------------------------------
// Optional capabilities: fencing tokens and wake-on-release

/// Whether an acquisition failed because the backend does not implement an
/// optional capability.
fn is_unsupported(e: &Error) -> bool {
    e.failure()
        .and_then(|f| f.rejection())
        .is_some_and(|r| r.kind() == ErrorKind::Unsupported)
}

fn counter(probe: &Probe, key: &str) -> Option<u64> {
    probe.get(key).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("fence counter {key} is not a number: {v:?}"))
    })
}

/// Fencing tokens on 3 nodes (`Settings::fencing`): every acquisition of a
/// resource gets a strictly higher token, across owners, also with a node
/// down; an extension keeps the token; the fence counter reaches a quorum on
/// the server and never expires. Skipped (with a note) when the backend
/// answers `Unsupported`.
pub async fn fencing_tokens<C: Connector>(connector: &C) {
    let case = Case::start("fencing_tokens", 3);
    let key = case.key("resource");
    let fence = redlock_core::keys::fence_key(&key);
    let first = build(case.builder(connector).await.fencing(true));
    let lock = match first.acquire(&[&key], Duration::from_secs(10)).await {
        Err(e) if is_unsupported(&e) => {
            eprintln!(
                "note: case `fencing_tokens` skipped: the backend does not implement fencing ({e})"
            );
            case.finish();
            return;
        }
        result => expect_lock(result, "a fenced acquire"),
    };
    let t1 = lock
        .fencing_token()
        .expect("a lock acquired with fencing carries a token");
    assert!(t1 >= 1, "tokens start at 1: {t1}");
    let counters: Vec<Option<u64>> = (0..3).map(|i| counter(case.probe(i), &fence)).collect();
    assert!(
        counters.iter().filter(|c| **c == Some(t1)).count() >= 2
            && counters.iter().all(|c| c.is_none_or(|c| c <= t1)),
        "the fence counter {fence} must hold the token {t1} on a quorum and nowhere more: {counters:?}"
    );
    for (i, c) in counters.iter().enumerate() {
        if c.is_some() {
            assert_eq!(
                case.probe(i).pttl(&fence),
                Some(-1),
                "fence counters never expire (node {i})"
            );
        }
    }
    let lock = lock
        .extend(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("extend of a fenced lock: {e:?}"));
    assert_eq!(
        lock.fencing_token(),
        Some(t1),
        "an extension keeps the token"
    );
    assert!(lock.release().await.expect("release").was_held());

    let second = build(case.builder(connector).await.fencing(true));
    let lock = expect_lock(
        second.acquire(&[&key], Duration::from_secs(10)).await,
        "a second owner",
    );
    let t2 = lock.fencing_token().expect("a token");
    assert!(t2 > t1, "a later owner gets a higher token: {t1} then {t2}");
    assert!(lock.release().await.expect("release").was_held());

    case.nodes[0].kill();
    let third = build(case.builder(connector).await.fencing(true));
    let lock = expect_lock(
        third.acquire(&[&key], Duration::from_secs(10)).await,
        "a fenced acquire with a node down",
    );
    let t3 = lock.fencing_token().expect("a token");
    assert!(
        t3 > t2,
        "any two quorums share a node: the token still rises with a node down ({t2} then {t3})"
    );
    assert!(lock.release().await.expect("release").was_held());

    // The counters are permanent by design; this case removes its own.
    for i in 1..3 {
        case.probe(i).del(&fence);
    }
    case.finish();
}

/// Fencing tokens raced for by several owners on `n` independent nodes, with
/// persistence on: tokens must strictly increase in the order the critical
/// sections ran, through three phases: a node whose counter is far ahead is
/// down (its stale high counter is outside every quorum); it comes back while
/// a minority of the others is down; that minority comes back with counters
/// behind. Skipped (with a note) when the backend answers `Unsupported`.
pub async fn fencing_race<C: Connector>(connector: &C, n: usize) {
    const OWNERS: usize = 4;
    const ROUNDS: usize = 4;
    let options = NodeOptions {
        persistence: true,
        ..NodeOptions::default()
    };
    let case = Case::start_with("fencing_race", n, options);
    let key = case.key("resource");
    let fence = redlock_core::keys::fence_key(&key);
    let order = std::sync::Mutex::new(Vec::<(usize, u64)>::new());
    let inside = AtomicBool::new(false);

    let race = |phase: usize| {
        let (key, order, inside) = (&key, &order, &inside);
        let case = &case;
        async move {
            let mut owners = Vec::with_capacity(OWNERS);
            for _ in 0..OWNERS {
                owners.push(build(
                    case.builder(connector)
                        .await
                        .fencing(true)
                        .retry_count(RetryCount::Limited(500))
                        .retry_delay(Duration::from_millis(4))
                        .retry_jitter(Duration::from_millis(3)),
                ));
            }
            let work = owners.iter().map(|owner| async move {
                for _ in 0..ROUNDS {
                    let lock = match owner.acquire(&[key], Duration::from_secs(5)).await {
                        Err(e) if is_unsupported(&e) => return false,
                        result => expect_lock(result, "a fenced acquire in the race"),
                    };
                    assert!(!inside.swap(true, Ordering::SeqCst), "two owners at once");
                    let token = lock.fencing_token().expect("a fenced lock carries a token");
                    order
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((phase, token));
                    sleep(Duration::from_millis(1)).await;
                    inside.store(false, Ordering::SeqCst);
                    lock.release().await.expect("release");
                }
                true
            });
            within(Duration::from_secs(60), "the fencing race", join_all(work))
                .await
                .into_iter()
                .all(|supported| supported)
        }
    };

    // Phase 1: node 0 holds a stale, far-ahead counter, and is down.
    case.probe(0)
        .query::<()>(redis::cmd("SET").arg(&fence).arg(1000));
    case.nodes[0].kill();
    if !race(1).await {
        eprintln!("note: case `fencing_race` skipped: the backend does not implement fencing");
        case.nodes[0].restart().expect("restart node 0");
        case.probe(0).del(&fence);
        case.finish();
        return;
    }
    // Phase 2: it comes back (persistence kept its counter), and a minority
    // of the other nodes goes down: tokens must jump past 1000.
    case.nodes[0].restart().expect("restart node 0");
    let minority = 1..=(n - 1) / 2;
    for i in minority.clone() {
        case.nodes[i].kill();
    }
    race(2).await;
    // Phase 3: the minority comes back with counters behind (it missed the
    // write-backs of phase 2).
    for i in minority {
        case.nodes[i].restart().expect("restart a node");
    }
    race(3).await;

    let order = order.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        order.len(),
        3 * OWNERS * ROUNDS,
        "every owner got every round"
    );
    for pair in order.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "tokens must strictly increase in critical-section order: {pair:?} in {order:?}"
        );
    }
    let (phase1_max, phase2_min) = (
        order.iter().filter(|(p, _)| *p == 1).map(|(_, t)| *t).max(),
        order.iter().filter(|(p, _)| *p == 2).map(|(_, t)| *t).min(),
    );
    assert!(
        phase1_max < Some(1000),
        "with the far-ahead node down, its counter is outside every quorum: {order:?}"
    );
    assert!(
        phase2_min > Some(1000),
        "once it is back in a quorum, tokens pass its counter: {order:?}"
    );
    // The counters are permanent by design; this case removes its own.
    for (i, node) in case.nodes.iter().enumerate() {
        if node.is_running() {
            case.probe(i).del(&fence);
        }
    }
    case.finish();
}

/// Wake-on-release on 3 nodes (`Settings::wake_on_release`): a waiter whose
/// retry delay is 5 s acquires promptly when the holder releases, woken by
/// the release rather than its timer. Skipped (with a note) when the backend's
/// `watch_releases` answers `Unsupported`.
pub async fn wake_on_release<C: Connector>(connector: &C) {
    use redlock_core::wake::{release_channel, ReleaseWait};
    use redlock_core::LockBackend;

    let case = Case::start("wake_on_release", 3);
    let key = case.key("resource");
    {
        let check = backends(connector, &case.nodes.urls()[..1]).await.remove(0);
        let wait = ReleaseWait::new();
        match within(
            Duration::from_secs(5),
            "watch_releases",
            check.watch_releases(&[release_channel(&key)], &wait.waker()),
        )
        .await
        {
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                eprintln!("note: case `wake_on_release` skipped: the backend does not implement watch_releases ({e})");
                case.finish();
                return;
            }
            Err(e) => panic!("watch_releases on a live node failed: {e:?}"),
            Ok(()) => {}
        }
    }
    let holder = build(case.builder(connector).await.wake_on_release(true));
    let waiter = build(
        case.builder(connector)
            .await
            .wake_on_release(true)
            .retry_count(3)
            .retry_delay(Duration::from_secs(5))
            .retry_jitter(Duration::ZERO),
    );
    let lock = expect_lock(
        holder.acquire(&[&key], Duration::from_secs(10)).await,
        "the holder",
    );
    let released_at = std::sync::Mutex::new(None);
    let hold = async {
        // Long enough for the waiter to fail once and subscribe.
        sleep(Duration::from_millis(600)).await;
        *released_at.lock().unwrap() = Some(Instant::now());
        assert!(lock
            .release()
            .await
            .expect("the holder's release")
            .was_held());
    };
    let wait = async {
        let lock = waiter.acquire(&[&key], Duration::from_secs(10)).await;
        (lock, Instant::now())
    };
    let ((), (got, acquired_at)) = within(
        Duration::from_secs(20),
        "the wake-on-release race",
        futures::future::join(hold, wait),
    )
    .await;
    let got = expect_lock(got, "the waiter");
    let released_at = released_at
        .into_inner()
        .unwrap()
        .expect("the holder released");
    let after = acquired_at.saturating_duration_since(released_at);
    assert!(
        after < Duration::from_millis(2500),
        "the waiter took {after:?} after the release: it was not woken by the release (its retry delay is 5 s)"
    );
    assert!(
        got.attempts().total() >= 2,
        "the waiter found the resource held first"
    );
    assert!(got.release().await.expect("release").was_held());
    case.finish();
}

// ---------------------------------------------------------------------------
// Contention and input

/// Several Redlocks (each with its own connections, as separate processes)
/// race for one resource on 3 nodes, many times. Inside the critical section a
/// read-modify-write of a shared counter with an await in between, and an
/// "inside" flag: no update is lost, nobody is ever inside with someone else,
/// and the race really contended (some acquisition needed a retry).
pub async fn contention<C: Connector>(connector: &C) {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 10;
    let case = Case::start("contention", 3);
    let key = case.key("counter-lock");
    let mut redlocks = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        redlocks.push(build(
            case.builder(connector)
                .await
                .retry_count(RetryCount::Limited(500))
                .retry_delay(Duration::from_millis(4))
                .retry_jitter(Duration::from_millis(3)),
        ));
    }
    let counter = AtomicU64::new(0);
    let inside = AtomicBool::new(false);
    let overlaps = AtomicU64::new(0);
    let successes = AtomicU64::new(0);
    let retried = AtomicU64::new(0);

    let workers = redlocks.iter().enumerate().map(|(w, redlock)| {
        let (key, counter, inside, overlaps, successes, retried) =
            (&key, &counter, &inside, &overlaps, &successes, &retried);
        async move {
            for round in 0..ROUNDS {
                let lock = match redlock.acquire(&[key], Duration::from_secs(5)).await {
                    Ok(lock) => lock,
                    Err(e) => panic!("worker {w} round {round}: acquire failed: {e:?}"),
                };
                if lock.attempts().total() > 1 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                if inside.swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let read = counter.load(Ordering::SeqCst);
                sleep(Duration::from_millis(1 + (round % 2) as u64)).await;
                counter.store(read + 1, Ordering::SeqCst);
                inside.store(false, Ordering::SeqCst);
                successes.fetch_add(1, Ordering::SeqCst);
                let release = lock
                    .release()
                    .await
                    .unwrap_or_else(|e| panic!("worker {w} round {round}: release failed: {e:?}"));
                assert!(release.was_held(), "worker {w} round {round}: {release:?}");
            }
        }
    });
    within(
        Duration::from_secs(60),
        "the contention race",
        join_all(workers),
    )
    .await;

    let successes = successes.into_inner();
    assert_eq!(
        successes,
        (WORKERS * ROUNDS) as u64,
        "every worker got every round"
    );
    assert_eq!(
        overlaps.into_inner(),
        0,
        "two owners were inside the critical section at once"
    );
    assert_eq!(
        counter.into_inner(),
        successes,
        "lost updates: the lock did not exclude"
    );
    assert!(
        retried.into_inner() > 0,
        "no acquisition ever had to retry: the workers did not actually contend"
    );
    case.finish();
}

/// Bad input fails with `Error::InvalidInput` before anything is sent: the
/// node's `DBSIZE` stays 0 and it ran no script.
pub async fn bad_input_reaches_no_node<C: Connector>(connector: &C) {
    let case = Case::start("bad_input_reaches_no_node", 1);
    let key = case.key("resource");
    let probe = case.probe(0);
    let redlock = case.redlock(connector).await;
    let ttl = Duration::from_secs(10);

    let none: [&str; 0] = [];
    let result = redlock.acquire(&none, ttl).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::NoResources))),
        "an empty resource list: expected InvalidInput::NoResources, got {result:?}"
    );
    let result = redlock.acquire(&[""], ttl).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::EmptyResource {
                index: 0
            }))
        ),
        "an empty resource name: {result:?}"
    );
    let result = redlock.acquire(&[&key, &key], ttl).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::DuplicateResource(_)))
        ),
        "a duplicate resource: {result:?}"
    );
    let result = redlock.acquire(&[&key], Duration::ZERO).await;
    assert!(
        matches!(result, Err(Error::InvalidInput(InvalidInput::ZeroTtl))),
        "a zero TTL: {result:?}"
    );
    let result = redlock.acquire(&[&key], Duration::from_millis(1)).await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(InvalidInput::TtlTooShort { .. }))
        ),
        "a TTL below the drift: {result:?}"
    );
    assert_eq!(probe.dbsize(), 0, "bad input must not write anything");
    for command in ["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "set"] {
        assert_eq!(
            probe.command_calls(command),
            0,
            "bad input must reach no node, yet it ran {command}"
        );
    }
    case.finish();
}

/// For adapters' own tests: asserts that no node at `urls` holds a key
/// matching `pattern` (a `KEYS` glob).
pub fn assert_no_keys(urls: &[String], pattern: &str) {
    for url in urls {
        let left = Probe::new(url).keys(pattern);
        assert!(
            left.is_empty(),
            "keys matching {pattern:?} left on {url}: {left:?}"
        );
    }
}

/// Starts one standalone node and returns it with a Redlock over it, for
/// adapters' own extra tests (same settings as the suite).
pub async fn one_node_redlock<C: Connector>(connector: &C) -> (RedisNode, Redlock) {
    let node = RedisNode::start().unwrap_or_else(|e| panic!("could not start redis-server: {e}"));
    let backends = backends(connector, &[node.url()]).await;
    let redlock = build(fast_builder(backends));
    (node, redlock)
}
