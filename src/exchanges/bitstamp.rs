//! Bitstamp v2.
//!
//! `X-Auth-Signature = hex(HMAC-SHA256(secret, "BITSTAMP " + api_key || METHOD || host || path
//! || ["?" query] || [content-type] || nonce || timestamp || "v2" || [body]))`. With a `body`,
//! the content type `application/x-www-form-urlencoded` is signed and sent; without one neither
//! is signed and no body is invented. Nonce: a lowercase UUIDv4 (default: random); timestamp in
//! ms (default: the clock); host default `www.bitstamp.net`.

use super::encode::uuid_v4;
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Bitstamp v2 (id `bitstamp`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitstamp;

const FORM: &str = "application/x-www-form-urlencoded";

impl Exchange for Bitstamp {
    fn id(&self) -> &str {
        "bitstamp"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let host = req.host.as_deref().unwrap_or("www.bitstamp.net");
        let nonce = req.nonce.clone().unwrap_or_else(uuid_v4);
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let method = req.method.clone().unwrap_or_else(|| "POST".to_owned());
        let query = req.query_or_empty();
        let query_part = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let body = req.body.as_deref().filter(|b| !b.is_empty());
        let content_type = if body.is_some() { FORM } else { "" };
        let prehash = format!(
            "BITSTAMP {}{method}{host}{}{query_part}{content_type}{nonce}{ts}v2{}",
            req.api_key_or_empty(),
            req.path_or_empty(),
            body.unwrap_or("")
        );
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            query,
            body.unwrap_or(""),
            signature.clone(),
        )
        .with_header("X-Auth", format!("BITSTAMP {}", req.api_key_or_empty()))
        .with_header("X-Auth-Signature", signature)
        .with_header("X-Auth-Nonce", nonce)
        .with_header("X-Auth-Timestamp", ts)
        .with_header("X-Auth-Version", "v2");
        if body.is_some() {
            signed = signed.with_header("Content-Type", FORM);
        }
        Ok(signed)
    }
}
