//! Real `redis-server` processes for tests: one node, N independent nodes, or
//! a Redis Cluster, with fault injection (kill, pause, resume, restart).
//!
//! Every node listens on a free loopback port (never 6379), in its own
//! temporary directory (removed when the node is dropped), with persistence off
//! unless asked for. `start` returns once the node answers `PING`. Dropping a
//! node kills its process and waits for it, also when a test panics.
//!
//! ```no_run
//! use redlock_testkit::server::{NodeOptions, RedisNode, RedisNodes};
//!
//! let node = RedisNode::start()?;
//! println!("a node at {}", node.url());
//!
//! let five = RedisNodes::start(5)?;
//! five[0].pause()?; // SIGSTOP: connections hang
//! five[0].resume()?;
//! five[1].kill(); // connections are refused
//!
//! let durable = RedisNode::start_with(NodeOptions {
//!     persistence: true, // appendonly yes, appendfsync always
//!     ..NodeOptions::default()
//! })?;
//! durable.restart()?; // same port, same directory: the keys survive
//! # Ok::<(), redlock_testkit::server::LaunchError>(())
//! ```
//!
//! The binaries are found on `PATH`, or at `REDLOCK_REDIS_SERVER` /
//! `REDLOCK_REDIS_CLI`, or where [`NodeOptions::redis_server`] /
//! [`ClusterOptions::redis_cli`] say. When they are missing, starting fails with
//! [`LaunchError::MissingBinary`], which says how to install them.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::ops::Index;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable that names the `redis-server` binary to use.
pub const REDIS_SERVER_ENV: &str = "REDLOCK_REDIS_SERVER";
/// The environment variable that names the `redis-cli` binary to use.
pub const REDIS_CLI_ENV: &str = "REDLOCK_REDIS_CLI";
/// The command that installs both binaries on Debian and Ubuntu.
pub const INSTALL_HINT: &str = "apt-get install redis-server redis-tools";

/// Why a node or a cluster could not be started or controlled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A binary (`redis-server` or `redis-cli`) was not found.
    #[error(
        "`{binary}` was not found ({searched}); install it with `{INSTALL_HINT}` \
         (Debian/Ubuntu) or set {env} to its path"
    )]
    MissingBinary {
        /// The binary's name.
        binary: String,
        /// Where it was looked for.
        searched: String,
        /// The environment variable that can name it.
        env: &'static str,
    },
    /// An operating-system call failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The server process exited before it answered `PING`.
    #[error("redis-server on port {port} exited before it answered PING ({status}); its log ends with:\n{log_tail}")]
    Exited {
        /// The node's port.
        port: u16,
        /// The exit status.
        status: String,
        /// The last lines of its log and output.
        log_tail: String,
    },
    /// The server did not answer `PING` before the deadline.
    #[error(
        "redis-server on port {port} did not answer PING within {waited:?} (last error: {last_error}); \
         its log ends with:\n{log_tail}"
    )]
    NotReady {
        /// The node's port.
        port: u16,
        /// How long it was waited for.
        waited: Duration,
        /// The last error of the readiness check.
        last_error: String,
        /// The last lines of its log and output.
        log_tail: String,
    },
    /// No free loopback port could be found (or kept) for a node.
    #[error("no free loopback port found for redis-server after {attempts} tries{detail}")]
    NoFreePort {
        /// How many ports were tried.
        attempts: u32,
        /// The last failure, if any.
        detail: String,
    },
    /// `redis-cli --cluster create` failed.
    #[error("`redis-cli --cluster create` failed ({status}); its output:\n{output}")]
    ClusterCreate {
        /// Its exit status.
        status: String,
        /// Its output.
        output: String,
    },
    /// The cluster did not become healthy before the deadline.
    #[error("the cluster did not reach cluster_state:ok with all 16384 slots covered within {waited:?}: {detail}")]
    ClusterNotReady {
        /// How long it was waited for.
        waited: Duration,
        /// What the nodes last reported.
        detail: String,
    },
    /// Sending a signal to a node failed.
    #[error("`kill -{signal} {pid}` failed: {detail}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process.
        pid: u32,
        /// Why.
        detail: String,
    },
    /// The operation needs a running node.
    #[error("the redis-server on port {port} is not running")]
    NotRunning {
        /// The node's port.
        port: u16,
    },
    /// An argument was not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl LaunchError {
    fn io(action: impl Into<String>, source: io::Error) -> Self {
        LaunchError::Io {
            action: action.into(),
            source,
        }
    }
}

/// How to start a node. Build it with struct-update syntax:
/// `NodeOptions { persistence: true, ..NodeOptions::default() }`.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// `appendonly yes` with `appendfsync always`, so a [`restart`](RedisNode::restart)
    /// (even after a kill) keeps every acknowledged write. Off by default
    /// (`--save ""`, `--appendonly no`).
    pub persistence: bool,
    /// `requirepass`; the node's [`url`](RedisNode::url) then carries it.
    pub password: Option<String>,
    /// More `redis-server` arguments, appended last (so they override the
    /// defaults), e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
    /// The `redis-server` binary: a path, or a name looked up on `PATH`.
    /// Default: `$REDLOCK_REDIS_SERVER`, else `redis-server` on `PATH`.
    pub redis_server: Option<PathBuf>,
    /// How long to wait for the node to answer `PING`. Default 10 s.
    pub startup_timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            persistence: false,
            password: None,
            extra_args: Vec::new(),
            redis_server: None,
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// Finds `binary`: a path containing `/` is checked as is; a bare name is
/// looked up in `search_path` (a `PATH`-style list; `None` means the process's
/// `PATH`).
pub fn find_binary(
    binary: impl AsRef<Path>,
    search_path: Option<&OsStr>,
) -> Result<PathBuf, LaunchError> {
    find(binary.as_ref(), search_path, "")
}

fn find(
    binary: &Path,
    search_path: Option<&OsStr>,
    env: &'static str,
) -> Result<PathBuf, LaunchError> {
    let name = binary.display().to_string();
    if binary.components().count() > 1 || binary.is_absolute() {
        if is_executable(binary) {
            return Ok(binary.to_path_buf());
        }
        return Err(LaunchError::MissingBinary {
            binary: name.clone(),
            searched: format!("no executable file at {name}"),
            env,
        });
    }
    let path: OsString = match search_path {
        Some(p) => p.to_owned(),
        None => std::env::var_os("PATH").unwrap_or_default(),
    };
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(binary);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(LaunchError::MissingBinary {
        binary: name,
        searched: format!("not on PATH={}", path.to_string_lossy()),
        env,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn locate(
    explicit: Option<&Path>,
    default: &str,
    env: &'static str,
) -> Result<PathBuf, LaunchError> {
    let missing_env = |e: LaunchError| match e {
        LaunchError::MissingBinary {
            binary, searched, ..
        } => LaunchError::MissingBinary {
            binary,
            searched,
            env,
        },
        other => other,
    };
    if let Some(path) = explicit {
        return find(path, None, env).map_err(missing_env);
    }
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return find(Path::new(&path), None, env).map_err(missing_env);
    }
    find(Path::new(default), None, env).map_err(missing_env)
}

// ---------------------------------------------------------------------------
// Ports

/// A node's port (and for a cluster node its bus port, port + 10000), held for
/// the node's whole life by a socket that is bound with `SO_REUSEADDR` but not
/// listening. redis-server (which binds with `SO_REUSEADDR` too) can listen on
/// it; nobody else gets it from the kernel (`bind(0)` and outgoing connections
/// skip bound ports), also while the node is killed, so a killed node's port
/// keeps refusing connections instead of being reused by a server another
/// test (or test process) starts.
#[derive(Debug)]
struct PortGuard {
    port: u16,
    _sockets: Vec<socket2::Socket>,
}

fn reusable_socket() -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn loopback(port: u16) -> socket2::SockAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()
}

/// A free loopback port (not 6379), and for a cluster node one whose bus port
/// is free too, both guarded.
fn pick_port(cluster: bool) -> Result<PortGuard, LaunchError> {
    const TRIES: u32 = 200;
    let mut detail = String::new();
    for _ in 0..TRIES {
        let attempt = || -> io::Result<Option<PortGuard>> {
            let socket = reusable_socket()?;
            socket.bind(&loopback(0))?;
            let port = socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .unwrap_or(0);
            if port == 6379 || port < 1024 {
                return Ok(None);
            }
            let mut sockets = vec![socket];
            if cluster {
                let Some(bus) = port.checked_add(10000) else {
                    return Ok(None);
                };
                // Without SO_REUSEADDR first: fails if anyone has it bound.
                if bus == 6379 || TcpListener::bind(("127.0.0.1", bus)).is_err() {
                    return Ok(None);
                }
                let guard = reusable_socket()?;
                if guard.bind(&loopback(bus)).is_err() {
                    return Ok(None);
                }
                sockets.push(guard);
            }
            Ok(Some(PortGuard {
                port,
                _sockets: sockets,
            }))
        };
        match attempt() {
            Ok(Some(guard)) => return Ok(guard),
            Ok(None) => {}
            Err(e) => detail = format!("; last error: {e}"),
        }
    }
    Err(LaunchError::NoFreePort {
        attempts: TRIES,
        detail,
    })
}

// ---------------------------------------------------------------------------
// Temporary directories

#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, LaunchError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!(
                "{DIR_PREFIX}{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(LaunchError::io(format!("create {}", path.display()), e)),
            }
        }
        Err(LaunchError::io(
            format!("create a unique directory under {}", base.display()),
            io::Error::from(io::ErrorKind::AlreadyExists),
        ))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const DIR_PREFIX: &str = "redlock-testkit-";
const PID_FILE: &str = "redis-server.pid";

/// Cleans up after test processes that died without dropping their nodes
/// (killed by a CI timeout, say): once per process, for every
/// `redlock-testkit-<owner pid>-*` directory in the temp dir whose owner is
/// gone, kills the redis-server recorded in it if that process still runs *in
/// that directory* (so a reused pid is never hit), and removes the directory
/// (one whose server was not seen only once it is an hour old).
fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name
                .to_str()
                .and_then(|n| n.strip_prefix(DIR_PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let dir = entry.path();
            let mut killed = false;
            if let Some(pid) = fs::read_to_string(dir.join(PID_FILE))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok();
                if cwd.is_some_and(|cwd| cwd == dir) {
                    killed = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stdin(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                }
            }
            // A directory whose server was not seen is removed only when it is
            // old: its owner may live in another pid namespace sharing /tmp.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600));
            if killed || old {
                let _ = fs::remove_dir_all(&dir);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// One node

/// One `redis-server` process on a loopback port; see the [module docs](self).
///
/// All methods take `&self`, so nodes inside a [`RedisNodes`] or a
/// [`RedisCluster`] can be killed, paused and restarted by index.
pub struct RedisNode {
    port: u16,
    guard: PortGuard,
    binary: PathBuf,
    options: NodeOptions,
    cluster: bool,
    child: Mutex<Option<Child>>,
    paused: AtomicBool,
    dir: TempDir,
}

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNode")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("dir", &self.dir.0)
            .field("persistence", &self.options.persistence)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

enum Wait {
    Ready,
    PortInUse(LaunchError),
    Failed(LaunchError),
}

impl RedisNode {
    /// Starts a node with the default options and waits until it answers `PING`.
    pub fn start() -> Result<RedisNode, LaunchError> {
        Self::start_with(NodeOptions::default())
    }

    /// Starts a node with `options` and waits until it answers `PING`.
    pub fn start_with(options: NodeOptions) -> Result<RedisNode, LaunchError> {
        let mut nodes = start_many(1, &options, false)?;
        Ok(nodes.remove(0))
    }

    /// Finds the binary, picks a port and a directory, and spawns the process
    /// (without waiting for it).
    fn spawn(options: &NodeOptions, cluster: bool) -> Result<RedisNode, LaunchError> {
        let binary = locate(
            options.redis_server.as_deref(),
            "redis-server",
            REDIS_SERVER_ENV,
        )?;
        sweep_stale();
        let dir = TempDir::new()?;
        let guard = pick_port(cluster)?;
        let node = RedisNode {
            port: guard.port,
            guard,
            binary,
            options: options.clone(),
            cluster,
            child: Mutex::new(None),
            paused: AtomicBool::new(false),
            dir,
        };
        node.spawn_process()?;
        Ok(node)
    }

    /// Moves a node that lost a bind race to a new port and spawns it again.
    fn respawn_on_new_port(&mut self) -> Result<(), LaunchError> {
        self.kill();
        self.guard = pick_port(self.cluster)?;
        self.port = self.guard.port;
        self.spawn_process()
    }

    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |k: &str, v: &OsStr| {
            args.push(k.into());
            args.push(v.to_owned());
        };
        push("--port", OsStr::new(&self.port.to_string()));
        push("--bind", OsStr::new("127.0.0.1"));
        push("--dir", self.dir.0.as_os_str());
        push("--logfile", self.dir.0.join("redis.log").as_os_str());
        push("--daemonize", OsStr::new("no"));
        push("--save", OsStr::new(""));
        if self.options.persistence {
            push("--appendonly", OsStr::new("yes"));
            push("--appendfsync", OsStr::new("always"));
        } else {
            push("--appendonly", OsStr::new("no"));
        }
        if let Some(password) = &self.options.password {
            push("--requirepass", OsStr::new(password));
            push("--masterauth", OsStr::new(password));
        }
        if self.cluster {
            push("--cluster-enabled", OsStr::new("yes"));
            push(
                "--cluster-config-file",
                self.dir.0.join("nodes.conf").as_os_str(),
            );
            push("--cluster-node-timeout", OsStr::new("5000"));
        }
        args.extend(self.options.extra_args.iter().map(OsString::from));
        args
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn_process(&self) -> Result<(), LaunchError> {
        let output = self.dir.0.join("output.log");
        let stdout = File::create(&output)
            .map_err(|e| LaunchError::io(format!("create {}", output.display()), e))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| LaunchError::io("duplicate a file handle", e))?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .current_dir(&self.dir.0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| LaunchError::io(format!("run {}", self.binary.display()), e))?;
        // For sweep_stale(), should this process die without dropping the node.
        let _ = fs::write(self.dir.0.join(PID_FILE), child.id().to_string());
        self.paused.store(false, Ordering::Release);
        *self.child() = Some(child);
        Ok(())
    }

    /// Waits until the node answers `PING` (also `LOADING` is waited out).
    fn wait_ready(&self) -> Wait {
        let started = Instant::now();
        let deadline = started + self.options.startup_timeout;
        let mut last_error;
        loop {
            if let Some(status) = self.exit_status() {
                let log_tail = self.log_tail(20);
                let error = LaunchError::Exited {
                    port: self.port,
                    status,
                    log_tail: log_tail.clone(),
                };
                if log_tail.contains("Address already in use") {
                    return Wait::PortInUse(error);
                }
                return Wait::Failed(error);
            }
            match ping(&self.url(), Duration::from_millis(500)) {
                Ok(()) => return Wait::Ready,
                Err(e) => last_error = e,
            }
            if Instant::now() >= deadline {
                return Wait::Failed(LaunchError::NotReady {
                    port: self.port,
                    waited: started.elapsed(),
                    last_error,
                    log_tail: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn exit_status(&self) -> Option<String> {
        let mut child = self.child();
        match child.as_mut().map(Child::try_wait) {
            None => Some("not started".to_owned()),
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("unknown: {e}")),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` when a
    /// password is set.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// Its working directory (data files, `redis.log`, `output.log`).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The options it was started with.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// Whether the process is alive (a paused process is alive).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Whether it is paused by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.is_running() && self.paused.load(Ordering::Acquire)
    }

    /// A [`Probe`](crate::probe::Probe) for this node.
    pub fn probe(&self) -> crate::probe::Probe {
        crate::probe::Probe::new(&self.url())
    }

    /// Kills the process (SIGKILL) and waits for it: connections to the port
    /// are refused from then on. Keeps the directory, so
    /// [`restart`](Self::restart) can bring it back. Does nothing if it is not
    /// running.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.store(false, Ordering::Release);
    }

    /// Stops the process with SIGSTOP: it keeps its port and its connections,
    /// but answers nothing until [`resume`](Self::resume). Clients hang until
    /// their timeouts.
    pub fn pause(&self) -> Result<(), LaunchError> {
        self.signal("STOP")?;
        self.paused.store(true, Ordering::Release);
        Ok(())
    }

    /// Continues a paused process with SIGCONT; it then answers what was sent
    /// to it meanwhile.
    pub fn resume(&self) -> Result<(), LaunchError> {
        self.signal("CONT")?;
        self.paused.store(false, Ordering::Release);
        Ok(())
    }

    fn signal(&self, signal: &'static str) -> Result<(), LaunchError> {
        if !self.is_running() {
            return Err(LaunchError::NotRunning { port: self.port });
        }
        let pid = self
            .pid()
            .ok_or(LaunchError::NotRunning { port: self.port })?;
        let output = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LaunchError::Signal {
                signal,
                pid,
                detail: format!("could not run `kill`: {e}"),
            })?;
        if !output.status.success() {
            return Err(LaunchError::Signal {
                signal,
                pid,
                detail: format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    /// Kills the process if it runs (SIGKILL, a crash) and starts it again on
    /// the same port in the same directory, then waits until it answers
    /// `PING`. With [`NodeOptions::persistence`], every acknowledged write
    /// survives; without it, the node comes back empty.
    pub fn restart(&self) -> Result<(), LaunchError> {
        self.kill();
        let mut last = None;
        // The port may be briefly taken by someone else's socket: retry.
        for _ in 0..20 {
            self.spawn_process()?;
            match self.wait_ready() {
                Wait::Ready => return Ok(()),
                Wait::Failed(e) => {
                    self.kill();
                    return Err(e);
                }
                Wait::PortInUse(e) => {
                    self.kill();
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(last.unwrap_or(LaunchError::NotRunning { port: self.port }))
    }

    /// The last `lines` lines of its log file and of its standard output and
    /// error, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["redis.log", "output.log"] {
            let tail = tail_of(&self.dir.0.join(name), lines);
            if !tail.trim().is_empty() {
                out.push_str(&format!("--- {name} ---\n{tail}"));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        if out.is_empty() {
            out.push_str("(empty)");
        }
        out
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail_of(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One `PING` over a fresh connection.
fn ping(url: &str, timeout: Duration) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}

/// Spawns `n` nodes at once, then waits for each; a node that lost a race for
/// its port moves to another one.
fn start_many(
    n: usize,
    options: &NodeOptions,
    cluster: bool,
) -> Result<Vec<RedisNode>, LaunchError> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(RedisNode::spawn(options, cluster)?);
    }
    for node in &mut nodes {
        let mut races = 0;
        loop {
            match node.wait_ready() {
                Wait::Ready => break,
                Wait::Failed(e) => return Err(e),
                Wait::PortInUse(e) => {
                    races += 1;
                    if races > 10 {
                        return Err(LaunchError::NoFreePort {
                            attempts: races,
                            detail: format!("; last error: {e}"),
                        });
                    }
                    node.respawn_on_new_port()?;
                }
            }
        }
    }
    Ok(nodes)
}

// ---------------------------------------------------------------------------
// N independent nodes

/// N independent nodes (no replication, no cluster): a Redlock deployment.
/// Index it (`nodes[2].kill()`) or iterate it.
#[derive(Debug)]
pub struct RedisNodes {
    nodes: Vec<RedisNode>,
}

impl RedisNodes {
    /// Starts `n` nodes with the default options.
    pub fn start(n: usize) -> Result<RedisNodes, LaunchError> {
        Self::start_with(n, NodeOptions::default())
    }

    /// Starts `n` nodes, each with `options`.
    pub fn start_with(n: usize, options: NodeOptions) -> Result<RedisNodes, LaunchError> {
        if n == 0 {
            return Err(LaunchError::InvalidArgument(
                "RedisNodes::start needs at least one node".into(),
            ));
        }
        Ok(RedisNodes {
            nodes: start_many(n, &options, false)?,
        })
    }

    /// Every node's URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes.
    pub fn iter(&self) -> std::slice::Iter<'_, RedisNode> {
        self.nodes.iter()
    }

    /// The nodes as a slice.
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// A probe per node, in order.
    pub fn probes(&self) -> Vec<crate::probe::Probe> {
        self.nodes.iter().map(RedisNode::probe).collect()
    }
}

impl Index<usize> for RedisNodes {
    type Output = RedisNode;
    fn index(&self, i: usize) -> &RedisNode {
        &self.nodes[i]
    }
}

impl<'a> IntoIterator for &'a RedisNodes {
    type Item = &'a RedisNode;
    type IntoIter = std::slice::Iter<'a, RedisNode>;
    fn into_iter(self) -> Self::IntoIter {
        self.nodes.iter()
    }
}

// ---------------------------------------------------------------------------
// A Redis Cluster

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Options for every node (`cluster-enabled yes` is added).
    pub node: NodeOptions,
    /// The `redis-cli` binary: a path, or a name looked up on `PATH`.
    /// Default: `$REDLOCK_REDIS_CLI`, else `redis-cli` on `PATH`.
    pub redis_cli: Option<PathBuf>,
    /// How long to wait for `cluster_state:ok` on every node. Default 30 s.
    pub ready_timeout: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node: NodeOptions::default(),
            redis_cli: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A Redis Cluster of masters without replicas, created with
/// `redis-cli --cluster create` and waited for until every node reports
/// `cluster_state:ok` with all 16384 slots covered.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
}

impl RedisCluster {
    /// Starts a cluster of `masters` masters (at least 3) and no replicas.
    pub fn start(masters: usize) -> Result<RedisCluster, LaunchError> {
        Self::start_with(masters, ClusterOptions::default())
    }

    /// Starts a cluster of `masters` masters with `options`.
    pub fn start_with(
        masters: usize,
        options: ClusterOptions,
    ) -> Result<RedisCluster, LaunchError> {
        if masters < 3 {
            return Err(LaunchError::InvalidArgument(format!(
                "a Redis Cluster needs at least 3 masters, {masters} asked"
            )));
        }
        let cli = locate(options.redis_cli.as_deref(), "redis-cli", REDIS_CLI_ENV)?;
        let nodes = start_many(masters, &options.node, true)?;
        let cluster = RedisCluster { nodes };
        cluster.create(&cli)?;
        cluster.wait_healthy(options.ready_timeout)?;
        Ok(cluster)
    }

    fn create(&self, cli: &Path) -> Result<(), LaunchError> {
        let mut command = Command::new(cli);
        if let Some(password) = &self.nodes[0].options.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        command.args(["--cluster", "create"]);
        command.args(self.nodes.iter().map(RedisNode::addr));
        command.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LaunchError::io(format!("run {}", cli.display()), e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() || text.contains("[ERR]") {
            return Err(LaunchError::ClusterCreate {
                status: output.status.to_string(),
                output: text,
            });
        }
        Ok(())
    }

    fn wait_healthy(&self, timeout: Duration) -> Result<(), LaunchError> {
        let started = Instant::now();
        let n = self.nodes.len();
        loop {
            let mut problems = Vec::new();
            for node in &self.nodes {
                match cluster_info(&node.url()) {
                    Ok(info) => {
                        let field = |name: &str| {
                            info.lines()
                                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                                .map(str::trim)
                                .unwrap_or("?")
                                .to_owned()
                        };
                        let state = field("cluster_state");
                        let ok_slots = field("cluster_slots_ok");
                        let known = field("cluster_known_nodes");
                        if state != "ok" || ok_slots != "16384" || known != n.to_string() {
                            problems.push(format!(
                                "{}: cluster_state:{state} cluster_slots_ok:{ok_slots} cluster_known_nodes:{known}",
                                node.addr()
                            ));
                        }
                    }
                    Err(e) => problems.push(format!("{}: {e}", node.addr())),
                }
            }
            if problems.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(LaunchError::ClusterNotReady {
                    waited: started.elapsed(),
                    detail: problems.join("; "),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs (every master), for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// Master `i`.
    pub fn node(&self, i: usize) -> &RedisNode {
        &self.nodes[i]
    }

    /// Every master.
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// How many masters.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A probe that looks at every master.
    pub fn probe(&self) -> crate::probe::ClusterProbe {
        crate::probe::ClusterProbe::new(&self.urls())
    }
}

fn cluster_info(url: &str) -> Result<String, String> {
    let timeout = Duration::from_millis(500);
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut conn)
        .map_err(|e| e.to_string())
}
