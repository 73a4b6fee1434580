//! `[pool]`: the session pool and how the token is used.

use serde::Deserialize;

/// `[pool]` as written; every field is optional (see [`crate::Config`] for the defaults).
///
/// ```toml
/// [pool]
/// size = 8
/// checkout_timeout_ms = 5000
/// fast_path = true
/// serialize_hmac = true        # default: on for SoftHSM2 only
/// reconnect_attempts = 3
/// revalidate_ms = 1000
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolSection {
    /// Upper bound on the signing sessions ([`crate::Config::pool_size`]).
    pub size: Option<usize>,
    /// How long a caller waits for a free session ([`crate::Config::checkout_timeout`]).
    pub checkout_timeout_ms: Option<u64>,
    /// Sign with a session copy of each key ([`crate::Config::fast_path`]).
    pub fast_path: Option<bool>,
    /// HMACs one at a time ([`crate::Config::serialize_hmac`]).
    pub serialize_hmac: Option<bool>,
    /// Reconnect attempts after a device failure ([`crate::Config::reconnect`]).
    pub reconnect_attempts: Option<u32>,
    /// How often a cached key is checked ([`crate::Config::revalidate_interval`]).
    pub revalidate_ms: Option<u64>,
}
