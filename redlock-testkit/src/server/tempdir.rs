//! Each node's temporary directory, and the sweep of directories whose
//! test process died without removing them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::LaunchError;

#[derive(Debug)]
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new() -> Result<TempDir, LaunchError> {
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
pub(super) const PID_FILE: &str = "redis-server.pid";

/// Cleans up after test processes that died without dropping their nodes
/// (killed by a CI timeout, say): once per process, for every
/// `redlock-testkit-<owner pid>-*` directory in the temp dir whose owner is
/// gone, kills the redis-server recorded in it if that process still runs *in
/// that directory* (so a reused pid is never hit), and removes the directory
/// (one whose server was not seen only once it is an hour old).
pub(super) fn sweep_stale() {
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
