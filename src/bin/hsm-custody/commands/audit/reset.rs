//! `hsm-custody audit reset`: a new chain, on the record, when the log cannot continue.

use clap::Args;
use hsm_custody::audit;
use hsm_custody::{Custody, GuardConfig};

use crate::exit;
use crate::global::Global;

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// Why (recorded in the log): what happened to the old chain.
    #[arg(long)]
    pub reason: String,
}

pub fn run(global: &Global, args: ResetArgs) -> anyhow::Result<()> {
    let config = global.config()?;
    let Some(guard) = GuardConfig::from_config(&config)? else {
        return Err(exit::config(
            "the configuration has no [audit] section: which log to reset?",
        ));
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
