//! `hsm-custody key import`.

use std::io::{IsTerminal as _, Read as _};

use anyhow::Context as _;
use clap::Args;
use hsm_custody::{KeySpec, SecretEncoding, SecretString};
use zeroize::Zeroizing;

use crate::cli::Global;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Name of the new key (never overwrites an existing one).
    #[arg(long)]
    pub name: String,
    /// Exchange the key is for (binance, kraken, okx ...): binds the key and picks the encoding.
    #[arg(long)]
    pub exchange: Option<String>,
    /// How the exchange shows the secret: raw text or base64 (default: the exchange's, else raw).
    #[arg(long, value_parser = ["raw", "base64"])]
    pub encoding: Option<String>,
    /// Import an exchange-issued Ed25519 private key (base64 seed, or 64 bytes seed||public as
    /// Coinbase CDP hands out) instead of an HMAC secret.
    #[arg(long = "type", value_parser = ["hmac", "ed25519"], default_value = "hmac")]
    pub kind: String,
    /// First valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_before: Option<time::Date>,
    /// Last valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_after: Option<time::Date>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// The exchange credentials recorded with a key version.
#[derive(Args, Debug, Default)]
pub struct CredentialArgs {
    /// The exchange's public API key for this secret: signers send it and refuse requests that
    /// name another.
    #[arg(long)]
    pub api_key: Option<String>,
    /// A file holding the exchange's API passphrase (OKX, Coinbase Exchange, Bitget, KuCoin),
    /// recorded in the token's private metadata.
    #[arg(long)]
    pub passphrase_file: Option<std::path::PathBuf>,
}

impl CredentialArgs {
    /// Adds the credentials to `spec`.
    pub fn apply(&self, mut spec: KeySpec) -> anyhow::Result<KeySpec> {
        if let Some(k) = &self.api_key {
            spec = spec.api_key(k.clone());
        }
        if let Some(path) = &self.passphrase_file {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                    format!("reading the passphrase file `{}`", path.display())
                })?);
            let trimmed = text.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!trimmed.is_empty(), "the passphrase file is empty");
            spec = spec.passphrase(SecretString::from(trimmed));
        }
        Ok(spec)
    }
}

#[derive(Args, Debug)]
pub struct AdoptArgs {
    /// Label of the secret key already in the token; becomes the managed key's name.
    #[arg(long)]
    pub name: String,
    /// Exchange the key is for: binds the key and picks its HMAC algorithms.
    #[arg(long)]
    pub exchange: Option<String>,
    /// HMAC algorithm the key may use (repeatable; default: the exchange's, else all three).
    /// A TPM key is bound to one hash: name that one.
    #[arg(long = "algorithm", value_parser = ["hmac-sha256", "hmac-sha384", "hmac-sha512"])]
    pub algorithms: Vec<String>,
    /// First valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_before: Option<time::Date>,
    /// Last valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_after: Option<time::Date>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

/// `hsm-custody key adopt`: takes into custody an HMAC key provisioned by another tool.
pub fn adopt(global: &Global, args: AdoptArgs) -> anyhow::Result<()> {
    let (mut spec, _) = hmac_spec(
        &args.name,
        args.exchange.as_deref(),
        args.not_before,
        args.not_after,
    )?;
    if !args.algorithms.is_empty() {
        let algorithms = args
            .algorithms
            .iter()
            .map(|a| a.parse())
            .collect::<Result<Vec<hsm_custody::HmacAlg>, _>>()?;
        spec = spec.algorithms(&algorithms);
    }
    let spec = args.credentials.apply(spec)?;
    let custody = global.connect()?;
    let info = custody.adopt_hmac_key(spec)?;
    println!(
        "adopted `{}` in token `{}` (exchange: {}, algorithms: {}, sensitive: {}, extractable: {})",
        info.name,
        custody.token_label(),
        info.exchange.as_deref().unwrap_or("-"),
        info.algorithms
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(","),
        flag(info.flags.sensitive),
        flag(info.flags.extractable),
    );
    Ok(())
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<time::Date, String> {
    time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// An HMAC key's spec: name, the exchange's binding and algorithms, validity dates; with the
/// exchange's secret encoding, if an exchange is named.
fn hmac_spec(
    name: &str,
    exchange: Option<&str>,
    not_before: Option<time::Date>,
    not_after: Option<time::Date>,
) -> anyhow::Result<(KeySpec, Option<SecretEncoding>)> {
    let mut spec = KeySpec::hmac(name);
    let mut encoding = None;
    if let Some(exchange) = exchange {
        let profile = hsm_custody::exchanges::profile(exchange).with_context(|| {
            format!("unknown exchange `{exchange}` (see `hsm-custody sign-request --help`)")
        })?;
        spec = spec.exchange(exchange).algorithms(profile.algorithms);
        encoding = Some(profile.encoding);
    }
    if let Some(d) = not_before {
        spec = spec.not_before(d);
    }
    if let Some(d) = not_after {
        spec = spec.not_after(d);
    }
    Ok((spec, encoding))
}

pub fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
    let (mut spec, mut encoding) = hmac_spec(
        &args.name,
        args.exchange.as_deref(),
        args.not_before,
        args.not_after,
    )?;
    if let Some(e) = &args.encoding {
        let chosen: SecretEncoding = e.parse()?;
        if let Some(default) = encoding.filter(|d| *d != chosen) {
            eprintln!(
                "note: overriding the exchange's `{default}` secret encoding with `{chosen}`"
            );
        }
        encoding = Some(chosen);
    }
    spec = args
        .credentials
        .apply(spec.encoding(encoding.unwrap_or_default()))?;
    let secret = read_secret()?;
    let custody = global.connect()?;
    let info = if args.kind == "ed25519" {
        custody.import_ed25519_key(spec, secret)?
    } else {
        custody.import_hmac_secret(spec, secret)?
    };
    println!(
        "imported `{}` into token `{}` (exchange: {}, encoding: {}, sensitive: {}, extractable: {})",
        info.name,
        custody.token_label(),
        info.exchange.as_deref().unwrap_or("-"),
        info.encoding.map(|e| e.name()).unwrap_or("-"),
        flag(info.flags.sensitive),
        flag(info.flags.extractable),
    );
    Ok(())
}

fn flag(f: Option<bool>) -> &'static str {
    match f {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// From the terminal without echo, or all of stdin when piped.
pub fn read_secret() -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        Zeroizing::new(rpassword::prompt_password("API secret (not echoed): ")?)
    } else {
        let mut buf = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_to_string(&mut buf)
            .context("reading the secret from stdin")?;
        buf
    };
    let trimmed = text.trim();
    anyhow::ensure!(!trimmed.is_empty(), "no secret given on stdin");
    Ok(SecretString::from(trimmed))
}
