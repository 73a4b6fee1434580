//! `hsm-custody sign-request`: sign an exchange request described by a JSON file.
//!
//! The key's kind picks the scheme variant: HMAC keys sign as before; Ed25519/RSA keys sign
//! Binance requests (base64 `signature`), RSA keys Bybit requests, and P-256/Ed25519 keys build
//! the Coinbase Advanced Trade JWT (`coinbase-advanced`). The output contract is the same.

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
    /// Exchange id: binance, binance-usdm, binance-ws, kraken, coinbase-exchange, okx, bybit,
    /// bitget, kucoin, gemini, bitmex, bitfinex, gate, deribit, htx, cryptocom, bitstamp, mexc,
    /// mexc-futures; with asymmetric keys: binance, binance-usdm, binance-ws (Ed25519, RSA),
    /// bybit (RSA), coinbase-advanced (P-256, Ed25519).
    #[arg(long)]
    pub exchange: String,
    /// JSON file describing the request: {"method","path","query","body","timestamp","nonce",
    /// "expires","api_key","recv_window","passphrase","host"} (any subset). Validated against
    /// the exchange's grammar: a timestamp, nonce or expiry must be within the `[signing]`
    /// limits of the clock (leave them out and the crate sets them), an API key or passphrase
    /// must equal the one recorded with the key. coinbase-advanced: api_key = the CDP key name,
    /// timestamp = nbf in seconds.
    #[arg(long)]
    pub request: PathBuf,
}

pub fn run(global: &Global, args: SignRequestArgs) -> anyhow::Result<()> {
    let text = input::read_file("request file", &args.request)?;
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
    let signer = custody.exchange_signer_for(&args.key, &args.exchange)?;
    let signed = signer.sign(&request)?;
    println!("{}", signed.to_json());
    Ok(())
}
