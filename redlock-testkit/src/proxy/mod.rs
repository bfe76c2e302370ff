//! A TCP fault proxy between a client and a `redis-server`, on loopback.
//!
//! [`FaultProxy::start`] listens on a free `127.0.0.1` port and forwards every
//! connection to the upstream address. Point a backend at
//! [`ProxyHandle::url`] instead of the node's URL, and switch the proxy's
//! [`Mode`] at run time to make the node look slow, partitioned, reset, cut
//! off or broken:
//!
//! | mode | new connections | open connections |
//! |---|---|---|
//! | [`Mode::PassThrough`] | forwarded | forwarded |
//! | [`Mode::Latency`] | forwarded, each chunk delayed by `delay ± jitter` (order kept) | the same, from the next chunk on |
//! | [`Mode::Blackhole`] | accepted, then held: nothing read, nothing answered | held: nothing read, nothing forwarded (no byte is lost; on heal it flows again, late) |
//! | [`Mode::Reset`] | accepted and reset (RST) at once | reset |
//! | [`Mode::Refuse`] | refused (the port stays reserved but does not listen) | reset |
//! | [`Mode::Garbage`] | answered by the proxy itself: every script command gets a reply that is not an integer | reset, so clients reconnect into the garbage |
//!
//! [`ProxyHandle::reset_connections`] resets the open connections once and
//! keeps the mode. Every switch returns once the proxy applied it (the
//! listener and every open connection saw it), so a test can act right after.
//!
//! Each proxy runs on a thread of its own with its own tokio runtime, so it
//! works under any executor and from synchronous code, and a client on a
//! current-thread runtime cannot starve it. Dropping the [`FaultProxy`] stops
//! it and closes its connections.
//!
//! ```no_run
//! use std::time::Duration;
//! use redlock_testkit::proxy::{FaultProxy, Latency, Mode};
//! use redlock_testkit::server::RedisNode;
//!
//! let node = RedisNode::start()?;
//! let proxy = FaultProxy::for_node(&node)?;
//! println!("connect to {}", proxy.url());
//! proxy.set_mode(Mode::Latency(Latency::new(Duration::from_millis(50)).jitter(Duration::from_millis(20))));
//! proxy.set_mode(Mode::Blackhole); // a partition
//! proxy.heal(); // back to pass-through
//! proxy.reset_connections();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In garbage mode the proxy parses the client's commands (RESP arrays, or
//! inline commands) and answers each one itself, without an upstream
//! connection: `PING` with `+PONG`; the connection set-up commands (`AUTH`,
//! `HELLO`, `SELECT`, `CLIENT`, `INFO`, `READONLY`, `QUIT`) with `+OK`, so a
//! client connects; everything else (`EVALSHA`, `EVAL`, ...) with the chosen
//! [`Garbage`]. Nothing reaches the node.

use std::time::Duration;

mod accept;
mod garbage;
mod handle;
mod modes;
mod pump;
mod state;

pub use handle::{FaultProxy, ProxyHandle};
pub use modes::{Direction, Garbage, Latency, Mode, ProxyStats};

/// How long a switch waits for the proxy to apply it before returning anyway
/// (a connection stuck writing to a peer that does not read).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the proxy waits to connect to the upstream node.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Chunks a direction may hold (delayed or blackholed) before it stops reading.
const MAX_QUEUED_CHUNKS: usize = 256;

/// Bytes a garbage connection buffers for one command before giving up on it.
const MAX_COMMAND_BYTES: usize = 1 << 20;
