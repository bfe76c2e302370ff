//! Forwarding bytes both ways, with the latency and blackhole modes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::accept::reset;
use super::state::{Participant, Shared, State};
use super::{Mode, MAX_QUEUED_CHUNKS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
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

pub(super) async fn forward(
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
                    // Counted before the write: a peer that has read these
                    // bytes must find them counted.
                    counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if to.write_all(&data).await.is_err() {
                        return Outcome::Abort;
                    }
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
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        if to.write_all(&buf[..n]).await.is_err() {
                            return Outcome::Abort;
                        }
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
