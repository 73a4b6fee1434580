//! Bybit v5.
//!
//! `X-BAPI-SIGN = hex(HMAC-SHA256(secret, timestamp || apiKey || recvWindow || payload))`; the
//! payload is the body when there is one (POST JSON as sent), else the query string as sent.
//! Timestamp in ms (default: the clock), receive window default `5000`.

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Bybit v5 (id `bybit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bybit;

impl Exchange for Bybit {
    fn id(&self) -> &str {
        "bybit"
    }

    fn sign(&self, req: &Request, mac: &dyn Mac, ctx: &Context<'_>) -> Result<SignedRequest> {
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let window = req.recv_window.clone().unwrap_or_else(|| "5000".to_owned());
        let body = req.body_or_empty();
        let payload = if body.is_empty() {
            req.query_or_empty()
        } else {
            body
        };
        let prehash = format!("{ts}{}{window}{payload}", req.api_key_or_empty());
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        let mut signed = SignedRequest::new(
            req.method_or_get(),
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("X-BAPI-API-KEY", req.api_key.as_deref())
        .with_header("X-BAPI-TIMESTAMP", ts)
        .with_header("X-BAPI-RECV-WINDOW", window)
        .with_header("X-BAPI-SIGN", signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
