//! Time and nonces for the signers: injectable, with safe defaults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a signer gets the current time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken host; signing with time 0 then fails at the exchange.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock stopped at a given instant (tests, replays).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

/// Where a signer gets nonces (Kraken, Bitfinex, Gemini, Deribit, Crypto.com ...).
pub trait NonceSource: Send + Sync {
    /// The next nonce, given the clock's current time in milliseconds.
    fn next_nonce(&self, now_ms: u64) -> u64;
}

/// Strictly increasing nonces, even across threads: microseconds since the epoch, or the last
/// nonce + 1 when the clock has not moved on (or went back).
///
/// Microseconds are larger than the millisecond nonces most clients send, so switching to this
/// source never goes backwards for an exchange that remembers the last nonce of a key. Share one
/// source per key: [`MonotonicNonce::global`] is the process-wide one every signer uses by
/// default.
#[derive(Debug, Default)]
pub struct MonotonicNonce {
    last: AtomicU64,
}

impl MonotonicNonce {
    /// A new source.
    pub const fn new() -> Self {
        MonotonicNonce {
            last: AtomicU64::new(0),
        }
    }

    /// The process-wide source.
    pub fn global() -> &'static MonotonicNonce {
        static GLOBAL: MonotonicNonce = MonotonicNonce::new();
        &GLOBAL
    }
}

impl NonceSource for MonotonicNonce {
    fn next_nonce(&self, now_ms: u64) -> u64 {
        let candidate = now_ms.saturating_mul(1000);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = candidate.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// Always the same nonce (tests).
#[derive(Clone, Copy, Debug)]
pub struct FixedNonce(pub u64);

impl NonceSource for FixedNonce {
    fn next_nonce(&self, _now_ms: u64) -> u64 {
        self.0
    }
}

/// What an [`crate::exchanges::Exchange`] may ask for besides the request: time and nonces.
pub struct Context<'a> {
    clock: &'a dyn Clock,
    nonces: &'a dyn NonceSource,
    ttl_ms: u64,
}

impl<'a> Context<'a> {
    /// A context over a clock and a nonce source; signatures valid for at most 60 s.
    pub fn new(clock: &'a dyn Clock, nonces: &'a dyn NonceSource) -> Self {
        Context {
            clock,
            nonces,
            ttl_ms: 60_000,
        }
    }

    /// The same context with another longest validity (the signer's [`super::Limits`]).
    pub fn with_ttl_ms(&self, ttl_ms: u64) -> Context<'a> {
        Context {
            clock: self.clock,
            nonces: self.nonces,
            ttl_ms,
        }
    }

    /// The longest validity a signature may carry, in ms: an expiry the crate sets (BitMEX
    /// `api-expires`, a Coinbase JWT's `exp`) is at most this far ahead.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whole seconds since the epoch.
    pub fn now_s(&self) -> u64 {
        self.clock.now_ms() / 1000
    }

    /// The next nonce.
    pub fn nonce(&self) -> u64 {
        self.nonces.next_nonce(self.clock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn monotonic_nonces_strictly_increase_across_threads() {
        let source = Arc::new(MonotonicNonce::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&source);
                std::thread::spawn(move || (0..5000).map(|_| s.next_nonce(1)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a nonce was handed out twice");
    }

    #[test]
    fn monotonic_nonces_follow_the_clock_and_survive_it_going_back() {
        let s = MonotonicNonce::new();
        assert_eq!(s.next_nonce(1_000), 1_000_000);
        assert_eq!(s.next_nonce(1_000), 1_000_001);
        assert_eq!(s.next_nonce(999), 1_000_002);
        assert_eq!(s.next_nonce(2_000), 2_000_000);
    }
}
