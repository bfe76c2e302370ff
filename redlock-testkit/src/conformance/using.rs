//! `Redlock::using`: the scoped, auto-extending lock.

use std::time::Duration;

use redlock_core::Error;

use super::case::Case;
use super::support::{build, sleep};
use crate::fixture::Fixture;

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
/// routine that runs 2 s (the node holds the same value mid-way and near the
/// end with a TTL within 600 ms, another owner is refused, the signal never
/// aborts), returns the routine's value, and the key is gone as soon as
/// `using` returns.
pub async fn using_keeps_lock_while_routine_runs<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "using_keeps_lock_while_routine_runs", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = build(
        case.builder()
            .await
            .automatic_extension_threshold(Duration::from_millis(300)),
    );

    // A 600 ms TTL extended at 300 ms of validity left: margins wide enough
    // for a loaded 2-core CI machine.
    let inside = (&case, &key);
    let result: Result<u32, CaseError> = redlock
        .using(&[&key], Duration::from_millis(600), move |signal| async move {
            let (case, key) = inside;
            let value = case.assert_taken(0, key, "when the routine starts").await;
            for (wait, when) in [(900, "after 900 ms"), (600, "after 1.5 s"), (500, "after 2 s")] {
                sleep(Duration::from_millis(wait)).await;
                assert!(!signal.is_aborted(), "{when}: the lock was lost: {:?}", signal.error());
                assert_eq!(
                    case.assert_taken(0, key, when).await,
                    value,
                    "{when} (3 TTLs of 600 ms) the key must still hold our value: it is being extended"
                );
                case.assert_ttl_in(0, key, 0, 600, when);
            }
            Ok(7)
        })
        .await;
    assert_eq!(result, Ok(7), "using returns the routine's value");
    case.assert_value(
        0,
        &key,
        None,
        "the key is released as soon as using() returns",
    )
    .await;
    case.finish().await;
}

/// `using` returns the routine's own error unchanged, and still releases.
pub async fn using_returns_routine_error<F: Fixture>(fixture: &F) {
    let Some(case) = Case::start(fixture, "using_returns_routine_error", 1) else {
        return;
    };
    let key = case.key("resource");
    let redlock = case.redlock().await;

    let inside = (&case, &key);
    let result: Result<(), CaseError> = redlock
        .using(&[&key], Duration::from_secs(5), move |_signal| async move {
            let (case, key) = inside;
            case.assert_taken(0, key, "inside the routine").await;
            Err(CaseError::Routine("routine failed"))
        })
        .await;
    assert_eq!(
        result,
        Err(CaseError::Routine("routine failed")),
        "using must return the routine's error, not mask it"
    );
    case.assert_value(0, &key, None, "the key is released after a failed routine")
        .await;
    case.finish().await;
}
