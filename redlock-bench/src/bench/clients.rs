//! The implementations under test, behind one small enum so that every
//! workload drives them through the same code.

use std::time::Duration;

use futures::future::join_all;
use rand::RngExt;
use redis::aio::MultiplexedConnection;
use redlock_core::{Error, Lock, Redlock, TokioRuntime};
use redlock_fred::FredBackend;
use redlock_redis_rs::RedisBackend;

use super::BenchError;

/// An implementation, as the tables and the JSON name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Impl {
    /// Ours, through the redis-rs adapter.
    Ours,
    /// Ours, through the fred adapter.
    Fred,
    /// The `redis` crate used directly: the floor.
    Floor,
    /// The `fred` crate used directly, as the floor uses `redis`: the fred
    /// adapter's floor.
    FredFloor,
    /// rslock 0.10.
    Rslock,
    /// Ours through the redis-rs adapter over a plain `MultiplexedConnection`
    /// per node (`RedisBackend::new`) instead of `connect`'s
    /// `ConnectionManager`: the core's cost without the manager's.
    OursMux,
}

impl Impl {
    /// Every implementation, in table order.
    pub const ALL: [Impl; 6] = [
        Impl::Ours,
        Impl::OursMux,
        Impl::Fred,
        Impl::Floor,
        Impl::FredFloor,
        Impl::Rslock,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Fred => "fred",
            Impl::Floor => "floor",
            Impl::FredFloor => "fred_floor",
            Impl::Rslock => "rslock",
            Impl::OursMux => "ours_mux",
        }
    }

    /// The name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Impl::Ours => "ours (redis-rs)",
            Impl::Fred => "ours (fred)",
            Impl::Floor => "floor (redis-rs direct)",
            Impl::FredFloor => "fred_floor (fred direct)",
            Impl::Rslock => "rslock 0.10",
            Impl::OursMux => "ours (redis-rs, MultiplexedConnection)",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.key() == s)
    }

    /// Whether the contended workload runs it (the floor has no retry
    /// policy; wake-on-release only matters there).
    pub(crate) fn contends(self) -> bool {
        !matches!(self, Impl::Floor | Impl::FredFloor | Impl::OursMux)
    }

    /// Whether the uncontended workloads run it.
    pub(crate) fn uncontended(self) -> bool {
        true
    }
}

/// A connected implementation.
pub(crate) enum Client {
    Ours(Redlock),
    Floor(Floor),
    FredFloor(FredFloor),
    Rslock(rslock::LockManager),
}

/// A held lock of any implementation.
pub(crate) enum Held {
    Ours(Lock),
    Floor(String),
    Rslock(rslock::Lock),
}

/// Why one acquisition did not return a lock.
#[derive(Debug)]
pub(crate) enum Miss {
    /// Held by someone else (ours: `Error::Held`; rslock: `Unavailable`;
    /// floor: no quorum of `SET NX`).
    Held,
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Held => f.write_str("held by another owner"),
            Miss::Failed(e) => f.write_str(e),
        }
    }
}

impl Client {
    /// Connects `which` to the nodes at `urls`.
    pub(crate) async fn connect(which: Impl, urls: &[String]) -> Result<Client, BenchError> {
        let fail = |e: &dyn std::fmt::Display| {
            BenchError::new(format!("{}: cannot connect: {e}", which.label()))
        };
        match which {
            Impl::Ours => {
                let mut backends = Vec::with_capacity(urls.len());
                for url in urls {
                    backends.push(RedisBackend::connect(url).await.map_err(|e| fail(&e))?);
                }
                Redlock::builder(backends)
                    .runtime(TokioRuntime)
                    .build()
                    .map(Client::Ours)
                    .map_err(|e| fail(&e))
            }
            Impl::Fred => {
                let mut backends = Vec::with_capacity(urls.len());
                for url in urls {
                    backends.push(FredBackend::connect(url).await.map_err(|e| fail(&e))?);
                }
                Redlock::builder(backends)
                    .runtime(TokioRuntime)
                    .build()
                    .map(Client::Ours)
                    .map_err(|e| fail(&e))
            }
            Impl::OursMux => {
                let mut backends = Vec::with_capacity(urls.len());
                for url in urls {
                    let conn = async {
                        redis::Client::open(url.as_str())?
                            .get_multiplexed_async_connection()
                            .await
                    }
                    .await
                    .map_err(|e| fail(&e))?;
                    backends.push(RedisBackend::new(conn, url.clone()));
                }
                Redlock::builder(backends)
                    .runtime(TokioRuntime)
                    .build()
                    .map(Client::Ours)
                    .map_err(|e| fail(&e))
            }
            Impl::Floor => Floor::connect(urls)
                .await
                .map(Client::Floor)
                .map_err(|e| fail(&e)),
            Impl::FredFloor => FredFloor::connect(urls)
                .await
                .map(Client::FredFloor)
                .map_err(|e| fail(&e)),
            // rslock's defaults: 3 tries, a uniform 0..200 ms delay between them.
            Impl::Rslock => Ok(Client::Rslock(rslock::LockManager::new(urls.to_vec()))),
        }
    }

    /// One acquisition, with the implementation's own retry policy.
    pub(crate) async fn acquire(&self, key: &str, ttl: Duration) -> Result<Held, Miss> {
        match self {
            Client::Ours(redlock) => match redlock.acquire(&[key], ttl).await {
                Ok(lock) => Ok(Held::Ours(lock)),
                Err(Error::Held(_)) => Err(Miss::Held),
                Err(e) => Err(Miss::Failed(e.to_string())),
            },
            Client::Floor(floor) => floor.acquire(key, ttl).await.map(Held::Floor),
            Client::FredFloor(floor) => floor.acquire(key, ttl).await.map(Held::Floor),
            Client::Rslock(manager) => match manager.lock(key, ttl).await {
                Ok(lock) => Ok(Held::Rslock(lock)),
                Err(rslock::LockError::Unavailable) => Err(Miss::Held),
                Err(e) => Err(Miss::Failed(e.to_string())),
            },
        }
    }

    /// Acquires, retrying until it holds the lock (rslock: its own
    /// `acquire_no_guard` loop). Returns the lock, how many calls ran out of
    /// retries or failed on the way, and (ours only) how many attempts
    /// (rounds) all those calls made.
    pub(crate) async fn acquire_until(&self, key: &str, ttl: Duration) -> (Held, u64, Option<u64>) {
        match self {
            Client::Rslock(manager) => loop {
                // Loops by itself on Unavailable; only a TTL too large ends it.
                match manager.acquire_no_guard(key, ttl).await {
                    Ok(lock) => return (Held::Rslock(lock), 0, None),
                    Err(_) => tokio::task::yield_now().await,
                }
            },
            Client::Ours(redlock) => {
                let (mut gave_up, mut attempts) = (0, 0);
                loop {
                    match redlock.acquire(&[key], ttl).await {
                        Ok(lock) => {
                            attempts += lock.attempts().total();
                            return (Held::Ours(lock), gave_up, Some(attempts));
                        }
                        Err(e) => {
                            gave_up += 1;
                            attempts += e.failure().map_or(0, |f| f.attempts.total());
                        }
                    }
                }
            }
            Client::Floor(_) | Client::FredFloor(_) => {
                let mut gave_up = 0;
                loop {
                    match self.acquire(key, ttl).await {
                        Ok(held) => return (held, gave_up, None),
                        Err(_) => gave_up += 1,
                    }
                }
            }
        }
    }

    /// Releases a lock this client acquired.
    pub(crate) async fn release(&self, held: Held, key: &str) -> Result<(), String> {
        match (self, held) {
            (Client::Ours(_), Held::Ours(lock)) => {
                lock.release().await.map(drop).map_err(|e| e.to_string())
            }
            (Client::Floor(floor), Held::Floor(value)) => floor.release(key, &value).await,
            (Client::FredFloor(floor), Held::Floor(value)) => floor.release(key, &value).await,
            (Client::Rslock(manager), Held::Rslock(lock)) => {
                manager.unlock(&lock).await;
                Ok(())
            }
            _ => Err("a lock released through another implementation".to_owned()),
        }
    }
}

/// The floor: one multiplexed connection per node, `SET NX PX` to all in
/// parallel, then compare-and-delete by `EVALSHA` to all in parallel.
pub(crate) struct Floor {
    conns: Vec<MultiplexedConnection>,
    quorum: usize,
    sha: String,
}

/// A fresh 128-bit random lock value, as both floors draw it.
fn lock_value() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// Deletes the key only if it holds our value.
const FLOOR_RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"#;

impl Floor {
    async fn connect(urls: &[String]) -> Result<Floor, redis::RedisError> {
        let mut conns = Vec::with_capacity(urls.len());
        let mut sha = String::new();
        for url in urls {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            sha = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(FLOOR_RELEASE)
                .query_async(&mut conn)
                .await?;
            conns.push(conn);
        }
        Ok(Floor {
            quorum: conns.len() / 2 + 1,
            conns,
            sha,
        })
    }

    async fn acquire(&self, key: &str, ttl: Duration) -> Result<String, Miss> {
        let value = lock_value();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let replies = join_all(self.conns.iter().map(|conn| {
            let mut conn = conn.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(&value).arg("NX").arg("PX").arg(ttl_ms);
            async move { cmd.query_async::<redis::Value>(&mut conn).await }
        }))
        .await;
        let set = replies
            .iter()
            .filter(|r| matches!(r, Ok(redis::Value::Okay)))
            .count();
        if set >= self.quorum {
            return Ok(value);
        }
        let _ = self.release(key, &value).await;
        let errors: Vec<String> = replies
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if errors.len() > self.conns.len() - self.quorum {
            return Err(Miss::Failed(errors.join("; ")));
        }
        Err(Miss::Held)
    }

    async fn release(&self, key: &str, value: &str) -> Result<(), String> {
        let replies = join_all(self.conns.iter().map(|conn| {
            let mut conn = conn.clone();
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.sha).arg(1).arg(key).arg(value);
            async move { cmd.query_async::<redis::Value>(&mut conn).await }
        }))
        .await;
        match replies.into_iter().find_map(Result::err) {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }
}

/// The fred floor: the redis-rs floor's two round trips through fred used
/// directly, with fred's defaults (one `Client` per node, `Builder` defaults:
/// RESP2, no command timeout, fred's own pipelining): `SET NX PX` to all N in
/// parallel with fred's `set`, then the compare-and-delete script by fred's
/// `evalsha` (loaded once per node with `script_load`) to all N in parallel.
pub(crate) struct FredFloor {
    clients: Vec<fred::clients::Client>,
    quorum: usize,
    sha: String,
}

impl FredFloor {
    async fn connect(urls: &[String]) -> Result<FredFloor, fred::error::Error> {
        use fred::interfaces::{ClientLike, LuaInterface};
        let mut clients = Vec::with_capacity(urls.len());
        let mut sha = String::new();
        for url in urls {
            let config = fred::types::config::Config::from_url(url)?;
            let client = fred::types::Builder::from_config(config).build()?;
            client.init().await?;
            sha = client.script_load(FLOOR_RELEASE).await?;
            clients.push(client);
        }
        Ok(FredFloor {
            quorum: clients.len() / 2 + 1,
            clients,
            sha,
        })
    }

    async fn acquire(&self, key: &str, ttl: Duration) -> Result<String, Miss> {
        use fred::interfaces::KeysInterface;
        use fred::types::{Expiration, SetOptions, Value};
        let value = lock_value();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let replies = join_all(self.clients.iter().map(|client| {
            client.set::<Value, _, _>(
                key,
                value.as_str(),
                Some(Expiration::PX(ttl_ms)),
                Some(SetOptions::NX),
                false,
            )
        }))
        .await;
        let set = replies
            .iter()
            .filter(|r| matches!(r, Ok(v) if v.is_ok()))
            .count();
        if set >= self.quorum {
            return Ok(value);
        }
        let _ = self.release(key, &value).await;
        let errors: Vec<String> = replies
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        if errors.len() > self.clients.len() - self.quorum {
            return Err(Miss::Failed(errors.join("; ")));
        }
        Err(Miss::Held)
    }

    async fn release(&self, key: &str, value: &str) -> Result<(), String> {
        use fred::interfaces::LuaInterface;
        use fred::types::Value;
        let replies = join_all(
            self.clients
                .iter()
                .map(|client| client.evalsha::<Value, _, _, _>(self.sha.as_str(), key, value)),
        )
        .await;
        match replies.into_iter().find_map(Result::err) {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }
}
