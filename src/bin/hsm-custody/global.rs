//! The options every command takes (how to reach the token), the configuration they build, and
//! the connection with its guard rails, synced at exit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use clap::Args;
use hsm_custody::{Config, Custody, Error, GuardConfig, Guardrails, PinSource};
use secrecy::SecretString;

use crate::exit;
use crate::logging::LogFormat;

/// How to reach the token (flags win over the environment).
#[derive(Args, Debug)]
#[command(next_help_heading = "Token options (every command)")]
pub struct Global {
    /// TOML configuration file (module, token, pin_file, [pool], [signing], [audit], [keys],
    /// [agent]); read once, unknown keys refused.
    #[arg(long, global = true, env = "HSM_CUSTODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// PKCS#11 module path.
    #[arg(long, global = true, env = "HSM_CUSTODY_MODULE")]
    pub module: Option<PathBuf>,
    /// Token label.
    #[arg(long, global = true, env = "HSM_CUSTODY_TOKEN")]
    pub token: Option<String>,
    /// File holding the user PIN (else HSM_CUSTODY_PIN_FILE, else HSM_CUSTODY_PIN, else, on a
    /// terminal, asked without echo; the agent refuses HSM_CUSTODY_PIN).
    #[arg(long, global = true)]
    pub pin_file: Option<PathBuf>,
    /// Parameter string for the module's C_Initialize (NSS softokn: "configdir='sql:/path' ...").
    #[arg(long, global = true, env = "HSM_CUSTODY_MODULE_INIT_PARAMS")]
    pub module_init_params: Option<String>,
    /// DANGER: use a module that lets non-extractable keys out (fails the custody probe, e.g.
    /// NSS softokn). Any code that can log in can then take every key.
    #[arg(
        long,
        global = true,
        env = "HSM_CUSTODY_DANGER_ACCEPT_NON_CUSTODY_MODULE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub danger_accept_non_custody_module: bool,
    /// Log lines on stderr as text or as JSON objects, one a line (for journald); which
    /// lines: RUST_LOG (default `info` for agent and gateway, `warn` otherwise).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HSM_CUSTODY_LOG_FORMAT",
        default_value_t = LogFormat::Text,
        help_heading = "Logging (every command)"
    )]
    pub log_format: LogFormat,
}

impl Global {
    /// Builds the configuration: config file (read once: the guard rails and the agent take
    /// their sections from the result), then flags and environment.
    ///
    /// # Errors
    /// Every failure is a configuration error (exit 2), an unreadable file included.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => {
                let module = self.module.clone().ok_or_else(|| {
                    exit::config("no PKCS#11 module: pass --module or set HSM_CUSTODY_MODULE")
                })?;
                let token = self.token.clone().ok_or_else(|| {
                    exit::config("no token label: pass --token or set HSM_CUSTODY_TOKEN")
                })?;
                Config::new(module, token).pin_from_env()?
            }
        };
        if let Some(path) = &self.pin_file {
            config = config.pin_file(path)?;
        }
        if config.pin_source() == &PinSource::None && terminal_present() {
            let pin = prompt_pin(config.token_label())?;
            config = config.pin(pin);
        }
        if let Some(params) = self.module_init_params.as_ref().filter(|p| !p.is_empty()) {
            config = config.module_init_params(params.clone());
        }
        if self.danger_accept_non_custody_module {
            // Said whatever RUST_LOG filters out: the library's own warning is a log line.
            eprintln!(
                "hsm-custody: DANGER: --danger-accept-non-custody-module is set: a module that lets \
                 non-extractable keys out will be used anyway"
            );
            config = config.danger_accept_non_custody_module(true);
        }
        Ok(config)
    }

    /// Connects; with guard rails when the config file has `[audit]` or `[keys]`.
    pub fn connect(&self) -> anyhow::Result<Custody> {
        Ok(self.connect_guarded()?.0)
    }

    /// Connects and, when the config file has `[audit]` or `[keys]`, installs the guard rails
    /// (policy before every signature, an audit line for every signature and key change).
    ///
    /// A refused login (wrong or locked PIN) cannot be MACed into the log, as no session is
    /// logged in: it is noted in the log's pending file, which the next writer that logs in
    /// (this agent's next start, or the running agent within a second) records in the chain.
    pub fn connect_guarded(&self) -> anyhow::Result<(Custody, Option<Arc<Guardrails>>)> {
        self.connect_guarded_with(self.config()?)
    }

    /// [`Global::connect_guarded`] with a configuration already built by [`Global::config`].
    pub fn connect_guarded_with(
        &self,
        config: Config,
    ) -> anyhow::Result<(Custody, Option<Arc<Guardrails>>)> {
        let guard_config = GuardConfig::from_config(&config)?;
        let custody = connect_noting_failed_login(config, guard_config.as_ref())?;
        let guard = match guard_config {
            Some(g) => Some(Guardrails::install(&custody, g).context("guard rails")?),
            None => None,
        };
        if let Some(guard) = &guard {
            *GUARDED.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((custody.clone(), guard.clone()));
        }
        Ok((custody, guard))
    }
}

impl Global {
    /// Connects without guard rails, for commands that sign nothing and change nothing (`key
    /// list`): the audit log is not opened for writing (a running agent may hold it). A refused
    /// login is still noted for the audit log, as [`Global::connect_guarded`] does.
    pub fn connect_unguarded(&self, config: Config) -> anyhow::Result<Custody> {
        let guard_config = GuardConfig::from_config(&config)?;
        connect_noting_failed_login(config, guard_config.as_ref())
    }
}

/// Connects; a refused login (wrong or locked PIN) is noted in the audit log's pending file
/// when there is a log, for its writer to record (no session is logged in to MAC it here).
fn connect_noting_failed_login(
    config: Config,
    guard_config: Option<&GuardConfig>,
) -> anyhow::Result<Custody> {
    let label = config.token_label().to_owned();
    match Custody::connect(config) {
        Ok(c) => Ok(c),
        Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) => {
            if let Some(g) = guard_config {
                if let Err(note) =
                    hsm_custody::audit::record_login_failure(&g.audit, &label, &e.to_string())
                {
                    eprintln!(
                        "hsm-custody: warning: the failed login could not be noted for the \
                         audit log: {note}"
                    );
                }
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The guard rails of this run, with a handle on their `Custody`: the audit log MACs through
/// the `Custody` without keeping it alive, so the last sync ([`finish`]) needs one.
static GUARDED: Mutex<Option<(Custody, Arc<Guardrails>)>> = Mutex::new(None);

/// At exit: forces the audit log to disk and saves its chain head, in its file and in the
/// token (so that the token's copy covers this run's last lines too).
pub fn finish() -> anyhow::Result<()> {
    let guarded = GUARDED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some((custody, guard)) = guarded {
        guard.sync().context("syncing the audit log")?;
        drop(custody);
    }
    Ok(())
}

/// Whether a person can be asked: stdin or stderr is a terminal (stdin may be piped data, as for
/// `sign`; the prompt is read from the controlling terminal, as `pkcs11-tool` does).
fn terminal_present() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() || std::io::stderr().is_terminal()
}

/// The user PIN, typed at the terminal without echo (no PIN configured and a terminal present).
///
/// # Errors
/// Nothing was typed (bad input, exit 2), or the terminal cannot be read.
fn prompt_pin(token: &str) -> anyhow::Result<SecretString> {
    let typed = zeroize::Zeroizing::new(
        rpassword::prompt_password(format!("User PIN for token `{token}` (not echoed): "))
            .context("reading the PIN from the terminal")?,
    );
    if typed.is_empty() {
        return Err(exit::input(
            "no PIN typed; or give one with --pin-file, pin_file or HSM_CUSTODY_PIN_FILE",
        ));
    }
    Ok(SecretString::from(typed.as_str()))
}
