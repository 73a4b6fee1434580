//! HMAC signs one at a time while no more threads sign than the machine has cores; the thread
//! holding the turn also signs for one waiter (combining), so that the token's state stays on
//! one core. Threads beyond the core count sign at once, past the turn.
//!
//! On SoftHSM2 the crate sends HMAC signs into the token one at a time (`Config::serialize_hmac`).
//! With a plain lock, two threads that sign back to back take turns, and every turn moves
//! SoftHSM2's state (its object store, its OpenSSL contexts, the masked token key) from one core
//! to the other: a sign then takes ~22 µs instead of ~17 µs. Here, while no more threads are
//! signing than the machine has cores, a thread that finds the turn taken leaves its sign in a
//! one-place slot; the holder signs it on its own session before it gives the turn up, and the
//! waiter spins (or sleeps) until the MAC is there.
//!
//! A thread that finds more threads signing than there are cores does not wait for the turn: it
//! signs at once on its own session, as it would without serialization. Queuing it was measured
//! (`docs/fast-path.md`): behind a plain lock the holder pays a wake-up system call per sign and
//! the queue starves (3 and 4 threads on 2 cores signed 10-18 % less per second than signing at
//! once, 8 threads 1-3 % less, and the slowest sign took 76-120 ms against 8-36 ms), and
//! spinning waiters take the holder's core. With more threads than cores the operating system
//! already runs them a few at a time, and SoftHSM2's own locks keep the rest in line.
//!
//! A waiter's MAC is made with the same key handle and mechanism it chose, under the shared sign
//! guard (which both threads hold), so revocation and rotation see the same thing as with a
//! lock. A sign that fails on the holder's session is handed back ([`Outcome::Failed`]) and its
//! owner signs again on its own session, so that every error goes through the owner's own
//! recovery. Should the failure have come from the holder's session, the holder's next sign
//! on it fails too and goes through the holder's recovery.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use cryptoki::error::Error as CkError;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

use crate::alg::HmacAlg;

/// How long a waiter spins before it sleeps: about four signs on SoftHSM2. A waiter usually waits
/// for the rest of the holder's sign and its own (up to ~35 µs), but on a VM that often runs
/// longer; measured with 2 threads on 2 cores, 80 µs signed 3-8 % more per second than 40 µs,
/// with a lower p99 (55-58 µs against 60-69 µs), as fewer waiters went to sleep.
const SPIN: Duration = Duration::from_micros(80);

/// How often a sleeping waiter looks whether its job was left behind (see `Combiner::wait`).
const LOOK_AGAIN: Duration = Duration::from_millis(1);

/// The turn, the slot for one waiting sign, and how many threads wait for the turn or sign past
/// it.
pub(crate) struct Combiner {
    turn: Mutex<()>,
    slot: Mutex<Option<Arc<Job>>>,
    /// Whether the slot holds a job: lets the holder skip the slot's lock when it is empty.
    offered: AtomicBool,
    /// Threads that found the turn taken and have not got their MAC yet (in the slot, or signing
    /// past the turn).
    waiting: AtomicUsize,
    cores: usize,
    /// Waiters' signs made by the holder, and those of them handed back failed.
    signed_for_others: AtomicU64,
    handed_back: AtomicU64,
    /// Signs made past the turn, with more threads signing than cores.
    past_the_turn: AtomicU64,
}

/// A sign left in the slot.
struct Job {
    alg: HmacAlg,
    handle: ObjectHandle,
    data: Vec<u8>,
    outcome: Mutex<Option<Outcome>>,
    /// Set (after `outcome`) when the job is finished; its owner spins or parks on it.
    done: AtomicBool,
    owner: Thread,
}

impl Job {
    fn finish(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.done.store(true, Ordering::Release);
        // No system call unless the owner is asleep.
        self.owner.unpark();
    }
}

/// What became of a sign run by the holder.
enum Outcome {
    /// The MAC.
    Signed(Vec<u8>),
    /// The token refused it on the holder's session; the owner signs again on its own.
    Failed,
}

/// One HMAC on `session`: the caller's own, a waiter's, or a handed-back one signed again.
fn mac(
    session: &Session,
    alg: HmacAlg,
    handle: ObjectHandle,
    data: &[u8],
) -> Result<Vec<u8>, CkError> {
    session.sign(&alg.mechanism(), handle, data)
}

/// Counts a waiting thread until it leaves.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Combiner {
    /// A turn for a machine with `cores` cores (at least 1).
    pub(crate) fn new(cores: usize) -> Self {
        Combiner {
            turn: Mutex::new(()),
            slot: Mutex::new(None),
            offered: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
            cores: cores.max(1),
            signed_for_others: AtomicU64::new(0),
            handed_back: AtomicU64::new(0),
            past_the_turn: AtomicU64::new(0),
        }
    }

    /// The HMAC of `data` with `handle`: signed on `session` with the turn, by the thread
    /// holding it, or on `session` past the turn when more threads sign than there are cores
    /// (see the module documentation). A sign handed back failed is signed again on `session`,
    /// so that the error, if it comes again, is this session's and goes through the caller's own
    /// recovery.
    pub(crate) fn sign(
        &self,
        session: &Session,
        alg: HmacAlg,
        handle: ObjectHandle,
        data: &[u8],
    ) -> Result<Vec<u8>, CkError> {
        let own = || mac(session, alg, handle, data);
        if let Some(turn) = self.try_turn() {
            return self.hold(turn, session, own);
        }
        // With the holder, no more threads than cores: this one may wait in the slot.
        let few = self.waiting.fetch_add(1, Ordering::Relaxed) + 1 < self.cores;
        let _waiting = Waiting(&self.waiting);
        if few {
            if let Some(job) = self.offer(alg, handle, data) {
                // The holder may have looked at the slot and let go before the job was in:
                // then the turn is free and the job is ours to run. (The fence pairs with the
                // one in `release`: either this sees the turn free or the holder sees the job.)
                fence(Ordering::SeqCst);
                if let Some(turn) = self.try_turn() {
                    if self.take_back(&job) {
                        return self.hold(turn, session, own);
                    }
                    // Already run by a holder that has let go since.
                    self.release(turn, session);
                }
                return match self.wait(&job, session) {
                    Waited::Done(Outcome::Signed(mac)) => Ok(mac),
                    Waited::Done(Outcome::Failed) => own(),
                    Waited::Mine(turn) => self.hold(turn, session, own),
                };
            }
            // The slot is taken, but this thread has a core of its own: it queues for the turn.
            let turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            return self.hold(turn, session, own);
        }
        // More threads sign than there are cores: this one signs at once, past the turn.
        self.past_the_turn.fetch_add(1, Ordering::Relaxed);
        own()
    }

    /// `(signed for others, of which handed back failed, signed past the turn)` since connect.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (
            self.signed_for_others.load(Ordering::Relaxed),
            self.handed_back.load(Ordering::Relaxed),
            self.past_the_turn.load(Ordering::Relaxed),
        )
    }

    /// Runs `own` (the caller's sign) with the turn, then the slot's job, then lets go.
    fn hold(
        &self,
        turn: MutexGuard<'_, ()>,
        session: &Session,
        own: impl FnOnce() -> Result<Vec<u8>, CkError>,
    ) -> Result<Vec<u8>, CkError> {
        // Should `own` panic, a job left in the slot goes back to its owner.
        let holder = Holder { combiner: self };
        let result = own();
        std::mem::forget(holder);
        self.release(turn, session);
        result
    }

    /// Signs the slot's job (if any) and lets go of the turn; then, if a job came in after
    /// the look, takes the turn again for it unless another thread holds it (that thread
    /// looks at the slot before it lets go).
    fn release<'a>(&'a self, mut turn: MutexGuard<'a, ()>, session: &Session) {
        loop {
            if let Some(job) = self.take_slot() {
                // Finished (as failed) even if the sign panics: its owner must never wait on.
                let pending = Unfinished {
                    job,
                    finished: false,
                };
                let job = &pending.job;
                let outcome = match mac(session, job.alg, job.handle, &job.data) {
                    Ok(mac) => Outcome::Signed(mac),
                    Err(_) => {
                        self.handed_back.fetch_add(1, Ordering::Relaxed);
                        Outcome::Failed
                    }
                };
                self.signed_for_others.fetch_add(1, Ordering::Relaxed);
                pending.finish(outcome);
            }
            drop(turn);
            fence(Ordering::SeqCst);
            if !self.offered.load(Ordering::Relaxed) {
                return;
            }
            match self.try_turn() {
                Some(again) => turn = again,
                None => return,
            }
        }
    }

    /// Leaves a job in the slot, if the slot is free.
    fn offer(&self, alg: HmacAlg, handle: ObjectHandle, data: &[u8]) -> Option<Arc<Job>> {
        let mut slot = self.slot_lock();
        if slot.is_some() {
            return None;
        }
        let job = Arc::new(Job {
            alg,
            handle,
            data: data.to_vec(),
            outcome: Mutex::new(None),
            done: AtomicBool::new(false),
            owner: std::thread::current(),
        });
        *slot = Some(job.clone());
        self.offered.store(true, Ordering::SeqCst);
        Some(job)
    }

    /// Takes `job` out of the slot if it is still there (nobody has started it).
    fn take_back(&self, job: &Arc<Job>) -> bool {
        let mut slot = self.slot_lock();
        if slot.as_ref().is_some_and(|j| Arc::ptr_eq(j, job)) {
            *slot = None;
            self.offered.store(false, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    fn take_slot(&self) -> Option<Arc<Job>> {
        if !self.offered.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.slot_lock();
        self.offered.store(false, Ordering::Relaxed);
        slot.take()
    }

    fn slot_lock(&self) -> MutexGuard<'_, Option<Arc<Job>>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match self.turn.try_lock() {
            Ok(turn) => Some(turn),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Until `job` is done: spins a while (waking a sleeper costs the holder a system call and
    /// the sleeper a reschedule), then sleeps. A sleeper also looks now and then whether the
    /// turn is free with its job still in the slot, and then takes both: a job can never wait
    /// for a holder that is gone.
    fn wait<'a>(&'a self, job: &Arc<Job>, session: &Session) -> Waited<'a> {
        let start = Instant::now();
        'spin: while start.elapsed() < SPIN {
            for _ in 0..64 {
                if job.done.load(Ordering::Acquire) {
                    break 'spin;
                }
                std::hint::spin_loop();
            }
        }
        while !job.done.load(Ordering::Acquire) {
            std::thread::park_timeout(LOOK_AGAIN);
            if job.done.load(Ordering::Acquire) {
                break;
            }
            if let Some(turn) = self.try_turn() {
                if self.take_back(job) {
                    return Waited::Mine(turn);
                }
                self.release(turn, session);
            }
        }
        Waited::Done(
            job.outcome
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or(Outcome::Failed),
        )
    }
}

/// How [`Combiner::wait`] ended.
enum Waited<'a> {
    /// The holder ran the job.
    Done(Outcome),
    /// The turn was free with the job still in the slot: the job is the caller's to run.
    Mine(MutexGuard<'a, ()>),
}

/// A job taken from the slot: finished as failed if dropped unfinished (a panic while signing).
struct Unfinished {
    job: Arc<Job>,
    finished: bool,
}

impl Unfinished {
    fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.job.finish(outcome);
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.finished {
            self.job.finish(Outcome::Failed);
        }
    }
}

/// Armed while the holder runs its own sign: on a panic, a job in the slot goes back to its
/// owner (which signs it itself) instead of waiting for a holder that is gone.
struct Holder<'a> {
    combiner: &'a Combiner,
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.combiner.take_slot() {
            job.finish(Outcome::Failed);
        }
    }
}
