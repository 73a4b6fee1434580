//! The command tree: one module per command, nested as on the command line.

#[cfg(feature = "agent")]
mod agent;
mod audit;
mod doctor;
#[cfg(feature = "gateway")]
mod gateway;
mod key;
mod sign;
mod sign_request;

use clap::{Parser, Subcommand};

use crate::global::Global;

/// Keep exchange API secrets inside a PKCS#11 token and sign in the token.
#[derive(Parser, Debug)]
#[command(name = "hsm-custody", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Sign the bytes read from stdin with a key, in the token (HMAC, Ed25519, P-256 or RSA).
    Sign(sign::SignArgs),
    /// Sign an exchange request described by a JSON file; prints the signed request as JSON.
    SignRequest(sign_request::SignRequestArgs),
    /// Check the module and audit every key in the token for the hardened attributes.
    Doctor(doctor::DoctorArgs),
    /// Run a signing agent on a Unix socket: it holds the login, clients send sign requests.
    #[cfg(feature = "agent")]
    Agent(agent::AgentArgs),
    /// Run the re-signing gateway for unmodified bots (ccxt, freqtrade): docs/gateway.md.
    #[cfg(feature = "gateway")]
    Gateway(gateway::GatewayArgs),
    /// Guard rails' audit log: verify the MAC chain, tail, usage summary.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

impl Command {
    /// A long-running server (`agent`, `gateway`), which logs each request; the other commands
    /// print their result and only warnings besides.
    pub fn is_server(&self) -> bool {
        match self {
            #[cfg(feature = "agent")]
            Command::Agent(_) => true,
            #[cfg(feature = "gateway")]
            Command::Gateway(_) => true,
            _ => false,
        }
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Key(cmd) => key::run(global, cmd),
        Command::Sign(args) => sign::run(global, args),
        Command::SignRequest(args) => sign_request::run(global, args),
        Command::Doctor(args) => doctor::run(global, args),
        #[cfg(feature = "agent")]
        Command::Agent(args) => agent::run(global, args),
        #[cfg(feature = "gateway")]
        Command::Gateway(args) => gateway::run(global, args),
        Command::Audit(cmd) => audit::run(global, cmd),
    }
}

/// A time as the CLI prints it: RFC 3339, as the audit log and the key metadata write it.
pub fn rfc3339(time: time::OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}
