//! `using`: a job that runs for several TTLs under a lock that extends itself,
//! and stops cleanly the moment the lock is lost. The routine's signal also
//! carries the lock's fencing token (for the storage it writes to) and the
//! validity left, which grows back at each extension.
//!
//! ```text
//! cargo run --example using
//! ```

use std::time::Duration;

use futures::future::{select, Either};
use futures::pin_mut;
use redlock::{AbortSignal, Error, MemoryBackend, Redlock};

async fn nightly_job(signal: AbortSignal) -> Result<u32, Error> {
    // Pass the token with every write: the storage refuses tokens older than
    // the highest it has seen, so a holder that stalled past its lock cannot
    // overwrite its successor's work.
    let token = signal.fencing_token().unwrap_or_default();
    println!(
        "job on {:?} runs with fencing token {token}",
        signal.resources()
    );
    let mut batches = 0;
    for batch in 0..6 {
        println!(
            "batch {batch} (token {token}): {} ms of validity left",
            signal.remaining_validity().as_millis()
        );
        // One batch of work, raced against losing the lock.
        let work = tokio::time::sleep(Duration::from_millis(250));
        let lost = signal.aborted();
        pin_mut!(work, lost);
        match select(work, lost).await {
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
        // Every lock gets a strictly increasing fencing token.
        .fencing(true)
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
