//! Bybit v5.
//!
//! `X-BAPI-SIGN = hex(HMAC-SHA256(secret, timestamp || apiKey || recvWindow || payload))`; the
//! payload is the body when there is one (POST JSON as sent), else the query string as sent.
//! Timestamp in ms (default: the clock), receive window default `5000`.
//!
//! Self-generated (RSA) API keys, chosen by the key's kind ([`Mac::kind`]): the same string is
//! signed with RSASSA-PKCS1-v1_5/SHA-256 and `X-BAPI-SIGN` carries standard base64. Bybit knows
//! the key's type from the API key: the v5 authentication guide lists no signature-type header
//! (`X-BAPI-SIGN-TYPE` appears only in older examples), so none is sent. Bybit takes no Ed25519
//! or ECDSA keys.

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::{HmacAlg, Mac};

/// Bybit v5 (id `bybit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bybit;

impl Exchange for Bybit {
    fn id(&self) -> &str {
        "bybit"
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
        let window = req.recv_window.clone().unwrap_or_else(|| "5000".to_owned());
        let body = req.body_or_empty();
        let payload = if body.is_empty() {
            req.query_or_empty()
        } else {
            body
        };
        let prehash = format!("{ts}{}{window}{payload}", req.api_key_or_empty());
        let signature = match mac.kind() {
            KeyKind::Hmac => mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex(),
            KeyKind::Rsa2048 => mac.sign_asym(prehash.as_bytes())?.to_base64(),
            other => {
                return Err(Error::WrongKeyKind {
                    name: mac.key_name().to_owned(),
                    kind: other.name().into(),
                    wanted: "an HMAC or RSA key (Bybit takes no Ed25519 or ECDSA keys)".into(),
                })
            }
        };
        let mut signed = SignedRequest::new(
            req.method_or_get(),
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("X-BAPI-API-KEY", req.api_key.as_deref())
        .with_header("X-BAPI-TIMESTAMP", ts)
        .with_header("X-BAPI-RECV-WINDOW", window)
        .with_header("X-BAPI-SIGN", signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
