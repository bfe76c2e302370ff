//! A node's fake wall clock, with libfaketime (Debian package `faketime`).
//!
//! A node started with [`NodeOptions::fake_clock`](super::NodeOptions::fake_clock)
//! runs under `LD_PRELOAD=<libfaketime.so.1> libc.so.6` with:
//!
//! - `FAKETIME_TIMESTAMP_FILE=<node dir>/faketime.rc`, holding a relative
//!   offset (`+0` at start, then e.g. `+61.500`: seconds ahead of the real
//!   clock), replaced atomically (write, then rename) by
//!   [`RedisNode::set_clock_offset`](super::RedisNode::set_clock_offset);
//! - `FAKETIME_NO_CACHE=1`, so the file is read again on every clock call and a
//!   jump is seen by the very next command;
//! - `FAKETIME_DONT_FAKE_MONOTONIC=1`: only the wall clock (`CLOCK_REALTIME`,
//!   `gettimeofday`, `time`) jumps, as with an NTP step. Redis computes key
//!   expiry from the wall clock (a key set with `PX 10000` is gone after a
//!   +60 s jump), while its event loop, timers and command timing use the
//!   monotonic clock and stay healthy.
//!
//! `libc.so.6` is preloaded right after libfaketime because Debian's
//! redis-server links the system jemalloc, which libfaketime cannot start
//! under (libfaketime's initialisation allocates, jemalloc's initialisation
//! asks the clock: "Unexpected recursive calls to clock_gettime()", and the
//! server hangs; libfaketime issue #130). With glibc ahead of jemalloc in the
//! symbol search order, `malloc` and friends resolve to glibc's: the node runs
//! on glibc's allocator (`INFO memory` still names jemalloc, whose figures are
//! then meaningless). libfaketime's own `dlsym(RTLD_NEXT, ...)` still finds
//! glibc, which is loaded after it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::LaunchError;

/// The environment variable that names libfaketime (`libfaketime.so.1`).
pub const LIBFAKETIME_ENV: &str = "REDLOCK_LIBFAKETIME";
/// The command that installs libfaketime on Debian and Ubuntu.
pub const FAKETIME_INSTALL_HINT: &str = "apt-get install faketime";

const LIBRARY: &str = "libfaketime.so.1";
const FILE: &str = "faketime.rc";

/// Finds `libfaketime.so.1`: at `$REDLOCK_LIBFAKETIME` if set, else in a
/// `faketime` directory under `/usr/lib`, `/usr/lib64`, `/usr/local/lib` or
/// `/lib`, or one level deeper (the multiarch directories, such as
/// `/usr/lib/x86_64-linux-gnu/faketime/`).
pub fn find_libfaketime() -> Result<PathBuf, LaunchError> {
    if let Some(path) = std::env::var_os(LIBFAKETIME_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(LaunchError::MissingLibfaketime {
            searched: format!("{LIBFAKETIME_ENV}={}: no such file", path.display()),
        });
    }
    const ROOTS: [&str; 4] = ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib"];
    for root in ROOTS {
        let root = Path::new(root);
        let direct = root.join("faketime").join(LIBRARY);
        if direct.is_file() {
            return Ok(direct);
        }
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        if let Some(found) = subdirs
            .into_iter()
            .map(|d| d.join("faketime").join(LIBRARY))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    Err(LaunchError::MissingLibfaketime {
        searched: format!(
            "no faketime/{LIBRARY} under {} (or one directory deeper)",
            ROOTS.join(", ")
        ),
    })
}

/// One node's fake clock: the library, the offset file, the current offset.
#[derive(Debug)]
pub(super) struct FakeClock {
    library: PathBuf,
    file: PathBuf,
    offset: Mutex<Duration>,
}

impl FakeClock {
    /// Finds the library and writes `+0` to the offset file in `dir`.
    pub(super) fn new(dir: &Path) -> Result<FakeClock, LaunchError> {
        let clock = FakeClock {
            library: find_libfaketime()?,
            file: dir.join(FILE),
            offset: Mutex::new(Duration::ZERO),
        };
        clock.write(Duration::ZERO)?;
        Ok(clock)
    }

    /// Adds the environment that runs the process under the fake clock.
    pub(super) fn apply(&self, command: &mut Command) {
        let mut preload = self.library.clone().into_os_string();
        preload.push(" libc.so.6");
        command
            .env("LD_PRELOAD", preload)
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }

    /// Removes what libfaketime left in shared memory for process `pid`: it
    /// creates `/faketime_shm_<pid>` and `/faketime_sem_<pid>` at start and
    /// removes them only at a clean exit, and nodes are killed with SIGKILL.
    pub(super) fn clean_up_after(pid: u32) {
        let shm = Path::new("/dev/shm");
        let _ = fs::remove_file(shm.join(format!("faketime_shm_{pid}")));
        let _ = fs::remove_file(shm.join(format!("sem.faketime_sem_{pid}")));
    }

    pub(super) fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the offset (ahead of the real clock).
    pub(super) fn set(&self, offset: Duration) -> Result<(), LaunchError> {
        let mut current = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        self.write(offset)?;
        *current = offset;
        Ok(())
    }

    /// Replaces the file at once (write, then rename), so libfaketime never
    /// reads it half written.
    fn write(&self, offset: Duration) -> Result<(), LaunchError> {
        // Seconds with a fraction: libfaketime reads `+1.5` as 1.5 s (a
        // suffix `m` would mean minutes, so none is used).
        let text = format!("+{}.{:03}\n", offset.as_secs(), offset.subsec_millis());
        let temporary = self.file.with_extension("rc.new");
        fs::write(&temporary, text)
            .map_err(|e| LaunchError::io(format!("write {}", temporary.display()), e))?;
        fs::rename(&temporary, &self.file)
            .map_err(|e| LaunchError::io(format!("rename to {}", self.file.display()), e))
    }
}
