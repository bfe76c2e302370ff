//! Fencing tokens: the storage refuses a write from a holder whose lock was
//! taken over while it was paused.
//!
//! ```text
//! cargo run --example fencing
//! ```

use std::sync::Mutex;
use std::time::Duration;

use redlock::{Error, MemoryBackend, Redlock};

/// Storage that remembers the highest token it has seen and refuses older ones.
#[derive(Default)]
struct FencedStore {
    highest: Mutex<u64>,
    rows: Mutex<Vec<String>>,
}

impl FencedStore {
    fn write(&self, token: u64, row: &str) -> Result<(), String> {
        let mut highest = self.highest.lock().map_err(|e| e.to_string())?;
        if token < *highest {
            return Err(format!("stale token {token} < {}: write refused", *highest));
        }
        *highest = token;
        self.rows
            .lock()
            .map_err(|e| e.to_string())?
            .push(row.to_owned());
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    println!("using the embedded in-process backend (MemoryBackend x 5)");
    let nodes: Vec<MemoryBackend> = (0..5).map(|_| MemoryBackend::new()).collect();
    let redlock = Redlock::builder(nodes).fencing(true).build()?;
    let store = FencedStore::default();

    // Client A takes the lock, then stalls (GC pause, swap...) past its TTL.
    let a = redlock
        .acquire(&["ledger:7"], Duration::from_millis(200))
        .await?;
    let token_a = a.fencing_token().unwrap_or_default();
    println!("A holds ledger:7 with token {token_a}");
    tokio::time::sleep(Duration::from_millis(250)).await;

    // Client B acquires the expired lock and writes.
    let b = redlock
        .acquire(&["ledger:7"], Duration::from_millis(200))
        .await?;
    let token_b = b.fencing_token().unwrap_or_default();
    println!("B holds ledger:7 with token {token_b}");
    println!("B writes: {:?}", store.write(token_b, "from B"));

    // A wakes up and tries to write with its old token: refused.
    println!("A writes: {:?}", store.write(token_a, "from A"));
    b.release().await?;
    Ok(())
}
