//! A small synchronous inspector for assertions: what does the server really
//! hold?
//!
//! [`Probe`] looks at one node, [`ClusterProbe`] at every master of a Redis
//! Cluster (a key lives on whichever master owns its slot). Both use the
//! `redis` crate's synchronous API over their own connection, so they work
//! under any async runtime (they block the calling thread for one round trip).
//!
//! The methods panic with a message naming the node and the command when the
//! node cannot be asked: they are meant for test assertions. The `try_`
//! methods return the error instead.
//!
//! ```no_run
//! use redlock_testkit::{probe::Probe, server::RedisNode};
//!
//! let node = RedisNode::start()?;
//! let probe = Probe::new(&node.url());
//! probe.set_px("k", "v", 10_000);
//! assert_eq!(probe.get("k").as_deref(), Some("v"));
//! assert!(probe.pttl("k").is_some_and(|ms| ms > 0 && ms <= 10_000));
//! assert_eq!(probe.dbsize(), 1);
//! # Ok::<(), redlock_testkit::server::LaunchError>(())
//! ```

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisError, RedisResult, Value};

/// The `redis` crate, for building commands for [`Probe::query`].
pub use redis;

/// How long a probe waits to connect and for each reply.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An inspector for one node; see the [module docs](self).
pub struct Probe {
    url: String,
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Clone for Probe {
    fn clone(&self) -> Self {
        Probe::new(&self.url)
    }
}

impl Probe {
    /// A probe for the node at `url` (`redis://[[user]:password@]host:port`;
    /// not `rediss://`: the testkit's own client has no TLS, so probe a TLS
    /// node through its plain [`admin_url`](crate::server::RedisNode::admin_url),
    /// as [`RedisNode::probe`](crate::server::RedisNode::probe) does). It
    /// connects on first use, and again after a connection error (so it
    /// survives a node restart).
    ///
    /// # Panics
    ///
    /// If `url` is not a Redis URL.
    pub fn new(url: &str) -> Probe {
        let client = redis::Client::open(url)
            .unwrap_or_else(|e| panic!("probe: {url:?} is not a Redis URL: {e}"));
        Probe {
            url: url.to_owned(),
            client,
            conn: Mutex::new(None),
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn conn(&self) -> MutexGuard<'_, Option<redis::Connection>> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs any command; retries once on a fresh connection when the cached
    /// one failed at the I/O level.
    pub fn try_query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut slot = self.conn();
        for attempt in 0..2 {
            if slot.is_none() {
                let conn = self.client.get_connection_with_timeout(PROBE_TIMEOUT)?;
                conn.set_read_timeout(Some(PROBE_TIMEOUT))?;
                conn.set_write_timeout(Some(PROBE_TIMEOUT))?;
                *slot = Some(conn);
            }
            let conn = slot.as_mut().expect("connected above");
            match cmd.query::<T>(conn) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                    *slot = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Runs any command, panicking with the node and command on error.
    pub fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> T {
        self.try_query(cmd)
            .unwrap_or_else(|e| panic!("probe of {}: {} failed: {e}", self.url, describe(cmd)))
    }

    /// `PING`; `Ok` if the node answered `PONG`.
    pub fn try_ping(&self) -> RedisResult<()> {
        let pong: String = self.try_query(&redis::cmd("PING"))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "PING did not answer PONG",
                pong,
            )))
        }
    }

    /// Whether the node answers `PING`.
    pub fn ping(&self) -> bool {
        self.try_ping().is_ok()
    }

    /// `GET key`: the value, or `None` if the key does not exist.
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key))
    }

    /// `PTTL key`: `None` if the key does not exist, `Some(-1)` if it has no
    /// expiry, else the milliseconds left.
    pub fn pttl(&self, key: &str) -> Option<i64> {
        let ms: i64 = self.query(redis::cmd("PTTL").arg(key));
        (ms != -2).then_some(ms)
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: &str) -> bool {
        self.query::<i64>(redis::cmd("EXISTS").arg(key)) == 1
    }

    /// `SET key value PX ms`, as another owner would.
    pub fn set_px(&self, key: &str, value: &str, ms: u64) {
        let _: Value = self.query(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms));
    }

    /// `DEL key`; whether it existed.
    pub fn del(&self, key: &str) -> bool {
        self.query::<i64>(redis::cmd("DEL").arg(key)) == 1
    }

    /// `DBSIZE`: how many keys the node holds.
    pub fn dbsize(&self) -> usize {
        self.query(&redis::cmd("DBSIZE"))
    }

    /// `KEYS pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg(pattern));
        keys.sort();
        keys
    }

    /// How many keys match `pattern`, counted with `SCAN` (the node keeps
    /// serving others meanwhile, unlike `KEYS`).
    pub fn count_keys(&self, pattern: &str) -> usize {
        let mut cursor = 0u64;
        let mut count = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self.query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000),
            );
            count += keys.len();
            if next == 0 {
                return count;
            }
            cursor = next;
        }
    }

    /// `SCRIPT FLUSH`: forgets every cached script, so the next `EVALSHA`
    /// answers `NOSCRIPT`.
    pub fn script_flush(&self) {
        let _: Value = self.query(redis::cmd("SCRIPT").arg("FLUSH"));
    }

    /// `FLUSHALL`.
    pub fn flushall(&self) {
        let _: Value = self.query(&redis::cmd("FLUSHALL"));
    }

    /// How many times the node ran `command` (lower case, e.g. `"evalsha"`),
    /// from `INFO commandstats`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats"));
        let prefix = format!("cmdstat_{}:", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').find_map(|f| f.strip_prefix("calls=")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// How many connections of this node listen on `channel`: classic
    /// subscriptions (`PUBSUB NUMSUB`), or with `shard` shard subscriptions
    /// (`PUBSUB SHARDNUMSUB`, Redis 7+).
    pub fn channel_subscribers(&self, channel: &str, shard: bool) -> i64 {
        let kind = if shard { "SHARDNUMSUB" } else { "NUMSUB" };
        let reply: Vec<redis::Value> = self.query(redis::cmd("PUBSUB").arg(kind).arg(channel));
        match reply.get(1) {
            Some(redis::Value::Int(n)) => *n,
            other => panic!(
                "probe of {}: PUBSUB {kind} {channel} answered {other:?}",
                self.url
            ),
        }
    }

    /// `CLUSTER KEYSLOT key` (cluster nodes only).
    pub fn keyslot(&self, key: &str) -> u16 {
        self.query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }
}

fn describe(cmd: &Cmd) -> String {
    let parts: Vec<String> = cmd
        .args_iter()
        .map(|a| match a {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect();
    parts.join(" ")
}

fn is_redirect(e: &RedisError) -> bool {
    matches!(e.code(), Some("MOVED") | Some("ASK"))
}

/// An inspector for a Redis Cluster: asks every master and answers for the
/// one that owns the key.
#[derive(Debug, Clone)]
pub struct ClusterProbe {
    masters: Vec<Probe>,
}

impl ClusterProbe {
    /// A probe over the masters at `urls` (every master must be listed).
    pub fn new<S: AsRef<str>>(urls: &[S]) -> ClusterProbe {
        ClusterProbe {
            masters: urls.iter().map(|u| Probe::new(u.as_ref())).collect(),
        }
    }

    /// The per-master probes.
    pub fn masters(&self) -> &[Probe] {
        &self.masters
    }

    /// The index of the master that owns `key`'s slot.
    pub fn owner_of(&self, key: &str) -> usize {
        for (i, probe) in self.masters.iter().enumerate() {
            match probe.try_query::<i64>(redis::cmd("EXISTS").arg(key)) {
                Ok(_) => return i,
                Err(e) if is_redirect(&e) => continue,
                Err(e) => panic!("probe of {}: EXISTS {key} failed: {e}", probe.url()),
            }
        }
        panic!("no master of {:?} owns the slot of {key:?}", self.urls())
    }

    fn on_owner<T: FromRedisValue>(&self, cmd: &Cmd) -> T {
        for probe in &self.masters {
            match probe.try_query::<T>(cmd) {
                Ok(v) => return v,
                Err(e) if is_redirect(&e) => continue,
                Err(e) => panic!("probe of {}: {} failed: {e}", probe.url(), describe(cmd)),
            }
        }
        panic!("no master of {:?} accepted {}", self.urls(), describe(cmd))
    }

    fn urls(&self) -> Vec<&str> {
        self.masters.iter().map(Probe::url).collect()
    }

    /// `GET key` on the owning master.
    pub fn get(&self, key: &str) -> Option<String> {
        self.on_owner(redis::cmd("GET").arg(key))
    }

    /// `PTTL key` on the owning master: `None` if the key does not exist.
    pub fn pttl(&self, key: &str) -> Option<i64> {
        let ms: i64 = self.on_owner(redis::cmd("PTTL").arg(key));
        (ms != -2).then_some(ms)
    }

    /// `EXISTS key` on the owning master.
    pub fn exists(&self, key: &str) -> bool {
        self.on_owner::<i64>(redis::cmd("EXISTS").arg(key)) == 1
    }

    /// `SET key value PX ms` on the owning master.
    pub fn set_px(&self, key: &str, value: &str, ms: u64) {
        let _: Value = self.on_owner(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms));
    }

    /// `DEL key` on the owning master; whether it existed.
    pub fn del(&self, key: &str) -> bool {
        self.on_owner::<i64>(redis::cmd("DEL").arg(key)) == 1
    }

    /// The sum of `DBSIZE` over the masters.
    pub fn dbsize(&self) -> usize {
        self.masters.iter().map(Probe::dbsize).sum()
    }

    /// `KEYS pattern` on every master, merged and sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.masters.iter().flat_map(|p| p.keys(pattern)).collect();
        keys.sort();
        keys
    }

    /// `SCRIPT FLUSH` on every master.
    pub fn script_flush(&self) {
        self.masters.iter().for_each(Probe::script_flush);
    }

    /// `FLUSHALL` on every master.
    pub fn flushall(&self) {
        self.masters.iter().for_each(Probe::flushall);
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        self.masters[0].keyslot(key)
    }
}
