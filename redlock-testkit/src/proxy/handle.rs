//! The proxy's owner ([`FaultProxy`]) and its switch ([`ProxyHandle`]).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::accept::{accept_loop, listen};
use super::state::{Acks, Counters, Participant, Shared, State};
use super::{Garbage, Latency, Mode, ProxyStats, APPLY_TIMEOUT};
use crate::server::ports::reusable_socket;
use crate::server::RedisNode;

/// A cheap, cloneable handle that switches a [`FaultProxy`]'s mode; see the
/// [module docs](crate::proxy). It stops working (switches return at once) when the
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

/// A fault proxy in front of one node; see the [module docs](crate::proxy). Derefs to
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
