//! The exit codes of `redlock`, one place for the values, their meaning and
//! the table `--help` prints.
//!
//! They follow sysexits.h where a code exists for the case, and the shells
//! for a command that could not start or died of a signal.

/// `redlock doctor`: a check failed (a `FAIL` line names it and the node).
/// No sysexits code means "the environment is checked and found wanting";
/// 1 is what checkers and linters use.
pub const CHECK_FAILED: u8 = 1;

/// Bad usage: an unknown option, a malformed duration or node URL, no nodes,
/// or input the lock refuses (an empty resource name, a TTL too short).
/// sysexits' EX_USAGE.
pub const USAGE: u8 = 64;

/// No quorum: too few nodes answered (down, unreachable, too slow).
/// sysexits' EX_UNAVAILABLE.
pub const UNAVAILABLE: u8 = 69;

/// The lock was lost while the command ran (an extension failed): the
/// command was sent SIGTERM, then SIGKILL after `--kill-after`, and its own
/// status is discarded, since its work may have overlapped another holder's.
/// sysexits' EX_SOFTWARE.
pub const LOST: u8 = 70;

/// The default conflict code: someone else holds a resource (at once with
/// `--no-wait`, or when `--wait` ran out). sysexits' EX_TEMPFAIL: try later.
pub const CONFLICT: u8 = 75;

/// A node refused the request for good (wrong password or ACL, keys in
/// different cluster slots, a broken script): retrying cannot help.
/// sysexits' EX_CONFIG.
pub const REJECTED: u8 = 78;

/// The command was found but could not be executed (as shells do).
pub const NOT_EXECUTABLE: u8 = 126;

/// The command was not found (as shells do).
pub const NOT_FOUND: u8 = 127;

/// Added to the signal number when the command died of a signal, or when
/// `redlock` itself was interrupted before the command started (as shells do).
pub const SIGNAL_BASE: u8 = 128;

/// The exit status for death by signal `signo`: 128 + signo, capped at 255.
pub fn signal(signo: i32) -> u8 {
    u8::try_from(i32::from(SIGNAL_BASE).saturating_add(signo)).unwrap_or(u8::MAX)
}

/// The rows of `redlock run`'s exit codes, once for both help tables.
macro_rules! run_rows {
    () => {
        "  CMD's own     CMD ran and exited: its status is passed through
  128+N         CMD died of signal N (redlock itself forwards SIGINT and
                SIGTERM to CMD; before CMD started they end redlock with 128+N)
   64           bad usage (options, durations, node URLs, resource names)
   69           no quorum: too few nodes answered; check that most are up
   70           the lock was lost while CMD ran; CMD got SIGTERM (then SIGKILL)
   75           the resource is held by someone else (--conflict-exit-code)
   78           a node refused for good (password/ACL, CROSSSLOT, script)
  126           CMD could not be executed
  127           CMD was not found"
    };
}

/// The table `redlock --help` ends with: every subcommand's codes.
pub const ALL_HELP: &str = concat!(
    "Exit status of redlock run:\n",
    run_rows!(),
    "\n\nExit status of redlock status:
    0           a quorum of nodes was read (the first line says HELD, FREE
                or UNKNOWN)
   64           bad usage
   69           fewer than a quorum of nodes could be read: status unknown

Exit status of redlock doctor:
    0           no check failed (there may be warnings)
    1           a check failed: a FAIL line says which, on which node
   64           bad usage"
);

/// The table `redlock run --help` ends with.
pub const HELP: &str = concat!("Exit status:\n", run_rows!());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_codes_are_shell_codes() {
        assert_eq!(signal(libc::SIGTERM), 143);
        assert_eq!(signal(libc::SIGKILL), 137);
        assert_eq!(signal(500), 255);
    }

    #[test]
    fn the_help_table_lists_every_code() {
        for code in [
            USAGE,
            UNAVAILABLE,
            LOST,
            CONFLICT,
            REJECTED,
            NOT_EXECUTABLE,
            NOT_FOUND,
        ] {
            assert!(HELP.contains(&format!(" {code} ")), "{code} missing");
            assert!(ALL_HELP.contains(&format!(" {code} ")), "{code} missing");
        }
        assert!(
            ALL_HELP.contains(&format!(" {CHECK_FAILED} ")),
            "doctor's code missing"
        );
        // The overall table starts with run's, word for word.
        let run_rows = HELP.split_once('\n').map_or("", |(_, rows)| rows);
        assert!(ALL_HELP.contains(run_rows), "run's table differs");
    }
}
