//! N independent nodes: a minority or a majority held by another owner, or
//! killed.

use std::time::Duration;

use redlock_core::{Error, ErrorKind, Lock};

use super::case::{expect_lock, minority, quorum, Case};
use super::support::{build, within};
use crate::fixture::Fixture;

/// Another owner takes `key` on each of the first `count` nodes.
async fn hold_first<F: Fixture>(case: &Case<'_, F>, count: usize, key: &str) -> Vec<Lock> {
    let mut foreign = Vec::with_capacity(count);
    for i in 0..count {
        foreign.push(case.hold_foreign(i, &[key], Duration::from_secs(10)).await);
    }
    foreign
}

/// Asserts that each foreign hold is untouched (value and TTL), then
/// releases it.
async fn check_and_release_foreign<F: Fixture>(case: &Case<'_, F>, foreign: Vec<Lock>, key: &str) {
    for (i, lock) in foreign.into_iter().enumerate() {
        case.assert_value(i, key, Some(lock.value()), "the foreign key is untouched")
            .await;
        case.assert_ttl_in(i, key, 0, 10_000, "the foreign key keeps its TTL");
        case.release_foreign(lock, &format!("the foreign key on node {i}"))
            .await;
    }
}

/// On `n` nodes (3 or 5 in the suite), a minority holding the resource for
/// another owner does not stop the acquisition; the foreign keys are untouched.
pub async fn minority_held<F: Fixture>(fixture: &F, n: usize) {
    let Some(case) = Case::start(fixture, "minority_held", n) else {
        return;
    };
    let key = case.key("resource");
    let held = minority(n);
    let foreign = hold_first(&case, held, &key).await;
    let redlock = case.redlock().await;
    let lock = expect_lock(
        redlock.acquire(&[&key], Duration::from_secs(10)).await,
        &format!("acquire with {held} of {n} nodes held by another owner"),
    );
    // With n odd and a minority held, the quorum needs every free node.
    for i in held..n {
        case.assert_value(i, &key, Some(lock.value()), &format!("node {i} of {n}"))
            .await;
    }
    let release = lock.release().await.expect("release");
    assert!(release.was_held(), "{release:?}");
    assert_eq!(
        release.not_held, held,
        "the foreign nodes answer not-held: {release:?}"
    );
    check_and_release_foreign(&case, foreign, &key).await;
    case.finish().await;
}

/// On `n` nodes, a majority holding the resource for another owner makes
/// acquisition fail with `Error::Held`; no key of ours is left on any node
/// and the foreign keys are untouched.
pub async fn majority_held<F: Fixture>(fixture: &F, n: usize) {
    let Some(case) = Case::start(fixture, "majority_held", n) else {
        return;
    };
    let key = case.key("resource");
    let held = quorum(n);
    let foreign = hold_first(&case, held, &key).await;
    // The timer alone, for an exact count (see `exclusivity`).
    let redlock = build(case.builder().await.retry_count(1).wake_on_release(false));
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
    for i in held..n {
        case.assert_value(
            i,
            &key,
            None,
            "a failed acquisition must undo its partial lock",
        )
        .await;
    }
    check_and_release_foreign(&case, foreign, &key).await;
    case.finish().await;
}

/// On `n` nodes, with a minority killed (connections refused), acquisition
/// succeeds, a quorum of live nodes holds the value, and the dead nodes fail
/// the release.
pub async fn minority_killed<F: Fixture>(fixture: &F, n: usize) {
    let Some(case) = Case::start(fixture, "minority_killed", n) else {
        return;
    };
    let key = case.key("resource");
    let dead = minority(n);
    let redlock = case.redlock().await;
    for i in 0..dead {
        case.kill(i);
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
    let values: Option<Vec<Option<String>>> = (dead..n)
        .map(|i| case.inspect(i).map(|view| view.value(&key)))
        .collect();
    if let Some(values) = values {
        let live_holding = values
            .iter()
            .filter(|v| v.as_deref() == Some(lock.value()))
            .count();
        assert!(
            live_holding >= quorum(n),
            "a quorum of live nodes holds the value ({live_holding} of {n}): {values:?}"
        );
    }
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
    case.finish().await;
}

/// On `n` nodes, a majority killed makes acquisition fail with
/// `Error::NoQuorum` (not `Held`), with connection or timeout errors for the
/// dead nodes, leaving no key on the live nodes.
pub async fn majority_killed<F: Fixture>(fixture: &F, n: usize) {
    let Some(case) = Case::start(fixture, "majority_killed", n) else {
        return;
    };
    let key = case.key("resource");
    let dead = quorum(n);
    let redlock = build(case.builder().await.retry_count(1));
    for i in 0..dead {
        case.kill(i);
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
        case.assert_value(
            i,
            &key,
            None,
            "a live node: the partial lock must be undone",
        )
        .await;
    }
    case.finish().await;
}
