//! From a command's outcome to the process's exit: the error and its hint on stderr, and the
//! exit code of the error's [`ErrorKind`](hsm_custody::ErrorKind), the one classification the
//! library gives every failure (`ErrorKind::exit_code`: 2 bad configuration or input, 3 PIN, 4
//! guard-rail refusal, 1 anything else). A file the configuration names that cannot be read is
//! the library's `Error::ConfigFile`, a configuration error already. Problems the CLI finds
//! itself (a missing flag, an unreadable input file) are made library errors of the right kind,
//! so that they exit the same way.

use std::process::ExitCode;

use hsm_custody::Error;

/// Prints the outcome and picks the exit code. `finished` is the audit log's last sync: its
/// failure is the outcome when the command succeeded, and is printed besides otherwise.
pub fn report(result: anyhow::Result<()>, finished: anyhow::Result<()>) -> ExitCode {
    let result = match (result, finished) {
        (Ok(()), synced) => synced,
        (Err(e), Err(sync)) => {
            eprintln!("hsm-custody: {sync:#}");
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
    };
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("hsm-custody: {err:#}");
    // The crate's error, wherever it sits in the context chain: its advice and its kind's exit
    // code (the agent's systemd unit does not restart on 2 or 3: a configuration or PIN it
    // refused is refused again).
    match err.downcast_ref::<Error>() {
        Some(e) => {
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.kind().exit_code())
        }
        None => ExitCode::FAILURE,
    }
}

/// A configuration problem the CLI finds (a missing `--module`, no `[audit]` section ...):
/// exits as [`ErrorKind::Config`](hsm_custody::ErrorKind::Config).
pub fn config(msg: impl Into<String>) -> anyhow::Error {
    Error::Config(msg.into()).into()
}

/// Bad input the CLI finds (an unreadable request file, an empty secret ...): exits as
/// [`ErrorKind::InvalidInput`](hsm_custody::ErrorKind::InvalidInput).
pub fn input(msg: impl Into<String>) -> anyhow::Error {
    Error::InvalidInput(msg.into()).into()
}
