//! Gemini.
//!
//! The payload JSON (with `"request"` and `"nonce"`) is base64-encoded into `X-GEMINI-PAYLOAD`
//! and `X-GEMINI-SIGNATURE = hex(HMAC-SHA384(secret, <the base64 text>))`; the HTTP body is
//! empty. The request's `body` is the payload JSON, encoded byte for byte; without one the
//! payload is `{"request": "<path>", "nonce": <nonce>}` (Python `json.dumps` spacing; the nonce
//! unquoted when it is all digits, from the nonce source when absent).

use super::encode::base64;
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::sign::{HmacAlg, Mac};

/// Gemini (id `gemini`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemini;

impl Exchange for Gemini {
    fn id(&self) -> &str {
        "gemini"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let payload = match &req.body {
            Some(b) if !b.is_empty() => b.clone(),
            _ => {
                let path = req.path_or_empty();
                let nonce = req.nonce.clone().unwrap_or_else(|| ctx.nonce().to_string());
                let nonce_json = if !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_digit()) {
                    nonce
                } else {
                    serde_json::Value::String(nonce).to_string()
                };
                let path_json = serde_json::Value::String(path.to_owned()).to_string();
                if path.is_empty() {
                    return Err(Error::invalid(
                        "gemini: a request needs a path or a payload body",
                    ));
                }
                format!("{{\"request\": {path_json}, \"nonce\": {nonce_json}}}")
            }
        };
        let encoded = base64(payload.as_bytes());
        let signature = mac.mac(HmacAlg::HmacSha384, encoded.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            req.path_or_empty(),
            req.query_or_empty(),
            "",
            signature.clone(),
        )
        .with_header("Content-Type", "text/plain")
        .with_header("Content-Length", "0")
        .with_header_opt("X-GEMINI-APIKEY", req.api_key.as_deref())
        .with_header("X-GEMINI-PAYLOAD", encoded)
        .with_header("X-GEMINI-SIGNATURE", signature)
        .with_header("Cache-Control", "no-cache"))
    }
}
