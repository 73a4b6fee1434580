//! When to busy-poll: a look for the peer's next message before sleeping pays only while it
//! finds one. Both ends keep this per connection and stop looking after misses, so a peer
//! that answers slowly (a bot that goes to the exchange between two signatures, or a machine
//! too loaded for the look to find anything in time) costs no CPU; a look now and then finds
//! out whether that changed.

/// Consecutive misses after which looks pause.
const MISSES_TO_PAUSE: u32 = 2;
/// While paused, every this many waits looks once more.
const PROBE_EVERY: u32 = 32;

/// One connection's busy-poll record.
#[derive(Debug, Default)]
pub(crate) struct BusyPoll {
    misses: u32,
    waits: u32,
}

impl BusyPoll {
    /// Whether the next wait should look first.
    pub(crate) fn should_look(&mut self) -> bool {
        self.waits = self.waits.wrapping_add(1);
        self.misses < MISSES_TO_PAUSE || self.waits % PROBE_EVERY == 0
    }

    /// What the look found.
    pub(crate) fn looked(&mut self, found: bool) {
        self.misses = if found {
            0
        } else {
            self.misses.saturating_add(1)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::BusyPoll;

    #[test]
    fn looks_pause_after_misses_and_probe_now_and_then() {
        let mut b = BusyPoll::default();
        assert!(b.should_look());
        b.looked(false);
        assert!(b.should_look());
        b.looked(false);
        // Paused: one look in 32 waits.
        let looks = (0..64).filter(|_| b.should_look()).count();
        assert_eq!(looks, 2);
        // A probe that finds the peer resumes looking at every wait.
        while !b.should_look() {}
        b.looked(true);
        assert!((0..10).all(|_| b.should_look()));
    }
}
