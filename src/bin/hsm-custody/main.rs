//! `hsm-custody`: provision keys into a PKCS#11 token and sign with them.
//!
//! `main` only parses arguments, runs one command and maps errors to exit codes; every command
//! lives in its own file and calls the library.

#[cfg(feature = "agent")]
mod agent;
mod audit;
mod cli;
mod doctor;
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
            match err.downcast_ref::<hsm_custody::Error>() {
                Some(
                    hsm_custody::Error::PinIncorrect { .. } | hsm_custody::Error::PinLocked { .. },
                ) => ExitCode::from(3),
                // Bad input or bad configuration (the agent's systemd unit does not restart on
                // 2: a configuration it refused is refused again).
                Some(
                    hsm_custody::Error::InvalidInput(_)
                    | hsm_custody::Error::RequestRefused { .. }
                    | hsm_custody::Error::KeyExists { .. }
                    | hsm_custody::Error::Config(_),
                ) => ExitCode::from(2),
                // A guard-rail refusal: its own code, so that scripts can tell it from a typo.
                Some(
                    hsm_custody::Error::PolicyDenied { .. }
                    | hsm_custody::Error::RateLimited { .. },
                ) => ExitCode::from(4),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
