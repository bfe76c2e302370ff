//! Acquire, extend and release a lock; then show that a second owner is kept out.
//!
//! ```text
//! cargo run --example quickstart                     # in-process nodes, no Redis needed
//! cargo run --example quickstart -- redis://127.0.0.1:7001 redis://127.0.0.1:7002 redis://127.0.0.1:7003
//! ```
//!
//! With URLs it uses the redis-rs adapter (feature `redis-rs`, on by default),
//! one backend per independent node.

use std::time::Duration;

use redlock::{Error, LockBackend, MemoryBackend, Redlock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    let backends = backends(&urls).await?;
    let redlock = Redlock::builder(backends).retry_count(3).build()?;

    let lock = redlock
        .acquire(&["quickstart:invoice:42"], Duration::from_secs(10))
        .await?;
    println!(
        "acquired {:?} on {} of {} nodes after {} attempt(s); valid for {:?}",
        lock.resources(),
        lock.attempts().last().map_or(0, |a| a.votes_for()),
        redlock.membership_size(),
        lock.attempts().total(),
        lock.remaining_validity()
    );

    // Someone else tries: held, so they get a typed error after their retries.
    match redlock
        .try_acquire(&["quickstart:invoice:42"], Duration::from_secs(10))
        .await
    {
        Err(Error::Held(failure)) => println!("a second owner is refused: {failure}"),
        other => println!("unexpected: {other:?}"),
    }

    let lock = lock.extend(Duration::from_secs(10)).await?;
    println!("extended; valid for {:?}", lock.remaining_validity());

    let release = lock.release().await?;
    println!(
        "released on {} node(s); held until then: {}",
        release.released,
        release.was_held()
    );
    Ok(())
}

async fn backends(
    urls: &[String],
) -> Result<Vec<Box<dyn LockBackend>>, Box<dyn std::error::Error>> {
    if urls.is_empty() {
        println!("no Redis URLs given: using the embedded in-process backend (MemoryBackend x 3)");
        return Ok((0..3)
            .map(|i| {
                Box::new(MemoryBackend::new().named(format!("memory-{i}"))) as Box<dyn LockBackend>
            })
            .collect());
    }
    connect(urls).await
}

#[cfg(feature = "redis-rs")]
async fn connect(urls: &[String]) -> Result<Vec<Box<dyn LockBackend>>, Box<dyn std::error::Error>> {
    let mut backends: Vec<Box<dyn LockBackend>> = Vec::new();
    for url in urls {
        println!("node: {url} (redis-rs)");
        backends.push(Box::new(redlock::RedisBackend::connect(url).await?));
    }
    Ok(backends)
}

#[cfg(not(feature = "redis-rs"))]
async fn connect(_: &[String]) -> Result<Vec<Box<dyn LockBackend>>, Box<dyn std::error::Error>> {
    Err("Redis URLs need the `redis-rs` feature: cargo run --example quickstart --features redis-rs -- URL...".into())
}
