//! `hsm-custody key versions|rotate|revoke|generate|public`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hsm_custody::{KeyKind, KeySpec, NewVersion};

use crate::cli::Global;
use crate::key_import::{parse_date, read_secret};

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// Key name.
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

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
    pub credentials: crate::key_import::CredentialArgs,
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

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// The version to revoke.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub version: Option<u32>,
    /// Revoke every usable version.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Name of the new key.
    #[arg(long)]
    pub name: String,
    /// Key type.
    #[arg(long = "type", value_parser = ["ed25519", "p256", "rsa2048"])]
    pub kind: String,
    /// Exchange the key is for (binds it).
    #[arg(long)]
    pub exchange: Option<String>,
    /// First valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_before: Option<time::Date>,
    /// Last valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_after: Option<time::Date>,
    #[command(flatten)]
    pub credentials: crate::key_import::CredentialArgs,
}

#[derive(Args, Debug)]
pub struct PublicArgs {
    /// Key name.
    #[arg(long)]
    pub name: String,
    /// Version (default: the active one).
    #[arg(long)]
    pub version: Option<u32>,
    /// PEM output (SubjectPublicKeyInfo); the only format so far, accepted for clarity.
    #[arg(long, default_value_t = true)]
    pub pem: bool,
}

pub fn versions(global: &Global, args: VersionsArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let info = custody.key_info(&args.name)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info.versions)?);
        return Ok(());
    }
    let today = time::OffsetDateTime::now_utc().date();
    println!(
        "key `{}` ({}), exchange: {}",
        info.name,
        info.kind,
        info.exchange.as_deref().unwrap_or("-")
    );
    println!(
        "{:<8} {:<9} {:<21} {:<11} {:<11} {:<9} ORIGIN",
        "VERSION", "STATE", "CREATED", "NOT-BEFORE", "NOT-AFTER", "VALID"
    );
    for v in &info.versions {
        let opt = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "v{:<7} {:<9} {:<21} {:<11} {:<11} {:<9} {}",
            v.version,
            v.state.name(),
            v.created,
            opt(v.not_before),
            opt(v.not_after),
            if !v.state.is_usable() {
                "-"
            } else if v.valid_on(today) {
                "yes"
            } else {
                "NO"
            },
            v.origin,
        );
    }
    Ok(())
}

pub fn rotate(global: &Global, cmd: RotateCommand) -> anyhow::Result<()> {
    match cmd {
        RotateCommand::Begin(args) => {
            let custody = global.connect()?;
            let kind: KeyKind = custody.key_info(&args.name)?.kind.parse()?;
            let new = if kind == KeyKind::Hmac {
                NewVersion::Hmac(read_secret()?)
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
        }
        RotateCommand::Promote(args) => {
            let v = global.connect()?.rotate_promote(&args.name)?;
            println!(
                "`{}` v{} is active; the previous version stays usable until retired",
                args.name, v.version
            );
        }
        RotateCommand::Retire(args) => {
            let retired = global.connect()?.rotate_retire(&args.name, args.version)?;
            println!("`{}`: retired and destroyed {}", args.name, list(&retired));
        }
    }
    Ok(())
}

pub fn revoke(global: &Global, args: RevokeArgs) -> anyhow::Result<()> {
    let revoked = global
        .connect()?
        .revoke(&args.name, if args.all { None } else { args.version })?;
    println!("`{}`: revoked and destroyed {}", args.name, list(&revoked));
    Ok(())
}

pub fn generate(global: &Global, args: GenerateArgs) -> anyhow::Result<()> {
    let kind: KeyKind = args.kind.parse()?;
    let mut spec = KeySpec::asymmetric(&args.name);
    if let Some(ex) = &args.exchange {
        spec = spec.exchange(ex);
    }
    if let Some(d) = args.not_before {
        spec = spec.not_before(d);
    }
    if let Some(d) = args.not_after {
        spec = spec.not_after(d);
    }
    let custody = global.connect()?;
    let spec = args.credentials.apply(spec)?;
    let info = custody.generate_key(spec, kind)?;
    let pem = custody
        .key(&info.name)?
        .public_key_pem()
        .context("reading the new public key")?;
    eprintln!(
        "generated {kind} key `{}` v1 in token `{}` (private key sensitive, non-extractable)",
        info.name,
        custody.token_label()
    );
    print!("{pem}");
    Ok(())
}

pub fn public(global: &Global, args: PublicArgs) -> anyhow::Result<()> {
    let custody = global.connect()?;
    let mut key = custody.key(&args.name)?;
    if let Some(v) = args.version {
        key = key.version(v);
    }
    print!("{}", key.public_key_pem()?);
    Ok(())
}

fn list(versions: &[u32]) -> String {
    versions
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
