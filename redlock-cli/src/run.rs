//! `redlock run`: a distributed `flock`. Acquire, run the command, keep the
//! lock extended while it runs, release it when the command exits, and exit
//! with the command's status.
//!
//! The lock is extended through the core's extension API ([`Lock::extend`]),
//! from the same `select` loop that waits for the command, passes signals
//! on and times the SIGKILL: one loop owns the child and the lock. Each
//! extension starts once a third of the TTL has gone by, so a loaded machine
//! has two thirds of the TTL to get it through; `Lock::extend` itself
//! retries failed rounds while the lock is still valid.

use std::ffi::OsString;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use redlock::{Error, Lock, RetryCount, Settings};
use tokio::process::Child;

use crate::child;
use crate::exit;
use crate::fail::Failure;
use crate::nodes;
use crate::signals::{self, Group, Signals};

/// The shortest `--ttl`: the lock is extended every third of it, and each
/// extension is a round trip to every node.
pub const MIN_TTL: Duration = Duration::from_millis(500);

/// `redlock run --help`'s description.
pub const LONG_ABOUT: &str = "\
Run a command while holding a lock (a distributed flock).

Takes the lock on RESOURCE... (Redis keys, all at once) on a majority of the \
nodes, runs CMD, extends the lock while CMD runs (every third of --ttl), \
releases it when CMD exits, and exits with CMD's status. CMD sees \
REDLOCK_RESOURCES (the resources, comma-separated) and, with --fencing, \
REDLOCK_FENCING_TOKEN.

When someone else holds a resource, CMD is not run: redlock retries for \
--wait (10s by default), or tries once with --no-wait, then exits with the \
conflict code (75). If the lock is lost while CMD runs (a majority of nodes \
stopped answering, or the keys vanished), CMD gets SIGTERM, then SIGKILL \
after --kill-after, and redlock exits with 70 whatever CMD returned.

SIGINT and SIGTERM to redlock are passed on to CMD, and the lock is released \
once CMD exits. Outside a terminal's foreground (cron, systemd, scripts), CMD \
leads a process group of its own and every signal goes to that whole group, \
so whatever CMD started stops with it. In a terminal's foreground, CMD stays \
in redlock's process group, so it can read the terminal and gets Ctrl-C \
straight from it (redlock does not send it a second time); signals then go \
to CMD's process only. If redlock itself is killed with SIGKILL, the lock expires after --ttl.";

/// The options of `redlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How long the lock lives on the nodes unless extended; while CMD runs,
    /// it is extended every third of this. If redlock dies, others wait at
    /// most this long. At least 500ms. Units: ms, s, m, h (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub ttl: Duration,

    /// While someone else holds a resource, keep retrying for about this long
    /// (a retry every 200ms or so, sooner when a redlock holder releases)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration,
        conflicts_with = "no_wait"
    )]
    pub wait: Duration,

    /// Try once: if someone else holds a resource, exit at once with the
    /// conflict code
    #[arg(long)]
    pub no_wait: bool,

    /// Acquire with a fencing token and pass it to CMD as
    /// REDLOCK_FENCING_TOKEN (a number that grows with every acquisition;
    /// the nodes must persist it: AOF, appendfsync always)
    #[arg(long)]
    pub fencing: bool,

    /// The exit code when someone else holds a resource (1-255)
    #[arg(
        long,
        value_name = "N",
        default_value_t = exit::CONFLICT,
        value_parser = clap::value_parser!(u8).range(1..)
    )]
    pub conflict_exit_code: u8,

    /// When the lock is lost, how long CMD has between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub kill_after: Duration,

    /// The resources to lock (Redis keys, taken as given); on a Redis Cluster
    /// give them one hash tag, as in {job}:a {job}:b
    #[arg(value_name = "RESOURCE", required = true)]
    pub resources: Vec<String>,

    /// The command to run under the lock, after --
    #[arg(value_name = "CMD", last = true, required = true)]
    pub command: Vec<OsString>,
}

/// Parses a duration such as `500ms`, `30s`, `5m` or `1h 30m` (every
/// subcommand's durations).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write a number and a unit, such as 500ms, 30s or 5m)"))
}

/// How many retries, `delay` apart on average, fill `wait`.
fn retries_for(wait: Duration, delay: Duration) -> u32 {
    let retries = wait.as_nanos().div_ceil(delay.as_nanos().max(1));
    u32::try_from(retries).unwrap_or(u32::MAX)
}

/// `redlock run`. Returns the exit code, or the failure that ended it before
/// CMD could run (or when the lock was lost).
pub async fn run(args: RunArgs, nodes: &[String]) -> Result<u8, Failure> {
    if args.ttl < MIN_TTL {
        return Err(Failure::usage(format!(
            "--ttl {} is too short; give at least {}",
            humantime::format_duration(args.ttl),
            humantime::format_duration(MIN_TTL)
        )));
    }
    let mut settings = Settings::default();
    settings.fencing = args.fencing;
    // The core's wait is a number of retries, each `retry_delay ± jitter`
    // apart (an early wake-up on a release uses none): this many fill --wait.
    let wait = if args.no_wait {
        Duration::ZERO
    } else {
        args.wait
    };
    settings.retry_count = RetryCount::Limited(retries_for(wait, settings.retry_delay));
    let redlock = nodes::connect(nodes, settings).await?;
    let mut signals = Signals::catch()?;

    let acquired = tokio::select! {
        acquired = redlock.acquire(&args.resources, args.ttl) => acquired,
        signo = signals.recv() => {
            // An attempt cut short here may leave keys on some nodes; they
            // expire after --ttl.
            return Err(Failure::new(
                exit::signal(signo),
                format!("got {} while waiting for the lock; the command was not run", signals::name(signo)),
            ));
        }
    };
    let lock =
        Arc::new(acquired.map_err(|error| Failure::acquire(&error, args.conflict_exit_code))?);
    let group = Group::choose();
    let child = match child::spawn(&args.command, &lock, group) {
        Ok(child) => child,
        Err(failure) => {
            release(&lock).await;
            return Err(failure);
        }
    };
    let program = args
        .command
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Supervisor {
        child,
        group,
        program,
        ttl: args.ttl,
        kill_after: args.kill_after,
    }
    .supervise(lock, signals)
    .await
}

/// Releases `lock`, saying on stderr when that went wrong. Never fails: the
/// keys expire at their TTL anyway.
async fn release(lock: &Lock) {
    if let Err(error) = lock.release().await {
        eprintln!("redlock: could not release the lock ({error}); its keys expire at their TTL");
    }
}

type Extension = Pin<Box<dyn Future<Output = Result<Lock, Error>>>>;

/// Extends `lock` by `ttl` once a third of `ttl` has gone by since it was
/// last acquired or extended.
fn extend_later(lock: Arc<Lock>, ttl: Duration) -> Extension {
    Box::pin(async move {
        let keep = ttl.saturating_mul(2) / 3;
        tokio::time::sleep(lock.remaining_validity().saturating_sub(keep)).await;
        lock.extend(ttl).await
    })
}

/// The output of `future`, or never when there is none.
async fn when_some<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// The command while it runs under the lock.
struct Supervisor {
    child: Child,
    group: Group,
    program: String,
    ttl: Duration,
    kill_after: Duration,
}

impl Supervisor {
    /// Waits for the command, extending the lock, passing signals on, and
    /// ending the command if the lock is lost; then releases the lock.
    async fn supervise(mut self, mut lock: Arc<Lock>, mut signals: Signals) -> Result<u8, Failure> {
        let mut extension = Some(extend_later(lock.clone(), self.ttl));
        let mut kill_at: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut lost = false;
        let status = loop {
            tokio::select! {
                status = self.child.wait() => break status,
                signo = signals.recv() => self.pass_on(signo),
                extended = when_some(&mut extension) => {
                    match extended {
                        Ok(extended) => {
                            lock = Arc::new(extended);
                            extension = Some(extend_later(lock.clone(), self.ttl));
                        }
                        Err(error) => {
                            extension = None;
                            lost = true;
                            self.on_lost(&error);
                            kill_at = Some(Box::pin(tokio::time::sleep(self.kill_after)));
                        }
                    }
                }
                () = when_some(&mut kill_at) => {
                    kill_at = None;
                    eprintln!(
                        "redlock: {} did not exit within --kill-after {}; sending SIGKILL",
                        self.program,
                        humantime::format_duration(self.kill_after)
                    );
                    self.signal(libc::SIGKILL);
                }
            }
        };
        // An extension in flight is dropped: the release below deletes the
        // keys wherever they still hold this lock's value.
        drop(extension);
        release(&lock).await;
        let status = status.map_err(|error| {
            Failure::new(
                exit::LOST,
                format!(
                    "could not wait for {}: {error}; the lock was released",
                    self.program
                ),
            )
        })?;
        if lost {
            return Err(Failure::new(
                exit::LOST,
                format!(
                    "{} {} after the lock was lost; exiting with {} (lock lost)",
                    self.program,
                    child::describe(status),
                    exit::LOST
                ),
            ));
        }
        Ok(child::code(status))
    }

    /// Sends `signo` to the command (and its group, see [`Group`]) while it
    /// runs.
    fn signal(&self, signo: i32) {
        if let Some(pid) = self.child.id() {
            self.group.send(pid, signo);
        }
    }

    /// Passes a signal `redlock` caught on to the command.
    fn pass_on(&mut self, signo: i32) {
        let Some(pid) = self.child.id() else {
            return; // it has exited; the wait branch will see it
        };
        if signo == libc::SIGINT && self.group == Group::Shared && signals::from_our_terminal() {
            eprintln!(
                "redlock: got SIGINT from the terminal, as {} did; the lock is released once it exits",
                self.program
            );
            return;
        }
        eprintln!(
            "redlock: got {name}; passed it on to {} (pid {pid}); the lock is released once it exits",
            self.program,
            name = signals::name(signo),
        );
        self.group.send(pid, signo);
    }

    /// The lock is gone: tell the command to stop.
    fn on_lost(&mut self, error: &Error) {
        let Some(pid) = self.child.id() else {
            return;
        };
        // The quorum statistics say what the nodes answered; the library's
        // advice ("acquire it again") is not what happens here.
        let what = error
            .failure()
            .map_or_else(|| error.to_string(), ToString::to_string);
        eprintln!(
            "redlock: lost the lock while {} ran: {what}\n  \
             sending it SIGTERM (pid {pid}), and SIGKILL if it has not exited in {}",
            self.program,
            humantime::format_duration(self.kill_after)
        );
        self.group.send(pid, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_becomes_retries() {
        let delay = Duration::from_millis(200);
        assert_eq!(retries_for(Duration::ZERO, delay), 0);
        assert_eq!(retries_for(Duration::from_millis(1), delay), 1);
        assert_eq!(retries_for(Duration::from_secs(10), delay), 50);
        assert_eq!(retries_for(Duration::MAX, delay), u32::MAX);
        assert_eq!(
            retries_for(Duration::from_secs(10), Duration::ZERO),
            u32::MAX
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        let bad = parse_duration("ten").unwrap_err();
        assert!(bad.contains("500ms"), "{bad}");
    }
}
