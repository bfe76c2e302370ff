//! Starting the command under the lock, and reading how it ended.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use redlock::Lock;
use tokio::process::{Child, Command};

use crate::exit;
use crate::fail::Failure;
use crate::signals::Group;

/// The variable that tells the command its resources, comma-separated.
pub const RESOURCES_VAR: &str = "REDLOCK_RESOURCES";

/// The variable that tells the command its fencing token (with `--fencing`).
pub const FENCING_TOKEN_VAR: &str = "REDLOCK_FENCING_TOKEN";

/// Starts `command` (program and arguments) with stdin, stdout and stderr
/// inherited, with [`RESOURCES_VAR`] and, when
/// the lock has one, [`FENCING_TOKEN_VAR`] set (and otherwise removed, so an
/// outer `redlock run`'s token does not leak into an inner one's command).
///
/// With [`Group::Own`] the command leads a new process group, so that a
/// signal can reach everything it starts; with [`Group::Shared`] it stays in
/// `redlock`'s.
///
/// A program that is not found fails with [`exit::NOT_FOUND`], one that
/// cannot be executed with [`exit::NOT_EXECUTABLE`], as shells do.
pub fn spawn(command: &[OsString], lock: &Lock, group: Group) -> Result<Child, Failure> {
    let Some((program, args)) = command.split_first() else {
        return Err(Failure::usage(
            "no command given; put it after --: redlock run RESOURCE -- CMD [ARGS...]",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env(RESOURCES_VAR, lock.resources().join(","));
    match lock.fencing_token() {
        Some(token) => cmd.env(FENCING_TOKEN_VAR, token.to_string()),
        None => cmd.env_remove(FENCING_TOKEN_VAR),
    };
    if group == Group::Own {
        cmd.process_group(0);
    }
    cmd.spawn().map_err(|error| not_started(program, &error))
}

fn not_started(program: &OsString, error: &io::Error) -> Failure {
    let program = program.to_string_lossy();
    match error.kind() {
        io::ErrorKind::NotFound => Failure::new(
            exit::NOT_FOUND,
            format!("{program}: command not found; check its name, or give its path"),
        ),
        io::ErrorKind::PermissionDenied => Failure::new(
            exit::NOT_EXECUTABLE,
            format!("{program}: permission denied; check that it is executable (chmod +x)"),
        ),
        _ => Failure::new(
            exit::NOT_EXECUTABLE,
            format!("{program}: could not be executed: {error}"),
        ),
    }
}

/// The exit code that stands for `status`, as a shell would give it: the
/// command's own exit code, or 128 + the signal that killed it.
pub fn code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // An exit status is 0..=255 on Unix; anything else cannot happen.
        return u8::try_from(code & 0xff).unwrap_or(u8::MAX);
    }
    match status.signal() {
        Some(signo) => exit::signal(signo),
        None => exit::LOST,
    }
}

/// How `status` reads in a message: "exited with 3", "was killed by SIGTERM".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signo)) => format!("was killed by {}", crate::signals::name(signo)),
        _ => "ended".to_owned(),
    }
}
