//! `hsm-custody sign-request`: sign an exchange request described by a JSON file.
//!
//! The key's kind picks the scheme variant: HMAC keys sign as before; Ed25519/RSA keys sign
//! Binance requests (base64 `signature`), RSA keys Bybit requests, and P-256/Ed25519 keys build
//! the Coinbase Advanced Trade JWT (`coinbase-advanced`). The output contract is the same.
//! `--version N` signs with that version of the key (a pending one to test before promoting).

use std::path::PathBuf;

use clap::Args;
use hsm_custody::exchanges::{self, Request};

use crate::global::Global;
use crate::{exit, input};

#[derive(Args, Debug)]
pub struct SignRequestArgs {
    /// Key name.
    #[arg(long)]
    pub key: String,
    /// Exchange id: binance, binance-usdm, binance-coinm, binance-ws, kraken, coinbase-exchange,
    /// okx, bybit, bitget, kucoin, gemini, bitmex, bitfinex, gate, deribit, htx, cryptocom,
    /// bitstamp, mexc, mexc-futures; with asymmetric keys: binance, binance-usdm, binance-coinm, binance-ws (Ed25519, RSA),
    /// bybit (RSA), coinbase-advanced (P-256, Ed25519).
    #[arg(long)]
    pub exchange: String,
    /// JSON file describing the request: {"method","path","query","body","timestamp","nonce",
    /// "expires","api_key","recv_window","passphrase","host"} (any subset). Validated against
    /// the exchange's grammar: a timestamp, nonce or expiry must be within the `[signing]`
    /// limits of the clock (leave them out and the crate sets them), an API key or passphrase
    /// must equal the one recorded with the key. coinbase-advanced: api_key = the CDP key name,
    /// timestamp = nbf in seconds. `-` reads it from stdin. A field not in that list is
    /// refused (a misspelt `recvWindow` would otherwise be dropped without a word).
    #[arg(long)]
    pub request: PathBuf,
    /// Sign with this version of the key instead of the active one: a pending version, to test
    /// it against the exchange before `key rotate promote` (with the API key recorded with
    /// it), or a previous one during the overlap. Policy and audit apply as to any request; a
    /// revoked, retired or missing version is an error.
    #[arg(long)]
    pub version: Option<u32>,
}

/// The fields a request description may hold (those `Request::from_json` reads).
const REQUEST_FIELDS: &[&str] = &[
    "method",
    "path",
    "query",
    "body",
    "timestamp",
    "nonce",
    "expires",
    "api_key",
    "recv_window",
    "passphrase",
    "host",
];

/// Largest request description read from stdin.
const MAX_STDIN_REQUEST: u64 = 1 << 20;

pub fn run(global: &Global, args: SignRequestArgs) -> anyhow::Result<()> {
    let text = if args.request.as_os_str() == "-" {
        use std::io::Read as _;
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_STDIN_REQUEST + 1)
            .read_to_string(&mut text)
            .map_err(|e| exit::input(format!("request from stdin: {e}")))?;
        if text.len() as u64 > MAX_STDIN_REQUEST {
            return Err(exit::input("request from stdin: larger than 1 MiB"));
        }
        text
    } else {
        input::read_file("request file", &args.request)?
    };
    refuse_unknown_fields(&text)?;
    let request = Request::from_json(&text)?;
    if exchanges::by_id(&args.exchange).is_none() {
        return Err(exit::input(format!(
            "unknown exchange `{}` (known: {})",
            args.exchange,
            exchanges::all_ids().collect::<Vec<_>>().join(", ")
        )));
    }
    let custody = global.connect()?;
    // The request is validated against the exchange's grammar and the inputs the crate owns
    // (`[signing]` limits), and the withdrawal guard applies even with no configuration.
    let signer = match args.version {
        Some(n) => custody.exchange_signer_for_version(&args.key, &args.exchange, n)?,
        None => custody.exchange_signer_for(&args.key, &args.exchange)?,
    };
    let signed = signer.sign(&request)?;
    println!("{}", signed.to_json());
    Ok(())
}

/// Text that is not JSON is an error naming the line and column (serde_json's messages say
/// what was expected there and never quote the text, which may hold a passphrase); an object
/// field `Request::from_json` would ignore is an error naming it and the known ones. Whatever
/// else is not a request (not an object, a field of the wrong type) is left to `from_json`.
fn refuse_unknown_fields(text: &str) -> anyhow::Result<()> {
    let map = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Ok(()),
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let what = e.to_string();
            let what = what
                .strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&what);
            return Err(exit::input(format!(
                "request is not valid JSON at line {line}, column {column}: {what}"
            )));
        }
    };
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !REQUEST_FIELDS.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(exit::input(format!(
        "unknown request field{} {} (known: {})",
        if unknown.len() == 1 { "" } else { "s" },
        unknown
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
        REQUEST_FIELDS.join(", ")
    )))
}
