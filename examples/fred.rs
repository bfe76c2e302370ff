//! The same lock over the `fred` client (feature `fred`, tokio only).
//!
//! ```text
//! cargo run --example fred --features fred -- redis://127.0.0.1:6379 ...
//! ```

use std::time::Duration;

use redlock::{FredBackend, Redlock};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    if urls.is_empty() {
        println!("pass one redis:// URL per independent node");
        return Ok(());
    }
    let mut nodes = Vec::new();
    for url in &urls {
        nodes.push(FredBackend::connect(url).await?);
    }
    let redlock = Redlock::new(nodes)?;
    let lock = redlock
        .acquire(&["fred:example"], Duration::from_secs(5))
        .await?;
    println!(
        "locked through fred on {} node(s)",
        redlock.membership_size()
    );
    lock.release().await?;
    Ok(())
}
