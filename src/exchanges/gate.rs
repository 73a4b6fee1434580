//! Gate.io APIv4.
//!
//! `SIGN = hex(HMAC-SHA512(secret, METHOD \n path \n query \n hex(SHA512(body)) \n timestamp))`,
//! no trailing newline; the body hash runs on the host, the timestamp is Unix seconds (default:
//! the clock). The query is sent as given and signed **percent-decoded** (`%2C` as `,`), in its
//! order: Gate verifies the query it decoded, so a signature over the encoded text fails
//! (`Signature mismatch`) for any value with an escape; ccxt signs the raw query too (checked
//! against ccxt 4.5.90 in `docs/ccxt-oracle.md`). Queries without escapes are unchanged.

use super::encode::{percent_decode_bytes, sha512_hex};
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
        let body = req.body_or_empty();
        let mut prehash = format!("{method}\n{}\n", req.path_or_empty()).into_bytes();
        prehash.extend_from_slice(&percent_decode_bytes(req.query_or_empty()));
        prehash.extend_from_slice(format!("\n{}\n{ts}", sha512_hex(body.as_bytes())).as_bytes());
        let signature = mac.mac(HmacAlg::HmacSha512, &prehash)?.to_hex();
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
