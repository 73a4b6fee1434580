//! The log's files on disk, besides the lines: private modes whatever the umask, the writer's
//! lock, and login failures buffered by processes that could not log in.
//!
//! Sidecar files next to the log `PATH`: `PATH.head` (chain head, see `head`), `PATH.lock`
//! (held by the one writer, holds its pid), `PATH.pending` (login failures waiting to be
//! MACed into the chain) and `PATH.journal` (lines staged, see `journal`).

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use super::AuditConfig;
use crate::error::{Error, Result};

/// How long a second writer waits for the log's lock before giving up.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(2);

/// `PATH.lock`: the writer's lock file.
pub fn lock_path_for(log: &Path) -> PathBuf {
    with_suffix(log, ".lock")
}

/// `PATH.pending`: login failures not yet in the chain.
pub fn pending_path_for(log: &Path) -> PathBuf {
    with_suffix(log, ".pending")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `path` names one of the log's sidecar files (chain head, its temp file, lock,
/// pending login failures, journal) rather than a log file: `audit verify audit.jsonl*` skips
/// them.
pub fn is_sidecar(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    [".head", ".head.tmp", ".lock", ".pending", ".journal"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The permission bits of the log's files: 0600, or 0640 with a group.
pub(crate) fn file_mode(config: &AuditConfig) -> u32 {
    if config.group.is_some() {
        0o640
    } else {
        0o600
    }
}

/// Opens `path` with `options`, creating it (if the options say so) with the log's mode
/// whatever the umask, and hands it to the configured group (see [`restrict`]).
pub(crate) fn open_private(
    path: &Path,
    options: &mut OpenOptions,
    config: &AuditConfig,
    what: &'static str,
) -> Result<File> {
    let io = |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let mode = file_mode(config);
    let file = options.mode(mode).open(path).map_err(io)?;
    restrict(&file, config).map_err(io)?;
    Ok(file)
}

/// Gives `file` to the configured group and sets exactly the log's mode (0600, or 0640 with a
/// group): the umask may have taken bits away, an older release may have left more.
pub(crate) fn restrict(file: &File, config: &AuditConfig) -> std::io::Result<()> {
    let meta = file.metadata()?;
    if let Some(gid) = config.group {
        use std::os::unix::fs::MetadataExt as _;
        if meta.gid() != gid {
            std::os::unix::fs::fchown(file, None, Some(gid))?;
        }
    }
    let mode = file_mode(config);
    if meta.permissions().mode() & 0o7777 != mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// The one writer's lock on a log: an advisory `flock` on `PATH.lock`, which holds the
/// writer's pid. Released when dropped (or when the process ends, however it ends).
pub(crate) struct LogLock {
    _file: File,
}

impl LogLock {
    /// Takes the lock, waiting up to `wait` for another writer to let go.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] naming the holder's pid when it is still held after `wait`;
    /// [`Error::Io`].
    pub(crate) fn acquire(log: &Path, config: &AuditConfig, wait: Duration) -> Result<LogLock> {
        let path = lock_path_for(log);
        let mut file = open_private(
            &path,
            OpenOptions::new().read(true).write(true).create(true),
            config,
            "audit log lock",
        )?;
        let io = |source: std::io::Error| Error::Io {
            what: "audit log lock",
            path: path.clone(),
            source,
        };
        let deadline = Instant::now() + wait;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR)
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    let holder = match text.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "a process that has not written its pid yet".to_owned(),
                    };
                    return Err(Error::AuditFailed(format!(
                        "`{}` is being written by another process ({holder}, see `{}`); a log \
                         has one writer at a time: stop that process (an agent with the same \
                         configuration?) or run this one with another `[audit] path`",
                        log.display(),
                        path.display()
                    )));
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(LogLock { _file: file })
    }
}

/// A login failure noted by a process that could not log in (so could not MAC a line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingLoginFailure {
    #[serde(with = "time::serde::rfc3339")]
    pub time: time::OffsetDateTime,
    pub token: String,
    pub reason: String,
    pub client: String,
}

/// Appends a login failure to `PATH.pending`, for the next writer that logs in to record.
pub(crate) fn append_pending(config: &AuditConfig, event: &PendingLoginFailure) -> Result<()> {
    let path = pending_path_for(&config.path);
    let mut file = open_private(
        &path,
        OpenOptions::new().append(true).create(true),
        config,
        "audit log pending events",
    )?;
    let io = |source: std::io::Error| Error::Io {
        what: "audit log pending events",
        path: path.clone(),
        source,
    };
    rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
    let mut line = serde_json::to_string(event)
        .map_err(|e| Error::AuditFailed(format!("cannot encode a pending event: {e}")))?;
    line.push('\n');
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// The pending login failures, locked until [`Pending::clear`] (or drop, which keeps them).
pub(crate) struct Pending {
    file: File,
    path: PathBuf,
    pub events: Vec<PendingLoginFailure>,
    /// Lines that were not pending events (recorded as such, never silently dropped).
    pub unreadable: usize,
}

impl Pending {
    /// Takes the pending events, if any: `None` when there is no pending file or it is empty.
    pub(crate) fn take(config: &AuditConfig) -> Result<Option<Pending>> {
        let path = pending_path_for(&config.path);
        let io = |source: std::io::Error| Error::Io {
            what: "audit log pending events",
            path: path.clone(),
            source,
        };
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if file.metadata().map_err(io)?.len() == 0 {
            return Ok(None);
        }
        rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
        let mut events = Vec::new();
        let mut unreadable = 0;
        for line in BufReader::new(&file).lines() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(event) => events.push(event),
                Err(_) => unreadable += 1,
            }
        }
        Ok(Some(Pending {
            file,
            path,
            events,
            unreadable,
        }))
    }

    /// Empties the pending file (once its events are durable in the chain), and tells this
    /// process's guard rails how many login failures were recorded (their failed-login alert).
    pub(crate) fn clear(self) -> Result<()> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| Error::Io {
                what: "audit log pending events",
                path: self.path.clone(),
                source,
            })?;
        crate::guard::pending_logins::recorded(&self.path, self.events.len() + self.unreadable);
        Ok(())
    }
}

/// Whether `PATH.pending` holds anything (one `stat`).
pub(crate) fn has_pending(config: &AuditConfig) -> bool {
    fs::metadata(pending_path_for(&config.path)).is_ok_and(|m| m.len() > 0)
}

/// `pid=… uid=…` of this process.
pub(crate) fn this_process() -> String {
    format!(
        "pid={} uid={}",
        std::process::id(),
        rustix::process::getuid().as_raw()
    )
}

/// Resolves `[audit] group`: a number, or a name from `/etc/group`.
pub(crate) fn resolve_group(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let text = fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let gid = f.nth(1)?.parse::<u32>().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            Error::Config(format!(
                "[audit] group `{group}` is not in /etc/group: give its number instead"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_told_from_log_files() {
        for side in [
            "a/audit.jsonl.head",
            "audit.jsonl.head.tmp",
            "audit.jsonl.lock",
            "audit.jsonl.pending",
        ] {
            assert!(is_sidecar(Path::new(side)), "{side}");
        }
        for log in [
            "audit.jsonl",
            "audit.jsonl.000000000042",
            "x/headless.jsonl",
        ] {
            assert!(!is_sidecar(Path::new(log)), "{log}");
        }
    }

    #[test]
    fn groups_resolve_by_number_or_name() {
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert!(resolve_group("no-such-group-hsm-custody").is_err());
    }
}
