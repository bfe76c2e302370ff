//! End to end: the built `redlock` binary against real redis-server nodes
//! started by redlock-testkit.
//!
//! Every wait polls for an event with a long deadline; no test asserts how
//! long anything took. Processes a test starts are killed when it ends, pass
//! or fail.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redlock::{RedisBackend, Redlock};
use redlock_testkit::server::RedisNodes;

/// How long any event may take on a loaded machine before a test gives up.
const DEADLINE: Duration = Duration::from_secs(120);

fn redlock(nodes: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redlock"));
    cmd.env_remove("REDLOCK_NODES")
        .env_remove("REDLOCK_RESOURCES")
        .env_remove("REDLOCK_FENCING_TOKEN")
        // Not a terminal: a SIGINT to redlock is then passed on.
        .stdin(Stdio::null());
    if !nodes.is_empty() {
        cmd.arg("--nodes").arg(nodes.join(","));
    }
    cmd
}

fn start_nodes() -> RedisNodes {
    RedisNodes::start(3).expect("start 3 redis-server nodes")
}

/// A directory of its own for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redlock-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `redlock`, killed (with whatever it started) if the test ends
/// before it does. Its stderr goes to a file, not a pipe: a process the
/// command left behind could hold a pipe open, and reading it would hang.
struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let stderr = std::env::temp_dir().join(format!(
            "redlock-cli-test-stderr-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&stderr).expect("create a stderr file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start redlock");
        Running { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, then returns the status and stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let status = poll(DEADLINE, "redlock to exit", || {
            self.child.try_wait().expect("try_wait")
        });
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Running {
    /// A test that failed half-way: SIGTERM first, which redlock passes on
    /// to the command's whole process group, then SIGKILL.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) && start.elapsed() < DEADLINE / 4 {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Whatever is left: the command's process group (it leads one
            // outside a terminal), then redlock.
            let pid = self.child.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{child}"), child])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// Polls `check` until it gives a value; panics naming `what` after `deadline`.
fn poll<T>(deadline: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_file(path: &Path) {
    poll(DEADLINE, &format!("{}", path.display()), || {
        path.exists().then_some(())
    });
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run redlock")
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sh(script: &str) -> [&OsStr; 4] {
    [
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(script),
        OsStr::new("sh"),
    ]
}

/// Whether `key` exists on any node still running.
fn key_anywhere(nodes: &RedisNodes, key: &str) -> bool {
    nodes
        .iter()
        .filter(|node| node.is_running())
        .any(|node| node.probe().exists(key))
}

#[test]
fn the_command_status_is_passed_through_and_the_lock_released() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let seen = scratch.path("seen");

    // The command's own status, and what it sees in its environment.
    let out = output(
        redlock(&urls)
            .args(["run", "job:a", "--"])
            .args(sh(
                r#"echo "$REDLOCK_RESOURCES ${REDLOCK_FENCING_TOKEN-none}" > "$1"; exit 7"#,
            ))
            .arg(&seen),
    );
    assert_eq!(code(&out), Some(7), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&seen).expect("the command ran"),
        "job:a none\n"
    );
    assert!(!key_anywhere(&nodes, "job:a"), "the lock was released");

    // Several resources, with a fencing token that grows.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let out = output(
            redlock(&urls)
                .args(["run", "--fencing", "{j}a", "{j}b", "--"])
                .args(sh(
                    r#"echo "$REDLOCK_RESOURCES $REDLOCK_FENCING_TOKEN" > "$1""#,
                ))
                .arg(&seen),
        );
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let text = std::fs::read_to_string(&seen).expect("the command ran");
        let (resources, token) = text.trim().split_once(' ').expect("two words");
        assert_eq!(resources, "{j}a,{j}b");
        tokens.push(token.parse::<u64>().expect("a numeric fencing token"));
    }
    assert!(tokens[1] > tokens[0], "{tokens:?}");

    // Death by signal reads as a shell reads it.
    let out = output(
        redlock(&urls)
            .args(["run", "job:a", "--"])
            .args(sh("kill -TERM $$")),
    );
    assert_eq!(code(&out), Some(128 + 15), "{}", stderr(&out));

    // A command that cannot start: 127 / 126, and the lock is released.
    let out = output(redlock(&urls).args(["run", "job:a", "--", "/no/such/program"]));
    assert_eq!(code(&out), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("redlock: "), "{}", stderr(&out));
    let not_executable = scratch.path("plain-file");
    std::fs::write(&not_executable, "echo hi\n").expect("write");
    let out = output(
        redlock(&urls)
            .args(["run", "job:a", "--"])
            .arg(&not_executable),
    );
    assert_eq!(code(&out), Some(126), "{}", stderr(&out));
    assert!(!key_anywhere(&nodes, "job:a"), "the lock was released");
}

#[test]
fn a_resource_held_elsewhere_is_a_conflict_and_the_command_does_not_run() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let ran = scratch.path("ran");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lock = runtime.block_on(async {
        let mut backends = Vec::new();
        for url in &urls {
            backends.push(RedisBackend::connect(url).await.expect("url"));
        }
        let redlock = Redlock::new(backends).expect("redlock");
        redlock
            .acquire(&["job:held"], Duration::from_secs(600))
            .await
            .expect("the test holds the lock")
    });
    let touch = sh(r#"touch "$1""#);

    let out = output(
        redlock(&urls)
            .args(["run", "--no-wait", "job:held", "--"])
            .args(touch)
            .arg(&ran),
    );
    assert_eq!(code(&out), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--wait"),
        "says what to do next: {}",
        stderr(&out)
    );

    let out = output(
        redlock(&urls)
            .args([
                "run",
                "--conflict-exit-code",
                "3",
                "--wait",
                "300ms",
                "job:held",
                "--",
            ])
            .args(touch)
            .arg(&ran),
    );
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(!ran.exists(), "the command must not run without the lock");

    // A signal while redlock waits ends it, as a shell reports a signal
    // death, and the command never runs. It is waiting once it listens for
    // the release (wake-on-release subscribes while an acquisition waits).
    let waiting = Running::spawn(
        redlock(&urls)
            .args(["run", "--wait", "120s", "job:held", "--"])
            .args(touch)
            .arg(&ran),
    );
    let channel = redlock::wake::release_channel("job:held");
    let probes = nodes.probes();
    poll(DEADLINE, "redlock to wait for the release", || {
        probes
            .iter()
            .any(|p| p.channel_subscribers(&channel, false) > 0)
            .then_some(())
    });
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(waiting.pid().to_string())
        .status()
        .expect("run kill");
    assert!(sent.success());
    let (status, said) = waiting.wait();
    assert_eq!(status.code(), Some(128 + 15), "{said}");
    assert!(said.contains("while waiting"), "{said}");
    assert!(!ran.exists(), "the command must not run without the lock");

    runtime.block_on(lock.release()).expect("release");
    let out = output(
        redlock(&urls)
            .args(["run", "--no-wait", "job:held", "--"])
            .args(touch)
            .arg(&ran),
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(ran.exists(), "free again: the command ran");
}

#[test]
fn no_quorum_is_69() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    nodes[0].kill();
    nodes[1].kill();
    let out = output(redlock(&urls).args(["run", "--no-wait", "job", "--", "true"]));
    assert_eq!(code(&out), Some(69), "{}", stderr(&out));
}

#[test]
fn bad_usage_is_64_and_help_is_0() {
    let nodes = ["redis://127.0.0.1:1".to_owned()];
    for args in [
        &["run", "job", "--"][..],                      // no command
        &["run", "--", "true"],                         // no resource
        &["run", "job", "true"],                        // no -- before the command
        &["run", "--ttl", "ten", "job", "--", "true"],  // bad duration
        &["run", "--ttl", "10ms", "job", "--", "true"], // too short
        &["run", "--wait", "1s", "--no-wait", "job", "--", "true"],
        &["run", "--conflict-exit-code", "0", "job", "--", "true"],
        &["run", "--frobnicate", "job", "--", "true"],
        &["frobnicate"],
        &[],
    ] {
        let out = output(redlock(&nodes).args(args));
        assert_eq!(code(&out), Some(64), "{args:?}: {}", stderr(&out));
    }
    // Resource names the lock refuses.
    let out = output(redlock(&nodes).args(["run", "", "--", "true"]));
    assert_eq!(code(&out), Some(64), "{}", stderr(&out));
    let out = output(redlock(&nodes).args(["run", "a", "a", "--", "true"]));
    assert_eq!(code(&out), Some(64), "{}", stderr(&out));

    // No nodes at all, or a bad node list; never a password in a message.
    let out = output(redlock(&[]).args(["run", "job", "--", "true"]));
    assert_eq!(code(&out), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("REDLOCK_NODES"), "{}", stderr(&out));
    let twice = [
        "redis://:hunter2@127.0.0.1:1".to_owned(),
        "redis://:hunter2@127.0.0.1:1".to_owned(),
    ];
    for bad in [&twice[..], &["nonsense://:hunter2@x".to_owned()][..]] {
        let out = output(redlock(bad).args(["run", "job", "--", "true"]));
        assert_eq!(code(&out), Some(64), "{}", stderr(&out));
        assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
        assert!(stderr(&out).starts_with("redlock: "), "{}", stderr(&out));
    }

    for args in [&["--help"][..], &["run", "--help"], &["--version"]] {
        let out = output(redlock(&[]).args(args));
        assert_eq!(code(&out), Some(0), "{args:?}");
    }
    let help = output(redlock(&[]).arg("--help"));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("run"), "{help}");
    assert!(help.contains("75"), "the exit codes are listed: {help}");
}

/// A command that says it started by creating `$1`, and on SIGTERM writes
/// `term` to `$2` and exits with 3.
const TRAPS_TERM: &str = r#"
    trap 'kill $p 2>/dev/null; echo term > "$2"; exit 3' TERM
    trap 'kill $p 2>/dev/null; echo int > "$2"; exit 4' INT
    sleep 1000 & p=$!
    touch "$1"
    wait $p
"#;

#[test]
fn losing_the_lock_terminates_the_command_and_exits_70() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let (started, trapped) = (scratch.path("started"), scratch.path("trapped"));
    let running = Running::spawn(
        redlock(&urls)
            .args([
                "run",
                "--ttl",
                "1s",
                "--kill-after",
                "60s",
                "job:lose",
                "--",
            ])
            .args(sh(TRAPS_TERM))
            .arg(&started)
            .arg(&trapped),
    );
    wait_for_file(&started);
    // A majority gone: the next extension cannot reach a quorum.
    nodes[0].kill();
    nodes[1].kill();
    let (status, stderr) = running.wait();
    assert_eq!(status.code(), Some(70), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&trapped).expect("the command got SIGTERM"),
        "term\n"
    );
    assert!(stderr.contains("lost the lock"), "{stderr}");
}

/// Whether process `pid` is gone (or a zombie, waiting to be reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_command_that_ignores_sigterm_gets_sigkill_with_what_it_started() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let (started, grandchild) = (scratch.path("started"), scratch.path("grandchild"));
    // Both the command and the process it starts ignore SIGTERM.
    let running = Running::spawn(
        redlock(&urls)
            .args([
                "run",
                "--ttl",
                "1s",
                "--kill-after",
                "1s",
                "job:stubborn",
                "--",
            ])
            .args(sh(r#"trap '' TERM
                sleep 1000 & echo $! > "$2"
                touch "$1"
                while :; do sleep 1; done"#))
            .arg(&started)
            .arg(&grandchild),
    );
    wait_for_file(&started);
    let pid: u32 = std::fs::read_to_string(&grandchild)
        .expect("the grandchild's pid")
        .trim()
        .parse()
        .expect("a pid");
    nodes[0].kill();
    nodes[1].kill();
    let (status, stderr) = running.wait();
    assert_eq!(status.code(), Some(70), "{stderr}");
    assert!(stderr.contains("SIGKILL"), "{stderr}");
    // Not a terminal: the command led its own process group, and SIGKILL
    // went to all of it.
    poll(DEADLINE, "the grandchild to be killed", || {
        gone(pid).then_some(())
    });
}

#[test]
fn the_lock_is_extended_while_the_command_runs() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let (started, stop) = (scratch.path("started"), scratch.path("stop"));
    let running = Running::spawn(
        redlock(&urls)
            .args(["run", "--ttl", "5s", "job:long", "--"])
            .args(sh(
                r#"touch "$1"; while [ ! -e "$2" ]; do sleep 0.05; done"#,
            ))
            .arg(&started)
            .arg(&stop),
    );
    wait_for_file(&started);
    // Seen from a node, the key's TTL only goes down, except when an
    // extension resets it: then it goes up.
    // (The highest TTL among the nodes: one node may have missed a round.)
    let probes = nodes.probes();
    let pttl = || probes.iter().filter_map(|p| p.pttl("job:long")).max();
    let mut last = pttl();
    let mut extensions = 0;
    while extensions < 3 && last.is_some() {
        let seen = poll(DEADLINE, "an extension", || {
            let now = pttl();
            let extended = now > last;
            last = now;
            // Stop on an extension, or when the key is gone.
            (extended || now.is_none()).then_some(now.is_some())
        });
        extensions += usize::from(seen);
    }
    std::fs::write(&stop, "").expect("stop the command");
    let (status, stderr) = running.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        extensions, 3,
        "the key vanished while the command ran: {stderr}"
    );
    assert!(!key_anywhere(&nodes, "job:long"), "released");
}

#[test]
fn sigterm_and_sigint_are_passed_on_and_the_lock_released_after() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    for (signal, trap, code) in [("TERM", "term\n", 3), ("INT", "int\n", 4)] {
        let scratch = Scratch::new();
        let (started, trapped) = (scratch.path("started"), scratch.path("trapped"));
        let running = Running::spawn(
            redlock(&urls)
                .args(["run", "job:signal", "--"])
                .args(sh(TRAPS_TERM))
                .arg(&started)
                .arg(&trapped),
        );
        wait_for_file(&started);
        assert!(key_anywhere(&nodes, "job:signal"), "held while it runs");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(running.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success());
        let (status, stderr) = running.wait();
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&trapped).expect("the command got the signal"),
            trap
        );
        assert!(
            !key_anywhere(&nodes, "job:signal"),
            "released once the command exited"
        );
    }
}

#[test]
fn concurrent_runs_on_one_resource_never_overlap() {
    let nodes = start_nodes();
    let urls = nodes.urls();
    let scratch = Scratch::new();
    let log = scratch.path("log");
    let runs: Vec<Running> = (0..3)
        .map(|_| {
            Running::spawn(
                redlock(&urls)
                    .args(["run", "--wait", "120s", "job:shared", "--"])
                    .args(sh(
                        r#"echo "start $$" >> "$1"; sleep 0.5; echo "end $$" >> "$1""#,
                    ))
                    .arg(&log),
            )
        })
        .collect();
    for run in runs {
        let (status, stderr) = run.wait();
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
    let text = std::fs::read_to_string(&log).expect("the commands ran");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "every run ran once: {text}");
    let mut pids = Vec::new();
    for pair in lines.chunks(2) {
        let start = pair[0].strip_prefix("start ").expect("a start line first");
        let end = pair[1].strip_prefix("end ").expect("then its end line");
        assert_eq!(start, end, "strict alternation: {text}");
        pids.push(start);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "three different commands ran: {text}");
}
