//! Per-key rate limits on `governor`'s GCRA limiter (lock-free, shared by all threads).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{Error, Result};

/// The limits of one policy, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSpec {
    /// Signatures per second, sustained.
    pub per_second: Option<u32>,
    /// Signatures per minute, sustained.
    pub per_minute: Option<u32>,
    /// How many signatures may go at once, for the finest limit configured (default: that
    /// limit's rate). At most `burst + rate * T` signatures pass in any window of `T`.
    pub burst: Option<u32>,
}

impl RateSpec {
    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.per_second.is_some() || self.per_minute.is_some()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let zero = |name: &str| Error::Config(format!("`{name}` must be at least 1"));
        if self.per_second == Some(0) {
            return Err(zero("rate_per_second"));
        }
        if self.per_minute == Some(0) {
            return Err(zero("rate_per_minute"));
        }
        if self.burst == Some(0) {
            return Err(zero("burst"));
        }
        if self.burst.is_some() && !self.is_limited() {
            return Err(Error::Config(
                "`burst` needs `rate_per_second` or `rate_per_minute`".into(),
            ));
        }
        Ok(())
    }
}

/// The live limiters of one key.
pub(crate) struct Limiter {
    second: Option<DefaultDirectRateLimiter>,
    minute: Option<DefaultDirectRateLimiter>,
}

impl Limiter {
    pub(crate) fn new(spec: &RateSpec) -> Limiter {
        let burst = spec.burst.and_then(NonZeroU32::new);
        let second = spec.per_second.and_then(NonZeroU32::new).map(|rate| {
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst.unwrap_or(rate)))
        });
        // The burst applies to the finest limit only; the minute limit's bucket is its rate.
        let minute_burst = if second.is_some() { None } else { burst };
        let minute = spec.per_minute.and_then(NonZeroU32::new).map(|rate| {
            RateLimiter::direct(Quota::per_minute(rate).allow_burst(minute_burst.unwrap_or(rate)))
        });
        Limiter { second, minute }
    }

    /// Takes one cell from each limit; the name of the first limit that is exhausted.
    pub(crate) fn check(&self) -> std::result::Result<(), &'static str> {
        if let Some(l) = &self.minute {
            if l.check().is_err() {
                return Err("rate_per_minute");
            }
        }
        if let Some(l) = &self.second {
            if l.check().is_err() {
                return Err("rate_per_second");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal() {
        let l = Limiter::new(&RateSpec {
            per_second: Some(1),
            per_minute: None,
            burst: Some(5),
        });
        let passed = (0..20).filter(|_| l.check().is_ok()).count();
        assert!((5..=6).contains(&passed), "{passed}");
        assert!(RateSpec {
            burst: Some(3),
            ..RateSpec::default()
        }
        .validate()
        .is_err());
        assert!(RateSpec {
            per_second: Some(0),
            ..RateSpec::default()
        }
        .validate()
        .is_err());
    }
}
