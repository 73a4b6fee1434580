//! Bitfinex v2.
//!
//! `bfx-signature = hex(HMAC-SHA384(secret, "/api" || path || nonce || body))`, `path` being the
//! URL path as sent (`/v2/auth/...`), body `{}` when absent. The nonce must strictly increase
//! (default: the nonce source, microseconds).

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Bitfinex v2 (id `bitfinex`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitfinex;

impl Exchange for Bitfinex {
    fn id(&self) -> &str {
        "bitfinex"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let nonce = req.nonce.clone().unwrap_or_else(|| ctx.nonce().to_string());
        let body = match req.body_or_empty() {
            "" => "{}",
            b => b,
        };
        let path = req.path_or_empty();
        let prehash = format!("/api{path}{nonce}{body}");
        let signature = mac.mac(HmacAlg::HmacSha384, prehash.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            path,
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header("Content-Type", "application/json")
        .with_header("bfx-nonce", nonce)
        .with_header_opt("bfx-apikey", req.api_key.as_deref())
        .with_header("bfx-signature", signature))
    }
}
