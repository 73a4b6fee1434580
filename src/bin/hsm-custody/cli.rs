//! Argument parsing and dispatch.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use hsm_custody::{Config, Custody, Error, GuardConfig, Guardrails};

/// Keep exchange API secrets inside a PKCS#11 token and sign in the token.
#[derive(Parser, Debug)]
#[command(name = "hsm-custody", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach the token (flags win over the environment).
#[derive(Args, Debug)]
pub struct Global {
    /// TOML configuration file (module, token, pin_file, [pool]).
    #[arg(long, global = true, env = "HSM_CUSTODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// PKCS#11 module path.
    #[arg(long, global = true, env = "HSM_CUSTODY_MODULE")]
    pub module: Option<PathBuf>,
    /// Token label.
    #[arg(long, global = true, env = "HSM_CUSTODY_TOKEN")]
    pub token: Option<String>,
    /// File holding the user PIN (else HSM_CUSTODY_PIN_FILE, else HSM_CUSTODY_PIN; the agent
    /// refuses HSM_CUSTODY_PIN).
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// MAC the bytes read from stdin with a key, in the token.
    Sign(crate::sign::SignArgs),
    /// Sign an exchange request described by a JSON file; prints the signed request as JSON.
    SignRequest(crate::sign_request::SignRequestArgs),
    /// Check the module and audit every key in the token for the hardened attributes.
    Doctor(crate::doctor::DoctorArgs),
    /// Run a signing agent on a Unix socket: it holds the login, clients send sign requests.
    #[cfg(feature = "agent")]
    Agent(crate::agent::AgentArgs),
    /// Run the re-signing gateway for unmodified bots (ccxt, freqtrade): docs/gateway.md.
    #[cfg(feature = "gateway")]
    Gateway(crate::gateway::GatewayArgs),
    /// Guard rails' audit log: verify the MAC chain, tail, usage summary.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Import an exchange API secret (from the terminal without echo, or from stdin).
    Import(crate::key_import::ImportArgs),
    /// Take into custody an HMAC key another tool put in the token (TPM `tpm2_ptool import`,
    /// an HSM's key ceremony): checks its attributes, proves it signs, writes metadata.
    Adopt(crate::key_import::AdoptArgs),
    /// List the keys in the token: names, kinds, versions, expiry, flags; never values.
    List(crate::key_list::ListArgs),
    /// Show every version of a key with its state and validity.
    Versions(crate::key_lifecycle::VersionsArgs),
    /// Staged rotation: begin (new pending version), promote, retire.
    #[command(subcommand)]
    Rotate(crate::key_lifecycle::RotateCommand),
    /// Destroy a version (or all versions) of a key at once.
    Revoke(crate::key_lifecycle::RevokeArgs),
    /// Generate an Ed25519, P-256 or RSA-2048 key pair inside the token.
    Generate(crate::key_lifecycle::GenerateArgs),
    /// Print a key's public key (PEM, SubjectPublicKeyInfo) for registering with the exchange.
    Public(crate::key_lifecycle::PublicArgs),
}

impl Global {
    /// Builds the connection configuration: config file, then flags and environment.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => {
                let module = self
                    .module
                    .clone()
                    .context("no PKCS#11 module: pass --module or set HSM_CUSTODY_MODULE")?;
                let token = self
                    .token
                    .clone()
                    .context("no token label: pass --token or set HSM_CUSTODY_TOKEN")?;
                Config::new(module, token).pin_from_env()?
            }
        };
        if let Some(path) = &self.pin_file {
            config = config.pin_file(path)?;
        }
        if let Some(params) = self.module_init_params.as_ref().filter(|p| !p.is_empty()) {
            config = config.module_init_params(params.clone());
        }
        if self.danger_accept_non_custody_module {
            // The library warns through `tracing`, which this binary does not print.
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
        let label = config.token_label().to_owned();
        let custody = match Custody::connect(config) {
            Ok(c) => c,
            Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) => {
                if let Some(g) = &guard_config {
                    if let Err(note) =
                        hsm_custody::audit::record_login_failure(&g.audit, &label, &e.to_string())
                    {
                        eprintln!(
                            "hsm-custody: warning: the failed login could not be noted for the \
                             audit log: {note}"
                        );
                    }
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
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

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Key(KeyCommand::Import(args)) => crate::key_import::run(&cli.global, args),
        Command::Key(KeyCommand::Adopt(args)) => crate::key_import::adopt(&cli.global, args),
        Command::Key(KeyCommand::List(args)) => crate::key_list::run(&cli.global, args),
        Command::Key(KeyCommand::Versions(args)) => {
            crate::key_lifecycle::versions(&cli.global, args)
        }
        Command::Key(KeyCommand::Rotate(cmd)) => crate::key_lifecycle::rotate(&cli.global, cmd),
        Command::Key(KeyCommand::Revoke(args)) => crate::key_lifecycle::revoke(&cli.global, args),
        Command::Key(KeyCommand::Generate(args)) => {
            crate::key_lifecycle::generate(&cli.global, args)
        }
        Command::Key(KeyCommand::Public(args)) => crate::key_lifecycle::public(&cli.global, args),
        Command::Sign(args) => crate::sign::run(&cli.global, args),
        Command::SignRequest(args) => crate::sign_request::run(&cli.global, args),
        Command::Doctor(args) => crate::doctor::run(&cli.global, args),
        #[cfg(feature = "agent")]
        Command::Agent(args) => crate::agent::run(&cli.global, args),
        #[cfg(feature = "gateway")]
        Command::Gateway(args) => crate::gateway::run(&cli.global, args),
        Command::Audit(cmd) => crate::audit::run(&cli.global, cmd),
    }
}
