//! Wake-on-release: a waiter retries the moment the holder releases.

mod common;

use std::time::Duration;

use common::{builder, live_keys, nodes, Virtual};
use redlock_core::{ErrorKind, Fault, Redlock, Runtime};

const TTL: Duration = Duration::from_secs(5);

fn client(nodes: &[common::Node], wake: bool) -> Redlock {
    builder(nodes)
        .wake_on_release(wake)
        .retry_count(100)
        .retry_delay(Duration::from_millis(200))
        .retry_jitter(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// The holder keeps the lock 50 ms; a waiter starts at 10 ms. Returns when the
/// waiter got it, relative to the release.
async fn handoff_delay(nodes: &[common::Node], wake_holder: bool, wake_waiter: bool) -> Duration {
    let holder = client(nodes, wake_holder);
    let waiter = client(nodes, wake_waiter);
    let start = Virtual.now();
    let lock = holder.acquire(&["res"], TTL).await.unwrap();
    let hold = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        lock.release().await.unwrap();
        Virtual.now()
    };
    let wait = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let lock = waiter.acquire(&["res"], TTL).await.unwrap();
        let got = Virtual.now();
        lock.release().await.unwrap();
        got
    };
    let (released, got) = futures::join!(hold, wait);
    assert_eq!(released - start, Duration::from_millis(50));
    got - released
}

#[tokio::test(start_paused = true)]
async fn a_waiter_acquires_the_moment_the_holder_releases() {
    let nodes = nodes(3);
    assert_eq!(handoff_delay(&nodes, true, true).await, Duration::ZERO);
    assert_eq!(live_keys(&nodes), 0);
}

#[tokio::test(start_paused = true)]
async fn without_wake_the_waiter_sleeps_out_its_retry_delay() {
    let nodes = nodes(3);
    // The waiter failed at 10 ms and sleeps 200 ± 100 ms: it cannot be back
    // before 110 ms, 60 ms after the release.
    let delay = handoff_delay(&nodes, false, false).await;
    assert!(delay >= Duration::from_millis(60), "{delay:?}");
    // A holder that does not publish cannot wake a waiter that listens.
    let delay = handoff_delay(&nodes, false, true).await;
    assert!(delay >= Duration::from_millis(60), "{delay:?}");
}

#[tokio::test(start_paused = true)]
async fn nodes_that_cannot_watch_fall_back_to_the_timer() {
    let nodes = nodes(3);
    // One node fails: the other two still carry the notification.
    nodes[2].set_for(
        redlock_core::Operation::Acquire,
        Fault::Fail(ErrorKind::Connection),
    );
    assert_eq!(handoff_delay(&nodes, true, true).await, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn eight_contenders_hand_off_without_idle_gaps_and_nobody_starves() {
    let nodes = nodes(5);
    let clients: Vec<Redlock> = (0..8).map(|_| client(&nodes, true)).collect();
    let start = Virtual.now();
    let log = std::sync::Mutex::new(Vec::new());
    let work = clients.iter().enumerate().map(|(id, c)| {
        let log = &log;
        async move {
            for _ in 0..5 {
                let asked = Virtual.now();
                let lock = c.acquire(&["res"], TTL).await.unwrap();
                log.lock().unwrap().push((id, Virtual.now() - asked));
                tokio::time::sleep(Duration::from_millis(10)).await;
                lock.release().await.unwrap();
            }
        }
    });
    futures::future::join_all(work).await;
    let elapsed = Virtual.now() - start;
    // 40 sections of 10 ms back to back: the lock never sat idle.
    assert_eq!(
        elapsed,
        Duration::from_millis(400),
        "idle gaps between owners"
    );
    let worst = log.lock().unwrap().iter().map(|(_, w)| *w).max().unwrap();
    assert!(worst < TTL, "a waiter waited {worst:?}");
    assert_eq!(live_keys(&nodes), 0);
}
