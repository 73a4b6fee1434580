//! `hsm-custody audit verify | tail | summary | reset`: check and read the guard rails' audit
//! log, and start a new chain when it cannot continue.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use hsm_custody::audit::{self, DEFAULT_AUDIT_KEY};
use hsm_custody::{Custody, GuardConfig};

use crate::cli::Global;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the MAC chain of log files with the token; report the first bad line (exit 1).
    Verify(VerifyArgs),
    /// Print the last lines of a log file.
    Tail(TailArgs),
    /// Usage per key: signs per minute, denials by rule, first and last use (MACs not checked:
    /// run `audit verify` for that).
    Summary(SummaryArgs),
    /// Start a new chain when the log cannot continue (head missing or old, tail cut, rollback
    /// caught by the token): the old file is kept, and the new chain's first line records the
    /// reason and what was known of the old chain's end. Needs the config file's [audit]; no
    /// writer (agent) may be running.
    Reset(ResetArgs),
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// Why (recorded in the log): what happened to the old chain.
    #[arg(long)]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Log files (the active one and any rotated ones, in any order).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Chain head file (default: FILE.head next to the newest file, when present).
    #[arg(long, conflicts_with = "no_head")]
    pub head: Option<PathBuf>,
    /// Verify without a chain head (files of a rotated part of the log, say). Without a head a
    /// cut-off tail cannot be detected; without this flag, a missing head fails.
    #[arg(long)]
    pub no_head: bool,
    /// Exit 0 even when the chain was reset (`audit reset`) within these files; the resets
    /// are reported either way.
    #[arg(long)]
    pub accept_resets: bool,
    /// Audit key name (default: `[audit] key` of the config file, else hsm-custody-audit).
    #[arg(long)]
    pub key: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// How many lines.
    #[arg(short = 'n', long = "lines", default_value_t = 10)]
    pub n: usize,
    /// Log file.
    pub file: PathBuf,
}

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

pub fn run(global: &Global, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify(global, args),
        AuditCommand::Tail(args) => {
            for line in audit::tail(&args.file, args.n)? {
                println!("{line}");
            }
            Ok(())
        }
        AuditCommand::Summary(args) => summary(args),
        AuditCommand::Reset(args) => reset(global, args),
    }
}

fn reset(global: &Global, args: ResetArgs) -> anyhow::Result<()> {
    let config = global.config()?;
    let Some(guard) = GuardConfig::from_config(&config)? else {
        bail!("the configuration has no [audit] section: which log to reset?");
    };
    // No guard: the reset writes the new chain's first line itself, under the writer's lock.
    let custody = Custody::connect(config)?;
    let report = audit::reset(&custody, &guard.audit, &args.reason)?;
    let f = &report.facts;
    let seq = |s: Option<u64>| s.map_or("unknown".to_owned(), |s| s.to_string());
    println!(
        "new chain started at line {} in {}; old file kept as {}",
        report.seq,
        guard.audit.path.display(),
        f.old_file.as_deref().unwrap_or("(there was none)")
    );
    println!(
        "old chain: file ended at line {}, head file recorded line {}, token recorded line {}; \
         lines lost: {}",
        seq(f.file_seq),
        seq(f.head_seq),
        seq(f.token_seq),
        f.lost_lines()
            .map_or("unknown (no head was left)".to_owned(), |n| n.to_string())
    );
    Ok(())
}

fn verify(global: &Global, args: VerifyArgs) -> anyhow::Result<()> {
    let config = global.config()?;
    let key = match args.key {
        Some(k) => k,
        None => GuardConfig::from_config(&config)?
            .map(|g| g.audit.key)
            .unwrap_or_else(|| DEFAULT_AUDIT_KEY.to_owned()),
    };
    // No guard here: verification only reads the log, it must not append to it.
    let custody = Custody::connect(config)?;
    let report = audit::verify(&custody, &key, &args.files, args.head.as_deref())?;
    let problem = report.problem.as_ref().map(|p| {
        serde_json::json!({
            "file": p.file.display().to_string(),
            "line": p.line,
            "seq": p.seq,
            "kind": format!("{:?}", p.kind).to_lowercase(),
            "detail": p.detail,
        })
    });
    let resets: Vec<serde_json::Value> = report
        .resets
        .iter()
        .map(|r| {
            serde_json::json!({
                "file": r.file.display().to_string(),
                "seq": r.seq,
                "time": r.time,
                "reason": r.reason,
                "old_file": r.facts.old_file,
                "old_file_last_seq": r.facts.file_seq,
                "old_head_seq": r.facts.head_seq,
                "old_token_seq": r.facts.token_seq,
                "lost_lines": r.facts.lost_lines(),
            })
        })
        .collect();
    if args.json {
        let out = serde_json::json!({
            "ok": report.is_ok(),
            "files": report.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "skipped": report.skipped.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "good_lines": report.good_lines,
            "first_seq": report.first_seq,
            "last_seq": report.last_seq,
            "from_genesis": report.from_genesis,
            "head_checked": report.head_checked,
            "token_head_checked": report.token_head_checked,
            "resets": resets,
            "problem": problem,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} good lines (seq {}..{}) in {} file(s); chain {}; head {}; token head {}",
            report.good_lines,
            report.first_seq.unwrap_or(0),
            report.last_seq.unwrap_or(0),
            report.files.len(),
            if report.from_genesis {
                "from its start"
            } else {
                "from mid-chain (earlier files not given)"
            },
            if report.head_checked {
                "checked"
            } else {
                "absent: a cut-off tail cannot be detected"
            },
            if report.token_head_checked {
                "checked"
            } else {
                "not checked"
            },
        );
        for r in &report.resets {
            println!(
                "RESET at line {} ({}) in {}: {:?}; lines lost before it: {}",
                r.seq,
                r.time,
                r.file.display(),
                r.reason,
                r.facts
                    .lost_lines()
                    .map_or("unknown (the old chain had no head)".to_owned(), |n| n
                        .to_string())
            );
        }
    }
    if let Some(p) = &report.problem {
        bail!(
            "{} line {}: {:?}: {}",
            p.file.display(),
            p.line,
            p.kind,
            p.detail
        );
    }
    if !report.head_checked && !args.no_head {
        bail!(
            "no chain head next to the newest file: lines cut off the end of the log cannot be \
             detected. Pass --head FILE, or --no-head to verify without one (a rotated part of \
             the log, say)"
        );
    }
    if !report.resets.is_empty() && !args.accept_resets {
        bail!(
            "the chain was reset {} time(s) within these files (see above): each is on the \
             record, and lines before it may be lost. Pass --accept-resets once reviewed",
            report.resets.len()
        );
    }
    Ok(())
}

fn summary(args: SummaryArgs) -> anyhow::Result<()> {
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
                        "first_use": u.first_use,
                        "last_use": u.last_use,
                        "peak_per_minute": u.peak_minute().map(|(_, n)| n).unwrap_or(0),
                        "denied_by_rule": u.denied_by_rule,
                        "per_minute": if args.per_minute { serde_json::json!(u.per_minute) } else { serde_json::Value::Null },
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
            u.first_use.as_deref().unwrap_or("-"),
            u.last_use.as_deref().unwrap_or("-"),
        );
        for (rule, n) in &u.denied_by_rule {
            println!("    denied {n} x by {rule}");
        }
        if args.per_minute {
            for (minute, n) in &u.per_minute {
                println!("    {minute}  {n}");
            }
        }
    }
    Ok(())
}
