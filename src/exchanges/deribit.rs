//! Deribit v2.
//!
//! `Signature = hex(HMAC-SHA256(ClientSecret, Timestamp \n Nonce \n Data))`, timestamp in ms
//! (default: the clock), nonce free-form (default: the nonce source).
//! - A request with neither `method` nor `path` is the WebSocket `public/auth` form
//!   (`grant_type=client_signature`): Data is the `body` (empty if absent), and the signed
//!   body is the `public/auth` params object (client_id, timestamp, signature, nonce, data).
//! - Otherwise HTTP: Data is `METHOD \n URI(?query) \n body \n` and the header is
//!   `Authorization: deri-hmac-sha256 id=<api_key>,ts=<ts>,sig=<sig>,nonce=<nonce>`.

use super::encode::path_with_query;
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Deribit v2 (id `deribit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deribit;

impl Exchange for Deribit {
    fn id(&self) -> &str {
        "deribit"
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
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let nonce = req.nonce.clone().unwrap_or_else(|| ctx.nonce().to_string());
        let body = req.body_or_empty();
        let http = req.method.is_some() || req.path.is_some();
        let data = if http {
            format!(
                "{}\n{}\n{body}\n",
                req.method_or_get(),
                path_with_query(req.path_or_empty(), req.query_or_empty())
            )
        } else {
            body.to_owned()
        };
        let prehash = format!("{ts}\n{nonce}\n{data}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        if http {
            let auth = format!(
                "deri-hmac-sha256 id={},ts={ts},sig={signature},nonce={nonce}",
                req.api_key_or_empty()
            );
            return Ok(SignedRequest::new(
                req.method_or_get(),
                req.path_or_empty(),
                req.query_or_empty(),
                body,
                signature,
            )
            .with_header("Authorization", auth));
        }
        // WebSocket: the body to send is the `public/auth` params object.
        let ts_json = match ts.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(ts.clone()),
        };
        let params = serde_json::json!({
            "grant_type": "client_signature",
            "client_id": req.api_key_or_empty(),
            "timestamp": ts_json,
            "signature": signature,
            "nonce": nonce,
            "data": data,
        });
        Ok(SignedRequest::new(
            "",
            "",
            "",
            params.to_string(),
            signature,
        ))
    }
}
