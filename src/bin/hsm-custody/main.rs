//! `hsm-custody`: provision keys into a PKCS#11 token and sign with them.
//!
//! `main` only parses the arguments, runs one command and turns its outcome into an exit code
//! ([`exit`]). The commands live one per file under `commands/`, nested as on the command line
//! (`commands/key/import.rs` is `hsm-custody key import`); they parse their arguments into the
//! library's types and call it. `global` holds the options every command shares and the
//! connection they make; `input` reads secrets, dates and files; `values` holds the closed
//! sets of values the flags take; `logging` the `tracing` subscriber (stderr, `RUST_LOG`).

mod commands;
mod exit;
mod global;
mod input;
mod logging;
mod values;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    logging::init(cli.global.log_format, cli.command.is_server());
    let result = commands::run(cli);
    // The audit log's last sync, whatever the command's outcome (a refusal is a line too).
    exit::report(result, global::finish())
}
