//! What a `using` routine sees through its signal: the resources, the fencing
//! token, and a validity that moves forward with each extension.

mod common;

use std::time::Duration;

use common::{builder, nodes, redlock, Virtual};
use redlock_core::{AbortSignal, Error};

const TTL: Duration = Duration::from_millis(1000);

#[tokio::test(start_paused = true)]
async fn the_routine_sees_the_resources_and_the_fencing_token() {
    let nodes = nodes(3);
    let redlock = builder(&nodes).fencing(true).build().unwrap();
    // An earlier holder of the same slot's counter: the routine's token must
    // come after it.
    let earlier = redlock.acquire(&["{job}a"], TTL).await.unwrap();
    let earlier_token = earlier.fencing_token().expect("fenced");
    earlier.release().await.unwrap();

    let (resources, token) = redlock
        .using(&["{job}a", "{job}b"], TTL, |signal| async move {
            Ok::<_, Error>((signal.resources().to_vec(), signal.fencing_token()))
        })
        .await
        .unwrap();
    assert_eq!(resources, ["{job}a", "{job}b"]);
    let token = token.expect("a fenced using() hands its routine the token");
    assert!(token > earlier_token, "{token} after {earlier_token}");

    // Without fencing: the resources, and no token.
    let plain = redlock_core::Redlock::builder(nodes.clone())
        .runtime(Virtual)
        .build()
        .unwrap();
    let token = plain
        .using(&["job:plain"], TTL, |signal| async move {
            assert_eq!(signal.resources(), ["job:plain"]);
            Ok::<_, Error>(signal.fencing_token())
        })
        .await
        .unwrap();
    assert_eq!(token, None);
}

#[tokio::test(start_paused = true)]
async fn the_validity_moves_forward_when_the_lock_is_extended() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let (before, after, left_before, left_after) = redlock
        .using(&["job"], TTL, |signal| async move {
            let before = signal.expiration().expect("bound to the lock");
            let left_before = signal.remaining_validity();
            // Past the first extension, due when 500 ms of the 988 ms of
            // validity are left, and before the lock would have expired.
            tokio::time::sleep(Duration::from_millis(700)).await;
            let after = signal.expiration().expect("bound to the lock");
            Ok::<_, Error>((before, after, left_before, signal.remaining_validity()))
        })
        .await
        .unwrap();
    assert!(after > before, "expiration {after:?} not after {before:?}");
    // Without the extension, 700 ms of the first validity would be gone.
    let unextended = left_before.saturating_sub(Duration::from_millis(700));
    assert!(
        left_after > unextended,
        "{left_after:?} left, no more than the unextended {unextended:?}"
    );
    assert!(left_before > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_clone_of_the_signal_follows_the_extensions_too() {
    let nodes = nodes(3);
    let redlock = redlock(&nodes);
    let (first, later) = redlock
        .using(&["job"], TTL, |signal| async move {
            let kept = signal.clone();
            let first = kept.expiration();
            drop(signal);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok::<_, Error>((first, kept.expiration()))
        })
        .await
        .unwrap();
    assert!(later > first, "{later:?} not after {first:?}");
    // The lock was held through 1.5 s on the nodes' clock: more than one TTL.
    assert!(later.unwrap() > first.unwrap() + Duration::from_millis(500));
}

#[test]
fn the_signal_can_move_to_other_tasks_and_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<AbortSignal>();
}

#[test]
fn a_signal_of_no_lock_has_no_resources_token_or_validity() {
    let signal = AbortSignal::new();
    assert!(signal.resources().is_empty());
    assert_eq!(signal.fencing_token(), None);
    assert_eq!(signal.expiration(), None);
    assert_eq!(signal.remaining_validity(), Duration::ZERO);
    assert!(!signal.is_aborted());
    assert!(format!("{signal:?}").contains("fencing_token: None"));
}
