//! Bitget v2.
//!
//! `ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path || ["?" query] ||
//! body))`, `?` only for a non-empty query. Timestamp in ms (default: the clock); passphrase as
//! plaintext in `ACCESS-PASSPHRASE`. The query is sent as given and signed **percent-decoded**
//! (`%E5%B8%81` as `币`), in its order: Bitget verifies the decoded query (its own samples sign
//! it unencoded; a signature over the encoded text gives `40009 sign signature error`), and
//! so does ccxt (checked against ccxt 4.5.90, `docs/ccxt-oracle.md`). Queries without escapes
//! are unchanged.

use super::encode::{base64, percent_decode_bytes};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Bitget v2 (id `bitget`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitget;

impl Exchange for Bitget {
    fn id(&self) -> &str {
        "bitget"
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
        let method = req.method_or_get();
        let body = req.body_or_empty();
        let mut prehash = format!("{ts}{method}{}", req.path_or_empty()).into_bytes();
        let query = req.query_or_empty().trim_start_matches('?');
        if !query.is_empty() {
            prehash.push(b'?');
            prehash.extend_from_slice(&percent_decode_bytes(query));
        }
        prehash.extend_from_slice(body.as_bytes());
        let signature = base64(mac.mac(HmacAlg::HmacSha256, &prehash)?.as_bytes());
        Ok(SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("ACCESS-KEY", req.api_key.as_deref())
        .with_header("ACCESS-SIGN", signature)
        .with_header("ACCESS-TIMESTAMP", ts)
        .with_header_opt("ACCESS-PASSPHRASE", req.passphrase.as_deref())
        .with_header("Content-Type", "application/json")
        .with_header("locale", "en-US"))
    }
}
