//! `hsm-custody audit verify | tail | summary | reset`: check and read the guard rails' audit
//! log, and start a new chain when it cannot continue.

mod reset;
mod summary;
mod tail;
mod verify;

use clap::Subcommand;

use crate::global::Global;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the MAC chain of log files with the token; report the first bad line (exit 1).
    Verify(verify::VerifyArgs),
    /// Print the last lines of a log file.
    Tail(tail::TailArgs),
    /// Usage per key: signs per minute, denials by rule, first and last use (MACs not checked:
    /// run `audit verify` for that).
    Summary(summary::SummaryArgs),
    /// Start a new chain when the log cannot continue (head missing or old, tail cut, rollback
    /// caught by the token): the old file is kept, and the new chain's first line records the
    /// reason and what was known of the old chain's end. Needs the config file's [audit]; no
    /// writer (agent) may be running.
    Reset(reset::ResetArgs),
}

pub fn run(global: &Global, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify(args) => verify::run(global, args),
        AuditCommand::Tail(args) => tail::run(args),
        AuditCommand::Summary(args) => summary::run(args),
        AuditCommand::Reset(args) => reset::run(global, args),
    }
}
