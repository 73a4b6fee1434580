//! `hsm-custody key list`: every key with its kind, versions, expiry, flags and usage (last
//! use and signatures in the last 24 h, from the audit log); never values.

use clap::Args;
use hsm_custody::audit::Summary;
use hsm_custody::{Config, KeyInfo};
use time::OffsetDateTime;

use super::yes_no;
use crate::commands::rfc3339;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Flag active versions older than this many days (default: the config's, 90; 0: never).
    #[arg(long)]
    pub max_age_days: Option<u32>,
}

/// The usage the audit log records, or why it cannot be read.
enum Usage {
    Read(Summary),
    Unavailable(String),
}

impl Usage {
    /// The usage in the audit log the configuration's `[audit] path` names (signatures counted
    /// over the last 24 hours). Never fails: what goes wrong is the reason it is unavailable.
    fn read(config: &Config, now: OffsetDateTime) -> Usage {
        let Some(audit) = config.audit_section() else {
            return Usage::Unavailable(
                "no [audit] section in the configuration (usage is read from the audit log)".into(),
            );
        };
        match Summary::of_log(&audit.path, Some(now - time::Duration::hours(24))) {
            Ok(summary) => Usage::Read(summary),
            Err(e) => Usage::Unavailable(format!("cannot read the audit log: {e}")),
        }
    }

    /// Last use and signatures in the last 24 h of `key`, as the table prints them.
    fn columns(&self, key: &str) -> (String, String) {
        match self {
            Usage::Read(s) => match s.keys.get(key) {
                Some(u) => (
                    u.last_use.map_or_else(|| "never".into(), to_the_second),
                    u.signed_since.to_string(),
                ),
                None => ("never".into(), "0".into()),
            },
            Usage::Unavailable(_) => ("?".into(), "?".into()),
        }
    }

    /// The same as JSON fields.
    fn json(&self, key: &str) -> [(&'static str, serde_json::Value); 3] {
        use serde_json::Value;
        match self {
            Usage::Read(s) => {
                let u = s.keys.get(key);
                [
                    (
                        "last_use",
                        u.and_then(|u| u.last_use)
                            .map_or(Value::Null, |t| rfc3339(t).into()),
                    ),
                    ("signed_24h", u.map_or(0, |u| u.signed_since).into()),
                    ("usage_unavailable", Value::Null),
                ]
            }
            Usage::Unavailable(why) => [
                ("last_use", Value::Null),
                ("signed_24h", Value::Null),
                ("usage_unavailable", why.clone().into()),
            ],
        }
    }
}

pub fn run(global: &Global, args: ListArgs) -> anyhow::Result<()> {
    let config = global.config()?;
    let rotation_age = config.rotation_age();
    let now = OffsetDateTime::now_utc();
    let usage = Usage::read(&config, now);
    // Listing changes nothing: no guard rails, so no audit log is opened for writing (a
    // running agent holds it).
    let custody = global.connect_unguarded(config)?;
    let keys = custody.list_keys()?;
    if args.json {
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            let mut value = serde_json::to_value(k)?;
            if let Some(object) = value.as_object_mut() {
                for (field, v) in usage.json(&k.name) {
                    object.insert(field.into(), v);
                }
            }
            out.push(value);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let max_age = i64::from(args.max_age_days.unwrap_or(rotation_age));
    println!(
        "{:<24} {:<8} {:<6} {:<18} {:<7} {:<9} {:<11} {:<9} {:<8} {:<20} {:>7} NOTES",
        "NAME",
        "KIND",
        "ACTIVE",
        "EXCHANGE",
        "ENC",
        "SENSITIVE",
        "EXTRACTABLE",
        "HARDENED",
        "EXPIRES",
        "LAST USE",
        "24H"
    );
    for k in keys {
        let (last_use, recent) = usage.columns(&k.name);
        println!(
            "{:<24} {:<8} {:<6} {:<18} {:<7} {:<9} {:<11} {:<9} {:<8} {:<20} {:>7} {}",
            k.name,
            k.kind.map_or("foreign", |k| k.name()),
            k.active_version
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "-".into()),
            k.exchange.as_deref().unwrap_or("-"),
            k.encoding.map(|e| e.name()).unwrap_or("-"),
            yes_no(k.flags.sensitive),
            yes_no(k.flags.extractable),
            if k.flags.is_hardened() { "yes" } else { "NO" },
            expiry(&k, now.date()),
            last_use,
            recent,
            notes(&k, now, max_age),
        );
    }
    if let Usage::Unavailable(why) = &usage {
        println!("usage (LAST USE, 24H) unavailable: {why}");
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), the table's width.
fn to_the_second(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| rfc3339(t))
}

fn expiry(k: &KeyInfo, today: time::Date) -> String {
    match k.active().and_then(|v| v.days_until_expiry(today)) {
        Some(d) if d < 0 => "expired".into(),
        Some(d) => format!("{d}d"),
        None => "-".into(),
    }
}

fn notes(k: &KeyInfo, now: time::OffsetDateTime, max_age: i64) -> String {
    let mut notes = Vec::new();
    if !k.managed {
        notes.push("not created by hsm-custody".to_owned());
    }
    let revoked: Vec<u32> = k
        .versions
        .iter()
        .filter(|v| v.state == hsm_custody::VersionState::Revoked)
        .map(|v| v.version)
        .collect();
    let usable = k.versions.iter().any(|v| v.state.is_usable());
    if k.managed && !usable && !revoked.is_empty() {
        notes.push(format!(
            "REVOKED: cannot sign (revoked {}); a new secret under this name: `hsm-custody key import --name {}` (or `key rotate begin --name {}`, then promote)",
            super::version_list(&revoked),
            k.name,
            k.name
        ));
    } else {
        if k.managed && k.active_version.is_none() {
            notes.push("no active version".to_owned());
        }
        if !revoked.is_empty() {
            notes.push(format!("{} revoked", super::version_list(&revoked)));
        }
    }
    if let Some(age) = k.active().map(|v| v.age_days(now)) {
        if max_age > 0 && age > max_age {
            notes.push(format!(
                "ROTATE: active version is {age} days old (> {max_age})"
            ));
        }
    }
    let pending: Vec<String> = k
        .versions
        .iter()
        .filter(|v| v.state == hsm_custody::VersionState::Pending)
        .map(|v| format!("v{} pending", v.version))
        .collect();
    notes.extend(pending);
    notes.join("; ")
}
