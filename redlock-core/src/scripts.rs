//! The Lua scripts a Redis backend runs, and how custom ones are supplied.
//!
//! The text of every default script lives here, once; adapters never carry a
//! copy. Each script takes `KEYS` = the lock's resources, `ARGV[1]` = the lock
//! value and `ARGV[2]` = the TTL in milliseconds, and replies with the number of
//! keys it applied to. The core turns that count into a vote: a reply equal to
//! the number of keys is a vote for, anything else a vote against.
//!
//! One exception, for the built-in release scripts only: they are sent the
//! value alone (`ARGV[1]`), as node-redlock's release is. A release has no
//! TTL, and each argument costs the node: on redis-server 7.0 an `EVALSHA`
//! with a second, unused argument costs 1.7k more instructions (callgrind, a
//! `SET NX PX` and its release: 31.4k with the value alone, 33.1k with a `0`
//! beside it). A replaced release script ([`Scripts::with_release`]) still
//! gets `ARGV[2]` = `0`, as the contract above says.
//!
//! A [`Script`] carries its SHA-1, computed once at construction, so adapters can
//! send `EVALSHA` without hashing on the hot path and fall back to `EVAL` on a
//! `NOSCRIPT` reply.

use std::fmt;
use std::sync::Arc;

/// Takes every key, or none. A key that already holds *our* value does not block
/// (so a retry is never blocked by this caller's own partial lock from an
/// earlier attempt); a key holding any other value makes the script return 0
/// without writing anything.
pub const ACQUIRE_LUA: &str = r#"for _, key in ipairs(KEYS) do
  local current = redis.call("GET", key)
  if current and current ~= ARGV[1] then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[1], "PX", ARGV[2])
end
return #KEYS
"#;

/// Resets the TTL of every key, or of none: if any key does not hold our value,
/// it returns 0 without writing. The TTL is replaced, not added to.
pub const EXTEND_LUA: &str = r#"for _, key in ipairs(KEYS) do
  if redis.call("GET", key) ~= ARGV[1] then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("PEXPIRE", key, ARGV[2])
end
return #KEYS
"#;

/// The Lua lines every built-in release script starts with: for each key
/// that holds our value (`ARGV[1]`), delete it and count it. What a script
/// does with a deleted `key` goes next, then `lua_release_end!`.
macro_rules! lua_release_each_key {
    () => {
        r#"local count = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    count = count + 1
"#
    };
}

/// The Lua lines every built-in release script ends with: close the loop of
/// `lua_release_each_key!` and reply with the count.
macro_rules! lua_release_end {
    () => {
        r#"  end
end
return count
"#
    };
}

/// Deletes each key that holds our value, and returns how many it deleted.
/// Keys held by another value are left untouched. Sent `ARGV[1]` only (see
/// the [module docs](self)).
pub const RELEASE_LUA: &str = concat!(lua_release_each_key!(), lua_release_end!());

/// The fenced acquire: `KEYS` = the n resources, then their n fence counters
/// (the per-slot counters, [`crate::keys::fence_key`]), then their n legacy
/// per-resource counters ([`crate::keys::legacy_fence_key`]); `ARGV` = value,
/// TTL. Takes every resource or none, as [`ACQUIRE_LUA`], and in the same
/// atomic step reads the highest of all those counters. Replies `{n, fence}`,
/// or `{0, 0}` when refused.
pub const ACQUIRE_FENCED_LUA: &str = r#"local n = #KEYS / 3
for i = 1, n do
  local current = redis.call("GET", KEYS[i])
  if current and current ~= ARGV[1] then
    return {0, 0}
  end
end
local fence = 0
for i = 1, n do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
end
for i = n + 1, 3 * n do
  local f = tonumber(redis.call("GET", KEYS[i]) or "0") or 0
  if f > fence then
    fence = f
  end
end
return {n, fence}
"#;

/// The fence write-back: `KEYS` as for [`ACQUIRE_FENCED_LUA`]; `ARGV` = value,
/// TTL (unused), token. If every resource still holds our value, raises each
/// slot counter to the highest of itself, the resource's legacy counter and
/// the token (never lowers it; counters never expire), deletes the legacy
/// counter (its value now lives in the slot counter, so a later read of
/// either finds at least as much as before) and replies n; otherwise changes
/// nothing and replies 0.
pub const FENCE_LUA: &str = r#"local n = #KEYS / 3
local token = tonumber(ARGV[3])
for i = 1, n do
  if redis.call("GET", KEYS[i]) ~= ARGV[1] then
    return 0
  end
end
for i = 1, n do
  local slot = tonumber(redis.call("GET", KEYS[n + i]) or "0") or 0
  local legacy = redis.call("GET", KEYS[2 * n + i])
  local held = tonumber(legacy or "0") or 0
  if held > token then
    if slot < held then
      redis.call("SET", KEYS[n + i], legacy)
    end
  elseif slot < token then
    redis.call("SET", KEYS[n + i], ARGV[3])
  end
  if legacy then
    redis.call("DEL", KEYS[2 * n + i])
  end
end
return n
"#;

/// The Lua lines that set `channel` to the release channel of `key`, by the
/// rule of [`release_channel`](crate::wake::release_channel), once for both
/// announcing release scripts.
macro_rules! lua_release_channel {
    () => {
        r#"    local channel
    if string.find(key, "}", 1, true) then
      channel = key .. ":redlock:released"
    else
      channel = "redlock:released:{" .. key .. "}"
    end
"#
    };
}

/// Release with wake-on-release on a standalone node: as [`RELEASE_LUA`],
/// and each key deleted is announced on its channel by `PUBLISH`, when
/// someone subscribed to that channel on this node (`PUBSUB NUMSUB`, a table
/// lookup). Nobody listening, nothing is sent, so a lock nobody waits for
/// costs no message, not even to the node's replicas. The message is the
/// released value, so a process that hears one release from several nodes
/// can tell it is one release
/// ([`ReleaseHub::notify`](crate::wake::ReleaseHub::notify)). Returns how
/// many it deleted.
///
/// The script names each channel itself, by the rule of
/// [`release_channel`](crate::wake::release_channel): `<key>:redlock:released`
/// for a key with a `}` in it (so a hash tag carries over), and
/// `redlock:released:{<key>}` for any other. The two must agree; the
/// conformance case `release_names_the_channel` checks them on a real node.
/// The channels the core passes in [`Request::extra_args`](crate::Request::extra_args)
/// (for backends that announce in Rust) are not sent to Redis, nor is the TTL.
///
/// What it costs the node, measured with callgrind on redis-server 7.0
/// (instructions per `SET NX PX` and its release, 64 of each per batch,
/// nobody subscribed): 31.4k with a one-key compare-and-delete script,
/// 31.7k with [`RELEASE_LUA`], 40.9k with this one. The `NUMSUB` check is
/// the 9.2k between the last two; publishing unconditionally instead costs
/// about 3k less, but sends every release to the node's replicas. Sending
/// the channels and the TTL as arguments, as an earlier version did, cost
/// 3.1k more (44.0k).
pub const RELEASE_NOTIFY_LUA: &str = concat!(
    lua_release_each_key!(),
    lua_release_channel!(),
    r#"    if redis.call("PUBSUB", "NUMSUB", channel)[2] > 0 then
      redis.call("PUBLISH", channel, ARGV[1])
    end
"#,
    lua_release_end!()
);

/// Release with wake-on-release on a Redis Cluster (a backend whose
/// [`pubsub_kind`](crate::LockBackend::pubsub_kind) is
/// [`Sharded`](crate::wake::PubSubKind::Sharded)): as [`RELEASE_NOTIFY_LUA`]
/// (channels named the same way, value alone), but each release is announced
/// with `SPUBLISH`, which stays on the shard that owns the key, and only when
/// someone subscribed to the shard channel (`PUBSUB SHARDNUMSUB`), since a
/// shard message also travels to the shard's replicas over the cluster bus.
/// On Redis 6, which has neither, nothing is announced (waiters fall back to
/// their retry delay).
pub const RELEASE_NOTIFY_SHARDED_LUA: &str = concat!(
    lua_release_each_key!(),
    lua_release_channel!(),
    r#"    local reply = redis.pcall("PUBSUB", "SHARDNUMSUB", channel)
    if type(reply) == "table" and (tonumber(reply[2]) or 0) > 0 then
      redis.call("SPUBLISH", channel, ARGV[1])
    end
"#,
    lua_release_end!()
);

/// A Lua script and its SHA-1 (hex), computed once.
#[derive(Clone)]
pub struct Script {
    inner: Arc<ScriptInner>,
}

struct ScriptInner {
    text: Box<str>,
    sha1: Box<str>,
    builtin: bool,
    /// Sent `ARGV[1]` (the value) only: the built-in release scripts.
    value_only: bool,
}

impl Script {
    /// A custom script. It must follow the contract in the [module docs](self):
    /// same `KEYS` and `ARGV`, and reply with the number of keys applied.
    pub fn new(text: impl Into<String>) -> Self {
        Self::build(text.into(), false, false)
    }

    fn build(text: String, builtin: bool, value_only: bool) -> Self {
        let sha1 = sha1_smol::Sha1::from(text.as_bytes()).digest().to_string();
        Script {
            inner: Arc::new(ScriptInner {
                text: text.into_boxed_str(),
                sha1: sha1.into_boxed_str(),
                builtin,
                value_only,
            }),
        }
    }

    /// The Lua source.
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// The lowercase hex SHA-1 of the source, as `EVALSHA` expects.
    pub fn sha1(&self) -> &str {
        &self.inner.sha1
    }

    /// Whether this is one of the library's own scripts. A backend that does not
    /// run Lua (such as `MemoryBackend`) implements the built-in semantics and
    /// must refuse a custom script with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// rather than silently ignore it.
    pub fn is_builtin(&self) -> bool {
        self.inner.builtin
    }

    /// Whether the script is sent the value alone, without the TTL and the
    /// request's extra arguments: the built-in release scripts (see the
    /// [module docs](self)). [`Call`](crate::protocol::Call) lays out the
    /// arguments by it.
    pub fn takes_value_only(&self) -> bool {
        self.inner.value_only
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("sha1", &self.sha1())
            .field("builtin", &self.is_builtin())
            .finish()
    }
}

impl PartialEq for Script {
    fn eq(&self, other: &Self) -> bool {
        self.sha1() == other.sha1()
    }
}

impl Eq for Script {}

/// The three scripts a [`Redlock`](crate::Redlock) uses. Replace any of them with
/// [`RedlockBuilder::scripts`](crate::RedlockBuilder::scripts).
///
/// ```
/// use redlock_core::{Script, Scripts};
/// let scripts = Scripts::default()
///     .with_release(Script::new("return redis.call('DEL', unpack(KEYS))"));
/// assert!(!scripts.release().is_builtin());
/// assert!(scripts.acquire().is_builtin());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripts {
    acquire: Script,
    extend: Script,
    release: Script,
    acquire_fenced: Script,
    fence: Script,
    release_notify: Script,
    release_notify_sharded: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            acquire: Script::build(ACQUIRE_LUA.to_owned(), true, false),
            extend: Script::build(EXTEND_LUA.to_owned(), true, false),
            release: Script::build(RELEASE_LUA.to_owned(), true, true),
            acquire_fenced: Script::build(ACQUIRE_FENCED_LUA.to_owned(), true, false),
            fence: Script::build(FENCE_LUA.to_owned(), true, false),
            release_notify: Script::build(RELEASE_NOTIFY_LUA.to_owned(), true, true),
            release_notify_sharded: Script::build(
                RELEASE_NOTIFY_SHARDED_LUA.to_owned(),
                true,
                true,
            ),
        }
    }
}

impl Scripts {
    /// Replaces the acquire script.
    pub fn with_acquire(mut self, script: Script) -> Self {
        self.acquire = script;
        self
    }
    /// Replaces the extend script.
    pub fn with_extend(mut self, script: Script) -> Self {
        self.extend = script;
        self
    }
    /// Replaces the release script.
    pub fn with_release(mut self, script: Script) -> Self {
        self.release = script;
        self
    }
    /// The acquire script.
    pub fn acquire(&self) -> &Script {
        &self.acquire
    }
    /// The extend script.
    pub fn extend(&self) -> &Script {
        &self.extend
    }
    /// The release script.
    pub fn release(&self) -> &Script {
        &self.release
    }
    /// The fenced acquire script (fencing tokens; not replaceable).
    pub fn acquire_fenced(&self) -> &Script {
        &self.acquire_fenced
    }
    /// The fence write-back script (fencing tokens; not replaceable).
    pub fn fence(&self) -> &Script {
        &self.fence
    }
    /// The release script that also publishes (wake-on-release on standalone
    /// nodes; not replaceable).
    pub fn release_notify(&self) -> &Script {
        &self.release_notify
    }
    /// The release script that also publishes on shard channels
    /// (wake-on-release on a Redis Cluster; not replaceable).
    pub fn release_notify_sharded(&self) -> &Script {
        &self.release_notify_sharded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis_script_load() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        assert_eq!(
            Script::new("return 1").sha1(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn defaults_are_builtin_and_custom_is_not() {
        let s = Scripts::default();
        assert!(s.acquire().is_builtin() && s.extend().is_builtin() && s.release().is_builtin());
        assert_ne!(s.acquire(), s.release());
        assert!(!Script::new(ACQUIRE_LUA).is_builtin());
    }
}
