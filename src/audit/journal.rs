//! `PATH.journal`: where lines wait, while signatures come in quick succession, before the
//! writer moves them into the log with one `write(2)` for many (issue 29).
//!
//! The journal is a file of fixed size mapped into the writer's memory ([`journal_map`]); a
//! line is staged with a copy, not a system call. Stores into a shared file mapping are the page
//! cache's, so a staged line survives a crash of the process as a written one does: the next
//! writer to open the log moves the lines the log lacks from the journal into it before it checks
//! the chain. A crash of the host can lose staged lines, as it can lose written lines not yet
//! synced: the fsync policy's bound covers both (staged lines count as written).
//!
//! Records are 8-byte aligned from the start of the file, one after another:
//! `magic (8) | line length (u32 LE) | 0 (4) | previous line's MAC (32) | this line's MAC (32) |
//! line`. A record is written as: magic cleared, the rest, magic set, so a process that dies
//! mid-record leaves no record there. The journal starts again at offset 0 only when it is full,
//! and only once every line staged in it is in the log; older records after the newest ones
//! stay, but the replay only takes the records that continue the log's last line, one after
//! the other, so neither they nor records of another chain are ever taken.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use journal_map::WriteMap;

use super::{AuditConfig, MAC_LEN};
use crate::error::{Error, Result};

/// The journal's size: about 1,800 lines of 560 bytes; when it is full the staged lines are
/// written to the log at once.
pub(super) const JOURNAL_BYTES: usize = 1 << 20;
const MAGIC: [u8; 8] = *b"hcjrnl01";
const HEADER: usize = 8 + 4 + 4 + 2 * MAC_LEN;

/// `PATH.journal`: lines staged, not yet moved into the log.
pub fn journal_path_for(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The mapped journal of an open log.
pub(super) struct Journal {
    map: WriteMap,
    at: usize,
}

impl Journal {
    /// Opens (or creates) the journal, sized and allocated, mapped. Call after
    /// [`lines_after`]: records already in it may be overwritten from here on.
    pub(super) fn open(config: &AuditConfig) -> Result<Journal> {
        let path = journal_path_for(&config.path);
        let file = super::files::open_private(
            &path,
            OpenOptions::new().read(true).write(true).create(true),
            config,
            "audit journal",
        )?;
        let map = WriteMap::new(&file, JOURNAL_BYTES).map_err(|source| Error::Io {
            what: "audit journal (mapping)",
            path,
            source,
        })?;
        Ok(Journal { map, at: 0 })
    }

    /// Stages `line` (MAC `mac`, following the line whose MAC is `prev`). False, with nothing
    /// staged, when it does not fit: write the staged lines to the log, [`Journal::clear`],
    /// and stage again.
    pub(super) fn stage(&mut self, prev: &[u8; MAC_LEN], mac: &[u8; MAC_LEN], line: &[u8]) -> bool {
        let Ok(len) = u32::try_from(line.len()) else {
            return false;
        };
        let end = self.at + HEADER + line.len();
        if end > self.map.len() {
            return false;
        }
        let mut header = [0u8; HEADER - 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[8..8 + MAC_LEN].copy_from_slice(prev);
        header[8 + MAC_LEN..].copy_from_slice(mac);
        // In bounds (checked above): the writes cannot fail.
        let written = self
            .map
            .write(self.at, &[0u8; 8])
            .and_then(|()| self.map.write(self.at + 8, &header))
            .and_then(|()| self.map.write(self.at + HEADER, line))
            .and_then(|()| self.map.write(self.at, &MAGIC));
        if written.is_err() {
            return false;
        }
        self.at = end.next_multiple_of(8);
        true
    }

    /// Every line staged is in the log: the next record starts the journal again.
    pub(super) fn clear(&mut self) {
        self.at = 0;
    }
}

/// Journal lines that continue a log.
#[derive(Default)]
pub(super) struct Continuation {
    /// The lines, in order, concatenated.
    pub(super) text: Vec<u8>,
    /// How many.
    pub(super) lines: u64,
}

/// The lines in the journal of the log file `log` that continue the line whose MAC is `last`
/// (none when there is no journal or no such line).
pub(super) fn lines_after(log: &Path, last: &[u8; MAC_LEN]) -> Result<Continuation> {
    let path = journal_path_for(log);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Continuation::default()),
        Err(source) => {
            return Err(Error::Io {
                what: "audit journal",
                path,
                source,
            })
        }
    };
    Ok(continuing(&records(&data), last))
}

/// One record read back: previous MAC, own MAC, line.
struct Staged<'a> {
    prev: &'a [u8],
    mac: &'a [u8],
    line: &'a [u8],
}

/// The records from the start of `data`, up to the first place that holds none.
fn records(data: &[u8]) -> Vec<Staged<'_>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + HEADER <= data.len() && data[at..at + 8] == MAGIC {
        let len = u32::from_le_bytes([data[at + 8], data[at + 9], data[at + 10], data[at + 11]]);
        let start = at + HEADER;
        let Some(end) = start.checked_add(len as usize).filter(|e| *e <= data.len()) else {
            break;
        };
        let line = &data[start..end];
        // One whole line: ends in its newline, holds no other.
        if line.last() != Some(&b'\n') || line[..line.len() - 1].contains(&b'\n') {
            break;
        }
        out.push(Staged {
            prev: &data[at + 16..at + 16 + MAC_LEN],
            mac: &data[at + 16 + MAC_LEN..start],
            line,
        });
        at = end.next_multiple_of(8);
    }
    out
}

/// The run of records that starts with the one following `last` and goes on while each
/// follows the one before.
fn continuing(records: &[Staged<'_>], last: &[u8; MAC_LEN]) -> Continuation {
    let mut out = Continuation::default();
    let Some(first) = records.iter().position(|r| r.prev == last) else {
        return out;
    };
    let mut prev: &[u8] = last;
    for r in &records[first..] {
        if r.prev != prev {
            break;
        }
        out.text.extend_from_slice(r.line);
        out.lines += 1;
        prev = r.mac;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> [u8; MAC_LEN] {
        [n; MAC_LEN]
    }

    /// A fresh journal next to `audit.jsonl` in a temp dir, and that log's path.
    fn fresh() -> (tempfile::TempDir, PathBuf, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig::new(dir.path().join("audit.jsonl"));
        let j = Journal::open(&cfg).unwrap();
        (dir, cfg.path, j)
    }

    /// The lines the journal of `log` holds after line `n` (whose MAC is `mac(n)`).
    fn after(log: &Path, n: u8) -> Vec<u8> {
        let found = lines_after(log, &mac(n)).unwrap();
        assert_eq!(
            found.lines,
            found.text.iter().filter(|b| **b == b'\n').count() as u64
        );
        found.text
    }

    #[test]
    fn staged_lines_come_back_after_the_last_logged_one() {
        let (_dir, log, mut j) = fresh();
        assert!(j.stage(&mac(1), &mac(2), b"{\"seq\":2}\n"));
        assert!(j.stage(&mac(2), &mac(3), b"{\"seq\":3,\"x\":\"odd length\"}\n"));
        assert!(j.stage(&mac(3), &mac(4), b"{\"seq\":4}\n"));
        let all = after(&log, 1);
        assert_eq!(
            all,
            b"{\"seq\":2}\n{\"seq\":3,\"x\":\"odd length\"}\n{\"seq\":4}\n"
        );
        // The log already holds line 3 (a crash after part of a write): 4 comes back.
        assert_eq!(after(&log, 3), b"{\"seq\":4}\n");
        // The log holds them all, or is another chain: nothing.
        assert!(after(&log, 4).is_empty());
        assert!(after(&log, 9).is_empty());
    }

    #[test]
    fn older_records_after_a_clear_are_never_taken() {
        let (_dir, log, mut j) = fresh();
        let long = format!("{{\"seq\":2,\"pad\":\"{}\"}}\n", "p".repeat(200));
        assert!(j.stage(&mac(1), &mac(2), long.as_bytes()));
        assert!(j.stage(&mac(2), &mac(3), b"{\"seq\":3}\n"));
        j.clear();
        // Written to the log; then line 4 is staged over the first record.
        assert!(j.stage(&mac(3), &mac(4), b"{\"seq\":4}\n"));
        assert_eq!(after(&log, 3), b"{\"seq\":4}\n");
        assert!(after(&log, 4).is_empty());
        // The stale record of line 3 is still in the file, past the new one, but it does not
        // follow line 4, and line 2's record is gone.
        assert!(after(&log, 1).is_empty());
    }

    #[test]
    fn a_record_cut_off_mid_way_ends_the_replay() {
        let (_dir, log, mut j) = fresh();
        assert!(j.stage(&mac(1), &mac(2), b"{\"seq\":2}\n"));
        assert!(j.stage(&mac(2), &mac(3), b"{\"seq\":3}\n"));
        drop(j);
        let path = journal_path_for(&log);
        let mut data = fs::read(&path).unwrap();
        // The second record's magic not yet set (a process that died mid-record).
        let second = (HEADER + 10).next_multiple_of(8);
        data[second..second + 8].fill(0);
        fs::write(&path, &data).unwrap();
        assert_eq!(after(&log, 1), b"{\"seq\":2}\n");
        // A length past the end, or a line without its newline: no record.
        data[second..second + 8].copy_from_slice(&MAGIC);
        data[second + 8..second + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &data).unwrap();
        assert_eq!(after(&log, 1), b"{\"seq\":2}\n");
        data[second + 8..second + 12].copy_from_slice(&9u32.to_le_bytes());
        fs::write(&path, &data).unwrap();
        assert_eq!(after(&log, 1), b"{\"seq\":2}\n");
    }

    #[test]
    fn a_full_journal_refuses_and_takes_lines_again_after_a_clear() {
        let (_dir, log, mut j) = fresh();
        let line = format!("{{\"pad\":\"{}\"}}\n", "p".repeat(1000));
        let mut n = 0u8;
        while j.stage(&mac(n), &mac(n.wrapping_add(1)), line.as_bytes()) {
            n = n.wrapping_add(1);
        }
        assert!(j.at + HEADER + line.len() > JOURNAL_BYTES);
        j.clear();
        assert!(j.stage(&mac(0), &mac(1), line.as_bytes()));
        assert!(!after(&log, 0).is_empty());
    }

    #[test]
    fn no_journal_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        assert!(after(&dir.path().join("audit.jsonl"), 1).is_empty());
    }
}
