//! The futures of `acquire` and `release` stay small.
//!
//! A future is copied whole wherever it starts: each `.await` of an `async
//! fn` moves the callee's future into the caller's, so every level of a large
//! future costs a large `memcpy`, on every lock, granted or not. The rare
//! paths (the undo of a failed attempt, the wake-on-release subscription, the
//! fencing round, dropping unused subscriptions) are boxed so that they do
//! not count here. These bounds catch a rare path inlined again: with the
//! span wrapper as an `async fn`, the acquire future was 2,792 bytes.

use std::time::Duration;

use redlock_core::{MemoryBackend, Redlock};

#[test]
fn acquire_and_release_futures_stay_small() {
    let redlock = Redlock::new(vec![MemoryBackend::new()]).expect("one backend");
    let acquire = redlock.acquire(&["r"], Duration::from_secs(1));
    let acquire_size = std::mem::size_of_val(&acquire);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let lock = runtime.block_on(acquire).expect("granted");
    let release = lock.release();
    let release_size = std::mem::size_of_val(&release);
    assert!(
        acquire_size <= 2048,
        "the acquire future grew to {acquire_size} bytes"
    );
    assert!(
        release_size <= 1280,
        "the release future grew to {release_size} bytes"
    );
    let released = runtime.block_on(release).expect("released");
    assert!(released.was_held());
}
