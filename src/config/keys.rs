//! `[keys]`: each key's signing policy (turned into [`crate::policy::Policies`] by
//! [`crate::policy::Policies::from_section`], which checks patterns, rates and hours).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// `[keys]` as written: one entry per key name, `"*"` for keys without their own.
pub type KeysSection = BTreeMap<String, KeyPolicySection>;

/// One `[keys.NAME]` table as written (see [`crate::policy`] for what each field means).
///
/// ```toml
/// [keys.binance-main]
/// exchange = "binance"                  # or ["binance", "binance-usdm"]; absent: any
/// allow = ["POST /api/v3/order", "GET /api/v3/*"]
/// deny = ["* /api/v3/order/oco"]
/// allow_withdrawals = false
/// allow_raw = false
/// rate_per_second = 10
/// rate_per_minute = 300
/// burst = 20
/// hours = "06:00-22:00"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table [keys.NAME]")]
#[non_exhaustive]
pub struct KeyPolicySection {
    /// Exchange ids the key may sign for (`exchange`, one id or a list); empty: any.
    #[serde(default, rename = "exchange", deserialize_with = "one_or_many")]
    pub exchanges: Vec<String>,
    /// Endpoint patterns allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Endpoint patterns refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Lifts the withdrawal guard.
    #[serde(default)]
    pub allow_withdrawals: bool,
    /// Allows raw signatures.
    #[serde(default)]
    pub allow_raw: bool,
    /// Signatures per second.
    pub rate_per_second: Option<u32>,
    /// Signatures per minute.
    pub rate_per_minute: Option<u32>,
    /// Burst of the finest rate.
    pub burst: Option<u32>,
    /// Allowed hours (UTC), `HH:MM-HH:MM`.
    pub hours: Option<String>,
}

/// `"binance"` or `["binance", "binance-usdm"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "an exchange id or a list of them")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(id) => vec![id],
        OneOrMany::Many(ids) => ids,
    })
}
