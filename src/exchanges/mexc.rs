//! MEXC spot v3 and futures (contract v1).
//!
//! Spot is a Binance clone: `signature = hex(HMAC-SHA256(secret, query || body))`, header
//! `X-MEXC-APIKEY`, same `timestamp`/`recvWindow` handling as [`super::Binance`].
//!
//! Futures: `Signature = hex(HMAC-SHA256(secret, accessKey || Request-Time || paramString))`;
//! paramString is the body (raw JSON) when there is one, else the query as given (for GET, the
//! sorted URL-encoded `k=v&...`). `Request-Time` is the `timestamp` (ms, default: the clock).
//! Headers `ApiKey`, `Request-Time`, `Signature`, and `Recv-Window` when given.

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// MEXC spot v3 (id `mexc`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mexc;

impl Exchange for Mexc {
    fn id(&self) -> &str {
        "mexc"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        super::binance::sign_query_body(req, mac, ctx, "X-MEXC-APIKEY")
    }
}

/// MEXC futures, contract v1 (id `mexc-futures`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MexcFutures;

impl Exchange for MexcFutures {
    fn id(&self) -> &str {
        "mexc-futures"
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
        let body = req.body_or_empty();
        let params = if body.is_empty() {
            req.query_or_empty()
        } else {
            body
        };
        let prehash = format!("{}{ts}{params}", req.api_key_or_empty());
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            req.method_or_get(),
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("ApiKey", req.api_key.as_deref())
        .with_header("Request-Time", ts)
        .with_header("Signature", signature)
        .with_header_opt("Recv-Window", req.recv_window.as_deref())
        .with_header("Content-Type", "application/json"))
    }
}
