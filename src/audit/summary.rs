//! Reading the log without the token: `tail` and the usage summary (signs per key per minute,
//! denials, first and last use). Neither checks MACs: run [`super::verify`] for that.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use time::{OffsetDateTime, Time, UtcOffset};

use super::{parse_line, Decision, Event};
use crate::error::{Error, Result};

/// One key's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// Signatures allowed (sent to the token).
    pub signed: u64,
    /// Signatures refused by policy.
    pub denied: u64,
    /// Of those, refused by a rate limit.
    pub rate_limited: u64,
    /// Signatures the token failed.
    pub failed: u64,
    /// Time of the first and the last attempt.
    pub first_use: Option<OffsetDateTime>,
    /// See `first_use`.
    pub last_use: Option<OffsetDateTime>,
    /// Allowed signatures per minute: the minute's start (UTC) and the count.
    pub per_minute: BTreeMap<OffsetDateTime, u64>,
    /// Denials by rule.
    pub denied_by_rule: BTreeMap<String, u64>,
}

impl KeyUsage {
    /// The busiest minute and its count.
    pub fn peak_minute(&self) -> Option<(OffsetDateTime, u64)> {
        self.per_minute
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(m, n)| (*m, *n))
    }
}

/// Usage over a set of log files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Lines that could not be read as audit lines.
    pub unreadable: u64,
    /// Per key.
    pub keys: BTreeMap<String, KeyUsage>,
    /// Lifecycle events (created, rotation, revoke ...).
    pub lifecycle: u64,
    /// Login failures.
    pub login_failures: u64,
    /// Chain resets (`hsm-custody audit reset`).
    pub resets: u64,
    /// Files given that are not log files (chain head, lock, pending: a glob brings them in),
    /// left out.
    pub skipped: Vec<PathBuf>,
}

/// Summarises `files` (MACs are not checked; the log's sidecar files are skipped).
///
/// # Errors
/// [`Error::Io`].
pub fn summarize(files: &[PathBuf]) -> Result<Summary> {
    let mut s = Summary::default();
    for path in files {
        if super::files::is_sidecar(path) {
            s.skipped.push(path.clone());
            continue;
        }
        for line in BufReader::new(open(path)?).lines() {
            let line = line.map_err(|source| io(path, source))?;
            s.lines += 1;
            let Ok((rec, _, _)) = parse_line(&line) else {
                s.unreadable += 1;
                continue;
            };
            match rec.event {
                Event::Sign | Event::SignFailed => {
                    let Some(key) = rec.key.clone() else { continue };
                    let u = s.keys.entry(key).or_default();
                    if u.first_use.is_none_or(|t| rec.time < t) {
                        u.first_use = Some(rec.time);
                    }
                    if u.last_use.is_none_or(|t| rec.time > t) {
                        u.last_use = Some(rec.time);
                    }
                    if rec.event == Event::SignFailed {
                        u.failed += 1;
                    } else if rec.decision == Some(Decision::Allow) {
                        u.signed += 1;
                        *u.per_minute.entry(minute_of(rec.time)).or_default() += 1;
                    } else {
                        u.denied += 1;
                        if rec.outcome.as_deref() == Some("rate_limited") {
                            u.rate_limited += 1;
                        }
                        let rule = rec.rule.clone().unwrap_or_default();
                        *u.denied_by_rule.entry(rule).or_default() += 1;
                    }
                }
                Event::LoginFailed => s.login_failures += 1,
                Event::ChainReset => s.resets += 1,
                Event::ChainStart => {}
                _ => s.lifecycle += 1,
            }
        }
    }
    Ok(s)
}

/// The start of `time`'s minute, in UTC.
fn minute_of(time: OffsetDateTime) -> OffsetDateTime {
    let utc = time.to_offset(UtcOffset::UTC);
    utc.replace_time(Time::from_hms(utc.hour(), utc.minute(), 0).unwrap_or(Time::MIDNIGHT))
}

/// The last `n` lines of `file`, as written.
///
/// # Errors
/// [`Error::Io`].
pub fn tail(file: &Path, n: usize) -> Result<Vec<String>> {
    let mut last = VecDeque::with_capacity(n.min(4096));
    for line in BufReader::new(open(file)?).lines() {
        let line = line.map_err(|source| io(file, source))?;
        if last.len() == n {
            last.pop_front();
        }
        if n > 0 {
            last.push_back(line);
        }
    }
    Ok(last.into())
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| io(path, source))
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        what: "audit log",
        path: path.to_owned(),
        source,
    }
}
