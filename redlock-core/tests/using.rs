//! `using`: automatic extension, abort, error preservation, panic release.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{builder, live_keys, nodes, redlock, Virtual};
use futures::FutureExt;
use redlock_core::{Error, ErrorKind, Fault, InvalidInput, Operation, Runtime};

const TTL: Duration = Duration::from_millis(1000);

#[derive(Debug, PartialEq)]
enum AppError {
    Lock(String),
    Routine(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Lock(e.to_string())
    }
}

#[tokio::test(start_paused = true)]
async fn extends_across_several_ttls_and_releases_at_the_end() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let probe = nodes[0].inner().clone();
    let value = redlock
        .using(&["job"], TTL, |signal| async move {
            let mut seen = Vec::new();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // Still ours, on the node, five seconds past the first TTL.
                seen.push(probe.get("job").is_some());
                assert!(!signal.is_aborted());
            }
            Ok::<_, Error>(seen)
        })
        .await
        .unwrap();
    assert!(value.iter().all(|held| *held));
    let extends = nodes[0]
        .calls()
        .iter()
        .filter(|c| c.operation == Operation::Extend)
        .count();
    // 5 s of work, extended whenever validity (988 ms) drops below 500 ms:
    // about every 488 ms.
    assert!((9..=11).contains(&extends), "{extends} extensions");
    assert_eq!(live_keys(&nodes), 0, "released at the end");
}

#[tokio::test(start_paused = true)]
async fn the_routine_keeps_running_while_an_extension_is_in_flight() {
    let nodes = nodes(3);
    for node in &nodes {
        node.set_for(Operation::Extend, Fault::Delay(Duration::from_millis(200)));
    }
    let redlock = redlock(&nodes);
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = ticks.clone();
    redlock
        .using(&["job"], TTL, |_| async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    // 1 s of 10 ms ticks: an extension started at ~488 ms took 200 ms, and the
    // routine did not stop for it (otherwise the total time would grow).
    assert_eq!(ticks.load(Ordering::SeqCst), 100);
    assert!(nodes[0]
        .calls()
        .iter()
        .any(|c| c.operation == Operation::Extend));
}

#[tokio::test(start_paused = true)]
async fn a_failed_extension_aborts_the_signal_at_once() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let thief = nodes.clone();
    let started = Virtual.now();
    let result: Result<(), Error> = redlock
        .using(&["job"], TTL, |signal| async move {
            // Someone else takes the key on a majority (e.g. after a pause).
            tokio::time::sleep(Duration::from_millis(100)).await;
            for node in &thief[..2] {
                node.inner().set("job", "thief", Duration::from_secs(60));
            }
            let error = signal.aborted().await;
            assert!(signal.is_aborted());
            assert!(signal.error().is_some());
            Err(error)
        })
        .await;
    let error = result.unwrap_err();
    assert!(matches!(error, Error::Expired { .. }), "{error}");
    // The first extension was due at 988 − 500 = 488 ms and failed there.
    assert_eq!(Virtual.now() - started, Duration::from_millis(488));
    // Only our own key (on node 2) was released; the thief's are intact.
    assert_eq!(nodes[2].inner().get("job"), None);
    assert_eq!(nodes[0].inner().get("job").as_deref(), Some("thief"));
}

#[tokio::test(start_paused = true)]
async fn the_routines_error_is_never_masked_by_a_failed_release() {
    let nodes = nodes(3);
    for node in &nodes {
        node.set_for(Operation::Release, Fault::Fail(ErrorKind::Connection));
    }
    let redlock = redlock(&nodes);
    let result: Result<(), AppError> = redlock
        .using(&["job"], TTL, |_| async { Err(AppError::Routine("boom")) })
        .await;
    assert_eq!(result, Err(AppError::Routine("boom")));
    // And a success stays a success.
    let ok: Result<u8, AppError> = redlock.using(&["job2"], TTL, |_| async { Ok(7) }).await;
    assert_eq!(ok, Ok(7));
}

#[tokio::test(start_paused = true)]
async fn acquisition_errors_convert_into_the_routines_error_type() {
    let nodes = nodes(1);
    nodes[0]
        .inner()
        .set("job", "other", Duration::from_secs(60));
    let redlock = builder(&nodes).retry_count(0).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let flag = ran.clone();
    let result: Result<(), AppError> = redlock
        .using(&["job"], TTL, |_| async move {
            flag.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
    assert!(
        matches!(result, Err(AppError::Lock(ref m)) if m.contains("held by another owner")),
        "{result:?}"
    );
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "the routine never runs without the lock"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_routine_releases_the_lock_and_the_panic_propagates() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let outcome = std::panic::AssertUnwindSafe(redlock.using(&["job"], TTL, |_| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if true {
            panic!("routine panicked");
        }
        Ok::<(), Error>(())
    }))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "the panic reaches the caller");
    assert_eq!(live_keys(&nodes), 0, "released before unwinding");
}

#[tokio::test(start_paused = true)]
async fn release_is_prompt_after_an_abort() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let cut = nodes.clone();
    let started = Virtual.now();
    let _ = redlock
        .using(&["job"], TTL, |signal| async move {
            for node in &cut {
                node.set_for(Operation::Extend, Fault::VoteAgainst);
            }
            let _ = signal.aborted().await;
            Ok::<(), Error>(())
        })
        .await;
    // Aborted at the first extension (488 ms) and released right then: no
    // waiting out retries or the TTL.
    assert_eq!(Virtual.now() - started, Duration::from_millis(488));
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn threshold_must_leave_room_below_the_ttl() {
    let nodes = nodes(1);
    let redlock = builder(&nodes)
        .automatic_extension_threshold(Duration::from_millis(500))
        .build()
        .unwrap();
    let result: Result<(), Error> = redlock
        .using(&["job"], Duration::from_millis(505), |_| async { Ok(()) })
        .await;
    assert!(
        matches!(
            result,
            Err(Error::InvalidInput(
                InvalidInput::ThresholdNotBelowTtl { .. }
            ))
        ),
        "{result:?}"
    );
    assert!(nodes[0].calls().is_empty(), "nothing sent");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_using_future_leaves_keys_only_until_their_ttl() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        redlock.using(&["job"], TTL, |_| async {
            futures::future::pending::<()>().await;
            Ok::<(), Error>(())
        }),
    )
    .await;
    assert_eq!(
        live_keys(&nodes),
        3,
        "cancelled mid-routine: the keys are still there"
    );
    tokio::time::sleep(TTL).await;
    assert_eq!(live_keys(&nodes), 0, "and gone at their TTL");
}
