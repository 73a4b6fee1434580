//! Gate.io APIv4.
//!
//! `SIGN = hex(HMAC-SHA512(secret, METHOD \n path \n query \n hex(SHA512(body)) \n timestamp))`,
//! no trailing newline; the body hash runs on the host, the query is signed as sent (no
//! re-sorting), the timestamp is Unix seconds (default: the clock).

use super::encode::sha512_hex;
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// Gate.io APIv4 (id `gate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gate;

impl Exchange for Gate {
    fn id(&self) -> &str {
        "gate"
    }

    fn sign(&self, req: &Request, mac: &dyn Mac, ctx: &Context<'_>) -> Result<SignedRequest> {
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_s().to_string());
        let method = req.method_or_get();
        let body = req.body_or_empty();
        let prehash = format!(
            "{method}\n{}\n{}\n{}\n{ts}",
            req.path_or_empty(),
            req.query_or_empty(),
            sha512_hex(body.as_bytes())
        );
        let signature = mac.mac(HmacAlg::HmacSha512, prehash.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("KEY", req.api_key.as_deref())
        .with_header("Timestamp", ts)
        .with_header("SIGN", signature)
        .with_header("Content-Type", "application/json"))
    }
}
