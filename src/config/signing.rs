//! `[signing]`: what the crate accepts of caller-given time inputs and hosts.

use serde::Deserialize;

use crate::alg::Limits;
use crate::error::{Error, Result};

/// The largest `skew_ms` a file may set.
const MAX_SKEW_MS: u64 = 60_000;
/// The largest `ttl_ms` a file may set.
const MAX_TTL_MS: u64 = 600_000;

/// `[signing]` as written (see [`Limits`] for the meaning and the defaults).
///
/// ```toml
/// [signing]
/// skew_ms = 5000          # at most 60000
/// ttl_ms = 60000          # at most 600000
/// test_hosts = []
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SigningSection {
    /// How far a caller's timestamp or nonce may be from the crate's clock, in ms.
    pub skew_ms: Option<u64>,
    /// The longest validity a signature may carry, in ms.
    pub ttl_ms: Option<u64>,
    /// Hosts accepted besides the exchanges' own (`host` or `host:port`).
    #[serde(default)]
    pub test_hosts: Vec<String>,
}

impl SigningSection {
    /// The limits this section sets, over the defaults.
    ///
    /// # Errors
    /// [`Error::Config`]: `skew_ms` over 60000 or `ttl_ms` over 600000.
    pub fn limits(&self) -> Result<Limits> {
        let mut limits = Limits::default();
        if let Some(ms) = self.skew_ms {
            limits.skew_ms = ms;
        }
        if let Some(ms) = self.ttl_ms {
            limits.ttl_ms = ms;
        }
        limits.test_hosts = self.test_hosts.clone();
        if limits.skew_ms > MAX_SKEW_MS || limits.ttl_ms > MAX_TTL_MS {
            return Err(Error::Config(format!(
                "[signing]: skew_ms is at most {MAX_SKEW_MS} and ttl_ms at most {MAX_TTL_MS}"
            )));
        }
        Ok(limits)
    }
}
