//! Kraken spot REST.
//!
//! `API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path || SHA256(nonce || postdata)))`
//! with the SHA-256 (32 raw bytes) computed on the host. `postdata` is the body as sent and
//! carries `nonce=`. The nonce is the request's `nonce`, else the body's `nonce` parameter, else
//! the signer's nonce source (strictly increasing, even across threads); a form body without a
//! `nonce` parameter gets `nonce=<n>` put first. A JSON body (starting with `{`) is signed as
//! sent and needs an explicit `nonce` that matches the one inside it.

use std::borrow::Cow;

use sha2::Digest as _;

use super::encode::{base64, param, push_u64};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::sign::{HmacAlg, Mac};

/// Kraken spot (id `kraken`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kraken;

impl Exchange for Kraken {
    fn id(&self) -> &str {
        "kraken"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let path = req.path_or_empty();
        if !path.starts_with("/0/private/") {
            return Err(Error::invalid(
                "kraken signs private endpoints only: the path must start with /0/private/",
            ));
        }
        let sent = req.body_or_empty();
        let json = sent.trim_start().starts_with('{');
        let (body, signature) = if json {
            let nonce = req
                .nonce
                .as_deref()
                .ok_or_else(|| Error::invalid("kraken: a JSON body needs an explicit nonce"))?;
            (Cow::Borrowed(sent), api_sign(mac, path, nonce, sent)?)
        } else if let Some(in_body) = param(sent, "nonce") {
            if req.nonce.as_deref().is_some_and(|given| given != in_body) {
                return Err(Error::invalid(
                    "kraken: the nonce field differs from the body's nonce parameter",
                ));
            }
            (Cow::Borrowed(sent), api_sign(mac, path, in_body, sent)?)
        } else {
            // `nonce=<n>` first, then the form as given, in one buffer.
            let mut body = String::with_capacity(sent.len() + 28);
            body.push_str("nonce=");
            match req.nonce.as_deref() {
                Some(given) => body.push_str(given),
                None => push_u64(&mut body, ctx.nonce()),
            }
            let nonce_end = body.len();
            if !sent.is_empty() {
                body.push('&');
                body.push_str(sent);
            }
            let signature = api_sign(mac, path, &body["nonce=".len()..nonce_end], &body)?;
            (Cow::Owned(body), signature)
        };
        let content_type = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded; charset=utf-8"
        };
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            path,
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("API-Key", req.api_key.as_deref())
        .with_header("API-Sign", signature)
        .with_header("Content-Type", content_type))
    }
}

/// `base64(HMAC-SHA512(secret, path || SHA-256(nonce || body)))`, the MAC in the token.
fn api_sign(mac: &dyn Mac, path: &str, nonce: &str, body: &str) -> Result<String> {
    let inner = sha2::Sha256::new()
        .chain_update(nonce.as_bytes())
        .chain_update(body.as_bytes())
        .finalize();
    // path || digest on the stack for any usual path (no allocation between two token calls).
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let len = path.len() + inner.len();
    let msg = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    msg[..path.len()].copy_from_slice(path.as_bytes());
    msg[path.len()..].copy_from_slice(&inner);
    Ok(base64(mac.mac(HmacAlg::HmacSha512, msg)?.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::SoftKey;

    const SOFT: SoftKey = SoftKey {
        exchange: "kraken",
        secret: b"kraken-test-secret",
    };

    #[test]
    fn api_sign_macs_path_then_digest_for_short_and_long_paths() {
        // 256 bytes of path and digest fit the stack buffer; one more goes to the heap.
        for path_len in [11, 224, 225, 600] {
            let path = format!("/0/private/{}", "x".repeat(path_len - 11));
            let digest = sha2::Sha256::new()
                .chain_update(b"42")
                .chain_update(b"nonce=42&a=1")
                .finalize();
            let mut msg = path.clone().into_bytes();
            msg.extend_from_slice(&digest);
            let want = base64(&HmacAlg::HmacSha512.software(b"kraken-test-secret", &msg));
            assert_eq!(api_sign(&SOFT, &path, "42", "nonce=42&a=1").unwrap(), want);
        }
    }
}
