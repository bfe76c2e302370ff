//! What the `status` and `doctor` end-to-end tests share: running the built
//! `redlock` binary and reading what it printed.
//!
//! Every run has a generous deadline of its own (`--timeout` on the nodes);
//! no test asserts how long anything took.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use redlock::{Lock, RedisBackend, Redlock};

/// A `redlock` command with `nodes` as `--nodes`, and nothing inherited
/// from the environment.
pub fn redlock(nodes: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redlock"));
    cmd.env_remove("REDLOCK_NODES").stdin(Stdio::null());
    if !nodes.is_empty() {
        cmd.arg("--nodes").arg(nodes.join(","));
    }
    cmd
}

/// Runs `cmd` to the end.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run redlock")
}

/// The exit code.
pub fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Stdout, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout and stderr, for failure messages and for "never printed" checks.
pub fn both(output: &Output) -> String {
    format!(
        "--- stdout:\n{}--- stderr:\n{}",
        stdout(output),
        stderr(output)
    )
}

/// A current-thread tokio runtime for the library calls a test makes.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A Redlock over `urls` through the library, with a patient per-node
/// timeout and fencing on (so acquisitions leave a fence counter).
pub async fn library(urls: &[String]) -> Redlock {
    let mut backends = Vec::new();
    for url in urls {
        backends.push(RedisBackend::connect(url).await.expect("a valid URL"));
    }
    let mut settings = redlock::Settings::default();
    settings.node_timeout = Duration::from_secs(5);
    settings.fencing = true;
    Redlock::builder(backends)
        .settings(settings)
        .build()
        .expect("a Redlock")
}

/// Acquires `resource` for 10 minutes (far longer than any test runs).
pub async fn hold(redlock: &Redlock, resource: &str) -> Lock {
    redlock
        .acquire(&[resource], Duration::from_secs(600))
        .await
        .expect("the test takes the lock")
}
