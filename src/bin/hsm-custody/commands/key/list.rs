//! `hsm-custody key list`: every key with its kind, versions, expiry and flags; never values.

use clap::Args;
use hsm_custody::KeyInfo;

use super::yes_no;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Flag active versions older than this many days (default: the config's, 90).
    #[arg(long)]
    pub max_age_days: Option<u32>,
}

pub fn run(global: &Global, args: ListArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let keys = custody.list_keys()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    let max_age = i64::from(args.max_age_days.unwrap_or(custody.rotation_age_days()));
    let now = time::OffsetDateTime::now_utc();
    println!(
        "{:<24} {:<8} {:<6} {:<18} {:<7} {:<9} {:<11} {:<9} {:<8} NOTES",
        "NAME",
        "KIND",
        "ACTIVE",
        "EXCHANGE",
        "ENC",
        "SENSITIVE",
        "EXTRACTABLE",
        "HARDENED",
        "EXPIRES"
    );
    for k in keys {
        println!(
            "{:<24} {:<8} {:<6} {:<18} {:<7} {:<9} {:<11} {:<9} {:<8} {}",
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
            notes(&k, now, max_age),
        );
    }
    Ok(())
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
        if age > max_age {
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
