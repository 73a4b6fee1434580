//! `hsm-custody audit summary`: usage per key (MACs not checked: `audit verify` does that).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use hsm_custody::audit::{self, KeyUsage};
use time::macros::format_description;

use crate::commands::rfc3339;

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Log files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also print allowed signs per key per minute.
    #[arg(long)]
    pub per_minute: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SummaryArgs) -> anyhow::Result<()> {
    let s = audit::summarize(&args.files)?;
    if args.json {
        let keys: serde_json::Map<String, serde_json::Value> = s
            .keys
            .iter()
            .map(|(k, u)| {
                (
                    k.clone(),
                    serde_json::json!({
                        "signed": u.signed,
                        "denied": u.denied,
                        "rate_limited": u.rate_limited,
                        "failed": u.failed,
                        "first_use": u.first_use.map(rfc3339),
                        "last_use": u.last_use.map(rfc3339),
                        "peak_per_minute": u.peak_minute().map(|(_, n)| n).unwrap_or(0),
                        "denied_by_rule": u.denied_by_rule,
                        "per_minute": if args.per_minute { serde_json::json!(per_minute(u)) } else { serde_json::Value::Null },
                    }),
                )
            })
            .collect();
        let out = serde_json::json!({
            "lines": s.lines,
            "chain_resets": s.resets,
            "unreadable": s.unreadable,
            "lifecycle_events": s.lifecycle,
            "login_failures": s.login_failures,
            "keys": keys,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} lines ({} unreadable), {} lifecycle events, {} login failures, {} chain resets",
        s.lines, s.unreadable, s.lifecycle, s.login_failures, s.resets
    );
    println!(
        "{:<24} {:>9} {:>7} {:>7} {:>6} {:>9}  {:<32} {:<32}",
        "KEY", "SIGNED", "DENIED", "RATE", "FAILED", "PEAK/MIN", "FIRST USE", "LAST USE"
    );
    for (key, u) in &s.keys {
        println!(
            "{:<24} {:>9} {:>7} {:>7} {:>6} {:>9}  {:<32} {:<32}",
            key,
            u.signed,
            u.denied,
            u.rate_limited,
            u.failed,
            u.peak_minute().map(|(_, n)| n).unwrap_or(0),
            u.first_use.map_or("-".into(), rfc3339),
            u.last_use.map_or("-".into(), rfc3339),
        );
        for (rule, n) in &u.denied_by_rule {
            println!("    denied {n} x by {rule}");
        }
        if args.per_minute {
            for (minute, n) in per_minute(u) {
                println!("    {minute}  {n}");
            }
        }
    }
    Ok(())
}

/// Allowed signs per minute, the minute as `YYYY-MM-DDTHH:MM` (UTC).
fn per_minute(u: &KeyUsage) -> BTreeMap<String, u64> {
    let minute = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    u.per_minute
        .iter()
        .map(|(m, n)| (m.format(&minute).unwrap_or_else(|_| rfc3339(*m)), *n))
        .collect()
}
