//! The append side: one writer per log (a lock on `PATH.lock`), one mutex-guarded state per
//! writer, MAC chain, fsync policy, chain head (in a file and in the token), rotation by size,
//! recovery on open, buffered login failures, and `reset`.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::epoch::{self, Epoch};
use super::files::{self, LogLock, Pending, PendingLoginFailure};
use super::head::{sync_dir, Head};
use super::journal::Journal;
use super::record::Line;
use super::token_head::{self, TokenHead};
use super::Connection;
use super::{chain_id, AuditConfig, Event, Fsync, Record, TokenMac, MAC_LEN, MAC_PREFIX};
use crate::alg::KeyKind;
use crate::error::{Error, Result};

mod recover;
mod reset;

use recover::recover;
pub use reset::{reset, ResetReport};

/// `fsync = "batch"`: the background flusher makes the lines durable once this many are
/// waiting (it is woken for it), or once they are a second old. Every fsync of the log holds
/// its inode while the disk works, and appends wait for it (ext4): a few fsyncs a second, not
/// one per 64 lines at full speed (measured: `BENCHMARKS.md`, issue 29).
const BATCH_LINES: u64 = 4096;
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// `fsync = "batch"`: a signer that finds this many lines not yet durable (the flusher fell
/// behind the disk) makes them durable itself before it goes on: the bound on what a crash can
/// lose.
const BATCH_MAX: u64 = 4 * BATCH_LINES;
/// `fsync = "never"`: the head file is saved (not synced) every this many lines, by the
/// flusher; a signer saves it itself at four times that.
const NEVER_HEAD_EVERY: u64 = 4096;
const NEVER_MAX: u64 = 4 * NEVER_HEAD_EVERY;
/// The token's copy of the chain head is written at most this often (plus at open, rotation,
/// sync and shutdown), so that signing does not wait for token writes; each write starts a new
/// epoch key.
const TOKEN_HEAD_EVERY: Duration = Duration::from_secs(1);
/// How often the background flusher looks for due work (it is also woken for a batch).
const FLUSH_TICK: Duration = Duration::from_millis(250);
/// A line that follows the one before by less than this is staged in the journal (see
/// `journal`) rather than written: signatures come in quick succession. A line after a
/// pause is written at once, with the lines staged before it.
const STAGE_GAP: Duration = Duration::from_millis(1);
/// While lines are staged the flusher moves them into the log this often: the most a
/// staged line waits to be seen in the file (it is safe in the journal meanwhile).
const STAGE_TICK: Duration = Duration::from_millis(5);

/// How many lines past its head file a crash can leave a log under each fsync policy (a
/// signer checkpoints itself at this many: the flusher fell behind): a head further behind was
/// put back (or the policy was changed between runs).
fn crash_window(fsync: Fsync) -> u64 {
    match fsync {
        Fsync::Always => 1,
        Fsync::Batch => BATCH_MAX,
        Fsync::Never => NEVER_MAX,
    }
}

/// What to run when the log does not continue its chain.
const WHAT_TO_DO: &str = "run `hsm-custody audit verify` on the log files, restore them if you \
     can, else start a new chain with `hsm-custody audit reset --reason TEXT` (recorded in the \
     new chain, with what was known of the old one's end)";

/// An open audit log: appends chained lines; safe to share among threads (lines never
/// interleave: one mutex orders them, and each line is written whole, alone or with the lines
/// staged before it).
///
/// One writer per log: [`AuditLog::open`] takes an advisory lock on `PATH.lock` (waiting up
/// to 2 s) and refuses, naming the holder's pid, while another writer has it.
///
/// A line is in the file (not necessarily on the disk) before `append` returns, or, when
/// lines come in quick succession under `fsync = "batch"` or `"never"`, in the journal
/// (`PATH.journal`, a file mapped into memory): a crash of the process loses neither, the next
/// writer moves journal lines into the log, and the flusher does so within 5 ms. With
/// `fsync = "batch"` and `"never"` the checkpoints (fsync, head file, token head, new epoch key)
/// are the background flusher's work, off the signing path.
pub struct AuditLog {
    shared: Arc<Shared>,
}

struct Shared {
    config: AuditConfig,
    mac: TokenMac,
    active_name: String,
    /// The active file's path as recorded with the token's chain head.
    path_text: String,
    /// Held by whoever saves the head file or rotates (always taken before `state`): one
    /// checkpoint at a time, and none across a rotation.
    checkpoints: Mutex<()>,
    state: Mutex<State>,
    /// Held by whoever writes lines to the file (taken after `state`): the flusher writes the
    /// staged lines without holding the state, and the file's order is kept.
    out: Mutex<()>,
    /// Set by the flusher when its write failed, before it lets `out` go: no later write
    /// may land after lines that did not (the state, where `broken` is, is not its to take
    /// then).
    failed: AtomicBool,
    /// Orders writes of the token's chain head; remembers the last one.
    token: Mutex<TokenState>,
    /// Wakes the flusher when a batch is due (capacity 1: wakes coalesce).
    wake: mpsc::SyncSender<()>,
    _lock: LogLock,
}

struct State {
    file: File,
    seq: u64,
    prev: [u8; MAC_LEN],
    size: u64,
    file_first_seq: u64,
    last_sync: Instant,
    /// Set after a failed write: the file may end in a partial line, so nothing more is
    /// appended (fail closed) until the log is reopened, which repairs the tail.
    broken: Option<String>,
    /// The chain's id.
    chain: String,
    /// The last line made durable (and recorded in the head file): what the token may record.
    durable: (u64, [u8; MAC_LEN]),
    /// The `seq` the head file records (durably or not).
    headed: u64,
    /// The flusher was woken and has not yet taken the batch.
    wake_pending: bool,
    /// The current epoch (`None` on a file's first line, which the token MACs).
    epoch: Option<Epoch>,
    /// The epoch the next line starts (derived by the flusher, off the signing path).
    next_epoch: Option<Epoch>,
    /// Lines MACed with the current epoch's key.
    epoch_lines: u64,
    /// The line being written (reused: no allocation per line).
    buf: Vec<u8>,
    /// Where lines are staged (`None` with `fsync = "always"`: every line is written).
    journal: Option<Journal>,
    /// The lines staged in the journal, not yet in the file (nor being written), in order.
    staged: Vec<u8>,
    /// The flusher's buffer between two moves (its capacity is kept).
    spare: Vec<u8>,
    /// When the last line was put.
    last_line: Option<Instant>,
    /// The flusher sleeps its long tick: the first line staged wakes it.
    flusher_asleep: bool,
}

impl State {
    fn unsynced(&self) -> u64 {
        self.seq - self.durable.0
    }
    fn since_head(&self) -> u64 {
        self.seq - self.headed
    }
}

#[derive(Default)]
struct TokenState {
    seq: u64,
    at: Option<Instant>,
    /// The head object this writer wrote last (the next write replaces it without a search).
    object: Option<cryptoki::object::ObjectHandle>,
}

/// What a line written leaves to do.
enum Due {
    Nothing,
    /// Wake the flusher for a checkpoint.
    Wake,
    /// A checkpoint (or rotation) now, on this thread.
    Now,
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
    /// the token's (MACs recomputed for every line written after the head), drops a partial
    /// last line left by a crash, continues the chain, and records the login failures other
    /// processes left pending.
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
        let (mut state, start) = recover(&config, &mac, vault, &active_name, &path_text)?;
        if config.fsync != Fsync::Always {
            // After `recover`, which took what the journal held for the log.
            state.journal = Some(Journal::open(&config)?);
        }
        // The next line starts an epoch of this writer's own (after the `chain_start` of a new
        // file, which the token MACs).
        state.next_epoch = Some(Epoch::fresh(&mac)?);
        let (wake, woken) = mpsc::sync_channel(1);
        let shared = Arc::new(Shared {
            config,
            mac,
            active_name,
            path_text,
            checkpoints: Mutex::new(()),
            state: Mutex::new(state),
            out: Mutex::new(()),
            failed: AtomicBool::new(false),
            token: Mutex::new(TokenState::default()),
            wake,
            _lock: lock,
        });
        {
            let held = shared.hold()?;
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
                shared.start_file(&held, &mut st, prev_file, chain, key_line.take())?;
            }
            if let Some(rec) = key_line {
                shared.write_record(&mut st, rec)?;
                shared.checkpoint(&held, &mut st, true)?;
            }
            shared.ingest_pending(&held, &mut st)?;
            if st.since_head() > 0 {
                // Lines a crash left past the head: the head catches up now.
                shared.checkpoint(&held, &mut st, shared.config.fsync != Fsync::Never)?;
            }
        }
        shared.token_head(true, Next::Epoch)?;
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("hsm-custody-audit".into())
            .spawn(move || flusher(&weak, &woken))
            .map_err(|source| Error::Io {
                what: "audit log flusher thread",
                path: shared.config.path.clone(),
                source,
            })?;
        Ok(AuditLog { shared })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// Appends `rec` (its `seq` and `time` are set here) and applies the fsync policy and
    /// rotation. Returns the line's `seq`. The line is in the file, or staged in the journal
    /// (see [`AuditLog`]), when this returns; with `fsync = "always"` it is in the file and on
    /// the disk.
    ///
    /// # Errors
    /// [`Error::AuditFailed`] or [`Error::Io`]: the line was not recorded, or (a checkpoint
    /// or rotation due at once failed) it was recorded but could not be made durable.
    pub fn append(&self, rec: Record) -> Result<u64> {
        self.append_line(rec)
    }

    /// [`AuditLog::append`] for any line (the guard's borrowed `sign` lines).
    pub(crate) fn append_line(&self, rec: impl Line) -> Result<u64> {
        let sh = &self.shared;
        if sh.config.fsync == Fsync::Always {
            let held = sh.hold()?;
            let mut st = sh.lock()?;
            let seq = sh.write_record(&mut st, rec)?;
            sh.checkpoint(&held, &mut st, true)?;
            if sh.rotation_due(&st) {
                sh.rotate(&held, &mut st)?;
            }
            return Ok(seq);
        }
        let (seq, due) = {
            let mut st = sh.lock()?;
            let seq = sh.write_record(&mut st, rec)?;
            (seq, sh.due(&mut st))
        };
        match due {
            Due::Nothing => {}
            Due::Wake => {
                // Full: a wake is waiting already.
                let _ = sh.wake.try_send(());
            }
            Due::Now => {
                let held = sh.hold()?;
                let mut st = sh.lock()?;
                if sh.rotation_due(&st) {
                    sh.rotate(&held, &mut st)?;
                } else if sh.behind(&st) >= crash_window(sh.config.fsync) {
                    sh.checkpoint(&held, &mut st, sh.config.fsync != Fsync::Never)?;
                }
            }
        }
        Ok(seq)
    }

    /// Forces every line to disk and saves the chain head, in its file and in the token.
    ///
    /// # Errors
    /// [`Error::Io`], token failures.
    pub fn sync(&self) -> Result<()> {
        {
            let held = self.shared.hold()?;
            let mut st = self.shared.lock()?;
            self.shared.checkpoint(&held, &mut st, true)?;
        }
        self.shared.token_head(true, Next::Epoch)
    }

    /// Moves the lines staged in the journal into the file now (one `write`; no fsync, no
    /// checkpoint), for a reader of the file in this process. The flusher does it within 5 ms.
    ///
    /// # Errors
    /// [`Error::Io`] when the write fails (the log then takes no more lines until reopened).
    pub fn flush(&self) -> Result<()> {
        let mut st = self.shared.lock()?;
        self.shared.flush_staged(&mut st)
    }

    /// The `seq` of the last line written.
    pub fn last_seq(&self) -> Result<u64> {
        Ok(self.shared.lock()?.seq)
    }

    /// The `seq` of the last line the head file records: lines after it are the log's
    /// unprotected tail (see `docs/guardrails.md`).
    pub fn checkpoint_seq(&self) -> Result<u64> {
        Ok(self.shared.lock()?.headed)
    }

    /// Records a login failure that could not be MACed when it happened (see
    /// [`record_login_failure`]).
    pub(crate) fn note_login_failure(&self, token: &str, reason: &str) -> Result<()> {
        record_login_failure(&self.shared.config, token, reason)
    }
}

/// After a write of the token's chain head: whether lines follow (a new epoch key is derived
/// for them) or the writer is ending.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    Epoch,
    None,
}

/// Proof that the caller holds `Shared::checkpoints`.
type Held<'a> = MutexGuard<'a, ()>;

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))
    }

    fn hold(&self) -> Result<Held<'_>> {
        self.checkpoints
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))
    }

    /// Writes `rec` as the next line: `seq` and `time` set, the line MACed (in the token for a
    /// file's first line, else with the epoch key, starting the pending epoch if there is
    /// one), one `write` of the whole line.
    fn write_record(&self, st: &mut State, mut rec: impl Line) -> Result<u64> {
        if let Some(why) = &st.broken {
            return Err(Error::AuditFailed(why.clone()));
        }
        let seq = st.seq + 1;
        let first_of_file = st.size == 0;
        let mut starts = None;
        if first_of_file {
            st.epoch = None;
        } else if let Some(next) = st.next_epoch.take() {
            starts = Some(next.field());
            st.epoch = Some(next);
            st.epoch_lines = 0;
        }
        rec.stamp(seq, OffsetDateTime::now_utc(), starts);
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        let written = self.encode_and_write(st, &rec, &mut buf);
        st.buf = buf;
        let (mac, len) = written?;
        st.seq = seq;
        st.prev = mac;
        st.size += len;
        st.epoch_lines += 1;
        Ok(seq)
    }

    /// The line into `buf`, MACed, written; its MAC and length.
    fn encode_and_write(
        &self,
        st: &mut State,
        rec: &impl Line,
        buf: &mut Vec<u8>,
    ) -> Result<([u8; MAC_LEN], u64)> {
        serde_json::to_writer(&mut *buf, rec)
            .map_err(|e| Error::AuditFailed(format!("cannot encode a line: {e}")))?;
        let mac = match &st.epoch {
            Some(e) => e.line_mac(&st.prev, buf),
            None => {
                let body = std::str::from_utf8(buf)
                    .map_err(|_| Error::AuditFailed("a line is not UTF-8".into()))?;
                epoch::line_mac(&self.mac, None, &st.prev, body)?
            }
        };
        // `…}` becomes `…,"mac":"<hex>"}` and a newline.
        buf.pop();
        buf.extend_from_slice(MAC_PREFIX.as_bytes());
        let mut hex_mac = [0u8; 2 * MAC_LEN];
        hex::encode_to_slice(mac, &mut hex_mac)
            .map_err(|_| Error::AuditFailed("cannot encode a MAC".into()))?;
        buf.extend_from_slice(&hex_mac);
        buf.extend_from_slice(b"\"}\n");
        self.put(st, buf, &mac)?;
        Ok((mac, buf.len() as u64))
    }

    /// Puts a whole line (MAC `mac`) after the last one: staged in the journal when it follows
    /// the last line closely (not a file's first line, which has no MAC before it in the
    /// file), else written, after the lines staged before it.
    fn put(&self, st: &mut State, line: &[u8], mac: &[u8; MAC_LEN]) -> Result<()> {
        let now = Instant::now();
        let close = st
            .last_line
            .is_some_and(|t| now.saturating_duration_since(t) < STAGE_GAP);
        st.last_line = Some(now);
        if close && st.size > 0 && st.journal.is_some() {
            let prev = st.prev;
            let mut staged = st
                .journal
                .as_mut()
                .is_some_and(|j| j.stage(&prev, mac, line));
            if !staged {
                // Full: once every line staged is in the file, the journal starts again.
                self.flush_staged(st)?;
                if let Some(j) = st.journal.as_mut() {
                    j.clear();
                    staged = j.stage(&prev, mac, line);
                }
            }
            if staged {
                if st.staged.is_empty() && st.flusher_asleep {
                    st.flusher_asleep = false;
                    // Full: a wake is waiting already.
                    let _ = self.wake.try_send(());
                }
                st.staged.extend_from_slice(line);
                return Ok(());
            }
        }
        let _out = self.out()?;
        self.write_staged(st)?;
        self.write_out(st, line)
    }

    fn out(&self) -> Result<MutexGuard<'_, ()>> {
        self.out
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))
    }

    /// Every staged line in the file when this returns: those the flusher is writing, then
    /// those staged since.
    fn flush_staged(&self, st: &mut State) -> Result<()> {
        let _out = self.out()?;
        self.write_staged(st)
    }

    /// Writes the lines staged (the caller holds `out`). The journal keeps them: it starts
    /// again only when full, once all of its lines are in the file.
    fn write_staged(&self, st: &mut State) -> Result<()> {
        if st.staged.is_empty() {
            return Ok(());
        }
        let staged = std::mem::take(&mut st.staged);
        let written = self.write_out(st, &staged);
        st.staged = staged;
        written?;
        st.staged.clear();
        Ok(())
    }

    /// The flusher's move of the staged lines into the file: taken under the state, written
    /// without it (signers go on staging meanwhile), in order with every other write (`out`
    /// is held from before the state is let go until the write is done).
    fn move_staged(&self, mut st: MutexGuard<'_, State>) -> Result<()> {
        if st.staged.is_empty() || st.broken.is_some() {
            return Ok(());
        }
        let out = self.out()?;
        let spare = std::mem::take(&mut st.spare);
        let mut lines = std::mem::replace(&mut st.staged, spare);
        let file = st.file.try_clone();
        drop(st);
        let written = file.and_then(|mut f| f.write_all(&lines));
        if written.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        drop(out);
        let mut st = self.lock()?;
        if let Err(source) = written {
            return Err(self.write_failed(&mut st, source));
        }
        lines.clear();
        st.spare = lines;
        Ok(())
    }

    /// One `write` of whole lines (the caller holds `out`); on failure the log takes no more
    /// (the journal keeps what was staged, for the next writer).
    fn write_out(&self, st: &mut State, bytes: &[u8]) -> Result<()> {
        if st.broken.is_none() && self.failed.load(Ordering::Acquire) {
            st.broken = Some(format!(
                "a write to `{}` failed; reopen the log",
                self.config.path.display()
            ));
        }
        if let Some(why) = &st.broken {
            return Err(Error::AuditFailed(why.clone()));
        }
        if let Err(source) = st.file.write_all(bytes) {
            return Err(self.write_failed(st, source));
        }
        Ok(())
    }

    /// A write to the file failed: it may end in a partial line, so the log takes no more.
    fn write_failed(&self, st: &mut State, source: std::io::Error) -> Error {
        st.broken = Some(format!(
            "write to `{}` failed ({source}); reopen the log",
            self.config.path.display()
        ));
        Error::Io {
            what: "audit log",
            path: self.config.path.clone(),
            source,
        }
    }

    fn rotation_due(&self, st: &State) -> bool {
        self.config.max_bytes > 0 && st.size >= self.config.max_bytes
    }

    /// Lines past the last checkpoint, as the policy counts them.
    fn behind(&self, st: &State) -> u64 {
        match self.config.fsync {
            Fsync::Always | Fsync::Batch => st.unsynced(),
            Fsync::Never => st.since_head(),
        }
    }

    /// After a line (`batch`, `never`): what is due.
    fn due(&self, st: &mut State) -> Due {
        let behind = self.behind(st);
        if self.rotation_due(st) || behind >= crash_window(self.config.fsync) {
            return Due::Now;
        }
        let wake_at = match self.config.fsync {
            Fsync::Never => NEVER_HEAD_EVERY,
            _ => BATCH_LINES,
        };
        if behind >= wake_at && !st.wake_pending {
            st.wake_pending = true;
            return Due::Wake;
        }
        Due::Nothing
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
    fn checkpoint(&self, _held: &Held<'_>, st: &mut State, durable: bool) -> Result<()> {
        self.flush_staged(st)?;
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
        st.headed = st.seq;
        st.last_sync = Instant::now();
        Ok(())
    }

    /// The flusher's checkpoint: the lines written so far made durable (when `durable`) and
    /// the head saved, without holding the state while the disk works (signers go on
    /// appending meanwhile).
    fn background_checkpoint(&self) -> Result<()> {
        let durable = self.config.fsync != Fsync::Never;
        let _held = self.hold()?;
        let (file, head, seq, prev) = {
            let mut st = self.lock()?;
            st.wake_pending = false;
            if st.broken.is_some() || self.behind(&st) == 0 {
                return Ok(());
            }
            self.flush_staged(&mut st)?;
            let file = st.file.try_clone().map_err(|source| Error::Io {
                what: "audit log",
                path: self.config.path.clone(),
                source,
            })?;
            (
                file,
                self.head(&st, self.active_name.clone()),
                st.seq,
                st.prev,
            )
        };
        if durable {
            file.sync_data().map_err(|source| Error::Io {
                what: "audit log",
                path: self.config.path.clone(),
                source,
            })?;
        }
        head.write(&self.config.head, &self.mac, durable, &self.config)?;
        // No rotation came between (it holds `checkpoints`): the lines are the same file's.
        let mut st = self.lock()?;
        if durable {
            st.durable = (seq, prev);
        }
        st.headed = seq;
        st.last_sync = Instant::now();
        Ok(())
    }

    /// Saves the last durable line as the token's chain head: when `force`, or when the last
    /// save is a second old; then, when lines follow (`Next::Epoch`), derives the next epoch's
    /// key if the current one has MACed lines. Never while the state is locked by this thread.
    fn token_head(&self, force: bool, next: Next) -> Result<()> {
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
        self.write_token_head(&mut token, &chain, seq, mac)?;
        drop(token);
        if next == Next::Epoch {
            self.roll_epoch()?;
        }
        Ok(())
    }

    /// Derives a new epoch key for the next line (the token's work, without the state held),
    /// unless one is pending or the current one has MACed nothing yet.
    fn roll_epoch(&self) -> Result<()> {
        {
            let st = self.lock()?;
            if st.next_epoch.is_some() || st.epoch_lines == 0 {
                return Ok(());
            }
        }
        let next = Epoch::fresh(&self.mac)?;
        self.lock()?.next_epoch = Some(next);
        Ok(())
    }

    /// Writes the token's chain head (the caller holds `token`) and records it there.
    fn write_token_head(
        &self,
        token: &mut TokenState,
        chain: &str,
        seq: u64,
        mac: [u8; MAC_LEN],
    ) -> Result<()> {
        let vault = self.mac.vault()?;
        let head = TokenHead {
            chain: chain.to_owned(),
            path: self.path_text.clone(),
            seq,
            mac,
        };
        token.object = match token.object {
            Some(last) => token_head::write_after(&vault, &head, last)?,
            None => token_head::write(&vault, &head)?,
        };
        token.seq = seq;
        token.at = Some(Instant::now());
        Ok(())
    }

    /// Renames the active file to `PATH.<first seq>` and starts a new one whose `chain_start`
    /// line carries the previous MAC and the chain's id. The head names the rotated file before
    /// the rename, so a crash at any step leaves a state that [`AuditLog::open`] continues.
    fn rotate(&self, held: &Held<'_>, st: &mut State) -> Result<()> {
        self.checkpoint(held, st, true)?;
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
        self.start_file(held, st, Some(rotated_name), Some(chain), None)?;
        // At rotation the token learns the head at once (this thread holds the state: write
        // it directly, in order with the flusher's writes).
        let mut token = self
            .token
            .lock()
            .map_err(|_| Error::AuditFailed("a writer panicked; reopen the log".into()))?;
        if st.durable.0 > token.seq {
            self.write_token_head(&mut token, &st.chain, st.durable.0, st.durable.1)?;
        }
        Ok(())
    }

    /// Opens a new active file and writes its `chain_start` line (MACed in the token),
    /// durably, and derives the key of the epoch its next line starts. `chain` is the id of
    /// the chain it continues (after a rotation); `None` starts a new chain, whose id comes
    /// from this line's MAC. `key_created`: the audit key was just generated (recorded here).
    fn start_file(
        &self,
        held: &Held<'_>,
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
        self.checkpoint(held, st, true)?;
        if st.next_epoch.is_none() {
            st.next_epoch = Some(Epoch::fresh(&self.mac)?);
        }
        Ok(())
    }

    /// MACs the login failures left in `PATH.pending` into the chain, then empties it.
    fn ingest_pending(&self, held: &Held<'_>, st: &mut State) -> Result<()> {
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
        self.checkpoint(held, st, true)?;
        pending.clear()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let sh = &self.shared;
        if let (Ok(held), Ok(mut st)) = (sh.checkpoints.lock(), sh.state.lock()) {
            if st.broken.is_none() && sh.flush_staged(&mut st).is_ok() && st.since_head() > 0 {
                // Without the Custody (dropped first: it holds the guard) no head can be
                // MACed; the lines at least go to disk, and the next writer continues them.
                if sh.mac.vault().is_ok() {
                    let _ = sh.checkpoint(&held, &mut st, sh.config.fsync != Fsync::Never);
                } else {
                    let _ = st.file.sync_data();
                }
            }
        }
        if sh.mac.vault().is_ok() {
            // The last head: no line follows it from this writer, so no next epoch.
            let _ = sh.token_head(true, Next::None);
        }
    }
}

/// The background work of a writer, every 250 ms while the log lives (every 5 ms while lines
/// are staged) and when a signer wakes it for a batch or for the first line staged: the
/// staged lines moved into the file, the due checkpoint (fsync and head file), login failures
/// left pending by other processes, and the token's chain head with a new epoch key (at most
/// once a second, so that it lags the durable log by about a second at most).
fn flusher(shared: &Weak<Shared>, woken: &mpsc::Receiver<()>) {
    let mut tick = FLUSH_TICK;
    loop {
        match woken.recv_timeout(tick) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.mac.vault().is_err() {
            return;
        }
        let mut work = || -> Result<()> {
            // Lines staged since the last tick: moved into the file, and the next tick comes
            // soon; none: the flusher sleeps its long tick, and the next line staged wakes it.
            let st = shared.lock()?;
            let staged = !st.staged.is_empty();
            shared.move_staged(st)?;
            let (due, pending) = {
                let mut st = shared.lock()?;
                if st.broken.is_some() {
                    return Ok(());
                }
                st.flusher_asleep = !staged && st.staged.is_empty();
                tick = if st.flusher_asleep {
                    FLUSH_TICK
                } else {
                    STAGE_TICK
                };
                let woke = st.wake_pending;
                let due = match shared.config.fsync {
                    Fsync::Always => false,
                    Fsync::Batch => {
                        st.unsynced() > 0 && (woke || st.last_sync.elapsed() >= BATCH_INTERVAL)
                    }
                    Fsync::Never => st.since_head() > 0 && woke,
                };
                (due, files::has_pending(&shared.config))
            };
            if due {
                shared.background_checkpoint()?;
            }
            if pending {
                let held = shared.hold()?;
                let mut st = shared.lock()?;
                shared.ingest_pending(&held, &mut st)?;
            }
            shared.token_head(false, Next::Epoch)
        };
        if let Err(e) = work() {
            tick = FLUSH_TICK;
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
