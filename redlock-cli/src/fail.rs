//! [`Failure`]: why `redlock` stops without a status from the command, as an
//! exit code and a message for stderr.

use std::fmt;

use redlock::Error;

use crate::exit;

/// A message for stderr (printed as `redlock: <message>`) and the exit code
/// that goes with it.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// Bad usage ([`exit::USAGE`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(exit::USAGE, message)
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// An acquisition that failed, as its exit code and a message saying
    /// what to do next. `conflict` is the code for a resource held by
    /// someone else.
    pub fn acquire(error: &Error, conflict: u8) -> Self {
        // The round statistics say what the nodes answered; the library's
        // own advice (raise retry_count) is not a CLI option, so say ours.
        let what = match error.failure() {
            Some(failure) => failure.to_string(),
            None => error.to_string(),
        };
        match error {
            Error::Held(_) => Failure::new(
                conflict,
                format!(
                    "{what}: held by someone else\n  \
                     the command was not run; try again later, or wait longer with --wait DURATION"
                ),
            ),
            Error::NoQuorum(_) | Error::Expired { .. } => Failure::new(
                exit::UNAVAILABLE,
                format!(
                    "{what}: too few nodes answered in time\n  \
                     the command was not run; check that most of the nodes in --nodes \
                     (or REDLOCK_NODES) are up and reachable"
                ),
            ),
            Error::Rejected(_) => Failure::new(
                exit::REJECTED,
                format!("{error}\n  the command was not run; fix the node's configuration"),
            ),
            Error::InvalidInput(_) | Error::InvalidConfig(_) => {
                Failure::usage(format!("{error}; the command was not run"))
            }
            // `Error` is non-exhaustive: a future variant is not a usage error.
            _ => Failure::new(
                exit::UNAVAILABLE,
                format!("{error}; the command was not run"),
            ),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redlock: {}", self.message)
    }
}
