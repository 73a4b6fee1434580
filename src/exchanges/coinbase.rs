//! Coinbase Exchange (ex-Pro/GDAX).
//!
//! `CB-ACCESS-SIGN = base64(HMAC-SHA256(base64decode(secret),
//! timestamp || METHOD || path(?query) || body))`. The timestamp is Unix seconds (decimals
//! allowed; default: the clock's whole seconds) and is sent as signed in `CB-ACCESS-TIMESTAMP`.
//! The passphrase is sent as plaintext in `CB-ACCESS-PASSPHRASE`.

use super::encode::{base64, path_with_query};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Coinbase Exchange (id `coinbase-exchange`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CoinbaseExchange;

impl Exchange for CoinbaseExchange {
    fn id(&self) -> &str {
        "coinbase-exchange"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_s().to_string());
        let method = req.method_or_get();
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{ts}{method}{target}{body}");
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("CB-ACCESS-KEY", req.api_key.as_deref())
        .with_header("CB-ACCESS-SIGN", signature)
        .with_header("CB-ACCESS-TIMESTAMP", ts)
        .with_header_opt("CB-ACCESS-PASSPHRASE", req.passphrase.as_deref());
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
