//! `audit reset`: ends a log that does not continue its chain and starts a new one, on the
//! record.

use std::fs::{self, OpenOptions};
use std::io::Write as _;

use time::OffsetDateTime;

use super::super::files::{self, LogLock};
use super::super::head::{sync_dir, Head};
use super::super::token_head::{self, TokenHead};
use super::super::{
    body_of, chain_id, chain_mac, line_of, parse_line, AuditConfig, Connection, Event, Record,
    ResetFacts, TokenMac, MAC_LEN,
};
use super::path_text;
use crate::error::{Error, Result};

/// What [`reset`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetReport {
    /// `seq` of the `chain_reset` line that starts the new chain.
    pub seq: u64,
    /// What it records of the old chain.
    pub facts: ResetFacts,
}

/// `hsm-custody audit reset`: ends a log that does not continue its chain (a missing or old
/// head, a cut-off tail, a rollback the token caught) and starts a new chain, explicitly and on
/// the record. Takes the writer's lock (so no writer may run), renames the active file to
/// `PATH.<first seq>` (kept as evidence, verifiable on its own), and starts a new active file
/// whose first line, `chain_reset`, records `reason` and what was known of the old chain's end:
/// its id, its file's last line, and the lines its head file and the token's head recorded.
/// Its `seq` continues past the highest of them, its MAC chain starts afresh (a new chain id).
/// `audit verify` reports every reset and the lines known to be lost.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty reason; [`Error::AuditFailed`] while a writer holds the
/// log, or for a key that is not an audit key; [`Error::Io`]; token failures.
pub fn reset(custody: &impl Connection, config: &AuditConfig, reason: &str) -> Result<ResetReport> {
    let vault = custody.vault();
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(Error::invalid(
            "a reset needs a reason of 1 to 1000 characters (it is recorded in the new chain)",
        ));
    }
    let active_name = config
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Config("[audit] `path` must name a file".into()))?;
    let _lock = LogLock::acquire(&config.path, config, files::LOCK_WAIT)?;
    let (mac, _) = TokenMac::open(vault, &config.key, true)?;
    let head = match Head::read(&config.head, &mac) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "the old chain head is unreadable; recorded as unknown");
            None
        }
    };
    let io = |source| Error::Io {
        what: "audit log",
        path: config.path.clone(),
        source,
    };
    let mut data = match fs::read(&config.path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(io(source)),
    };
    // A partial last line (a crash during a write) goes, as on every open.
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < data.len() {
        data.truncate(complete);
        let f = OpenOptions::new()
            .write(true)
            .open(&config.path)
            .map_err(io)?;
        f.set_len(complete as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    let parsed: Vec<_> = text
        .lines()
        .filter_map(|l| parse_line(l).ok())
        .map(|(rec, _, m)| (rec, m))
        .collect();
    let old_chain = parsed
        .first()
        .map(|(rec, m)| chain_id(rec, m))
        .or_else(|| head.as_ref().and_then(|h| h.chain.clone()));
    let token = match &old_chain {
        Some(chain) => token_head::read(vault, chain)?,
        None => token_head::for_path(vault, &path_text(&config.path))?,
    };
    let mut facts = ResetFacts {
        old_chain,
        file_seq: parsed.last().map(|(rec, _)| rec.seq),
        file_mac: parsed.last().map(|(_, m)| hex::encode(m)),
        head_seq: head.as_ref().map(|h| h.seq),
        token_seq: token.as_ref().map(|t| t.seq),
        ..ResetFacts::default()
    };
    if let (true, Some(h)) = (parsed.is_empty(), &head) {
        if h.file != active_name {
            // No active file since a rotation: the old chain ends in the file the head names.
            facts.old_file = Some(h.file.clone());
            facts.file_seq = Some(h.seq);
            facts.file_mac = Some(hex::encode(h.mac));
        }
    }
    if !text.is_empty() {
        let renamed = match parsed.first() {
            Some((rec, _)) => format!("{active_name}.{:012}", rec.seq),
            None => format!(
                "{active_name}.unreadable-{}",
                time::OffsetDateTime::now_utc().unix_timestamp()
            ),
        };
        let target = config.path.with_file_name(&renamed);
        if target.exists() {
            return Err(Error::AuditFailed(format!(
                "cannot keep the old log as `{}`: that file exists; move it away first",
                target.display()
            )));
        }
        fs::rename(&config.path, &target).map_err(|source| Error::Io {
            what: "audit log (reset)",
            path: target.clone(),
            source,
        })?;
        facts.old_file = Some(renamed);
    } else if fs::metadata(&config.path).is_ok() {
        // Empty (or only a partial line, dropped above): nothing to keep.
        fs::remove_file(&config.path).map_err(io)?;
    }
    let last = [facts.file_seq, facts.head_seq, facts.token_seq]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
    let mut rec = Record::new(Event::ChainReset);
    rec.seq = last + 1;
    rec.time = OffsetDateTime::now_utc();
    rec.reason = Some(reason.to_owned());
    rec.reset = Some(facts.clone());
    rec.prev_file = facts.old_file.clone();
    rec.prev_mac = Some(hex::encode([0u8; MAC_LEN]));
    let body = body_of(&rec)?;
    let line_mac = chain_mac(&mac, &[0u8; MAC_LEN], &body)?;
    let mut file = files::open_private(
        &config.path,
        OpenOptions::new().append(true).create_new(true),
        config,
        "audit log",
    )?;
    file.write_all(format!("{}\n", line_of(&body, &line_mac)).as_bytes())
        .map_err(io)?;
    file.sync_data().map_err(io)?;
    sync_dir(&config.path)?;
    let chain = chain_id(&rec, &line_mac);
    Head {
        file: active_name,
        seq: rec.seq,
        mac: line_mac,
        chain: Some(chain.clone()),
    }
    .write(&config.head, &mac, true, config)?;
    token_head::write(
        vault,
        &TokenHead {
            chain,
            path: path_text(&config.path),
            seq: rec.seq,
            mac: line_mac,
        },
    )?;
    tracing::warn!(log = %config.path.display(), seq = rec.seq, "audit chain reset");
    Ok(ResetReport {
        seq: rec.seq,
        facts,
    })
}
