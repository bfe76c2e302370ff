//! Accepting connections and connecting them upstream.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::garbage::garbage;
use super::pump::forward;
use super::state::{Participant, Shared};
use super::{Mode, UPSTREAM_CONNECT_TIMEOUT};
use crate::server::ports::reusable_socket;

/// A non-blocking std listener on 127.0.0.1:`port`, sharing the port with the guard.
pub(super) fn listen(port: u16) -> io::Result<std::net::TcpListener> {
    let socket = reusable_socket()?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Closes `stream` with a reset (RST) instead of a FIN.
pub(super) fn reset(stream: TcpStream, shared: &Shared) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
    shared.counters.resets.fetch_add(1, Ordering::Relaxed);
}

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    me: Participant,
) {
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
