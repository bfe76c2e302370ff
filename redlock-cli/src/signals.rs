//! SIGINT and SIGTERM to `redlock`: caught from the start (so an interrupted
//! wait for the lock exits cleanly), and passed on to the command once it
//! runs.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit;
use crate::fail::Failure;

/// The signals `redlock` catches.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Starts catching SIGINT and SIGTERM (their default action, ending
    /// `redlock` at once, would leave the command running unlocked).
    pub fn catch() -> Result<Signals, Failure> {
        let catch = |kind: SignalKind| {
            signal(kind).map_err(|error| {
                Failure::new(
                    exit::LOST,
                    format!("could not install a signal handler: {error}"),
                )
            })
        };
        Ok(Signals {
            interrupt: catch(SignalKind::interrupt())?,
            terminate: catch(SignalKind::terminate())?,
        })
    }

    /// The next signal caught, as its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            Some(()) = self.interrupt.recv() => libc::SIGINT,
            Some(()) = self.terminate.recv() => libc::SIGTERM,
            // Both streams ended (the runtime is shutting down): nothing
            // more will come.
            else => std::future::pending().await,
        }
    }
}

/// The name of a signal we send or catch, for messages.
pub fn name(signo: i32) -> String {
    match signo {
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        libc::SIGKILL => "SIGKILL".to_owned(),
        other => format!("signal {other}"),
    }
}

/// Whether a SIGINT that `redlock` caught most likely came from its terminal
/// (Ctrl-C): a terminal sends it to the whole foreground process group, which
/// the command shares with `redlock`, so the command already has it and
/// passing it on would deliver it twice (many programs take a second Ctrl-C
/// as "stop now, skip the clean-up").
///
/// True when one of stdin, stdout or stderr is a terminal whose foreground
/// process group is ours.
pub fn from_our_terminal() -> bool {
    (0..=2).any(|fd| {
        // SAFETY: isatty, tcgetpgrp and getpgrp take plain integers, touch
        // no memory of ours, and only report errors through their results.
        unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() }
    })
}

/// Where the command runs, and so what a signal for it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The command leads a process group of its own, and signals go to the
    /// whole group: whatever it started stops with it when the lock is lost.
    /// The default, when `redlock` does not run in a terminal's foreground
    /// (cron, systemd, scripts, CI).
    Own,
    /// The command shares `redlock`'s process group, so it can read the
    /// terminal and gets a Ctrl-C straight from it; signals go to the
    /// command's process only. When `redlock` runs in a terminal's
    /// foreground (as the terminal's own Ctrl-C, a SIGINT from elsewhere is
    /// then not passed on: see [`from_our_terminal`]).
    Shared,
}

impl Group {
    /// [`Group::Shared`] in a terminal's foreground, else [`Group::Own`].
    pub fn choose() -> Group {
        if from_our_terminal() {
            Group::Shared
        } else {
            Group::Own
        }
    }

    /// Sends `signo` to the command whose pid is `pid` (and, with
    /// [`Group::Own`], to its whole process group). Errors (the process is
    /// gone) are ignored: the caller learns of its end by waiting for it.
    pub fn send(self, pid: u32, signo: i32) {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return;
        };
        if pid <= 1 {
            return;
        }
        let target = match self {
            Group::Own => -pid,
            Group::Shared => pid,
        };
        // SAFETY: kill takes plain integers and touches no memory of ours.
        // `pid` is above 1, so the target is one process, or the group the
        // command leads (its pgid is its pid), never "every process".
        unsafe {
            libc::kill(target, signo);
        }
    }
}
