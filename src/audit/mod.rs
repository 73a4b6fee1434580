//! The audit log (issue 5, hardened in issue 26): every sign attempt and lifecycle event as one
//! JSON line, chained by MACs computed in the token.
//!
//! ## Line format
//! One JSON object per line, fields in this order, absent ones left out:
//! `seq` (1, 2, 3 ... across rotated files), `time` (RFC 3339, UTC), `event` ([`Event`]:
//! `chain_start`, `chain_reset`, `sign`, `sign_failed`, `created`, `rotation_begun`, `promoted`,
//! `retired`, `revoked`, `login_failed`, `gateway_reply`), `key`, `version`, `versions`, `kind`
//! ([`crate::KeyKind`]), `token`, `exchange`, `method`, `path`, `binding`, `params`, `client`,
//! `sha256` (of the exact bytes signed), `decision` ([`Decision`]: `allow`/`deny`), `rule`,
//! `outcome`, `observed`, `chain`, `reason`, `reset`, `prev_file`, `prev_mac`, `epoch`, and last `mac`
//! (hex). Never a secret, a PIN, a signature or the message bytes. [`Record`] is a line as data;
//! its serialised form is this format, byte for byte (lines written before the fields were
//! typed read and verify as they did: `tests/data/audit-v1`).
//!
//! ## Chain
//! `body_i` is line `i` without its `,"mac":"…"` member (the text up to it, plus `}`);
//! `mac_i = HMAC-SHA256(K, mac_{i-1} || body_i)`; `mac_0` is 32 zero bytes. For a file's first
//! line (and every line of a log written before issue 29) `K` is the audit key, used in the
//! token: a non-extractable key generated there by the log and marked as the audit key (see
//! `TokenMac::open`). For the others `K` is the key of the line's *epoch*, derived in the token
//! from that key and the nonce the epoch's first line carries (`epoch`), and used in software
//! (see `epoch`): one token operation per epoch (about a second), not per line. Every file starts with a `chain_start` line
//! whose `prev_mac` is the MAC of the line before it (the last line of the previous file, or
//! zeros for a new log) and `prev_file` names that file; a chain's id is its first line's MAC
//! (16 bytes, hex), repeated as `chain` by each rotated-in file. After each durable write the
//! *chain head* (`seq`, `mac` of the last durable line, the chain id, and a MAC of them by the
//! audit key, in the token) is saved next to the log by temp file, fsync and rename, and at most
//! once a second in the token (`token_head`), when a new epoch starts: these are the log's
//! checkpoints, and the lines after the last one its unprotected tail. A restart continues from them; a missing head, one further behind than a
//! crash leaves, or a token head the log does not reach is refused until `reset` starts a new
//! chain on the record (a `chain_reset` line, MAC chain from zeros, `seq` going on). The
//! verifier uses both heads to detect a cut or rolled-back tail. One writer per log (`files`).

mod epoch;
mod files;
mod head;
mod journal;
mod record;
mod summary;
mod token_head;
mod verify;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use crate::config::{AuditSection, GroupRef};
use crate::error::{Error, Result};
use crate::keys::Vault;

pub use files::{is_sidecar, lock_path_for, pending_path_for};
pub use journal::journal_path_for;
pub(crate) use record::SignLine;
pub use record::{Decision, Event, Record, ResetFacts};
pub use summary::{summarize, tail, KeyUsage, Summary};
pub use verify::{verify, Problem, ProblemKind, Reset, VerifyReport};
pub use writer::{record_login_failure, reset, AuditLog, ResetReport};

/// Default name of the audit key in the token (kept by the keys layer, which refuses to import
/// a key under it).
pub use crate::keys::DEFAULT_AUDIT_KEY;
/// Default size at which the log file is rotated (64 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub use crate::config::Fsync;

/// Where and how the audit log is written (`[audit]` in the configuration file).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuditConfig {
    /// The active log file; rotated files get `.SEQ` (12 digits) appended.
    pub path: PathBuf,
    /// The chain head file (default: `path` + `.head`).
    pub head: PathBuf,
    /// Fsync policy.
    pub fsync: Fsync,
    /// Rotate once the active file reaches this size; 0: never.
    pub max_bytes: u64,
    /// Name of the audit key in the token.
    pub key: String,
    /// The group (gid) the log's files are given to, readable by it (0640); `None`: the
    /// files are the writer's alone (0600).
    pub group: Option<u32>,
}

impl AuditConfig {
    /// Defaults for a log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        AuditConfig {
            head: head_path_for(&path),
            path,
            fsync: Fsync::Always,
            max_bytes: DEFAULT_MAX_BYTES,
            key: DEFAULT_AUDIT_KEY.to_owned(),
            group: None,
        }
    }

    /// Gives the log's files to group `gid`, readable by it (mode 0640 instead of 0600).
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// Sets the rotation size (0: never rotate).
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets the audit key's name.
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.key = name.into();
        self
    }

    /// The audit configuration an `[audit]` section describes (a group given by name is
    /// looked up here).
    ///
    /// # Errors
    /// [`Error::Config`]: a bad key name or an unknown group.
    pub fn from_section(section: &AuditSection) -> Result<Self> {
        let mut config = AuditConfig::new(&section.path);
        if let Some(head) = &section.head {
            config.head = head.clone();
        }
        if let Some(fsync) = section.fsync {
            config.fsync = fsync;
        }
        if let Some(max) = section.max_bytes {
            config.max_bytes = max;
        }
        if let Some(key) = &section.key {
            crate::keys::validate_name(key)?;
            config.key = key.clone();
        }
        config.group = match &section.group {
            None => None,
            Some(GroupRef::Id(gid)) => Some(*gid),
            Some(GroupRef::Name(name)) => Some(files::resolve_group(name)?),
        };
        Ok(config)
    }
}

/// The chain head file that goes with a log file: `FILE.head`.
pub fn head_path_for(log: &std::path::Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

pub(crate) const MAC_LEN: usize = 32;
const MAC_PREFIX: &str = ",\"mac\":\"";
/// `,"mac":"` + 64 hex digits + `"}`.
const MAC_SUFFIX_LEN: usize = MAC_PREFIX.len() + 2 * MAC_LEN + 2;

/// Serialises `rec` to its MAC input body (compact JSON).
pub(crate) fn body_of(rec: &Record) -> Result<String> {
    serde_json::to_string(rec).map_err(|e| Error::AuditFailed(format!("cannot encode a line: {e}")))
}

/// The line for `body` and its MAC (no newline).
pub(crate) fn line_of(body: &str, mac: &[u8; MAC_LEN]) -> String {
    let mut line = String::with_capacity(body.len() + MAC_SUFFIX_LEN);
    line.push_str(&body[..body.len().saturating_sub(1)]);
    line.push_str(MAC_PREFIX);
    line.push_str(&hex::encode(mac));
    line.push_str("\"}");
    line
}

/// Splits a line into its record, MAC input body and MAC.
pub(crate) fn parse_line(
    line: &str,
) -> std::result::Result<(Record, String, [u8; MAC_LEN]), String> {
    if line.len() <= MAC_SUFFIX_LEN || !line.is_char_boundary(line.len() - MAC_SUFFIX_LEN) {
        return Err("not an audit line (too short)".into());
    }
    let (head, suffix) = line.split_at(line.len() - MAC_SUFFIX_LEN);
    let hex_mac = suffix
        .strip_prefix(MAC_PREFIX)
        .and_then(|s| s.strip_suffix("\"}"))
        .ok_or("no trailing `mac` member")?;
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(hex_mac, &mut mac).map_err(|_| "`mac` is not 64 hex digits")?;
    let body = format!("{head}}}");
    let rec: Record = serde_json::from_str(&body).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok((rec, body, mac))
}

pub(crate) fn decode_mac(hex_mac: &str) -> Option<[u8; MAC_LEN]> {
    let mut mac = [0u8; MAC_LEN];
    hex::decode_to_slice(hex_mac, &mut mac).ok()?;
    Some(mac)
}

/// What the audit log needs of a connection to the token: implemented by [`crate::Custody`]
/// (and references to it). Sealed: the log MACs through a crate-private, unguarded handle on
/// the token (the only way to use the audit key), which this trait hands over.
pub trait Connection: sealed::Sealed {}

pub(crate) mod sealed {
    use std::sync::Arc;

    use crate::guard::Guard;
    use crate::keys::Vault;

    /// The crate-private half of [`super::Connection`].
    pub trait Sealed {
        /// The token and its keys, unguarded.
        fn vault(&self) -> &Arc<Vault>;
        /// Installs `guard` (see `Custody::set_guard`).
        fn install_guard(&self, guard: Arc<dyn Guard>) -> crate::Result<()>;
    }

    impl<T: Sealed + ?Sized> Sealed for &T {
        fn vault(&self) -> &Arc<Vault> {
            (**self).vault()
        }
        fn install_guard(&self, guard: Arc<dyn Guard>) -> crate::Result<()> {
            (**self).install_guard(guard)
        }
    }
}

impl<T: Connection + ?Sized> Connection for &T {}

/// The audit key in the token: MACs for the chain.
#[derive(Clone)]
pub(crate) struct TokenMac {
    /// Weak: the writer's guard is held by the `Custody` that holds the vault, so a strong
    /// handle would keep both forever.
    vault: Weak<Vault>,
    key: String,
}

impl TokenMac {
    /// Uses the audit key `name`, generating it in the token (non-extractable HMAC-SHA256,
    /// marked as the audit key) when absent and `create`; the second value says it was just
    /// generated. A key of that name that is not an audit key (imported, adopted, or an
    /// extractable one locked afterwards) is refused.
    pub(crate) fn open(vault: &Arc<Vault>, name: &str, create: bool) -> Result<(Self, bool)> {
        let created = vault.open_audit_key(name, create)?;
        if created {
            tracing::info!(key = name, "audit key generated in the token");
        }
        Ok((
            TokenMac {
                vault: Arc::downgrade(vault),
                key: name.to_owned(),
            },
            created,
        ))
    }

    /// The token, while the application holds its `Custody`.
    pub(crate) fn vault(&self) -> Result<Arc<Vault>> {
        self.vault.upgrade().ok_or_else(|| {
            Error::AuditFailed(
                "the Custody this audit log MACs with was dropped; nothing more can be recorded"
                    .into(),
            )
        })
    }

    pub(crate) fn key_name(&self) -> &str {
        &self.key
    }

    /// HMAC-SHA256 of `data` with the audit key, through the vault's unguarded path (the
    /// public signing path refuses the audit key).
    pub(crate) fn mac(&self, data: &[u8]) -> Result<[u8; MAC_LEN]> {
        let sig = self.vault()?.audit_mac(&self.key, data)?;
        sig.as_bytes()
            .try_into()
            .map_err(|_| Error::AuditFailed("the audit key's MAC is not 32 bytes".into()))
    }
}

/// The id of the chain whose file starts with `first` (MAC `first_mac`): the `chain` a
/// rotated file's `chain_start` carries, else the first 16 bytes (hex) of the first line's MAC
/// (the chain's own first line: `chain_start` of a new log or `chain_reset`).
pub(crate) fn chain_id(first: &Record, first_mac: &[u8; MAC_LEN]) -> String {
    first
        .chain
        .clone()
        .unwrap_or_else(|| hex::encode(&first_mac[..16]))
}

/// `HMAC(prev || body)`.
pub(crate) fn chain_mac(mac: &TokenMac, prev: &[u8; MAC_LEN], body: &str) -> Result<[u8; MAC_LEN]> {
    let mut input = Vec::with_capacity(MAC_LEN + body.len());
    input.extend_from_slice(prev);
    input.extend_from_slice(body.as_bytes());
    mac.mac(&input)
}

/// Constant-time comparison of two MACs.
pub(crate) fn same_mac(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_keep_the_mac_last() {
        let mut rec = Record::new(Event::Sign);
        rec.seq = 7;
        rec.key = Some("k".into());
        rec.path = Some("/a\"b".into());
        let body = body_of(&rec).unwrap();
        let line = line_of(&body, &[0xab; 32]);
        assert!(
            line.ends_with(&format!("\"mac\":\"{}\"}}", "ab".repeat(32))),
            "{line}"
        );
        let (back, body2, mac) = parse_line(&line).unwrap();
        assert_eq!(back, rec);
        assert_eq!(body2, body);
        assert_eq!(mac, [0xab; 32]);
        assert!(parse_line("{}").is_err());
        assert!(parse_line(&line.replace("\"mac\"", "\"mak\"")).is_err());
    }
}
