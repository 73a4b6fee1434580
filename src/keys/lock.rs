//! Lifecycle writes serialised across processes: an advisory `flock` on a lock file per token,
//! held around every change to keys (create, import, adopt, generate, rotate begin / promote /
//! retire, revoke, and the clean-ups of interrupted steps).
//!
//! The file is `$TMPDIR/hsm-custody-lifecycle-<label>-<hash>.lock` (`/tmp` without `TMPDIR`),
//! the hash over the token's manufacturer, model, serial number and label: every process that
//! reaches the same token through any path to the module finds the same file. It is created
//! 0600, never through a symbolic link, and refused when another user owns it. The holder
//! writes its pid into it, for the error a waiting process gives up with.
//!
//! What it cannot cover (docs/security.md, section 10): processes that do not share the temp
//! directory (another machine on a network HSM, another `TMPDIR`, systemd's `PrivateTmp`), and
//! writers that do not take it (older releases, other PKCS#11 tools). For those the metadata's
//! revision check (`store::update_meta`) and the clean-up's re-read of the committed metadata
//! (`store::reconcile`) remain.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// How long a lifecycle change waits for another process's change to the same token.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The lock file of the token with these identifiers (from `C_GetTokenInfo`).
pub(crate) fn path_for(manufacturer: &str, model: &str, serial: &str, label: &str) -> PathBuf {
    let mut hash = Sha256::new();
    for part in [manufacturer, model, serial, label] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hex::encode(&hash.finalize()[..12]);
    let readable: String = label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(32)
        .collect();
    std::env::temp_dir().join(format!("hsm-custody-lifecycle-{readable}-{digest}.lock"))
}

/// The held lock: released when dropped, or when the process ends however it ends.
pub(crate) struct LifecycleLock {
    _file: File,
}

impl LifecycleLock {
    /// Takes the lock at `path` for token `token`, waiting up to `wait` for another holder.
    ///
    /// # Errors
    /// [`Error::LifecycleBusy`] naming the holder's pid when it is still held after `wait`;
    /// [`Error::LifecycleLockUnsafe`] when the file is a link, not a regular file, or another
    /// user's; [`Error::Io`].
    pub(crate) fn acquire(path: &Path, token: &str, wait: Duration) -> Result<LifecycleLock> {
        let io = |source: std::io::Error| Error::Io {
            what: "lifecycle lock",
            path: path.to_owned(),
            source,
        };
        let unsafe_file = |problem: String| Error::LifecycleLockUnsafe {
            token: token.to_owned(),
            path: path.to_owned(),
            problem,
        };
        let fd = match rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => {
                return Err(unsafe_file("is a symbolic link".into()));
            }
            Err(e) => return Err(io(e.into())),
        };
        let mut file = File::from(fd);
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(unsafe_file("is not a regular file".into()));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(unsafe_file(format!(
                "belongs to uid {}, not to this process's uid {me}: another user could hold it \
                 or fake its holder",
                meta.uid()
            )));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        let deadline = Instant::now() + wait;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR)
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(Error::LifecycleBusy {
                        token: token.to_owned(),
                        holder_pid: text.trim().parse().ok(),
                        path: path.to_owned(),
                        waited: wait,
                    });
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        Ok(LifecycleLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        let first = LifecycleLock::acquire(&path, "tok", WAIT).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // flock conflicts between two opens of the file, in one process as in two.
        let started = Instant::now();
        let err = LifecycleLock::acquire(&path, "tok", Duration::from_millis(200))
            .err()
            .expect("the lock is held");
        assert!(started.elapsed() >= Duration::from_millis(200));
        match &err {
            Error::LifecycleBusy { holder_pid, .. } => {
                assert_eq!(*holder_pid, Some(std::process::id()));
            }
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("tok"),
            "{text}"
        );
        // A holder that lets go within the wait hands the lock on.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
        });
        LifecycleLock::acquire(&path, "tok", WAIT).unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn links_and_loose_modes_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("link.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = LifecycleLock::acquire(&link, "tok", WAIT)
            .err()
            .expect("a link is refused");
        assert!(matches!(err, Error::LifecycleLockUnsafe { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");

        let loose = dir.path().join("loose.lock");
        std::fs::write(&loose, "").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o666)).unwrap();
        let _held = LifecycleLock::acquire(&loose, "tok", WAIT).unwrap();
        assert_eq!(
            std::fs::metadata(&loose).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn the_path_follows_the_token_not_the_module_path() {
        let a = path_for("SoftHSM project", "SoftHSM v2", "1234", "prod");
        assert_eq!(a, path_for("SoftHSM project", "SoftHSM v2", "1234", "prod"));
        assert_ne!(a, path_for("SoftHSM project", "SoftHSM v2", "1235", "prod"));
        assert_ne!(
            a,
            path_for("SoftHSM project", "SoftHSM v2", "1234", "prod2")
        );
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("hsm-custody-lifecycle-prod-"), "{name}");
        let odd = path_for("m", "m", "s", "../../etc/x");
        assert_eq!(odd.parent(), Some(std::env::temp_dir().as_path()));
    }
}
