//! The socket: created with its directory's and its own modes and group, a stale one replaced;
//! and the answer a refused connection gets on it.

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::ops::reply;
use crate::agent::config::AgentConfig;
use crate::agent::protocol::encode_frame;
use crate::error::{Error, Result};

pub(super) async fn bind_socket(config: &AgentConfig) -> Result<UnixListener> {
    let path = &config.socket;
    let io = |what: &'static str, source| Error::Io {
        what,
        path: path.clone(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_mode = if config.socket_group.is_some() {
        0o750
    } else {
        0o700
    };
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() || meta.permissions().mode() & 0o007 != 0 {
                return Err(Error::Config(format!(
                    "socket directory `{}` must be a directory other users cannot enter (chmod 700)",
                    dir.display()
                )));
            }
            if let Some(gid) = config.socket_group {
                let_group_in(dir, &meta, gid)?;
            }
        }
        Err(_) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(dir_mode)
                .create(dir)
                .map_err(|e| io("agent socket directory", e))?;
            // The mode above is filtered by the umask; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
                .map_err(|e| io("agent socket directory", e))?;
            if let Some(gid) = config.socket_group {
                std::os::unix::fs::chown(dir, None, Some(gid))
                    .map_err(|e| io("agent socket directory", e))?;
            }
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "`{}` exists and is not a socket; not replacing it",
                path.display()
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(Error::Config(format!(
                "an agent is already listening on `{}`",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| io("stale agent socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io("agent socket", e))?;
    let mode = if config.socket_group.is_some() {
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("agent socket", e))?;
    if let Some(gid) = config.socket_group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("agent socket", e))?;
    }
    Ok(listener)
}

/// Answers a refused connection's first request (within 2 s; else unprompted, with id `null`)
/// with `err`, then closes it. Waiting for the request lets a client that writes it after the
/// agent decided read the refusal, instead of failing on a closed socket.
pub(super) async fn refuse(mut stream: UnixStream, max_frame: usize, err: Value) {
    let id = tokio::time::timeout(
        Duration::from_secs(2),
        first_frame_id(&mut stream, max_frame),
    )
    .await
    .ok()
    .flatten()
    .unwrap_or(Value::Null);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(&encode_frame(&reply(&id, Err(err)))),
    )
    .await;
}

/// The `id` of the first frame on `stream`, if it is a well-formed request.
async fn first_frame_id(stream: &mut UnixStream, max_frame: usize) -> Option<Value> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > max_frame {
        return None;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    serde_json::from_slice::<Value>(&payload)
        .ok()?
        .get("id")
        .cloned()
}

/// An existing socket directory and `socket_group`: the group must be able to enter it, or no
/// bot of the group reaches the socket. systemd's `RuntimeDirectory=` makes the directory with
/// the unit's `User=`/`Group=`, not `socket_group`; a directory of the agent's own uid is given
/// that group (mode 0750, the group gets search only), any other is refused with what to do.
fn let_group_in(dir: &Path, meta: &std::fs::Metadata, gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode() & 0o7777;
    if meta.gid() == gid && mode & 0o010 != 0 {
        return Ok(());
    }
    let io = |source| Error::Io {
        what: "agent socket directory",
        path: dir.to_owned(),
        source,
    };
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(Error::Config(format!(
            "socket directory `{}` (uid {}, gid {}, mode {mode:o}) does not let socket_group \
             {gid} in, and is not the agent's to change: chgrp {gid} and chmod g+x it, or let \
             the agent create it",
            dir.display(),
            meta.uid(),
            meta.gid(),
        )));
    }
    std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io)?;
    tracing::info!(dir = %dir.display(), gid, "socket directory given socket_group");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    /// A directory made beforehand (as systemd's `RuntimeDirectory=` does, with the agent's own
    /// group) is given `socket_group`, so that the group's bots can reach the socket.
    #[tokio::test]
    async fn an_existing_socket_directory_is_given_the_socket_group() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A group this process may give its files: any as root, else its own.
        let group = if rustix::process::geteuid().is_root() {
            65534
        } else {
            rustix::process::getegid().as_raw()
        };
        let config = AgentConfig::new(dir.join("agent.sock")).socket_group(group);
        let listener = bind_socket(&config).await.unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.gid(), group);
        assert_eq!(meta.mode() & 0o7777, 0o750);
        drop(listener);
        // One that is not the agent's is refused, with what to do (root can make one).
        if rustix::process::geteuid().is_root() {
            let other = tmp.path().join("other");
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&other)
                .unwrap();
            std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
            let config = AgentConfig::new(other.join("agent.sock")).socket_group(1500);
            let err = bind_socket(&config).await.unwrap_err().to_string();
            assert!(err.contains("does not let socket_group 1500 in"), "{err}");
            assert!(err.contains("chgrp 1500"), "{err}");
        }
    }
}
