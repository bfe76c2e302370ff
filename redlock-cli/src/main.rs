//! `redlock`: Redlock distributed locks from the command line.
//!
//! `redlock run RESOURCE... -- CMD [ARGS...]` is a distributed `flock`: it
//! takes a Redlock lock on a majority of independent Redis nodes, runs the
//! command, keeps the lock extended while the command runs, releases it when
//! the command exits, and exits with the command's status. See README.md for
//! the guide and [`exit`] for the exit codes.
//!
//! This file parses the command line and dispatches; each subcommand lives in
//! its own module (`run.rs`), and what subcommands share is in `nodes.rs`
//! (the node list), `exit.rs` (exit codes) and `fail.rs` (messages).

mod child;
mod exit;
mod fail;
mod nodes;
mod run;
mod signals;

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
        run nightly-report -- ./make-report.sh --full",
    after_help = exit::HELP,
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
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Run(args) => run::run(args, &cli.nodes).await,
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
