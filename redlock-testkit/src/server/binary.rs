//! Finding the `redis-server` and `redis-cli` binaries.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use super::LaunchError;

/// The environment variable that names the `redis-server` binary to use.
pub const REDIS_SERVER_ENV: &str = "REDLOCK_REDIS_SERVER";
/// The environment variable that names the `redis-cli` binary to use.
pub const REDIS_CLI_ENV: &str = "REDLOCK_REDIS_CLI";
/// The command that installs both binaries on Debian and Ubuntu.
pub const INSTALL_HINT: &str = "apt-get install redis-server redis-tools";

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

pub(super) fn locate(
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
