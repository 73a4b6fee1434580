//! OKX v5.
//!
//! `OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path(?query) || body))`.
//! The timestamp is ISO-8601 UTC with milliseconds (`2020-12-08T09:08:57.715Z`; default: the
//! clock) and is sent as signed in `OK-ACCESS-TIMESTAMP`; the passphrase goes as plaintext in
//! `OK-ACCESS-PASSPHRASE`. A `path` that already contains `?` is signed as given.

use std::borrow::Cow;

use super::encode::{base64, iso8601_millis};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// OKX v5 (id `okx`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Okx;

impl Exchange for Okx {
    fn id(&self) -> &str {
        "okx"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let ts: Cow<'r, str> = match &req.timestamp {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(iso8601_millis(ctx.now_ms())?),
        };
        let method = req.method_or_get();
        let (path, query) = (req.path_or_empty(), req.query_or_empty());
        let query = query.trim_start_matches('?');
        let body = req.body_or_empty();
        // timestamp || method || path[?query] || body, built in one buffer.
        let mut prehash = String::with_capacity(
            ts.len() + method.len() + path.len() + query.len() + body.len() + 1,
        );
        for part in [&*ts, &*method, path] {
            prehash.push_str(part);
        }
        if !query.is_empty() {
            prehash.push('?');
            prehash.push_str(query);
        }
        prehash.push_str(body);
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        Ok(SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("OK-ACCESS-KEY", req.api_key.as_deref())
        .with_header("OK-ACCESS-SIGN", signature)
        .with_header("OK-ACCESS-TIMESTAMP", ts)
        .with_header_opt("OK-ACCESS-PASSPHRASE", req.passphrase.as_deref())
        .with_header("Content-Type", "application/json"))
    }
}
