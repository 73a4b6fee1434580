//! `[alerts]`: thresholds of the guard rails' anomaly alerts (turned into a
//! [`crate::AlertConfig`] by [`crate::GuardConfig::from_config`]).

use serde::Deserialize;

/// `[alerts]` as written; every key is optional, and 0 turns a detector off.
///
/// ```toml
/// [alerts]
/// spike_factor = 10               # a key signing over 10x its trailing median per minute
/// spike_min_per_minute = 100      # ... and at least 100 in the minute
/// failed_logins = 3               # failed logins within window_seconds
/// refusals_per_client = 20        # refusals of one client within window_seconds
/// window_seconds = 300
/// command = ["/usr/local/bin/page-oncall", "--json"]   # gets each alert as JSON on stdin
/// command_timeout_ms = 5000
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertsSection {
    /// A traffic spike: the current minute's signatures of a key over this many times its
    /// median per minute over the trailing hour (default 10; 0: off).
    pub spike_factor: Option<u32>,
    /// ... and at least this many signatures in the minute (default 100).
    pub spike_min_per_minute: Option<u64>,
    /// Failed logins within `window_seconds` that raise an alert (default 3; 0: off).
    pub failed_logins: Option<u32>,
    /// Policy refusals of one client within `window_seconds` that raise an alert (default 20;
    /// 0: off).
    pub refusals_per_client: Option<u32>,
    /// The window of `failed_logins` and `refusals_per_client`, in seconds (default 300).
    pub window_seconds: Option<u64>,
    /// A program and its arguments, run (without a shell) for each anomaly alert with the alert
    /// as one JSON object on stdin.
    pub command: Option<Vec<String>>,
    /// How long the command may run before it is killed, in ms (default 5000).
    pub command_timeout_ms: Option<u64>,
}
