//! The proxy's modes and its statistics: what a test asks of it.

use std::time::Duration;

use super::pump::Flow;

/// What the proxy does with traffic; see the [module docs](crate::proxy).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Forward every byte at once.
    #[default]
    PassThrough,
    /// Forward every chunk after a delay.
    Latency(Latency),
    /// Accept and keep connections, read nothing, answer nothing.
    Blackhole,
    /// Reset every connection, the open ones and every new one.
    Reset,
    /// Refuse new connections (the port does not listen) and reset the open ones.
    Refuse,
    /// Answer every command with a reply the client cannot read as an integer.
    Garbage(Garbage),
}

impl Mode {
    pub(super) fn forwards(&self) -> bool {
        matches!(self, Mode::PassThrough | Mode::Latency(_))
    }
}

/// A delay added to each chunk of data, in one or both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// The base delay.
    pub delay: Duration,
    /// Each chunk's delay is drawn uniformly from `delay ± jitter` (never below
    /// zero). Chunks still leave in the order they came.
    pub jitter: Duration,
    /// Which traffic is delayed.
    pub direction: Direction,
}

impl Latency {
    /// `delay` in both directions, no jitter.
    pub fn new(delay: Duration) -> Latency {
        Latency {
            delay,
            jitter: Duration::ZERO,
            direction: Direction::Both,
        }
    }

    /// With `jitter`.
    pub fn jitter(mut self, jitter: Duration) -> Latency {
        self.jitter = jitter;
        self
    }

    /// Only in `direction`.
    pub fn direction(mut self, direction: Direction) -> Latency {
        self.direction = direction;
        self
    }

    pub(super) fn applies(&self, flow: Flow) -> bool {
        match self.direction {
            Direction::Both => true,
            Direction::ToServer => flow == Flow::Up,
            Direction::ToClient => flow == Flow::Down,
        }
    }
}

/// Which traffic a [`Latency`] delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Requests and replies.
    Both,
    /// Requests only (client to server).
    ToServer,
    /// Replies only (server to client).
    ToClient,
}

/// The reply [`Mode::Garbage`] gives to script commands.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Garbage {
    /// `+OK`: a well-formed status reply, where an integer was expected.
    #[default]
    Status,
    /// `$7 garbage`: a well-formed bulk string, where an integer was expected.
    Bulk,
    /// These bytes, as they are (they may not even be RESP).
    Raw(Vec<u8>),
}

impl Garbage {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Garbage::Status => b"+OK\r\n",
            Garbage::Bulk => b"$7\r\ngarbage\r\n",
            Garbage::Raw(bytes) => bytes,
        }
    }
}

/// Counters of what a proxy did, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now (client side).
    pub open: u64,
    /// Connections the proxy reset (RST).
    pub resets: u64,
    /// Commands answered in garbage mode.
    pub garbage_replies: u64,
    /// Bytes forwarded to the server, counted as each write starts (so any
    /// byte the server has read is counted).
    pub bytes_up: u64,
    /// Bytes forwarded to the client, counted as each write starts (so any
    /// byte the client has read is counted).
    pub bytes_down: u64,
}
