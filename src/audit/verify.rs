//! Chain verification with the token: the first bad line of a set of log files.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::epoch::{self, Unreadable};
use super::head::Head;
use super::token_head::{self, TokenHead};
use super::Connection;
use super::{
    chain_id, decode_mac, parse_line, same_mac, Event, Record, ResetFacts, TokenMac, MAC_LEN,
};
use crate::error::{Error, Result};

/// What is wrong with the first bad line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// Not an audit line (broken JSON, missing MAC, incomplete last line).
    Malformed,
    /// Not the next `seq`: a line was deleted, reordered or inserted here.
    Sequence,
    /// The MAC does not match: the line was edited, or spliced from another log.
    Mac,
    /// A file does not start with `chain_start`, or does not continue the previous file.
    Chain,
    /// The log ends before the line its chain head records: the tail was cut off.
    Truncated,
    /// The chain head disagrees with the line it records.
    Head,
    /// A `chain_reset` line does not match the end of the files before it.
    Reset,
}

/// A `chain_reset` line: the operator started a new chain (`hsm-custody audit reset`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reset {
    /// The file it starts.
    pub file: PathBuf,
    /// Its `seq`.
    pub seq: u64,
    /// When.
    pub time: time::OffsetDateTime,
    /// Why, as the operator said.
    pub reason: String,
    /// What it records of the old chain's end.
    pub facts: ResetFacts,
}

/// The first bad line found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Line number in that file, from 1 (for [`ProblemKind::Truncated`]: the line after the
    /// last one).
    pub line: u64,
    /// The line's `seq`, when it could be read.
    pub seq: Option<u64>,
    /// The kind of problem.
    pub kind: ProblemKind,
    /// A description (no MAC values).
    pub detail: String,
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files read, in chain order.
    pub files: Vec<PathBuf>,
    /// Lines whose MAC was checked and found good.
    pub good_lines: u64,
    /// `seq` of the first and last good line.
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// Whether the chain starts at the very beginning (a zero `prev_mac`), not mid-chain.
    pub from_genesis: bool,
    /// Whether a chain head was checked against the log.
    pub head_checked: bool,
    /// Whether the token's chain head (kept by the writer, at most a second behind the log)
    /// was checked against the log too: it catches a log and head file rolled back together.
    pub token_head_checked: bool,
    /// Chain resets met, in order: each started a new chain on the record, and may say that
    /// lines of the old one were lost ([`ResetFacts::lost_lines`]).
    pub resets: Vec<Reset>,
    /// Files given that are not log files (chain head, lock, pending login failures: a shell
    /// glob brings them in), left out.
    pub skipped: Vec<PathBuf>,
    /// Epochs met: each is a run of lines MACed in software with a key the token derives
    /// (see `docs/guardrails.md`); 0 for a log written before epochs.
    pub epochs: u64,
    /// Lines after the last one a checkpoint (the chain head file, or the token's copy) records:
    /// the log's unprotected tail, whose lines hold by their MACs alone (a process that held the
    /// epoch key could have rewritten them). `None` without a head.
    pub unprotected_tail: Option<u64>,
    /// Lines in the newest file's journal (`FILE.journal`) that continue its last line: staged
    /// by the writer and not in the file yet. A running writer moves them in within 5 ms; after
    /// a crash the next writer to open the log does, and checks them. Not checked here.
    pub journal_lines: u64,
    /// The first bad line, or `None` when everything verifies.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the files verify.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies `files` (any order: they are sorted by their first `seq`; the log's own sidecar
/// files, `*.head`, `*.lock`, `*.pending`, `*.journal`, are skipped) against the audit key
/// `key` in the token. `head` is the chain head to check the end against; without it, the
/// head file of the newest file (`FILE.head`) is used when present (without a head, a cut-off
/// tail cannot be detected: [`VerifyReport::head_checked`] is then false). With a head, the
/// token's copy of the chain head is checked too, when the token has one for the newest chain.
///
/// # Errors
/// [`Error::KeyNotFound`] for a missing audit key, [`Error::AuditFailed`] for a key that is
/// not an audit key, [`Error::Io`] for unreadable files, an invalid head, token failures.
/// Problems in the log itself are reported in the [`VerifyReport`], not as errors.
pub fn verify(
    custody: &impl Connection,
    key: &str,
    files: &[PathBuf],
    head: Option<&Path>,
) -> Result<VerifyReport> {
    let vault = custody.vault();
    let (mac, _) = TokenMac::open(vault, key, false)?;
    let mut ordered = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        if super::files::is_sidecar(f) || head.is_some_and(|h| h == f.as_path()) {
            skipped.push(f.clone());
            continue;
        }
        ordered.push((first_line(f)?, f.clone()));
    }
    ordered.sort_by_key(|(first, _)| first.as_ref().map_or(u64::MAX, |(r, _)| r.seq));
    let head_path = match head {
        Some(h) => Some(h.to_owned()),
        None => ordered
            .iter()
            .rev()
            .map(|(_, f)| super::head_path_for(f))
            .find(|h| h.exists()),
    };
    let head = match &head_path {
        Some(p) => Head::read(p, &mac)?,
        None => None,
    };
    // The newest chain: from the last file that starts one (a reset) or the first file given.
    let newest = ordered
        .iter()
        .rposition(|(first, _)| {
            first
                .as_ref()
                .is_some_and(|(r, _)| r.event == Event::ChainReset)
        })
        .unwrap_or(0);
    let token = match (&head, ordered.last()) {
        (Some(_), Some((Some((rec, m)), _))) => token_head::read(vault, &chain_id(rec, m))?,
        _ => None,
    };
    let mut report = VerifyReport {
        files: ordered.iter().map(|(_, f)| f.clone()).collect(),
        head_checked: head.is_some(),
        token_head_checked: token.is_some(),
        skipped,
        ..VerifyReport::default()
    };
    let mut chain = Chain {
        mac: &mac,
        prev: None,
        next_seq: None,
        head: head.as_ref(),
        head_seen: false,
        token: None,
        token_seen: false,
        reset: None,
        epochs: epoch::Reader::default(),
    };
    let mut last = (PathBuf::new(), 0u64);
    for (i, (_, file)) in ordered.iter().enumerate() {
        if i >= newest {
            chain.token = token.as_ref();
        }
        let lines = chain.check_file(file, &mut report)?;
        if report.problem.is_some() {
            return Ok(report);
        }
        last = (file.clone(), lines);
    }
    report.epochs = chain.epochs.epochs;
    if let Some(prev) = &chain.prev {
        report.journal_lines = super::journal::lines_after(&last.0, prev)?.lines;
    }
    let ends = report.last_seq.unwrap_or(0);
    let checkpoint = [
        head.as_ref().map(|h| h.seq),
        token.as_ref().filter(|_| chain.token_seen).map(|t| t.seq),
    ]
    .into_iter()
    .flatten()
    .max();
    report.unprotected_tail = checkpoint.map(|c| ends.saturating_sub(c));
    let fail = |kind, detail: String| Problem {
        file: last.0.clone(),
        line: last.1 + 1,
        seq: Some(ends + 1),
        kind,
        detail,
    };
    if let Some(h) = &head {
        if !chain.head_seen {
            report.problem = Some(if ends < h.seq {
                fail(ProblemKind::Truncated, format!("the log ends at line {ends} but its chain head records line {}: lines were cut off the end", h.seq))
            } else {
                fail(
                    ProblemKind::Head,
                    format!(
                        "the chain head records line {} which these files do not hold",
                        h.seq
                    ),
                )
            });
            return Ok(report);
        }
    }
    if let Some(t) = &token {
        if !chain.token_seen && t.seq > ends {
            report.problem = Some(fail(
                ProblemKind::Truncated,
                format!(
                    "the log ends at line {ends} but the token's chain head records line {}: \
                     the log and its head file were rolled back (lines cut off the end)",
                    t.seq
                ),
            ));
        }
    }
    Ok(report)
}

struct Chain<'a> {
    mac: &'a TokenMac,
    prev: Option<[u8; MAC_LEN]>,
    next_seq: Option<u64>,
    head: Option<&'a Head>,
    head_seen: bool,
    /// The token's head of the newest chain, while checking that chain's files.
    token: Option<&'a TokenHead>,
    token_seen: bool,
    /// The reset the line just checked recorded.
    reset: Option<Reset>,
    /// The epoch in force.
    epochs: epoch::Reader,
}

impl Chain<'_> {
    /// Checks one file; returns its line count. Sets `report.problem` on the first bad line.
    fn check_file(&mut self, path: &Path, report: &mut VerifyReport) -> Result<u64> {
        let mut reader = BufReader::new(open(path)?);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| Error::Io {
                    what: "audit log",
                    path: path.to_owned(),
                    source,
                })?;
            if read == 0 {
                return Ok(n);
            }
            n += 1;
            let fail = |kind, seq, detail: String| Problem {
                file: path.to_owned(),
                line: n,
                seq,
                kind,
                detail,
            };
            let Some(text) = buf.strip_suffix(b"\n") else {
                report.problem = Some(fail(
                    ProblemKind::Malformed,
                    None,
                    "incomplete last line".into(),
                ));
                return Ok(n);
            };
            let parsed = std::str::from_utf8(text)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(parse_line);
            let (rec, body, line_mac) = match parsed {
                Ok(p) => p,
                Err(why) => {
                    report.problem = Some(fail(ProblemKind::Malformed, None, why));
                    return Ok(n);
                }
            };
            if let Err(p) = self.check_line(n, &rec, &body, &line_mac) {
                report.problem = Some(fail(p.0, Some(rec.seq), p.1));
                return Ok(n);
            }
            if let Some(mut reset) = self.reset.take() {
                reset.file = path.to_owned();
                report.resets.push(reset);
            }
            if report.first_seq.is_none() {
                report.first_seq = Some(rec.seq);
            }
            report.last_seq = Some(rec.seq);
            report.good_lines += 1;
            if n == 1 && rec.prev_mac.as_deref().and_then(decode_mac) == Some([0; MAC_LEN]) {
                report.from_genesis |= report.good_lines == 1;
            }
        }
    }

    fn check_line(
        &mut self,
        n: u64,
        rec: &Record,
        body: &str,
        line_mac: &[u8; MAC_LEN],
    ) -> std::result::Result<(), (ProblemKind, String)> {
        if n == 1 && rec.event == Event::ChainReset {
            self.check_reset(rec)?;
        } else if n == 1 {
            if rec.event != Event::ChainStart {
                return Err((
                    ProblemKind::Chain,
                    "the file does not start with `chain_start` (its first lines were removed?)"
                        .into(),
                ));
            }
            let claimed = rec.prev_mac.as_deref().and_then(decode_mac).ok_or((
                ProblemKind::Malformed,
                "`chain_start` has no valid `prev_mac`".into(),
            ))?;
            match self.prev {
                None => self.prev = Some(claimed),
                Some(prev) if !same_mac(&prev, &claimed) => {
                    return Err((
                        ProblemKind::Chain,
                        "this file does not continue the previous one (a file is missing or from another log)".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(expected) = self.next_seq {
            if rec.seq != expected {
                return Err((
                    ProblemKind::Sequence,
                    format!("expected line {expected}, found line {} (a line was deleted, reordered or inserted)", rec.seq),
                ));
            }
        }
        let prev = self.prev.unwrap_or([0; MAC_LEN]);
        let key = self
            .epochs
            .key_for(self.mac, n, rec.epoch.as_deref())
            .map_err(|e| match e {
                Unreadable::Malformed(why) => (ProblemKind::Malformed, why),
                Unreadable::Token(e) => (
                    ProblemKind::Mac,
                    format!("cannot derive the epoch key: {e}"),
                ),
            })?;
        let computed = epoch::line_mac(self.mac, key, &prev, body)
            .map_err(|e| (ProblemKind::Mac, format!("cannot compute the MAC: {e}")))?;
        if !same_mac(&computed, line_mac) {
            return Err((
                ProblemKind::Mac,
                "the MAC does not match (the line was edited, or comes from another log)".into(),
            ));
        }
        if let Some(t) = self.token {
            if rec.seq == t.seq {
                if !same_mac(&t.mac, line_mac) {
                    return Err((
                        ProblemKind::Head,
                        "the token's chain head records another MAC for this line (the log was \
                         rolled back and rewritten?)"
                            .into(),
                    ));
                }
                self.token_seen = true;
            }
        }
        if let Some(h) = self.head {
            if rec.seq == h.seq {
                if !same_mac(&h.mac, line_mac) {
                    return Err((
                        ProblemKind::Head,
                        "the chain head records another MAC for this line".into(),
                    ));
                }
                self.head_seen = true;
            }
        }
        self.prev = Some(*line_mac);
        self.next_seq = Some(rec.seq + 1);
        Ok(())
    }
}

impl Chain<'_> {
    /// A `chain_reset` starts a new chain: its MAC chain starts from zeros, its `seq` goes on
    /// past the old chain's, and the old chain's last line it names must be the last line of
    /// the files before it (when they were given).
    fn check_reset(&mut self, rec: &Record) -> std::result::Result<(), (ProblemKind, String)> {
        let zero = rec.prev_mac.as_deref().and_then(decode_mac) == Some([0; MAC_LEN]);
        let facts = match (&rec.reset, &rec.reason, zero) {
            (Some(f), Some(_), true) => f.clone(),
            _ => {
                return Err((
                    ProblemKind::Malformed,
                    "`chain_reset` lacks its reason, its facts or a zero `prev_mac`".into(),
                ))
            }
        };
        if let (Some(prev), Some(next)) = (self.prev, self.next_seq) {
            let last = next - 1;
            let named = facts.file_mac.as_deref().and_then(decode_mac);
            if facts.file_seq != Some(last) || named.is_none_or(|m| !same_mac(&m, &prev)) {
                return Err((
                    ProblemKind::Reset,
                    format!(
                        "the reset names line {} as the old chain's last, but the files before \
                         it end at line {last} (a file is missing or was changed after the \
                         reset)",
                        facts.file_seq.map_or("none".into(), |s| s.to_string())
                    ),
                ));
            }
            if rec.seq <= last {
                return Err((
                    ProblemKind::Sequence,
                    format!(
                        "the reset's line {} does not come after line {last}",
                        rec.seq
                    ),
                ));
            }
        }
        self.prev = Some([0; MAC_LEN]);
        self.next_seq = None;
        self.reset = Some(Reset {
            file: PathBuf::new(),
            seq: rec.seq,
            time: rec.time,
            reason: rec.reason.clone().unwrap_or_default(),
            facts,
        });
        Ok(())
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Io {
        what: "audit log",
        path: path.to_owned(),
        source,
    })
}

/// A file's first line and its MAC, when it can be read (to order the files and find chains).
fn first_line(path: &Path) -> Result<Option<(Record, [u8; MAC_LEN])>> {
    let mut line = String::new();
    let mut reader = BufReader::new(open(path)?);
    // A first line that is not UTF-8 is reported by the verification itself.
    let _ = reader.read_line(&mut line);
    Ok(parse_line(line.trim_end_matches('\n'))
        .ok()
        .map(|(r, _, m)| (r, m)))
}
