//! `using`: a job that runs for several TTLs under a lock that extends itself,
//! and stops cleanly the moment the lock is lost.
//!
//! ```text
//! cargo run --example using
//! ```

use std::time::Duration;

use futures::future::{select, Either};
use futures::pin_mut;
use redlock::{AbortSignal, Error, MemoryBackend, Redlock};

async fn nightly_job(signal: AbortSignal) -> Result<u32, Error> {
    let mut batches = 0;
    for _ in 0..6 {
        // One batch of work, raced against losing the lock.
        let batch = tokio::time::sleep(Duration::from_millis(250));
        let lost = signal.aborted();
        pin_mut!(batch, lost);
        match select(batch, lost).await {
            Either::Left(((), _)) => batches += 1,
            Either::Right((error, _)) => return Err(error),
        }
    }
    Ok(batches)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    println!("using the embedded in-process backend (MemoryBackend x 3)");
    let nodes = [
        MemoryBackend::new(),
        MemoryBackend::new(),
        MemoryBackend::new(),
    ];
    let redlock = Redlock::builder(nodes.clone())
        // Extend when less than 300 ms of validity is left.
        .automatic_extension_threshold(Duration::from_millis(300))
        .build()?;

    // A 1.5 s job under a 600 ms TTL: it is extended about every 300 ms.
    let batches = redlock
        .using(&["job:nightly"], Duration::from_millis(600), nightly_job)
        .await?;
    println!(
        "job finished {batches} batches; lock released: {}",
        nodes.iter().all(MemoryBackend::is_empty)
    );
    Ok(())
}
