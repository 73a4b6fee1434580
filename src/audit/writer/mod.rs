//! The append side: one writer per log (a lock on `PATH.lock`), one mutex-guarded state per
//! writer, MAC chain, fsync policy, chain head (in a file and in the token), rotation by size,
//! recovery on open, buffered login failures, and `reset`.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::files::{self, LogLock, Pending, PendingLoginFailure};
use super::head::{sync_dir, Head};
use super::token_head::{self, TokenHead};
use super::Connection;
use super::{
    body_of, chain_id, chain_mac, line_of, AuditConfig, Event, Fsync, Record, TokenMac, MAC_LEN,
};
use crate::alg::KeyKind;
use crate::error::{Error, Result};

mod recover;
mod reset;

use recover::recover;
pub use reset::{reset, ResetReport};

const BATCH_LINES: u64 = 64;
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
const NEVER_HEAD_EVERY: u64 = 4096;
/// The token's copy of the chain head is written at most this often (plus at open, rotation,
/// sync and shutdown), so that signing does not wait for token writes.
const TOKEN_HEAD_EVERY: Duration = Duration::from_secs(1);
/// How often the background flusher looks for due work.
const FLUSH_TICK: Duration = Duration::from_millis(250);

/// How many lines past its head file a crash can leave a log under each fsync policy: a
/// head further behind was put back (or the policy was changed between runs).
fn crash_window(fsync: Fsync) -> u64 {
    match fsync {
        Fsync::Always => 1,
        Fsync::Batch => BATCH_LINES,
        Fsync::Never => NEVER_HEAD_EVERY,
    }
}

/// What to run when the log does not continue its chain.
const WHAT_TO_DO: &str = "run `hsm-custody audit verify` on the log files, restore them if you \
     can, else start a new chain with `hsm-custody audit reset --reason TEXT` (recorded in the \
     new chain, with what was known of the old one's end)";

/// An open audit log: appends chained lines; safe to share among threads (lines never
/// interleave: one mutex orders them, and each line is one `write` of the whole line).
///
/// One writer per log: [`AuditLog::open`] takes an advisory lock on `PATH.lock` (waiting up
/// to 2 s) and refuses, naming the holder's pid, while another writer has it.
pub struct AuditLog {
    shared: Arc<Shared>,
    /// Dropping it stops the background flusher.
    _stop: mpsc::Sender<()>,
}

struct Shared {
    config: AuditConfig,
    mac: TokenMac,
    active_name: String,
    /// The active file's path as recorded with the token's chain head.
    path_text: String,
    state: Mutex<State>,
    /// Orders writes of the token's chain head; remembers the last one.
    token: Mutex<TokenState>,
    _lock: LogLock,
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
    /// The chain's id.
    chain: String,
    /// The last line made durable (and recorded in the head file): what the token may record.
    durable: (u64, [u8; MAC_LEN]),
}

#[derive(Default)]
struct TokenState {
    seq: u64,
    at: Option<Instant>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.shared.config.path)
            .field("key", &self.shared.mac.key_name())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or starts) the log: takes the writer's lock, creates the audit key in the token
    /// if absent (and records that), checks that the file continues its saved chain head and
    /// the token's (MACs recomputed in the token for every line written after the head), drops
    /// a partial last line left by a crash, continues the chain, and records the login
    /// failures other processes left pending.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] when another process writes the log, when the key named as the
    /// audit key is not one, or when the log does not continue its chain head: the head file
    /// is missing while the log has lines, is further behind the file than a crash can leave
    /// it, or records a line the file does not hold, or the token's chain head does (run
    /// `hsm-custody audit verify`, then `hsm-custody audit reset`); [`Error::Io`], token
    /// failures.
    pub fn open(custody: &impl Connection, config: AuditConfig) -> Result<AuditLog> {
        let vault = custody.vault();
        let active_name = config
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Config("[audit] `path` must name a file".into()))?;
        let lock = LogLock::acquire(&config.path, &config, files::LOCK_WAIT)?;
        let (mac, created) = TokenMac::open(vault, &config.key, true)?;
        let path_text = path_text(&config.path);
        let (state, start) = recover(&config, &mac, vault, &active_name, &path_text)?;
        let shared = Arc::new(Shared {
            config,
            mac,
            active_name,
            path_text,
            state: Mutex::new(state),
            token: Mutex::new(TokenState::default()),
            _lock: lock,
        });
        {
            let mut st = shared.lock()?;
            // A key just generated for the log is recorded: on the new chain's first line
            // (`key`, `kind`, rule `audit-key`), or on a line of its own.
            let mut key_line = created.then(|| {
                let mut rec = Record::new(Event::Created);
                rec.key = Some(shared.config.key.clone());
                rec.kind = Some(KeyKind::Hmac);
                rec.rule = Some("audit-key".into());
                rec
            });
            if let Some((prev_file, chain)) = start {
                shared.start_file(&mut st, prev_file, chain, key_line.take())?;
            }
            if let Some(rec) = key_line {
                shared.write_record(&mut st, rec)?;
                shared.checkpoint(&mut st, true)?;
            }
            shared.ingest_pending(&mut st)?;
        }
        shared.token_head(true)?;
        let (stop, stopped) = mpsc::channel();
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("hsm-custody-audit".into())
            .spawn(move || flusher(&weak, &stopped))
            .map_err(|source| Error::Io {
                what: "audit log flusher thread",
                path: shared.config.path.clone(),
                source,
            })?;
        Ok(AuditLog {
            shared,
            _stop: stop,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// Appends `rec` (its `seq` and `time` are set here) and applies the fsync policy and
    /// rotation. Returns the line's `seq`.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] or [`Error::Io`]: the line was not recorded.
    pub fn append(&self, rec: Record) -> Result<u64> {
        let mut st = self.shared.lock()?;
        let seq = self.shared.write_record(&mut st, rec)?;
        self.shared.after_write(&mut st)?;
        Ok(seq)
    }

    /// Forces every line to disk and saves the chain head, in its file and in the token.
    ///
    /// # Errors
    /// [`Error::Io`], token failures.
    pub fn sync(&self) -> Result<()> {
        {
            let mut st = self.shared.lock()?;
            self.shared.checkpoint(&mut st, true)?;
        }
        self.shared.token_head(true)
    }

    /// The `seq` of the last line written.
    pub fn last_seq(&self) -> Result<u64> {
        Ok(self.shared.lock()?.seq)
    }

    /// Records a login failure that could not be MACed when it happened (see
    /// [`record_login_failure`]).
    pub(crate) fn note_login_failure(&self, token: &str, reason: &str) -> Result<()> {
        record_login_failure(&self.shared.config, token, reason)
    }
}

impl Shared {
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
        rec.time = OffsetDateTime::now_utc();
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

    fn head(&self, st: &State, file: String) -> Head {
        Head {
            file,
            seq: st.seq,
            mac: st.prev,
            chain: Some(st.chain.clone()),
        }
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
        self.head(st, self.active_name.clone()).write(
            &self.config.head,
            &self.mac,
            durable,
            &self.config,
        )?;
        if durable {
            st.durable = (st.seq, st.prev);
        }
        st.unsynced = 0;
        st.since_head = 0;
        st.last_sync = Instant::now();
        Ok(())
    }

    /// Saves the last durable line as the token's chain head: when `force`, or when the last
    /// save is a second old. Never while the state is locked by this thread.
    fn token_head(&self, force: bool) -> Result<()> {
        let (chain, (seq, mac)) = {
            let st = self.lock()?;
            (st.chain.clone(), st.durable)
        };
        let mut token = self
            .token
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))?;
        if seq <= token.seq && token.at.is_some() {
            return Ok(());
        }
        if !force && token.at.is_some_and(|at| at.elapsed() < TOKEN_HEAD_EVERY) {
            return Ok(());
        }
        self.write_token_head(&chain, seq, mac)?;
        token.seq = seq;
        token.at = Some(Instant::now());
        Ok(())
    }

    fn write_token_head(&self, chain: &str, seq: u64, mac: [u8; MAC_LEN]) -> Result<()> {
        token_head::write(
            self.mac.vault()?.as_ref(),
            &TokenHead {
                chain: chain.to_owned(),
                path: self.path_text.clone(),
                seq,
                mac,
            },
        )
    }

    /// Renames the active file to `PATH.<first seq>` and starts a new one whose `chain_start`
    /// line carries the previous MAC and the chain's id. The head names the rotated file before
    /// the rename, so a crash at any step leaves a state that [`AuditLog::open`] continues.
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
        self.head(st, rotated_name.clone()).write(
            &self.config.head,
            &self.mac,
            true,
            &self.config,
        )?;
        fs::rename(&self.config.path, &rotated).map_err(|source| Error::Io {
            what: "audit log (rotation)",
            path: rotated.clone(),
            source,
        })?;
        tracing::info!(file = %rotated.display(), last_seq = st.seq, "audit log rotated");
        let chain = st.chain.clone();
        self.start_file(st, Some(rotated_name), Some(chain), None)?;
        // At rotation the token learns the head at once (this thread holds the state: write
        // it directly, in order with the flusher's writes).
        let mut token = self
            .token
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))?;
        if st.durable.0 > token.seq {
            self.write_token_head(&st.chain, st.durable.0, st.durable.1)?;
            token.seq = st.durable.0;
            token.at = Some(Instant::now());
        }
        Ok(())
    }

    /// Opens a new active file and writes its `chain_start` line, durably. `chain` is the id of
    /// the chain it continues (after a rotation); `None` starts a new chain, whose id comes
    /// from this line's MAC. `key_created`: the audit key was just generated (recorded here).
    fn start_file(
        &self,
        st: &mut State,
        prev_file: Option<String>,
        chain: Option<String>,
        key_created: Option<Record>,
    ) -> Result<()> {
        st.file = open_append(&self.config, true)?;
        st.size = 0;
        st.file_first_seq = st.seq + 1;
        let mut rec = Record::new(Event::ChainStart);
        if let Some(created) = key_created {
            rec.key = created.key;
            rec.kind = created.kind;
            rec.rule = created.rule;
        }
        rec.chain = chain;
        rec.prev_file = prev_file;
        rec.prev_mac = Some(hex::encode(st.prev));
        let first = rec.clone();
        self.write_record(st, rec)?;
        st.chain = chain_id(&first, &st.prev);
        sync_dir(&self.config.path)?;
        self.checkpoint(st, true)
    }

    /// MACs the login failures left in `PATH.pending` into the chain, then empties it.
    fn ingest_pending(&self, st: &mut State) -> Result<()> {
        let Some(pending) = Pending::take(&self.config)? else {
            return Ok(());
        };
        for event in &pending.events {
            let mut rec = Record::new(Event::LoginFailed);
            rec.token = Some(event.token.clone());
            rec.client = Some(event.client.clone());
            rec.outcome = Some(event.reason.clone());
            rec.observed = Some(event.time);
            self.write_record(st, rec)?;
        }
        for _ in 0..pending.unreadable {
            let mut rec = Record::new(Event::LoginFailed);
            rec.outcome = Some("unreadable entry in the pending login failures".into());
            self.write_record(st, rec)?;
        }
        self.checkpoint(st, true)?;
        pending.clear()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            if st.broken.is_none() && (st.unsynced > 0 || st.since_head > 0) {
                // Without the Custody (dropped first: it holds the guard) no head can be
                // MACed; the lines at least go to disk, and the next writer continues them.
                if self.shared.mac.vault().is_ok() {
                    let _ = self
                        .shared
                        .checkpoint(&mut st, self.shared.config.fsync != Fsync::Never);
                } else {
                    let _ = st.file.sync_data();
                }
            }
        }
        if self.shared.mac.vault().is_ok() {
            let _ = self.shared.token_head(true);
        }
    }
}

/// The background work of a writer, every 250 ms while the log lives: a due batch sync, login
/// failures left pending by other processes, and the token's chain head (at most once a
/// second, so that it lags the durable log by about a second at most).
fn flusher(shared: &Weak<Shared>, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(FLUSH_TICK) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.mac.vault().is_err() {
            return;
        }
        let work = || -> Result<()> {
            {
                let mut st = shared.lock()?;
                if st.broken.is_some() {
                    return Ok(());
                }
                if shared.config.fsync == Fsync::Batch
                    && st.unsynced > 0
                    && st.last_sync.elapsed() >= BATCH_INTERVAL
                {
                    shared.checkpoint(&mut st, true)?;
                }
                if files::has_pending(&shared.config) {
                    shared.ingest_pending(&mut st)?;
                }
            }
            shared.token_head(false)
        };
        if let Err(e) = work() {
            tracing::warn!(error = %e, log = %shared.config.path.display(),
                "audit log background flush failed; retrying");
        }
    }
}

fn open_append(config: &AuditConfig, create: bool) -> Result<File> {
    files::open_private(
        &config.path,
        OpenOptions::new().append(true).create(create),
        config,
        "audit log",
    )
}

/// The log's path as recorded with the token's chain head: its directory made absolute.
fn path_text(path: &Path) -> String {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    dir.join(path.file_name().unwrap_or_default())
        .display()
        .to_string()
}

/// Notes a login failure for the audit log at `config`, for a process that could not log in
/// and so cannot MAC a line: appended to `PATH.pending` (0600), which the log's writer MACs
/// into the chain as `login_failed` lines (with `observed`, the time of the failure) when it
/// opens and, while it runs, within a second. Until then the note is an ordinary file: whoever
/// may write the log's directory may delete or add to it (see `docs/guardrails.md`).
///
/// # Errors
/// [`Error::Io`] (for example when this process may not write the log's directory).
pub fn record_login_failure(config: &AuditConfig, token: &str, reason: &str) -> Result<()> {
    files::append_pending(
        config,
        &PendingLoginFailure {
            time: OffsetDateTime::now_utc(),
            token: token.to_owned(),
            reason: reason.to_owned(),
            client: files::this_process(),
        },
    )
}
