//! Chain verification with the token: the first bad line of a set of log files.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::head::Head;
use super::{chain_mac, decode_mac, parse_line, same_mac, Record, TokenMac, MAC_LEN};
use crate::custody::Custody;
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
    /// The first bad line, or `None` when everything verifies.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// Whether the files verify.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Verifies `files` (any order: they are sorted by their first `seq`) against the audit key
/// `key` in the token. `head` is the chain head to check the end against; without it, the head
/// file of the newest file (`FILE.head`) is used when present (without a head, a cut-off tail
/// cannot be detected).
///
/// # Errors
/// [`Error::KeyNotFound`] for a missing audit key, [`Error::Io`] for unreadable files, an
/// invalid head, token failures. Problems in the log itself are reported in the
/// [`VerifyReport`], not as errors.
pub fn verify(
    custody: &Custody,
    key: &str,
    files: &[PathBuf],
    head: Option<&Path>,
) -> Result<VerifyReport> {
    let mac = TokenMac::existing(custody, key)?;
    let mut ordered = Vec::new();
    for f in files {
        ordered.push((first_seq(f)?, f.clone()));
    }
    ordered.sort_by_key(|(seq, _)| seq.unwrap_or(u64::MAX));
    let head_path = match head {
        Some(h) => Some(h.to_owned()),
        None => ordered
            .iter()
            .map(|(_, f)| super::head_path_for(f))
            .find(|h| h.exists()),
    };
    let head = match &head_path {
        Some(p) => Head::read(p, &mac)?,
        None => None,
    };
    let mut report = VerifyReport {
        files: ordered.iter().map(|(_, f)| f.clone()).collect(),
        head_checked: head.is_some(),
        ..VerifyReport::default()
    };
    let mut chain = Chain {
        mac: &mac,
        prev: None,
        next_seq: None,
        head: head.as_ref(),
        head_seen: false,
    };
    let mut last = (PathBuf::new(), 0u64);
    for (_, file) in &ordered {
        let lines = chain.check_file(file, &mut report)?;
        if report.problem.is_some() {
            return Ok(report);
        }
        last = (file.clone(), lines);
    }
    if let Some(h) = &head {
        if !chain.head_seen {
            let ends = report.last_seq.unwrap_or(0);
            report.problem = Some(Problem {
                file: last.0,
                line: last.1 + 1,
                seq: Some(ends + 1),
                kind: if ends < h.seq {
                    ProblemKind::Truncated
                } else {
                    ProblemKind::Head
                },
                detail: if ends < h.seq {
                    format!("the log ends at line {ends} but its chain head records line {}: lines were cut off the end", h.seq)
                } else {
                    format!(
                        "the chain head records line {} which these files do not hold",
                        h.seq
                    )
                },
            });
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
        if n == 1 {
            if rec.event != "chain_start" {
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
        let computed = chain_mac(self.mac, &prev, body)
            .map_err(|e| (ProblemKind::Mac, format!("cannot compute the MAC: {e}")))?;
        if !same_mac(&computed, line_mac) {
            return Err((
                ProblemKind::Mac,
                "the MAC does not match (the line was edited, or comes from another log)".into(),
            ));
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

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Io {
        what: "audit log",
        path: path.to_owned(),
        source,
    })
}

/// The `seq` of a file's first line, when it can be read (used to order the files).
fn first_seq(path: &Path) -> Result<Option<u64>> {
    let mut line = String::new();
    let mut reader = BufReader::new(open(path)?);
    // A first line that is not UTF-8 is reported by the verification itself.
    let _ = reader.read_line(&mut line);
    Ok(parse_line(line.trim_end_matches('\n'))
        .ok()
        .map(|(r, _, _)| r.seq))
}
