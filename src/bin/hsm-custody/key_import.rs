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
}

pub fn run(global: &Global, args: ImportArgs) -> anyhow::Result<()> {
    let mut spec = KeySpec::hmac(&args.name);
    let mut encoding = None;
    if let Some(exchange) = &args.exchange {
        let profile = hsm_custody::exchanges::profile(exchange).with_context(|| {
            format!("unknown exchange `{exchange}` (see `hsm-custody sign-request --help`)")
        })?;
        spec = spec.exchange(exchange).algorithms(profile.algorithms);
        encoding = Some(profile.encoding);
    }
    if let Some(e) = &args.encoding {
        let chosen: SecretEncoding = e.parse()?;
        if let Some(default) = encoding.filter(|d| *d != chosen) {
            eprintln!(
                "note: overriding the exchange's `{default}` secret encoding with `{chosen}`"
            );
        }
        encoding = Some(chosen);
    }
    spec = spec.encoding(encoding.unwrap_or_default());
    let secret = read_secret()?;
    let custody = global.connect()?;
    let info = custody.import_hmac_secret(spec, secret)?;
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
fn read_secret() -> anyhow::Result<SecretString> {
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
