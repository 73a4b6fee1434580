//! Key hygiene: keys the audit log records no use of for `[hygiene] unused_after_days` ("remove
//! keys for services you no longer use"), and keys whose active version is older than
//! `rotate_after_days` (0 turns either off).

use time::{Duration, OffsetDateTime};

use super::{Report, Severity};
use crate::audit::Summary;
use crate::config::Config;
use crate::keys::KeyInfo;

/// What the audit log says about usage, or why it cannot say.
pub(super) enum Usage {
    Read(Summary),
    Unavailable { why: String, severity: Severity },
}

impl Usage {
    /// The usage in the log the configuration's `[audit] path` names.
    pub(super) fn read(config: &Config) -> Usage {
        let Some(audit) = config.audit_section() else {
            return Usage::Unavailable {
                why: "no [audit] section in the configuration (uses are recorded in the audit \
                      log)"
                    .into(),
                severity: Severity::Info,
            };
        };
        match Summary::of_log(&audit.path, None) {
            Ok(s) => Usage::Read(s),
            Err(e) => Usage::Unavailable {
                why: format!("cannot read the audit log: {e}"),
                severity: Severity::Warning,
            },
        }
    }
}

/// Adds the hygiene findings about `keys` to `report`. `audit_key`: the audit log's key, which
/// signs only the log and is left out.
pub(super) fn check(
    report: &mut Report,
    keys: &[KeyInfo],
    usage: &Usage,
    config: &Config,
    audit_key: &str,
    now: OffsetDateTime,
) {
    let unused_after = config.unused_after();
    let rotate_after = config.rotation_age();
    let keys: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| k.managed && k.name != audit_key)
        .collect();
    if rotate_after > 0 {
        for k in &keys {
            let Some(active) = k.active() else { continue };
            let age = active.age_days(now);
            if age > i64::from(rotate_after) {
                report.add(
                    Severity::Warning,
                    format!(
                        "key `{}`: its active version v{} is {age} days old (over [hygiene] \
                         rotate_after_days = {rotate_after}): rotate it (`hsm-custody key rotate \
                         begin --name {}`, then promote)",
                        k.name, active.version, k.name
                    ),
                );
            }
        }
    }
    if unused_after == 0 {
        return;
    }
    let summary = match usage {
        Usage::Read(s) => s,
        Usage::Unavailable { why, severity } => {
            report.add(*severity, format!("unused keys not checked: {why}"));
            return;
        }
    };
    let limit = Duration::days(i64::from(unused_after));
    for k in keys {
        if k.active_version.is_none() {
            continue;
        }
        let last_use = summary.keys.get(&k.name).and_then(|u| u.last_use);
        // Never used: idle since it was made, or since the log began if that is later (the log
        // knows nothing from before its first line; an empty log, nothing at all).
        let created = k.versions.iter().map(|v| v.created).min();
        let idle_since = match (last_use, created, summary.first_time) {
            (Some(t), _, _) => t,
            (None, Some(c), Some(first)) => c.max(first),
            _ => continue,
        };
        let idle = now - idle_since;
        if idle > limit {
            let what = match last_use {
                Some(t) => format!("last used {}", t.date()),
                None => format!(
                    "never used in the log, which begins {}",
                    summary
                        .first_time
                        .map_or_else(String::new, |t| t.date().to_string())
                ),
            };
            report.add(
                Severity::Warning,
                format!(
                    "key `{}` has no recorded use for {} days ({what}; [hygiene] \
                     unused_after_days = {unused_after}): remove keys for services you no \
                     longer use (`hsm-custody key revoke --name {} --all`)",
                    k.name,
                    idle.whole_days(),
                    k.name
                ),
            );
        }
    }
}
