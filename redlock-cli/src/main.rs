//! `redlock`: Redlock distributed locks from the command line.
//!
//! `redlock run RESOURCE... -- CMD [ARGS...]` is a distributed `flock`: it
//! takes a Redlock lock on a majority of independent Redis nodes, runs the
//! command, keeps the lock extended while the command runs, releases it when
//! the command exits, and exits with the command's status. `redlock status
//! RESOURCE...` shows who holds a lock, node by node; `redlock doctor` checks
//! the nodes against Redlock's assumptions. See README.md for the guide and
//! [`exit`] for the exit codes.
//!
//! This file parses the command line and dispatches; each subcommand lives in
//! its own module (`run.rs`, `status.rs`, `doctor.rs`), and what subcommands
//! share is in `nodes.rs`
//! (the node list), `exit.rs` (exit codes) and `fail.rs` (messages).

mod child;
mod doctor;
mod exit;
mod fail;
mod nodes;
mod run;
mod signals;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::fail::Failure;

/// Redlock distributed locks over independent Redis nodes, from the shell.
#[derive(Debug, Parser)]
#[command(
    name = "redlock",
    version,
    about = "Redlock distributed locks over independent Redis nodes, from the shell",
    long_about = "Redlock distributed locks over independent Redis nodes, from the shell.\n\n\
        A lock is held when a majority of the nodes took it in time (the Redlock \
        algorithm), so list every node of the set: one URL per independent Redis \
        server, not replicas of one another.\n\n\
        Example:\n  \
        redlock --nodes redis://a:6379,redis://b:6379,redis://c:6379 \\\n    \
        run nightly-report -- ./make-report.sh --full\n  \
        redlock status nightly-report\n  \
        redlock doctor",
    after_help = exit::ALL_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
struct Cli {
    /// The Redis nodes, comma-separated: redis://[[user]:password@]host:port[/db], one
    /// per independent node. Required by commands that talk to the nodes.
    #[arg(
        long,
        global = true,
        env = "REDLOCK_NODES",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URL,..."
    )]
    nodes: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Adding one is a variant here, its module, and an arm in
/// [`dispatch`].
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command while holding a lock (a distributed flock)
    #[command(
        long_about = run::LONG_ABOUT,
        after_help = exit::HELP,
    )]
    Run(run::RunArgs),

    /// Show who holds a lock, node by node, and whether a quorum does
    #[command(long_about = status::LONG_ABOUT, after_help = status::EXIT_HELP)]
    Status(status::StatusArgs),

    /// Check the nodes against Redlock's assumptions (exit 1 when one fails)
    #[command(long_about = doctor::LONG_ABOUT, after_help = doctor::EXIT_HELP)]
    Doctor(doctor::DoctorArgs),
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run(args) => run::run(args, &cli.nodes).await,
        Command::Status(args) => status::status(args, &cli.nodes).await,
        Command::Doctor(args) => doctor::doctor(args, &cli.nodes).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version go to stdout and succeed; every other
            // parse error is bad usage (EX_USAGE), not clap's default 2.
            let code = if error.use_stderr() { exit::USAGE } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("redlock: could not start the async runtime: {error}");
            return ExitCode::from(exit::LOST);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(failure.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
