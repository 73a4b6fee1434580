//! `[hygiene]`: when `hsm-custody doctor` flags a key as unused or due for rotation.

use serde::Deserialize;

/// `[hygiene]` as written; 0 turns a check off.
///
/// ```toml
/// [hygiene]
/// unused_after_days = 30     # no signature recorded in the audit log for 30 days
/// rotate_after_days = 90     # the active version is older than 90 days
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HygieneSection {
    /// Flag a key the audit log records no use of for this many days (default 30; 0: off).
    /// Needs `[audit]`: the log is where uses are recorded.
    pub unused_after_days: Option<u32>,
    /// Flag a key whose active version is older than this many days (default 90; 0: off). The
    /// same setting as the top-level `rotation_age_days` (give one of them).
    pub rotate_after_days: Option<u32>,
}
