//! The chain head file: the last durable line's `seq` and MAC, MACed by the audit key so that
//! whoever truncates the log cannot also move the head back. Saved by temp file, fsync, rename.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{decode_mac, same_mac, AuditConfig, TokenMac, MAC_LEN};
use crate::error::{Error, Result};

const HEAD_DOMAIN: &[u8] = b"hsm-custody audit head v1\0";

/// The saved chain head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// File name (no directory) of the log file that holds line `seq`.
    pub file: String,
    pub seq: u64,
    pub mac: [u8; MAC_LEN],
    /// The chain's id (`None` in heads written by an earlier release).
    pub chain: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    version: u32,
    file: String,
    seq: u64,
    mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chain: Option<String>,
    head_mac: String,
}

impl Head {
    fn mac_input(&self) -> Vec<u8> {
        let mut input = HEAD_DOMAIN.to_vec();
        input.extend_from_slice(&self.seq.to_be_bytes());
        input.extend_from_slice(&self.mac);
        input.extend_from_slice(self.file.as_bytes());
        if let Some(chain) = &self.chain {
            input.push(0);
            input.extend_from_slice(chain.as_bytes());
        }
        input
    }

    /// Reads and authenticates the head at `path`; `None` when there is no such file.
    pub(crate) fn read(path: &Path, mac: &TokenMac) -> Result<Option<Head>> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Io {
                    what: "audit chain head",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let bad = |why: &str| Error::AuditFailed(format!("chain head `{}` {why}", path.display()));
        let raw: RawHead = serde_json::from_str(&text).map_err(|_| bad("is not valid"))?;
        let head = Head {
            file: raw.file,
            seq: raw.seq,
            mac: decode_mac(&raw.mac).ok_or_else(|| bad("is not valid"))?,
            chain: raw.chain,
        };
        let claimed = decode_mac(&raw.head_mac).ok_or_else(|| bad("is not valid"))?;
        if raw.version != 1 || !same_mac(&mac.mac(&head.mac_input())?, &claimed) {
            return Err(bad(
                "fails its MAC (edited, or made with another audit key)",
            ));
        }
        Ok(Some(head))
    }

    /// Saves the head: temp file (the log's mode and group), optional fsync, rename, optional
    /// directory fsync.
    pub(crate) fn write(
        &self,
        path: &Path,
        mac: &TokenMac,
        durable: bool,
        config: &AuditConfig,
    ) -> Result<()> {
        let raw = RawHead {
            version: 1,
            file: self.file.clone(),
            seq: self.seq,
            mac: hex::encode(self.mac),
            chain: self.chain.clone(),
            head_mac: hex::encode(mac.mac(&self.mac_input())?),
        };
        let text = serde_json::to_string(&raw)
            .map_err(|e| Error::AuditFailed(format!("cannot encode the chain head: {e}")))?;
        let io = |source| Error::Io {
            what: "audit chain head",
            path: path.to_owned(),
            source,
        };
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = Path::new(&tmp_name);
        let mut file = super::files::open_private(
            tmp,
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            config,
            "audit chain head",
        )?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        if durable {
            file.sync_all().map_err(io)?;
        }
        drop(file);
        fs::rename(tmp, path).map_err(io)?;
        if durable {
            sync_dir(path)?;
        }
        Ok(())
    }
}

/// Fsyncs the directory holding `path`, so that a rename or a new file survives a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            what: "audit log directory",
            path: dir.to_owned(),
            source,
        })
}
