//! The CLI's log output: the library's and the agent's or gateway's `tracing` events on stderr,
//! filtered by `RUST_LOG` (default `info` for `agent` and `gateway`, which log one line per
//! request, `warn` for the other commands), as text or, with `--log-format json`
//! (`HSM_CUSTODY_LOG_FORMAT=json`), as one JSON object a line for journald and log shippers.
//! Nothing the library logs holds a secret, a PIN, a signature or a message's bytes.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, target and the event's fields at the top).
    Json,
}

/// Installs the subscriber. `server`: a long-running command (`agent`, `gateway`): `RUST_LOG`
/// defaults to `info` (a line per request) and text lines carry the time and the target; for
/// the other commands it defaults to `warn` and text lines are level and message. A `RUST_LOG`
/// that does not parse is reported and the default used.
pub fn init(format: LogFormat, server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            match EnvFilter::try_new(&spec) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("hsm-custody: warning: RUST_LOG is not a valid filter ({e}); using `{default}`");
                    EnvFilter::new(default)
                }
            }
        }
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        // Plain text, no colours (the `ansi` feature is off): a terminal and journald alike.
        LogFormat::Text if server => builder.try_init(),
        LogFormat::Text => builder.without_time().with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if let Err(e) = installed {
        eprintln!("hsm-custody: warning: logging not set up: {e}");
    }
}
