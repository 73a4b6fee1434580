//! `hsm-custody key rotate begin | promote | retire`: staged rotation.

use clap::{Args, Subcommand};
use hsm_custody::{KeyKind, KeySpec, NewVersion};

use super::version_list;
use crate::global::Global;
use crate::input::{parse_date, read_secret, CredentialArgs};

#[derive(Subcommand, Debug)]
pub enum RotateCommand {
    /// Add a new pending version: a new secret (HMAC keys, read like `key import`) or a new key
    /// pair generated in the token (asymmetric keys).
    Begin(BeginArgs),
    /// Make the pending version active; the active one stays usable as previous.
    Promote(NameArgs),
    /// Destroy previous versions (all, or --version).
    Retire(RetireArgs),
}

#[derive(Args, Debug)]
pub struct BeginArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// First valid day of the new version (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_before: Option<time::Date>,
    /// Last valid day of the new version (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_after: Option<time::Date>,
    /// New exchange credentials for the new version (default: the active version's).
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Accept a secret with a line break inside it (refused by default: two pasted lines).
    #[arg(long)]
    pub allow_newline: bool,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct RetireArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// Only this previous version.
    #[arg(long)]
    pub version: Option<u32>,
}

pub fn run(global: &Global, cmd: RotateCommand) -> anyhow::Result<()> {
    match cmd {
        RotateCommand::Begin(args) => begin(global, args),
        RotateCommand::Promote(args) => {
            let custody = global.connect()?;
            let v = custody.rotate_promote(&args.name)?;
            let previous: Vec<u32> = custody
                .key_info(&args.name)?
                .versions
                .iter()
                .filter(|p| p.state == hsm_custody::VersionState::Previous)
                .map(|p| p.version)
                .collect();
            if previous.is_empty() {
                println!(
                    "`{}` v{} is active and signs by default; no earlier version is left usable",
                    args.name, v.version
                );
            } else {
                println!(
                    "`{}` v{} is active and signs by default; {} stays usable for overlap until `hsm-custody key rotate retire --name {}`",
                    args.name,
                    v.version,
                    super::version_list(&previous),
                    args.name
                );
            }
            Ok(())
        }
        RotateCommand::Retire(args) => {
            let retired = global.connect()?.rotate_retire(&args.name, args.version)?;
            println!(
                "`{}`: retired and destroyed {}",
                args.name,
                version_list(&retired)
            );
            Ok(())
        }
    }
}

fn begin(global: &Global, args: BeginArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let Some(kind) = custody.key_info(&args.name)?.kind else {
        anyhow::bail!(
            "key `{}` was not created by hsm-custody: it has no versions to rotate",
            args.name
        );
    };
    let new = if kind == KeyKind::Hmac {
        NewVersion::Hmac(read_secret(args.allow_newline)?)
    } else {
        NewVersion::Generate
    };
    let mut spec = KeySpec::hmac(&args.name);
    if let Some(d) = args.not_before {
        spec = spec.not_before(d);
    }
    if let Some(d) = args.not_after {
        spec = spec.not_after(d);
    }
    let spec = args.credentials.apply(spec)?;
    let v = custody.rotate_begin(spec, new)?;
    println!(
        "`{}` v{} is pending (self-check passed); test it, then `hsm-custody key rotate promote --name {}`",
        args.name, v.version, args.name
    );
    Ok(())
}
