//! BitMEX.
//!
//! `api-signature = hex(HMAC-SHA256(secret, VERB || path(?query, URL-encoded as sent) ||
//! expires || body))`, `api-expires` in Unix seconds (default: the clock + 60 s). A request with
//! a `nonce` and no `expires` uses the legacy `api-nonce` header in the same position.

use super::encode::path_with_query;
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// BitMEX (id `bitmex`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitmex;

impl Exchange for Bitmex {
    fn id(&self) -> &str {
        "bitmex"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let (header, value) = match (&req.expires, &req.nonce) {
            (Some(e), _) => ("api-expires", e.clone()),
            (None, Some(n)) => ("api-nonce", n.clone()),
            (None, None) => ("api-expires", (ctx.now_s() + 60).to_string()),
        };
        let method = req.method_or_get();
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{method}{target}{value}{body}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("api-key", req.api_key.as_deref())
        .with_header(header, value)
        .with_header("api-signature", signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
