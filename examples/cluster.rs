//! A multi-resource lock on a Redis Cluster: the keys share a hash tag, so they
//! live in one slot and one script can take them all at once.
//!
//! ```text
//! cargo run --example cluster -- redis://127.0.0.1:7000 redis://127.0.0.1:7001 redis://127.0.0.1:7002
//! ```
//! The URLs are seed nodes of ONE cluster, which counts as one Redlock node.
//! For Redlock over several clusters, pass one `RedisBackend` per cluster.

use std::time::Duration;

use redlock::{Error, ErrorKind, RedisBackend, Redlock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        println!("pass the seed URLs of a Redis Cluster, e.g. redis://127.0.0.1:7000");
        return Ok(());
    }
    let cluster = RedisBackend::connect_cluster(&urls).await?;
    let redlock = Redlock::builder([cluster]).retry_count(0).build()?;

    // Same hash tag {org42}: same slot, one atomic lock over both rows.
    let lock = redlock
        .acquire(&["{org42}invoice", "{org42}ledger"], Duration::from_secs(5))
        .await?;
    println!("locked {:?}", lock.resources());
    lock.release().await?;

    // No common tag: the keys hash to different slots and Redis refuses.
    match redlock
        .acquire(&["invoice:42", "ledger:42"], Duration::from_secs(5))
        .await
    {
        Err(Error::Rejected(failure))
            if failure.rejection().map(|e| e.kind()) == Some(ErrorKind::CrossSlot) =>
        {
            println!("without a hash tag: {}", Error::Rejected(failure));
        }
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
