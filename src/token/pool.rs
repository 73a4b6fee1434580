//! A bounded pool of logged-in read-write sessions.
//!
//! cryptoki's `Session` is `Send` but not `Sync`, so the pool hands each session to one thread
//! at a time as an owned [`Lease`]. A lease returns its session on drop unless it was marked
//! dead. A purge (after the whole application lost its sessions) bumps a generation counter so
//! that sessions leased before it are closed on return instead of going back to the pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::session::Session;

use crate::error::{Error, Result};

/// A snapshot of the pool's counters, for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Maximum number of signing sessions (the reserved login session not counted).
    pub capacity: usize,
    /// Sessions open right now (idle + leased).
    pub open: usize,
    /// Sessions leased right now.
    pub in_use: usize,
    /// Sessions opened since connect.
    pub opened: u64,
    /// Sessions dropped because they died or belonged to a purged generation.
    pub evicted: u64,
    /// Leases handed out.
    pub checkouts: u64,
    /// Checkouts that had to wait for a session.
    pub waits: u64,
    /// Checkouts that gave up with [`Error::PoolTimeout`].
    pub timeouts: u64,
    /// Logins made after the first one (lost login or lost sessions).
    pub relogins: u64,
    /// Reconnects after device errors.
    pub reconnects: u64,
    /// HMAC signs made for a waiting thread by the thread holding the turn, when HMAC signs
    /// go one at a time ([`crate::Config::serialize_hmac`]) and no more threads sign than the
    /// machine has cores.
    pub hmacs_signed_for_others: u64,
    /// Of those, the ones the token refused on the holder's session, which their own thread
    /// then signed again on its own session.
    pub hmacs_handed_back: u64,
    /// HMAC signs that went into the token at once, past the turn, because more threads were
    /// signing than the machine has cores (HMAC signs one at a time only up to the core count).
    pub hmacs_past_the_turn: u64,
}

struct State<S> {
    idle: Vec<S>,
    open: usize,
    generation: u64,
    /// Threads blocked in `checkout` (so a return wakes someone only when someone waits:
    /// `Condvar::notify_one` is a futex syscall even with no waiter).
    waiting: usize,
}

pub(crate) struct Pool<S = Session> {
    state: Mutex<State<S>>,
    freed: Condvar,
    capacity: usize,
    timeout: Duration,
    pub(crate) opened: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) checkouts: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) relogins: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// One session, owned by one thread until dropped.
pub(crate) struct Lease<'a, S = Session> {
    pool: &'a Pool<S>,
    session: Option<S>,
    generation: u64,
}

impl<S> Pool<S> {
    pub(crate) fn new(capacity: usize, timeout: Duration) -> Self {
        Pool {
            state: Mutex::new(State {
                idle: Vec::with_capacity(capacity),
                open: 0,
                generation: 0,
                waiting: 0,
            }),
            freed: Condvar::new(),
            capacity: capacity.max(1),
            timeout,
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            checkouts: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            relogins: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A panic while holding this lock leaves only a Vec and counters: safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes an idle session, or opens one with `open` while under capacity, or waits.
    pub(crate) fn checkout(&self, open: impl FnOnce() -> Result<S>) -> Result<Lease<'_, S>> {
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let mut deadline = None;
        loop {
            if let Some(session) = state.idle.pop() {
                let generation = state.generation;
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation,
                });
            }
            if state.open < self.capacity {
                state.open += 1;
                let generation = state.generation;
                drop(state);
                return match open() {
                    Ok(session) => {
                        self.opened.fetch_add(1, Ordering::Relaxed);
                        Ok(Lease {
                            pool: self,
                            session: Some(session),
                            generation,
                        })
                    }
                    Err(e) => {
                        let mut state = self.lock();
                        state.open -= 1;
                        self.wake_one(state);
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            let deadline = *deadline.get_or_insert_with(|| {
                self.waits.fetch_add(1, Ordering::Relaxed);
                now + self.timeout
            });
            if now >= deadline {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(Error::PoolTimeout {
                    waited: self.timeout,
                    in_use: state.open - state.idle.len(),
                    size: self.capacity,
                });
            }
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiting -= 1;
        }
    }

    /// Releases the lock and wakes one waiting `checkout`, if there is one.
    fn wake_one(&self, state: MutexGuard<'_, State<S>>) {
        let someone_waits = state.waiting > 0;
        drop(state);
        if someone_waits {
            self.freed.notify_one();
        }
    }

    /// Closes every idle session and makes leased ones close on return. Used when the
    /// application lost all its sessions (C_CloseAllSessions, device reset).
    pub(crate) fn purge(&self) {
        let idle = {
            let mut state = self.lock();
            state.generation += 1;
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        self.evicted.fetch_add(idle.len() as u64, Ordering::Relaxed);
        drop(idle); // closes them, outside the lock
        self.freed.notify_all();
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            capacity: self.capacity,
            open: state.open,
            in_use: state.open - state.idle.len(),
            opened: self.opened.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            checkouts: self.checkouts.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            relogins: self.relogins.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            ..PoolStats::default()
        }
    }
}

impl<S> Lease<'_, S> {
    pub(crate) fn session(&self) -> &S {
        // Invariant: `session` is Some from construction until drop or `discard`, which consumes.
        self.session
            .as_ref()
            .expect("lease holds a session until dropped")
    }

    /// Drops the session instead of returning it: it died or misbehaved.
    pub(crate) fn discard(mut self) {
        if let Some(session) = self.session.take() {
            self.pool.evicted.fetch_add(1, Ordering::Relaxed);
            drop(session);
            let mut state = self.pool.lock();
            state.open -= 1;
            self.pool.wake_one(state);
        }
    }
}

impl<S> Drop for Lease<'_, S> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if state.generation == self.generation {
            state.idle.push(session);
            self.pool.wake_one(state);
        } else {
            state.open -= 1;
            let someone_waits = state.waiting > 0;
            drop(state);
            self.pool.evicted.fetch_add(1, Ordering::Relaxed);
            drop(session); // closed outside the lock, before a waiter opens its replacement
            if someone_waits {
                self.pool.freed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn pool(capacity: usize, timeout_ms: u64) -> Pool<u32> {
        Pool::new(capacity, Duration::from_millis(timeout_ms))
    }

    #[test]
    fn reuses_idle_sessions_and_respects_capacity() {
        let p = pool(2, 50);
        let a = p.checkout(|| Ok(1)).unwrap();
        let b = p.checkout(|| Ok(2)).unwrap();
        let err = p.checkout(|| Ok(3)).err().expect("pool is full");
        assert!(
            matches!(
                err,
                Error::PoolTimeout {
                    in_use: 2,
                    size: 2,
                    ..
                }
            ),
            "{err}"
        );
        drop(a);
        let c = p
            .checkout(|| panic!("must reuse the idle session"))
            .unwrap();
        assert_eq!(*c.session(), 1);
        drop((b, c));
        let s = p.stats();
        assert_eq!((s.open, s.in_use, s.opened, s.timeouts), (2, 0, 2, 1));
    }

    #[test]
    fn a_waiter_gets_the_session_released_by_another_thread() {
        let p = Arc::new(pool(1, 5_000));
        let lease = p.checkout(|| Ok(7)).unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || *p2.checkout(|| Ok(8)).unwrap().session());
        std::thread::sleep(Duration::from_millis(30));
        drop(lease);
        assert_eq!(waiter.join().unwrap(), 7);
        assert_eq!(p.stats().waits, 1);
    }

    #[test]
    fn discarded_and_purged_sessions_are_not_reused() {
        let p = pool(2, 50);
        let a = p.checkout(|| Ok(1)).unwrap();
        a.discard();
        let b = p.checkout(|| Ok(2)).unwrap();
        let c = p.checkout(|| Ok(3)).unwrap();
        drop(c); // idle: 3
        p.purge(); // closes 3; b, leased before the purge, must not come back
        drop(b);
        let s = p.stats();
        assert_eq!((s.open, s.evicted), (0, 3));
        let d = p.checkout(|| Ok(4)).unwrap();
        assert_eq!(*d.session(), 4);
    }

    #[test]
    fn a_failed_open_frees_its_slot() {
        let p = pool(1, 50);
        assert!(p.checkout(|| Err(Error::invalid("no"))).is_err());
        assert_eq!(*p.checkout(|| Ok(5)).unwrap().session(), 5);
    }
}
