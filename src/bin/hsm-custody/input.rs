//! What commands read besides their flags: secrets (terminal or stdin), passphrase files,
//! dates, and the argument groups several commands share.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use clap::Args;
use hsm_custody::{KeySpec, SecretString};
use zeroize::Zeroizing;

use crate::exit;

/// A key's validity dates.
#[derive(Args, Debug, Default)]
pub struct ValidityArgs {
    /// First valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_before: Option<time::Date>,
    /// Last valid day (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub not_after: Option<time::Date>,
}

impl ValidityArgs {
    /// Adds the dates to `spec`.
    pub fn apply(&self, mut spec: KeySpec) -> KeySpec {
        if let Some(d) = self.not_before {
            spec = spec.not_before(d);
        }
        if let Some(d) = self.not_after {
            spec = spec.not_after(d);
        }
        spec
    }
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
    pub passphrase_file: Option<PathBuf>,
}

impl CredentialArgs {
    /// Adds the credentials to `spec`.
    ///
    /// # Errors
    /// The passphrase file cannot be read or is empty (bad input, exit 2).
    pub fn apply(&self, mut spec: KeySpec) -> anyhow::Result<KeySpec> {
        if let Some(k) = &self.api_key {
            spec = spec.api_key(k.clone());
        }
        if let Some(path) = &self.passphrase_file {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                exit::input(format!(
                    "reading the passphrase file `{}`: {e}",
                    path.display()
                ))
            })?);
            let trimmed = text.trim_end_matches(['\n', '\r']);
            if trimmed.is_empty() {
                return Err(exit::input("the passphrase file is empty"));
            }
            spec = spec.passphrase(SecretString::from(trimmed));
        }
        Ok(spec)
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<time::Date, String> {
    time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// A secret from the terminal without echo, or all of stdin when piped; surrounding whitespace
/// (`echo`'s newline) is dropped. A line break inside it is refused unless `allow_newline`:
/// two pasted lines would otherwise import as one secret that signs nothing right.
///
/// # Errors
/// Nothing was given, or a line break inside (bad input, exit 2), or stdin or the terminal
/// cannot be read.
pub fn read_secret(allow_newline: bool) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        Zeroizing::new(rpassword::prompt_password("API secret (not echoed): ")?)
    } else {
        let mut buf = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_to_string(&mut buf)
            .map_err(|e| exit::input(format!("reading the secret from stdin: {e}")))?;
        buf
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(exit::input("no secret given on stdin"));
    }
    if !allow_newline && trimmed.contains(['\n', '\r']) {
        return Err(exit::input(
            "the secret read from stdin has a line break inside it (more than one line \
             pasted?); give it on one line, or pass --allow-newline if the exchange's secret \
             really holds one",
        ));
    }
    Ok(SecretString::from(trimmed))
}

/// An input file the user named (a request description ...).
///
/// # Errors
/// The file cannot be read (bad input, exit 2).
pub fn read_file(what: &str, path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| exit::input(format!("reading {what} `{}`: {e}", path.display())))
}
