//! Reading the log without the token: `tail` and the usage summary (signs per key per minute,
//! denials, first and last use, signs since a cut-off). Neither checks MACs: run
//! [`super::verify`] for that.

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
    /// Allowed signatures per minute: the minute's start (UTC) and the count (with a cut-off,
    /// [`Summary::since`], only the minutes from its minute on).
    pub per_minute: BTreeMap<OffsetDateTime, u64>,
    /// Allowed signatures at or after [`Summary::since`] (all of them without a cut-off).
    pub signed_since: u64,
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
    /// The cut-off of [`KeyUsage::signed_since`] and [`KeyUsage::per_minute`], if any.
    pub since: Option<OffsetDateTime>,
    /// The time of the earliest line read: usage before it is not in the files.
    pub first_time: Option<OffsetDateTime>,
}

impl Summary {
    /// The files of the log whose active file is `path`: the rotated ones (`PATH.<12 digits>`,
    /// oldest first), then `path` itself.
    ///
    /// # Errors
    /// [`Error::Io`]: the directory cannot be listed, or `path` does not exist.
    pub fn log_files(path: &Path) -> Result<Vec<PathBuf>> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let prefix = format!("{name}.");
        let mut rotated = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|source| io(dir, source))? {
            let entry = entry.map_err(|source| io(dir, source))?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let is_rotated = file
                .strip_prefix(&prefix)
                .is_some_and(|seq| seq.len() == 12 && seq.bytes().all(|b| b.is_ascii_digit()));
            if is_rotated {
                rotated.push(dir.join(&*file));
            }
        }
        rotated.sort();
        std::fs::metadata(path).map_err(|source| io(path, source))?;
        rotated.push(path.to_owned());
        Ok(rotated)
    }

    /// The usage recorded in the log whose active file is `path` (and its rotated files), with
    /// signatures counted from `since` on ([`KeyUsage::signed_since`]; per-minute counts are
    /// kept from then on only).
    ///
    /// # Errors
    /// As [`Summary::log_files`] and [`summarize`].
    pub fn of_log(path: &Path, since: Option<OffsetDateTime>) -> Result<Summary> {
        Summary::of_files(&Summary::log_files(path)?, since)
    }

    /// [`summarize`] with a cut-off (see [`Summary::of_log`]).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn of_files(files: &[PathBuf], since: Option<OffsetDateTime>) -> Result<Summary> {
        summarize_since(files, since)
    }
}

/// Summarises `files` (MACs are not checked; the log's sidecar files are skipped).
///
/// # Errors
/// [`Error::Io`].
pub fn summarize(files: &[PathBuf]) -> Result<Summary> {
    summarize_since(files, None)
}

fn summarize_since(files: &[PathBuf], since: Option<OffsetDateTime>) -> Result<Summary> {
    let mut s = Summary {
        since,
        ..Summary::default()
    };
    let since_minute = since.map(minute_of);
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
            if s.first_time.is_none_or(|t| rec.time < t) {
                s.first_time = Some(rec.time);
            }
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
                        if since.is_none_or(|t| rec.time >= t) {
                            u.signed_since += 1;
                        }
                        let minute = minute_of(rec.time);
                        if since_minute.is_none_or(|m| minute >= m) {
                            *u.per_minute.entry(minute).or_default() += 1;
                        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Record;
    use time::Duration;

    /// A sign line of `key` at `time` (the MAC is not checked by the summary).
    fn line(key: &str, time: OffsetDateTime, allow: bool) -> String {
        let mut r = Record::new(Event::Sign);
        r.time = time;
        r.key = Some(key.into());
        r.decision = Some(if allow {
            Decision::Allow
        } else {
            Decision::Deny
        });
        let json = serde_json::to_string(&r).unwrap();
        format!(
            "{},\"mac\":\"{}\"}}",
            json.trim_end_matches('}'),
            "00".repeat(32)
        )
    }

    #[test]
    fn a_cut_off_counts_recent_signatures_and_keeps_the_last_use() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let now = OffsetDateTime::now_utc();
        let old = now - Duration::days(3);
        // Rotated files (oldest first), sidecars and look-alikes that are not log files.
        std::fs::write(
            dir.path().join("audit.jsonl.000000000001"),
            format!("{}\n{}\n", line("k", old, true), line("j", old, true)),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("audit.jsonl.000000000003"),
            format!("{}\n", line("k", now - Duration::hours(30), true)),
        )
        .unwrap();
        std::fs::write(dir.path().join("audit.jsonl.head"), "{}").unwrap();
        std::fs::write(dir.path().join("audit.jsonl.12345"), "x").unwrap();
        std::fs::write(
            &log,
            format!(
                "{}\n{}\n{}\n",
                line("k", now - Duration::hours(2), true),
                line("k", now - Duration::hours(1), false),
                line("k", now - Duration::minutes(5), true)
            ),
        )
        .unwrap();
        let files = Summary::log_files(&log).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "audit.jsonl.000000000001",
                "audit.jsonl.000000000003",
                "audit.jsonl"
            ]
        );
        let s = Summary::of_log(&log, Some(now - Duration::hours(24))).unwrap();
        let k = &s.keys["k"];
        assert_eq!((k.signed, k.signed_since, k.denied), (4, 2, 1));
        assert_eq!(
            k.per_minute.values().sum::<u64>(),
            2,
            "per minute from the cut-off on"
        );
        assert_eq!(k.last_use, Some(now - Duration::minutes(5)));
        assert_eq!(s.keys["j"].signed_since, 0);
        assert_eq!(s.keys["j"].last_use, Some(old));
        assert_eq!(s.first_time, Some(old));
        // Without a cut-off every signature counts.
        let all = Summary::of_log(&log, None).unwrap();
        assert_eq!(all.keys["k"].signed_since, 4);
        assert_eq!(all, summarize(&files).unwrap());
        // A log that does not exist is an error, naming the file.
        let err = Summary::of_log(&dir.path().join("none.jsonl"), None).unwrap_err();
        assert!(err.to_string().contains("none.jsonl"), "{err}");
    }
}
