//! `hsm-custody key import`: an exchange API secret into the token.

use clap::Args;
use hsm_custody::SecretEncoding;

use super::{hmac_spec, reused_name, yes_no};
use crate::global::Global;
use crate::input::{read_secret, CredentialArgs, ValidityArgs};
use crate::values::{Encoding, ImportKind};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Name of the new key (never overwrites a usable one; under a name whose versions were
    /// all revoked, the import is its next version, active at once).
    #[arg(long)]
    pub name: String,
    /// Exchange the key is for (binance, kraken, okx ...): binds the key and picks the encoding.
    #[arg(long)]
    pub exchange: Option<String>,
    /// How the exchange shows the secret: raw text or base64 (default: the exchange's, else raw).
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// Import an exchange-issued Ed25519 private key (base64 seed, or 64 bytes seed||public as
    /// Coinbase CDP hands out) instead of an HMAC secret.
    #[arg(long = "type", value_enum, default_value_t = ImportKind::Hmac)]
    pub kind: ImportKind,
    #[command(flatten)]
    pub validity: ValidityArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Accept a secret with a line break inside it (refused by default: two pasted lines).
    #[arg(long)]
    pub allow_newline: bool,
}

pub fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
    let (spec, mut encoding) = hmac_spec(&args.name, args.exchange.as_deref(), &args.validity)?;
    if let Some(e) = args.encoding {
        let chosen = SecretEncoding::from(e);
        if let Some(default) = encoding.filter(|d| *d != chosen) {
            eprintln!(
                "note: overriding the exchange's `{default}` secret encoding with `{chosen}`"
            );
        }
        encoding = Some(chosen);
    }
    let spec = args
        .credentials
        .apply(spec.encoding(encoding.unwrap_or_default()))?;
    let secret = read_secret(args.allow_newline)?;
    let custody = global.connect()?;
    let info = match args.kind {
        ImportKind::Ed25519 => custody.import_ed25519_key(spec, secret)?,
        ImportKind::Hmac => custody.import_hmac_secret(spec, secret)?,
    };
    println!(
        "imported `{}` into token `{}`{} (exchange: {}, encoding: {}, sensitive: {}, extractable: {})",
        info.name,
        custody.token_label(),
        reused_name(&info),
        info.exchange.as_deref().unwrap_or("-"),
        info.encoding.map(|e| e.name()).unwrap_or("-"),
        yes_no(info.flags.sensitive),
        yes_no(info.flags.extractable),
    );
    Ok(())
}
