//! One `redis-server` process: start, kill, pause, resume, restart.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::binary::{locate, REDIS_SERVER_ENV};
use super::clock::FakeClock;
use super::ports::{pick_port, PortGuard};
use super::tempdir::{sweep_stale, TempDir, PID_FILE};
use super::tls::{AclUser, TestCa, CA_FILE, CERT_FILE, KEY_FILE};
use super::LaunchError;

/// How to start a node. Build it with struct-update syntax:
/// `NodeOptions { persistence: true, ..NodeOptions::default() }`.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// `appendonly yes` with `appendfsync always`, so a [`restart`](RedisNode::restart)
    /// (even after a kill) keeps every acknowledged write. Off by default
    /// (`--save ""`, `--appendonly no`).
    pub persistence: bool,
    /// `requirepass`: the password of the `default` user. The node's
    /// [`url`](RedisNode::url) then carries it, unless an
    /// [`acl_user`](Self::acl_user) is set.
    pub password: Option<String>,
    /// Serve clients over TLS: the node listens on a second port,
    /// [`RedisNode::tls_port`], with a server certificate for `127.0.0.1` and
    /// `localhost` signed by [`TestCa::shared`] (made at start and written
    /// into the node's directory), and asks clients for no certificate. Its
    /// [`url`](RedisNode::url) is then `rediss://...` on that port; the plain
    /// [`port`](RedisNode::port) stays open for the testkit's own
    /// connections ([`RedisNode::admin_url`]). Off by default. Standalone
    /// nodes only: a cluster node refuses it.
    pub tls: bool,
    /// An ACL user the node creates at start, which its
    /// [`url`](RedisNode::url) then logs in as
    /// (`redis://NAME:PASSWORD@...`). The `default` user keeps
    /// [`password`](Self::password), or gets one the testkit makes up, so
    /// that a client without the user's credentials gets nothing done; the
    /// testkit's own connections ([`RedisNode::admin_url`]) log in as
    /// `default`. Standalone nodes only: a cluster node refuses it.
    pub acl_user: Option<AclUser>,
    /// More `redis-server` arguments, appended last (so they override the
    /// defaults), e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
    /// The `redis-server` binary: a path, or a name looked up on `PATH`.
    /// Default: `$REDLOCK_REDIS_SERVER`, else `redis-server` on `PATH`.
    pub redis_server: Option<PathBuf>,
    /// How long to wait for the node to answer `PING`. Default 10 s.
    pub startup_timeout: Duration,
    /// Run the node under libfaketime (Debian package `faketime`), so that
    /// [`RedisNode::set_clock_offset`] and [`RedisNode::jump_clock`] can move
    /// its wall clock forward while it runs (the monotonic clock is left
    /// alone). Off by default. Starting fails with
    /// [`LaunchError::MissingLibfaketime`] when libfaketime is not installed.
    pub fake_clock: bool,
}

impl NodeOptions {
    /// A node that serves clients over TLS only ([`tls`](Self::tls)) and
    /// creates `user` ([`acl_user`](Self::acl_user)), whom its
    /// [`url`](RedisNode::url) logs in as; every other option at its default.
    ///
    /// ```no_run
    /// use redlock_testkit::server::{AclUser, NodeOptions, RedisNode};
    /// let node = RedisNode::start_with(NodeOptions::tls_as(AclUser::new("locker", "pw")))?;
    /// assert!(node.url().starts_with("rediss://locker:pw@"));
    /// # Ok::<(), redlock_testkit::server::LaunchError>(())
    /// ```
    pub fn tls_as(user: AclUser) -> NodeOptions {
        NodeOptions {
            tls: true,
            acl_user: Some(user),
            ..NodeOptions::default()
        }
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            persistence: false,
            password: None,
            tls: false,
            acl_user: None,
            extra_args: Vec::new(),
            redis_server: None,
            startup_timeout: Duration::from_secs(10),
            fake_clock: false,
        }
    }
}

/// One `redis-server` process on a loopback port; see the [module docs](crate::server).
///
/// All methods take `&self`, so nodes inside a [`RedisNodes`](super::RedisNodes) or a
/// [`RedisCluster`](super::RedisCluster) can be killed, paused and restarted by index.
pub struct RedisNode {
    port: u16,
    guard: PortGuard,
    /// The TLS port, held like the plain one ([`NodeOptions::tls`]).
    tls_guard: Option<PortGuard>,
    /// The `default` user's password: [`NodeOptions::password`], or one made
    /// up when an ACL user is set.
    admin_password: Option<String>,
    /// The arguments that create [`NodeOptions::acl_user`].
    acl_args: Vec<String>,
    binary: PathBuf,
    options: NodeOptions,
    cluster: bool,
    child: Mutex<Option<Child>>,
    paused: AtomicBool,
    clock: Option<FakeClock>,
    dir: TempDir,
}

impl fmt::Debug for RedisNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisNode")
            .field("port", &self.port)
            .field("tls_port", &self.tls_port())
            .field("acl_user", &self.options.acl_user.as_ref().map(|u| &u.name))
            .field("pid", &self.pid())
            .field("dir", &self.dir.0)
            .field("persistence", &self.options.persistence)
            .field("cluster", &self.cluster)
            .field("clock_offset", &self.clock_offset())
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
        if cluster && (options.tls || options.acl_user.is_some()) {
            return Err(LaunchError::InvalidArgument(
                "TLS and ACL users are for standalone nodes; a cluster node takes neither".into(),
            ));
        }
        let acl_args = match &options.acl_user {
            Some(user) => user.args()?,
            None => Vec::new(),
        };
        sweep_stale();
        let dir = TempDir::new()?;
        if options.tls {
            TestCa::shared()?.write_node_files(&dir.0)?;
        }
        let clock = if options.fake_clock {
            Some(FakeClock::new(&dir.0)?)
        } else {
            None
        };
        let guard = pick_port(cluster)?;
        let tls_guard = if options.tls {
            Some(pick_port(false)?)
        } else {
            None
        };
        let admin_password = options.password.clone().or_else(|| {
            options
                .acl_user
                .as_ref()
                .map(|_| made_up_password(guard.port))
        });
        let node = RedisNode {
            port: guard.port,
            guard,
            tls_guard,
            admin_password,
            acl_args,
            binary,
            options: options.clone(),
            cluster,
            child: Mutex::new(None),
            paused: AtomicBool::new(false),
            clock,
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
        if self.tls_guard.is_some() {
            self.tls_guard = Some(pick_port(false)?);
        }
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
        if let Some(password) = &self.admin_password {
            push("--requirepass", OsStr::new(password));
            push("--masterauth", OsStr::new(password));
        }
        if let Some(tls) = &self.tls_guard {
            push("--tls-port", OsStr::new(&tls.port.to_string()));
            push("--tls-cert-file", self.dir.0.join(CERT_FILE).as_os_str());
            push("--tls-key-file", self.dir.0.join(KEY_FILE).as_os_str());
            push("--tls-ca-cert-file", self.dir.0.join(CA_FILE).as_os_str());
            push("--tls-auth-clients", OsStr::new("no"));
        }
        if self.cluster {
            push("--cluster-enabled", OsStr::new("yes"));
            push(
                "--cluster-config-file",
                self.dir.0.join("nodes.conf").as_os_str(),
            );
            push("--cluster-node-timeout", OsStr::new("5000"));
        }
        args.extend(self.acl_args.iter().map(OsString::from));
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
        let mut command = Command::new(&self.binary);
        if let Some(clock) = &self.clock {
            clock.apply(&mut command);
        }
        let child = command
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
            match ping(&self.admin_url(), Duration::from_millis(500)) {
                Ok(()) => return self.check_clock(),
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

    /// A fake-clock node that runs without libfaketime (the loader prints
    /// that it could not preload it, and goes on) is a failed start.
    fn check_clock(&self) -> Wait {
        if self.clock.is_some() {
            let output = tail_of(&self.dir.0.join("output.log"), 20);
            if output.contains("cannot be preloaded") {
                return Wait::Failed(LaunchError::FakeClockNotLoaded {
                    port: self.port,
                    log_tail: output,
                });
            }
        }
        Wait::Ready
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

    /// The plain-TCP port it listens on (127.0.0.1). A TLS node listens on
    /// it too, for the testkit's own connections ([`admin_url`](Self::admin_url));
    /// its clients use [`tls_port`](Self::tls_port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port of a node started with [`NodeOptions::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_guard.as_ref().map(|guard| guard.port)
    }

    /// The URL a client uses: `redis://127.0.0.1:PORT`, with
    /// `:PASSWORD@` when a [password](NodeOptions::password) is set, or
    /// `NAME:PASSWORD@` with an [ACL user](NodeOptions::acl_user); and
    /// `rediss://127.0.0.1:TLS_PORT` on a [TLS node](NodeOptions::tls).
    pub fn url(&self) -> String {
        match (&self.options.acl_user, &self.options.password) {
            (Some(user), _) => self.url_with_password(&user.password),
            (None, Some(password)) => self.url_with_password(password),
            (None, None) => format!("{}://127.0.0.1:{}", self.scheme(), self.client_port()),
        }
    }

    /// [`url`](Self::url) with `password` instead of the node's own (for the
    /// ACL user when there is one, else for `default`): how a client with a
    /// wrong password would reach it.
    pub fn url_with_password(&self, password: &str) -> String {
        let user = self
            .options
            .acl_user
            .as_ref()
            .map_or("", |u| u.name.as_str());
        format!(
            "{}://{user}:{password}@127.0.0.1:{}",
            self.scheme(),
            self.client_port()
        )
    }

    /// The plain-TCP URL of the `default` user, with its password if it has
    /// one: what the testkit's own connections use (readiness checks,
    /// [`probe`](Self::probe)). The same as [`url`](Self::url) on a node
    /// without TLS and without an ACL user.
    pub fn admin_url(&self) -> String {
        match &self.admin_password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls_guard.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// The port of [`url`](Self::url).
    fn client_port(&self) -> u16 {
        self.tls_port().unwrap_or(self.port)
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

    /// How far ahead of the real clock its wall clock runs: `Some` for a node
    /// started with [`NodeOptions::fake_clock`], `None` otherwise.
    pub fn clock_offset(&self) -> Option<Duration> {
        self.clock.as_ref().map(FakeClock::offset)
    }

    /// Sets how far ahead of the real clock the node's wall clock runs, while
    /// it runs: the next command already sees it. Moving it forward by more
    /// than a key's remaining TTL expires the key (Redis computes expiry from
    /// the wall clock); its monotonic clock is not moved. The offset survives
    /// [`restart`](Self::restart), as a machine's clock would. Fails with
    /// [`LaunchError::NoFakeClock`] unless the node was started with
    /// [`NodeOptions::fake_clock`].
    pub fn set_clock_offset(&self, offset: Duration) -> Result<(), LaunchError> {
        match &self.clock {
            Some(clock) => clock.set(offset),
            None => Err(LaunchError::NoFakeClock { port: self.port }),
        }
    }

    /// Moves the node's wall clock forward by `by` (on top of the offset it
    /// has), and returns the new offset; see
    /// [`set_clock_offset`](Self::set_clock_offset).
    pub fn jump_clock(&self, by: Duration) -> Result<Duration, LaunchError> {
        let current = self
            .clock_offset()
            .ok_or(LaunchError::NoFakeClock { port: self.port })?;
        let offset = current.checked_add(by).ok_or_else(|| {
            LaunchError::InvalidArgument(format!("a clock offset of {current:?} + {by:?}"))
        })?;
        self.set_clock_offset(offset)?;
        Ok(offset)
    }

    /// A [`Probe`](crate::probe::Probe) for this node, over
    /// [`admin_url`](Self::admin_url).
    pub fn probe(&self) -> crate::probe::Probe {
        crate::probe::Probe::new(&self.admin_url())
    }

    /// Kills the process (SIGKILL) and waits for it: connections to the port
    /// are refused from then on. Keeps the directory, so
    /// [`restart`](Self::restart) can bring it back. Does nothing if it is not
    /// running.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
            if self.clock.is_some() {
                FakeClock::clean_up_after(child.id());
            }
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

/// The `default` user's password on a node with an ACL user and no
/// [`NodeOptions::password`]: not a secret, only a way to keep clients that
/// send no credentials out.
fn made_up_password(port: u16) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("testkit-{}-{port}-{nanos:x}", std::process::id())
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

/// One command over a fresh connection, every step bounded by `timeout`.
pub(super) fn query_once<T: redis::FromRedisValue>(
    url: &str,
    timeout: Duration,
    cmd: &redis::Cmd,
) -> Result<T, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut conn).map_err(|e| e.to_string())
}

/// One `PING` over a fresh connection.
fn ping(url: &str, timeout: Duration) -> Result<(), String> {
    let pong: String = query_once(url, timeout, &redis::cmd("PING"))?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong:?}"))
    }
}

/// Spawns `n` nodes at once, then waits for each; a node that lost a race for
/// its port moves to another one.
pub(super) fn start_many(
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
