//! `hsm-custody`: provision keys into a PKCS#11 token and sign with them.
//!
//! `main` only parses arguments, runs one command, prints an error with its hint and maps it to
//! an exit code ([`hsm_custody::ErrorKind::exit_code`]); every command
//! lives in its own file and calls the library.

#[cfg(feature = "agent")]
mod agent;
mod audit;
mod cli;
mod doctor;
#[cfg(feature = "gateway")]
mod gateway;
mod key_import;
mod key_lifecycle;
mod key_list;
mod sign;
mod sign_request;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = cli::run(args);
    // The audit log's last sync, whatever the command's outcome (a refusal is a line too).
    let result = match (result, cli::finish()) {
        (Ok(()), synced) => synced,
        (Err(e), Err(sync)) => {
            eprintln!("hsm-custody: {sync:#}");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hsm-custody: {err:#}");
            // The crate's error, wherever it sits in the context chain: its advice and its
            // kind's exit code (2 bad configuration or input, 3 PIN, 4 guard-rail refusal; the
            // agent's systemd unit does not restart on 2: a configuration it refused is refused
            // again).
            match err.downcast_ref::<hsm_custody::Error>() {
                Some(e) => {
                    if let Some(hint) = e.hint() {
                        eprintln!("hint: {hint}");
                    }
                    ExitCode::from(e.kind().exit_code())
                }
                None => ExitCode::FAILURE,
            }
        }
    }
}
