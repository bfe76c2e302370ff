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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::server::RedisNode;

/// How long a switch waits for the proxy to apply it before returning anyway
/// (a connection stuck writing to a peer that does not read).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the proxy waits to connect to the upstream node.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Chunks a direction may hold (delayed or blackholed) before it stops reading.
const MAX_QUEUED_CHUNKS: usize = 256;

/// Bytes a garbage connection buffers for one command before giving up on it.
const MAX_COMMAND_BYTES: usize = 1 << 20;

/// What the proxy does with traffic; see the [module docs](self).
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
    fn forwards(&self) -> bool {
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

    fn applies(&self, flow: Flow) -> bool {
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
    fn bytes(&self) -> &[u8] {
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
    /// Bytes forwarded to the server.
    pub bytes_up: u64,
    /// Bytes forwarded to the client.
    pub bytes_down: u64,
}

#[derive(Clone, Debug)]
struct State {
    mode: Mode,
    /// Bumped by every switch; participants acknowledge it.
    generation: u64,
    /// Bumped by [`ProxyHandle::reset_connections`].
    reset_epoch: u64,
    shutdown: bool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    resets: AtomicU64,
    garbage_replies: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// The tasks that must apply a switch before it returns, and the generation
/// each has applied.
#[derive(Default)]
struct Acks {
    next_id: u64,
    applied: HashMap<u64, u64>,
}

struct Shared {
    port: u16,
    upstream: SocketAddr,
    password: Option<String>,
    state: watch::Sender<State>,
    acks: Mutex<Acks>,
    acked: Condvar,
    counters: Counters,
}

impl Shared {
    fn acks(&self) -> MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A task that acknowledges switches; unregisters when dropped.
struct Participant {
    shared: Arc<Shared>,
    id: u64,
}

impl Participant {
    fn register(shared: &Arc<Shared>, generation: u64) -> Participant {
        let mut acks = shared.acks();
        let id = acks.next_id;
        acks.next_id += 1;
        acks.applied.insert(id, generation);
        Participant {
            shared: shared.clone(),
            id,
        }
    }

    fn ack(&self, generation: u64) {
        let mut acks = self.shared.acks();
        if let Some(applied) = acks.applied.get_mut(&self.id) {
            *applied = (*applied).max(generation);
        }
        drop(acks);
        self.shared.acked.notify_all();
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.shared.acks().applied.remove(&self.id);
        self.shared.acked.notify_all();
    }
}

/// A cheap, cloneable handle that switches a [`FaultProxy`]'s mode; see the
/// [module docs](self). It stops working (switches return at once) when the
/// proxy is dropped.
#[derive(Clone)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("port", &self.shared.port)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

impl ProxyHandle {
    /// The port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.shared.port)
    }

    /// `redis://127.0.0.1:PORT`, with the upstream node's password when the
    /// proxy was made by [`FaultProxy::for_node`] for a node that has one.
    pub fn url(&self) -> String {
        match &self.shared.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.shared.port),
            None => format!("redis://127.0.0.1:{}", self.shared.port),
        }
    }

    /// The address traffic is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.state.borrow().mode.clone()
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            garbage_replies: c.garbage_replies.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
        }
    }

    /// Switches to `mode` and returns once the listener and every open
    /// connection applied it (at most [`APPLY_TIMEOUT`]). Blocks the calling
    /// thread for that long at most (usually well under a millisecond).
    pub fn set_mode(&self, mode: Mode) {
        self.apply(|state| state.mode = mode);
    }

    /// Back to [`Mode::PassThrough`].
    pub fn heal(&self) {
        self.set_mode(Mode::PassThrough);
    }

    /// [`Mode::Latency`] in both directions.
    pub fn latency(&self, delay: Duration, jitter: Duration) {
        self.set_mode(Mode::Latency(Latency::new(delay).jitter(jitter)));
    }

    /// [`Mode::Blackhole`].
    pub fn blackhole(&self) {
        self.set_mode(Mode::Blackhole);
    }

    /// [`Mode::Refuse`]: the node is cut off.
    pub fn cut_off(&self) {
        self.set_mode(Mode::Refuse);
    }

    /// [`Mode::Reset`]: every connection is reset, now and until the next switch.
    pub fn keep_resetting(&self) {
        self.set_mode(Mode::Reset);
    }

    /// [`Mode::Garbage`] with `+OK` replies.
    pub fn garbage(&self) {
        self.set_mode(Mode::Garbage(Garbage::Status));
    }

    /// Resets (RST) every open connection once, keeping the mode: clients see
    /// "connection reset" and reconnect.
    pub fn reset_connections(&self) {
        self.apply(|state| state.reset_epoch += 1);
    }

    fn apply(&self, change: impl FnOnce(&mut State)) {
        let mut generation = 0;
        self.shared.state.send_modify(|state| {
            change(state);
            state.generation += 1;
            generation = state.generation;
        });
        let deadline = Instant::now() + APPLY_TIMEOUT;
        let mut acks = self.shared.acks();
        while acks.applied.values().any(|&g| g < generation) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            acks = self
                .shared
                .acked
                .wait_timeout(acks, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// A fault proxy in front of one node; see the [module docs](self). Derefs to
/// its [`ProxyHandle`].
pub struct FaultProxy {
    handle: ProxyHandle,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

impl Deref for FaultProxy {
    type Target = ProxyHandle;
    fn deref(&self) -> &ProxyHandle {
        &self.handle
    }
}

impl FaultProxy {
    /// Starts a proxy in pass-through mode on a free loopback port, forwarding
    /// to `upstream` (such as `"127.0.0.1:7001"` or a node's
    /// [`addr`](RedisNode::addr)). The upstream need not be up.
    pub fn start(upstream: impl ToSocketAddrs) -> io::Result<FaultProxy> {
        let upstream = upstream.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no upstream address given")
        })?;
        Self::launch(upstream, None)
    }

    /// A proxy in front of `node`, whose [`url`](ProxyHandle::url) carries the
    /// node's password, if it has one.
    pub fn for_node(node: &RedisNode) -> io::Result<FaultProxy> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], node.port()));
        Self::launch(upstream, node.options().password.clone())
    }

    /// The handle, to hand to another thread or task.
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    fn launch(upstream: SocketAddr, password: Option<String>) -> io::Result<FaultProxy> {
        // The guard holds the port for the proxy's whole life (bound, never
        // listening), so while the proxy refuses connections nobody else can
        // take the port; the listener shares it through SO_REUSEADDR.
        let guard = reusable_socket()?;
        guard.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let port = guard
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("the guard socket has no port"))?;
        let listener = listen(port)?;
        let (state, _) = watch::channel(State {
            mode: Mode::PassThrough,
            generation: 0,
            reset_epoch: 0,
            shutdown: false,
        });
        let shared = Arc::new(Shared {
            port,
            upstream,
            password,
            state,
            acks: Mutex::new(Acks::default()),
            acked: Condvar::new(),
            counters: Counters::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered here, so a switch made right after `start` waits for it.
        let acceptor = Participant::register(&shared, 0);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                let _guard = guard;
                runtime.block_on(accept_loop(thread_shared, listener, acceptor));
                // Dropping the runtime cancels every connection task, which
                // closes its sockets.
                drop(runtime);
            })?;
        Ok(FaultProxy {
            handle: ProxyHandle { shared },
            thread: Some(thread),
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.handle.shared.state.send_modify(|s| {
            s.shutdown = true;
            s.generation += 1;
        });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reusable_socket() -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// A non-blocking std listener on 127.0.0.1:`port`, sharing the port with the guard.
fn listen(port: u16) -> io::Result<std::net::TcpListener> {
    let socket = reusable_socket()?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Closes `stream` with a reset (RST) instead of a FIN.
fn reset(stream: TcpStream, shared: &Shared) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
    shared.counters.resets.fetch_add(1, Ordering::Relaxed);
}

async fn accept_loop(shared: Arc<Shared>, listener: std::net::TcpListener, me: Participant) {
    let mut rx = shared.state.subscribe();
    let mut listener = TcpListener::from_std(listener).ok();
    loop {
        let state = rx.borrow_and_update().clone();
        if state.shutdown {
            return;
        }
        if state.mode == Mode::Refuse {
            listener = None;
        } else if listener.is_none() {
            // Heal from Refuse: listen again on the same port.
            listener = listen(shared.port)
                .and_then(TcpListener::from_std)
                .map_err(|e| eprintln!("fault proxy {}: cannot listen again: {e}", shared.port))
                .ok();
        }
        me.ack(state.generation);
        loop {
            let accepted = match &listener {
                Some(l) => tokio::select! {
                    biased;
                    changed = rx.changed() => { if changed.is_err() { return; } break; }
                    accepted = l.accept() => accepted,
                },
                None => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                    break;
                }
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors, say: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
            let mode = rx.borrow().mode.clone();
            if mode == Mode::Reset {
                reset(stream, &shared);
                continue;
            }
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(shared.clone(), stream));
        }
    }
}

/// Counts an open connection while alive.
struct OpenGuard<'a>(&'a Shared);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    shared.counters.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(&shared);
    let mut rx = shared.state.subscribe();
    let mut state = rx.borrow_and_update().clone();
    let me = Participant::register(&shared, state.generation);
    let epoch = state.reset_epoch;
    // Wait out a blackhole before connecting upstream.
    loop {
        if state.shutdown || state.reset_epoch != epoch {
            return reset(client, &shared);
        }
        match &state.mode {
            Mode::PassThrough | Mode::Latency(_) => break,
            Mode::Garbage(_) => {
                drop(me);
                return garbage(shared.clone(), client, epoch).await;
            }
            Mode::Reset | Mode::Refuse => return reset(client, &shared),
            Mode::Blackhole => {
                me.ack(state.generation);
                if rx.changed().await.is_err() {
                    return;
                }
                state = rx.borrow_and_update().clone();
            }
        }
    }
    let server = match tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(shared.upstream),
    )
    .await
    {
        Ok(Ok(server)) => server,
        // The node is down: the client sees its connection reset.
        _ => return reset(client, &shared),
    };
    let _ = server.set_nodelay(true);
    forward(shared.clone(), client, server, epoch, me).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The sender closed; the data was delivered and the write side shut down.
    Closed,
    /// An error, or a switch that resets the connection.
    Abort,
}

async fn forward(
    shared: Arc<Shared>,
    mut client: TcpStream,
    mut server: TcpStream,
    epoch: u64,
    me: Participant,
) {
    let (abort_tx, _) = watch::channel(false);
    // Each direction acknowledges switches; both stay registered until the
    // sockets are reset, so a switch returns only once that is done.
    let generation = shared.state.borrow().generation;
    let up = Participant::register(&shared, generation);
    let down = Participant::register(&shared, generation);
    drop(me);
    let outcome = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let (a, b) = tokio::join!(
            pump(
                &shared,
                &mut client_read,
                &mut server_write,
                Flow::Up,
                epoch,
                &abort_tx,
                &up
            ),
            pump(
                &shared,
                &mut server_read,
                &mut client_write,
                Flow::Down,
                epoch,
                &abort_tx,
                &down
            ),
        );
        if a == Outcome::Abort || b == Outcome::Abort {
            Outcome::Abort
        } else {
            Outcome::Closed
        }
    };
    if outcome == Outcome::Abort {
        reset(client, &shared);
        let _ = socket2::SockRef::from(&server).set_linger(Some(Duration::ZERO));
        drop(server);
    }
    drop((up, down));
}

/// Whether a forwarding connection must be reset under `state`.
fn must_reset(state: &State, epoch: u64) -> bool {
    state.shutdown
        || state.reset_epoch != epoch
        || !(state.mode.forwards() || state.mode == Mode::Blackhole)
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    shared: &Shared,
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
    flow: Flow,
    epoch: u64,
    abort_tx: &watch::Sender<bool>,
    me: &Participant,
) -> Outcome {
    let outcome = pump_inner(shared, from, to, flow, epoch, abort_tx, me).await;
    match outcome {
        Outcome::Abort => {
            abort_tx.send_replace(true);
        }
        // Done: no later switch needs this direction's acknowledgement.
        Outcome::Closed => me.ack(u64::MAX),
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn pump_inner(
    shared: &Shared,
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
    flow: Flow,
    epoch: u64,
    abort_tx: &watch::Sender<bool>,
    me: &Participant,
) -> Outcome {
    let mut rx = shared.state.subscribe();
    let mut abort = abort_tx.subscribe();
    let mut state = rx.borrow_and_update().clone();
    // This direction registered before it subscribed: a switch made in
    // between is already in `state` and will never show up as a change, so
    // acknowledge it now (unless it resets the connection, which the loop
    // does first).
    if !must_reset(&state, epoch) {
        me.ack(state.generation);
    }
    let mut rng = Rng::new(me.id);
    let mut queue: VecDeque<(tokio::time::Instant, Vec<u8>)> = VecDeque::new();
    let mut last_due = tokio::time::Instant::now();
    let mut eof = false;
    let mut buf = vec![0u8; 16 * 1024];
    let counter = match flow {
        Flow::Up => &shared.counters.bytes_up,
        Flow::Down => &shared.counters.bytes_down,
    };
    if *abort.borrow_and_update() {
        return Outcome::Abort;
    }
    loop {
        if must_reset(&state, epoch) {
            return Outcome::Abort;
        }
        if eof && queue.is_empty() {
            let _ = to.shutdown().await;
            return Outcome::Closed;
        }
        let flowing = state.mode != Mode::Blackhole;
        let can_read = flowing && !eof && queue.len() < MAX_QUEUED_CHUNKS;
        let due = queue.front().map(|(due, _)| *due);
        tokio::select! {
            biased;
            changed = rx.changed() => {
                if changed.is_err() {
                    return Outcome::Abort;
                }
                state = rx.borrow_and_update().clone();
                if !must_reset(&state, epoch) {
                    me.ack(state.generation);
                }
            }
            _ = abort.changed() => return Outcome::Abort,
            _ = sleep_until(due), if flowing && due.is_some() => {
                if let Some((_, data)) = queue.pop_front() {
                    if to.write_all(&data).await.is_err() {
                        return Outcome::Abort;
                    }
                    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            read = from.read(&mut buf), if can_read => match read {
                Ok(0) => eof = true,
                Ok(n) => {
                    let delay = match &state.mode {
                        Mode::Latency(l) if l.applies(flow) => rng.around(l.delay, l.jitter),
                        _ => Duration::ZERO,
                    };
                    if delay.is_zero() && queue.is_empty() {
                        if to.write_all(&buf[..n]).await.is_err() {
                            return Outcome::Abort;
                        }
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                    } else {
                        let due = (tokio::time::Instant::now() + delay).max(last_due);
                        last_due = due;
                        queue.push_back((due, buf[..n].to_vec()));
                    }
                }
                Err(_) => return Outcome::Abort,
            },
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// A connection in garbage mode: the proxy answers every command itself.
async fn garbage(shared: Arc<Shared>, mut client: TcpStream, epoch: u64) {
    let mut rx = shared.state.subscribe();
    let mut state = rx.borrow_and_update().clone();
    let me = Participant::register(&shared, state.generation);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let reply = match &state.mode {
            Mode::Garbage(g) if !state.shutdown && state.reset_epoch == epoch => g.bytes().to_vec(),
            _ => return reset(client, &shared),
        };
        tokio::select! {
            biased;
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                state = rx.borrow_and_update().clone();
                me.ack(state.generation);
            }
            read = client.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    loop {
                        match parse_command(&pending) {
                            Parsed::Command(used, name) => {
                                pending.drain(..used);
                                let answer: &[u8] = match name.as_str() {
                                    "PING" => b"+PONG\r\n",
                                    "AUTH" | "HELLO" | "SELECT" | "CLIENT" | "INFO" | "READONLY"
                                    | "QUIT" => b"+OK\r\n",
                                    _ => {
                                        shared.counters.garbage_replies.fetch_add(1, Ordering::Relaxed);
                                        &reply
                                    }
                                };
                                if client.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                            Parsed::Incomplete if pending.len() <= MAX_COMMAND_BYTES => break,
                            Parsed::Incomplete | Parsed::Invalid => {
                                let _ = client.write_all(b"-ERR Protocol error\r\n").await;
                                return;
                            }
                        }
                    }
                }
            },
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole command: the bytes it used and its name, upper case.
    Command(usize, String),
    /// More bytes are needed.
    Incomplete,
    /// Not a command.
    Invalid,
}

/// Finds `\r\n` from `from`; the index of `\r`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_number(bytes: &[u8]) -> Option<usize> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses one client command: a RESP array of bulk strings, or an inline
/// command (a line of words).
fn parse_command(buf: &[u8]) -> Parsed {
    let Some(&first) = buf.first() else {
        return Parsed::Incomplete;
    };
    if first != b'*' {
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            return Parsed::Incomplete;
        };
        let line = String::from_utf8_lossy(&buf[..end]);
        let name = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        return Parsed::Command(end + 1, name);
    }
    let Some(end) = line_end(buf, 1) else {
        return Parsed::Incomplete;
    };
    let Some(count) = parse_number(&buf[1..end]) else {
        return Parsed::Invalid;
    };
    let mut at = end + 2;
    let mut name = String::new();
    for i in 0..count {
        match buf.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Invalid,
        }
        let Some(end) = line_end(buf, at + 1) else {
            return Parsed::Incomplete;
        };
        let Some(len) = parse_number(&buf[at + 1..end]) else {
            return Parsed::Invalid;
        };
        let start = end + 2;
        let Some(stop) = start.checked_add(len) else {
            return Parsed::Invalid;
        };
        if buf.len() < stop + 2 {
            return Parsed::Incomplete;
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Parsed::Invalid;
        }
        if i == 0 {
            name = String::from_utf8_lossy(&buf[start..stop]).to_ascii_uppercase();
        }
        at = stop + 2;
    }
    Parsed::Command(at, name)
}

/// A small xorshift generator for jitter (not for anything secret).
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng((nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `base ± jitter`, never below zero.
    fn around(&mut self, base: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return base;
        }
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let offset = (unit * 2.0 - 1.0) * jitter.as_secs_f64();
        Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resp_and_inline_commands() {
        let cmd = b"*3\r\n$7\r\nEVALSHA\r\n$1\r\n0\r\n$3\r\nabc\r\n";
        assert_eq!(
            parse_command(cmd),
            Parsed::Command(cmd.len(), "EVALSHA".into())
        );
        assert_eq!(parse_command(&cmd[..cmd.len() - 1]), Parsed::Incomplete);
        assert_eq!(parse_command(b"*1\r\n$4\r\nping"), Parsed::Incomplete);
        assert_eq!(
            parse_command(b"*1\r\n$4\r\nping\r\n*1"),
            Parsed::Command(14, "PING".into())
        );
        assert_eq!(
            parse_command(b"ping\r\n"),
            Parsed::Command(6, "PING".into())
        );
        assert_eq!(parse_command(b"*x\r\n"), Parsed::Invalid);
        assert_eq!(parse_command(b"*1\r\n:1\r\n"), Parsed::Invalid);
        assert_eq!(parse_command(b""), Parsed::Incomplete);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = Rng::new(7);
        let base = Duration::from_millis(50);
        let jitter = Duration::from_millis(20);
        let samples: Vec<Duration> = (0..10_000).map(|_| rng.around(base, jitter)).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= Duration::from_millis(30) && *d <= Duration::from_millis(70)));
        assert!(samples.iter().any(|d| *d < Duration::from_millis(32)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(68)));
        assert_eq!(rng.around(base, Duration::ZERO), base);
    }
}
