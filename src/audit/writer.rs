//! The append side: one mutex-guarded writer per log, MAC chain, fsync policy, chain head,
//! rotation by size, and recovery on open.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::head::{sync_dir, Head};
use super::{
    body_of, chain_mac, decode_mac, line_of, now_rfc3339, parse_line, same_mac, AuditConfig, Fsync,
    Record, TokenMac, MAC_LEN,
};
use crate::custody::Custody;
use crate::error::{Error, Result};

const BATCH_LINES: u64 = 64;
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
const NEVER_HEAD_EVERY: u64 = 4096;

/// An open audit log: appends chained lines; safe to share among threads (lines never
/// interleave: one mutex orders them, and each line is one `write` of the whole line).
///
/// Only one process may write a given log at a time.
pub struct AuditLog {
    config: AuditConfig,
    mac: TokenMac,
    active_name: String,
    state: Mutex<State>,
}

struct State {
    file: File,
    seq: u64,
    prev: [u8; MAC_LEN],
    size: u64,
    file_first_seq: u64,
    unsynced: u64,
    since_head: u64,
    last_sync: Instant,
    /// Set after a failed write: the file may end in a partial line, so nothing more is
    /// appended (fail closed) until the log is reopened, which repairs the tail.
    broken: Option<String>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.config.path)
            .field("key", &self.mac.key_name())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or starts) the log: creates the audit key in the token if absent, checks that the
    /// file continues its saved chain head (MACs recomputed in the token for every line written
    /// after the head), drops a partial last line left by a crash, and continues the chain.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] when the log does not continue its chain head (edited, truncated
    /// or replaced: run `hsm-custody audit verify`), [`Error::Io`], token failures.
    pub fn open(custody: &Custody, config: AuditConfig) -> Result<AuditLog> {
        let mac = TokenMac::open_or_create(custody, &config.key)?;
        let active_name = config
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Config("[audit] `path` must name a file".into()))?;
        let (state, start) = recover(&config, &mac, &active_name)?;
        let log = AuditLog {
            config,
            mac,
            active_name,
            state: Mutex::new(state),
        };
        if let Some(prev_file) = start {
            let mut st = log.lock()?;
            log.start_file(&mut st, prev_file)?;
        }
        Ok(log)
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.config
    }

    /// Appends `rec` (its `seq` and `time` are set here) and applies the fsync policy and
    /// rotation. Returns the line's `seq`.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] or [`Error::Io`]: the line was not recorded.
    pub fn append(&self, rec: Record) -> Result<u64> {
        let mut st = self.lock()?;
        let seq = self.write_record(&mut st, rec)?;
        self.after_write(&mut st)?;
        Ok(seq)
    }

    /// Forces every line to disk and saves the chain head.
    ///
    /// # Errors
    /// [`Error::Io`], token failures.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.lock()?;
        self.checkpoint(&mut st, true)
    }

    /// The `seq` of the last line written.
    pub fn last_seq(&self) -> Result<u64> {
        Ok(self.lock()?.seq)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))
    }

    fn write_record(&self, st: &mut State, mut rec: Record) -> Result<u64> {
        if let Some(why) = &st.broken {
            return Err(Error::AuditFailed(why.clone()));
        }
        rec.seq = st.seq + 1;
        rec.time = now_rfc3339();
        let body = body_of(&rec)?;
        let mac = chain_mac(&self.mac, &st.prev, &body)?;
        let mut line = line_of(&body, &mac);
        line.push('\n');
        if let Err(source) = st.file.write_all(line.as_bytes()) {
            st.broken = Some(format!(
                "write to `{}` failed ({source}); reopen the log",
                self.config.path.display()
            ));
            return Err(Error::Io {
                what: "audit log",
                path: self.config.path.clone(),
                source,
            });
        }
        st.seq = rec.seq;
        st.prev = mac;
        st.size += line.len() as u64;
        st.unsynced += 1;
        st.since_head += 1;
        Ok(rec.seq)
    }

    fn after_write(&self, st: &mut State) -> Result<()> {
        match self.config.fsync {
            Fsync::Always => self.checkpoint(st, true)?,
            Fsync::Batch => {
                if st.unsynced >= BATCH_LINES || st.last_sync.elapsed() >= BATCH_INTERVAL {
                    self.checkpoint(st, true)?;
                }
            }
            Fsync::Never => {
                if st.since_head >= NEVER_HEAD_EVERY {
                    self.checkpoint(st, false)?;
                }
            }
        }
        if self.config.max_bytes > 0 && st.size >= self.config.max_bytes {
            self.rotate(st)?;
        }
        Ok(())
    }

    /// Makes the lines durable (when `durable`), then saves the head pointing at the last one.
    fn checkpoint(&self, st: &mut State, durable: bool) -> Result<()> {
        if durable {
            st.file.sync_data().map_err(|source| Error::Io {
                what: "audit log",
                path: self.config.path.clone(),
                source,
            })?;
        }
        let head = Head {
            file: self.active_name.clone(),
            seq: st.seq,
            mac: st.prev,
        };
        head.write(&self.config.head, &self.mac, durable)?;
        st.unsynced = 0;
        st.since_head = 0;
        st.last_sync = Instant::now();
        Ok(())
    }

    /// Renames the active file to `PATH.<first seq>` and starts a new one whose `chain_start`
    /// line carries the previous MAC. The head names the rotated file before the rename, so a
    /// crash at any step leaves a state that [`AuditLog::open`] continues.
    fn rotate(&self, st: &mut State) -> Result<()> {
        self.checkpoint(st, true)?;
        let rotated_name = format!("{}.{:012}", self.active_name, st.file_first_seq);
        let rotated = self.config.path.with_file_name(&rotated_name);
        if rotated.exists() {
            return Err(Error::AuditFailed(format!(
                "cannot rotate: `{}` exists already",
                rotated.display()
            )));
        }
        Head {
            file: rotated_name.clone(),
            seq: st.seq,
            mac: st.prev,
        }
        .write(&self.config.head, &self.mac, true)?;
        fs::rename(&self.config.path, &rotated).map_err(|source| Error::Io {
            what: "audit log (rotation)",
            path: rotated.clone(),
            source,
        })?;
        tracing::info!(file = %rotated.display(), last_seq = st.seq, "audit log rotated");
        self.start_file(st, Some(rotated_name))
    }

    /// Opens a new active file and writes its `chain_start` line, durably.
    fn start_file(&self, st: &mut State, prev_file: Option<String>) -> Result<()> {
        st.file = open_append(&self.config.path, true)?;
        st.size = 0;
        st.file_first_seq = st.seq + 1;
        let mut rec = Record::new("chain_start");
        rec.prev_file = prev_file;
        rec.prev_mac = Some(hex::encode(st.prev));
        self.write_record(st, rec)?;
        sync_dir(&self.config.path)?;
        self.checkpoint(st, true)
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Ok(mut st) = self.state.lock() {
            if st.broken.is_none() && (st.unsynced > 0 || st.since_head > 0) {
                let _ = self.checkpoint(&mut st, self.config.fsync != Fsync::Never);
            }
        }
    }
}

fn open_append(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .append(true)
        .create(create)
        .open(path)
        .map_err(|source| Error::Io {
            what: "audit log",
            path: path.to_owned(),
            source,
        })
}

/// Reads the active file and finds where the chain stands. The second value says whether a
/// new file must be started (with the given `prev_file`).
#[allow(clippy::type_complexity)]
fn recover(
    config: &AuditConfig,
    mac: &TokenMac,
    active_name: &str,
) -> Result<(State, Option<Option<String>>)> {
    let head = Head::read(&config.head, mac)?;
    let path = &config.path;
    let io = |source| Error::Io {
        what: "audit log",
        path: path.to_owned(),
        source,
    };
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < data.len() {
        tracing::warn!(file = %path.display(), bytes = data.len() - complete,
            "audit log ends in a partial line (crash during a write); dropping it");
        let f = OpenOptions::new().write(true).open(path).map_err(io)?;
        f.set_len(complete as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    let text = std::str::from_utf8(&data[..complete])
        .map_err(|_| Error::AuditFailed(format!("`{}` is not UTF-8", path.display())))?;
    let lines: Vec<&str> = text.lines().collect();
    let fresh = |seq, prev, file| State {
        file,
        seq,
        prev,
        size: complete as u64,
        file_first_seq: seq + 1,
        unsynced: 0,
        since_head: 0,
        last_sync: Instant::now(),
        broken: None,
    };
    if lines.is_empty() {
        let (seq, prev, prev_file) = match head {
            None => (0, [0u8; MAC_LEN], None),
            Some(h) if h.file != active_name => (h.seq, h.mac, Some(h.file)),
            Some(h) => {
                return Err(Error::AuditFailed(format!(
                    "`{}` is empty or missing but its chain head records line {}; restore the \
                     log, or move the head file away to start a new chain",
                    path.display(),
                    h.seq
                )))
            }
        };
        let file = open_append(path, true)?;
        return Ok((fresh(seq, prev, file), Some(prev_file)));
    }
    let broken = |line: usize, why: String| {
        Error::AuditFailed(format!(
            "`{}` line {line}: {why}; the log does not continue its chain, run \
             `hsm-custody audit verify`",
            path.display()
        ))
    };
    let parse = |i: usize| parse_line(lines[i]).map_err(|why| broken(i + 1, why));
    let (first, _, _) = parse(0)?;
    let (start, mut prev, mut seq) = match &head {
        Some(h) if h.file == active_name => {
            let found = (0..lines.len())
                .rev()
                .map(|i| parse(i).map(|p| (i, p)))
                .find(|r| r.as_ref().map_or(true, |(_, (rec, _, _))| rec.seq <= h.seq));
            match found {
                Some(Ok((i, (rec, _, m)))) if rec.seq == h.seq && same_mac(&m, &h.mac) => {
                    (i + 1, h.mac, h.seq)
                }
                Some(Err(e)) => return Err(e),
                _ => {
                    return Err(broken(
                        lines.len(),
                        format!("the chain head records line {} which is not in the file (tail truncated or replaced)", h.seq),
                    ))
                }
            }
        }
        _ => {
            if first.event != "chain_start" {
                return Err(broken(
                    1,
                    "the file does not start with `chain_start`".into(),
                ));
            }
            let prev = first
                .prev_mac
                .as_deref()
                .and_then(decode_mac)
                .ok_or_else(|| broken(1, "`chain_start` has no valid `prev_mac`".into()))?;
            (0, prev, first.seq.saturating_sub(1))
        }
    };
    for (i, line) in lines.iter().enumerate().skip(start) {
        let (rec, body, m) = parse_line(line).map_err(|why| broken(i + 1, why))?;
        if rec.seq != seq + 1 {
            return Err(broken(
                i + 1,
                format!("expected line {}, found {}", seq + 1, rec.seq),
            ));
        }
        if !same_mac(&chain_mac(mac, &prev, &body)?, &m) {
            return Err(broken(i + 1, "MAC does not match".into()));
        }
        prev = m;
        seq = rec.seq;
    }
    let file = open_append(path, false)?;
    let mut state = fresh(seq, prev, file);
    state.file_first_seq = first.seq;
    Ok((state, None))
}
