//! KuCoin (API key v1, v2, v3).
//!
//! `KC-API-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path(?query) || body))`,
//! timestamp in ms (default: the clock). For v2/v3 keys the passphrase header is
//! `base64(HMAC-SHA256(secret, passphrase))`, a second MAC with the same token key; v1 keys send
//! the plaintext passphrase. Default key version: 2 (`KC-API-KEY-VERSION: 2`).

use std::borrow::Cow;

use super::encode::{base64, path_with_query};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::sign::{HmacAlg, Mac};

/// KuCoin (id `kucoin`).
#[derive(Clone, Copy, Debug)]
pub struct KuCoin {
    key_version: u8,
}

impl Default for KuCoin {
    fn default() -> Self {
        KuCoin { key_version: 2 }
    }
}

impl KuCoin {
    /// For keys of API version 1, 2 or 3.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another version.
    pub fn with_key_version(version: u8) -> Result<Self> {
        if !(1..=3).contains(&version) {
            return Err(Error::invalid("kucoin key versions are 1, 2 and 3"));
        }
        Ok(KuCoin {
            key_version: version,
        })
    }
}

impl Exchange for KuCoin {
    fn id(&self) -> &str {
        "kucoin"
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
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{ts}{method}{target}{body}");
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let passphrase = match (&req.passphrase, self.key_version) {
            (None, _) => None,
            (Some(p), 1) => Some(Cow::Borrowed(p.as_str())),
            (Some(p), _) => Some(Cow::Owned(base64(
                mac.mac(HmacAlg::HmacSha256, p.as_bytes())?.as_bytes(),
            ))),
        };
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("KC-API-KEY", req.api_key.as_deref())
        .with_header("KC-API-SIGN", signature)
        .with_header("KC-API-TIMESTAMP", ts)
        .with_header_opt("KC-API-PASSPHRASE", passphrase)
        .with_header("KC-API-KEY-VERSION", self.key_version.to_string());
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
