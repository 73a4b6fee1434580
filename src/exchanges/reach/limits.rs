//! The limits the crate holds caller-given time inputs and hosts to (`[signing]` in the
//! configuration).

/// Limits on the time inputs a caller may give, and the test hosts the crate accepts besides the
/// exchanges' own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How far a caller's timestamp or nonce may be from the crate's clock, in ms (default 5000).
    pub skew_ms: u64,
    /// The longest validity a signature may carry (expiry, receive window), in ms (default 60000).
    pub ttl_ms: u64,
    /// Hosts accepted besides each exchange's documented API hosts (test servers), as
    /// `host` or `host:port`.
    pub test_hosts: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            skew_ms: 5_000,
            ttl_ms: 60_000,
            test_hosts: Vec::new(),
        }
    }
}

impl Limits {
    /// Sets the allowed clock skew.
    pub fn skew_ms(mut self, ms: u64) -> Self {
        self.skew_ms = ms;
        self
    }

    /// Sets the longest validity.
    pub fn ttl_ms(mut self, ms: u64) -> Self {
        self.ttl_ms = ms;
        self
    }

    /// Adds a test host.
    pub fn test_host(mut self, host: impl Into<String>) -> Self {
        self.test_hosts.push(host.into());
        self
    }
}
