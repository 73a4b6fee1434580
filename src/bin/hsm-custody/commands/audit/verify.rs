//! `hsm-custody audit verify`: the MAC chain of log files, checked with the token.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use hsm_custody::audit::{self, DEFAULT_AUDIT_KEY};
use hsm_custody::{Custody, GuardConfig};

use crate::commands::rfc3339;
use crate::global::Global;

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

pub fn run(global: &Global, args: VerifyArgs) -> anyhow::Result<()> {
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
                "time": rfc3339(r.time),
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
            "epochs": report.epochs,
            "unprotected_tail": report.unprotected_tail,
            "journal_lines": report.journal_lines,
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
        if let Some(tail) = report.unprotected_tail {
            println!(
                "{} epoch(s); {tail} line(s) after the last checkpoint (authenticated by their \
                 epoch key alone)",
                report.epochs
            );
        }
        if report.journal_lines > 0 {
            println!(
                "{} line(s) in the journal continue the log, not in it yet: a running writer \
                 moves them in within 5 ms; after a crash the next writer does, and checks them",
                report.journal_lines
            );
        }
        for r in &report.resets {
            println!(
                "RESET at line {} ({}) in {}: {:?}; lines lost before it: {}",
                r.seq,
                rfc3339(r.time),
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
