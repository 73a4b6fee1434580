//! `[audit]`: where and how the audit log is written (turned into a [`crate::audit::AuditConfig`]
//! by [`crate::audit::AuditConfig::from_section`]).

use std::path::PathBuf;

use serde::Deserialize;

/// `[audit]` as written.
///
/// ```toml
/// [audit]
/// path = "/var/lib/hsm-custody/audit.jsonl"   # required
/// head = "/var/lib/hsm-custody/audit.jsonl.head"
/// fsync = "always"                            # "batch", "never"
/// max_bytes = 67108864                        # rotate at 64 MiB; 0: never
/// key = "hsm-custody-audit"
/// group = "hsm-audit"                         # or a gid
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuditSection {
    /// The active log file.
    pub path: PathBuf,
    /// The chain head file (default: `path` + `.head`).
    pub head: Option<PathBuf>,
    /// Fsync policy (default: always).
    pub fsync: Option<Fsync>,
    /// Rotation size in bytes; 0: never.
    pub max_bytes: Option<u64>,
    /// Name of the audit key in the token.
    pub key: Option<String>,
    /// The group the log's files are given to (mode 0640), by gid or by name.
    pub group: Option<GroupRef>,
}

impl AuditSection {
    /// A section with `path` and nothing else set.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditSection {
            path: path.into(),
            head: None,
            fsync: None,
            max_bytes: None,
            key: None,
            group: None,
        }
    }
}

/// A group named in the configuration: a gid, or a name resolved through `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "a group name or a numeric gid")]
pub enum GroupRef {
    /// A numeric gid.
    Id(u32),
    /// A group name.
    Name(String),
}

/// When the audit log is forced to disk (`fsync` in `[audit]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Fsync {
    /// After every line (and the chain head with it): nothing acknowledged is ever lost.
    #[default]
    Always,
    /// By the writer's background thread, a second after the last sync or at once after
    /// 4,096 lines (a signer syncs itself when 16,384 are waiting); the writer's end syncs too.
    /// A crash of the host may lose the lines since the last sync, a crash of the process none.
    /// Lines signed in quick succession wait in the journal (`PATH.journal`, see
    /// `docs/guardrails.md`) and reach the file within 5 ms.
    Batch,
    /// Never forced; the chain head is saved every 4096 lines; lines are staged as with
    /// `Batch`. For tests and benchmarks.
    Never,
}
