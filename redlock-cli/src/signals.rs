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

/// Sends `signo` to process `pid`. Errors (the process is gone) are ignored:
/// the caller learns of its end by waiting for it.
pub fn send(pid: u32, signo: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill takes plain integers and touches no memory of ours; the
    // pid is positive, so it names one process, never a group or "all".
    unsafe {
        libc::kill(pid, signo);
    }
}
