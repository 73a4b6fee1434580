//! `hsm-custody key ...`: provision, list and change keys.

mod adopt;
mod generate;
mod import;
mod list;
mod public;
mod revoke;
mod rotate;
mod versions;

use clap::Subcommand;
use hsm_custody::{KeySpec, SecretEncoding};

use crate::exit;
use crate::global::Global;
use crate::input::ValidityArgs;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Import an exchange API secret (from the terminal without echo, or from stdin).
    Import(import::ImportArgs),
    /// Take into custody an HMAC key another tool put in the token (TPM `tpm2_ptool import`,
    /// an HSM's key ceremony): checks its attributes, proves it signs, writes metadata.
    Adopt(adopt::AdoptArgs),
    /// List the keys in the token: names, kinds, versions, expiry, flags; never values.
    List(list::ListArgs),
    /// Show every version of a key with its state and validity.
    Versions(versions::VersionsArgs),
    /// Staged rotation: begin (new pending version), promote, retire.
    #[command(subcommand)]
    Rotate(rotate::RotateCommand),
    /// Destroy a version (or all versions) of a key at once.
    Revoke(revoke::RevokeArgs),
    /// Generate an Ed25519, P-256 or RSA-2048 key pair inside the token.
    Generate(generate::GenerateArgs),
    /// Print a key's public key (PEM, SubjectPublicKeyInfo) for registering with the exchange.
    Public(public::PublicArgs),
}

pub fn run(global: &Global, cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Import(args) => import::run(global, args),
        KeyCommand::Adopt(args) => adopt::run(global, args),
        KeyCommand::List(args) => list::run(global, args),
        KeyCommand::Versions(args) => versions::run(global, args),
        KeyCommand::Rotate(cmd) => rotate::run(global, cmd),
        KeyCommand::Revoke(args) => revoke::run(global, args),
        KeyCommand::Generate(args) => generate::run(global, args),
        KeyCommand::Public(args) => public::run(global, args),
    }
}

/// Versions as `v1, v2`.
fn version_list(versions: &[u32]) -> String {
    versions
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a new key's message says of its version: nothing for v1; for the next version of a
/// name whose versions were all revoked, which one and which went before.
fn reused_name(info: &hsm_custody::KeyInfo) -> String {
    let Some(v) = info.active_version.filter(|v| *v > 1) else {
        return String::new();
    };
    let gone: Vec<u32> = info
        .versions
        .iter()
        .filter(|x| x.version != v)
        .map(|x| x.version)
        .collect();
    format!(
        " as v{v}, a new version of a name whose earlier versions ({}) were revoked or retired",
        version_list(&gone)
    )
}

/// A key flag as the listings print it.
fn yes_no(f: Option<bool>) -> &'static str {
    match f {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// An HMAC key's spec: name, the exchange's binding and algorithms, validity dates; with the
/// exchange's secret encoding, if an exchange is named.
///
/// # Errors
/// An unknown exchange (bad input, exit 2).
fn hmac_spec(
    name: &str,
    exchange: Option<&str>,
    validity: &ValidityArgs,
) -> anyhow::Result<(KeySpec, Option<SecretEncoding>)> {
    let mut spec = KeySpec::hmac(name);
    let mut encoding = None;
    if let Some(exchange) = exchange {
        let profile = hsm_custody::exchanges::profile(exchange).ok_or_else(|| {
            exit::input(format!(
                "unknown exchange `{exchange}` (see `hsm-custody sign-request --help`)"
            ))
        })?;
        spec = spec.exchange(exchange).algorithms(profile.algorithms);
        encoding = Some(profile.encoding);
    }
    Ok((validity.apply(spec), encoding))
}
