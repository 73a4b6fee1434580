//! Coinbase Advanced Trade with CDP API keys (id `coinbase-advanced`): a short-lived JWT in
//! `Authorization: Bearer <jwt>`, signed in the token. No HMAC.
//!
//! - JWT header: `{"alg": "ES256" | "EdDSA", "kid": <key name>, "nonce": <nonce>, "typ": "JWT"}`.
//! - Claims: `{"sub": <key name>, "iss": "cdp", "nbf": now, "exp": now + 120,
//!   "uri": "<METHOD> <host><path>"}`; the `uri` has no query.
//! - Signature over the ASCII `b64url(header) "." b64url(claims)` (base64url, no padding):
//!   ES256 with a P-256 key, as raw `r || s` (64 bytes, not DER); EdDSA (pure Ed25519) with an
//!   Ed25519 key (Coinbase's EdDSA keys are imported with [`crate::Custody::import_ed25519_key`]).
//!
//! How the request's fields are read: `api_key` is the CDP key name
//! (`organizations/{org}/apiKeys/{id}`, required: it is the `kid` and `sub`); `timestamp` is the
//! `nbf` in Unix seconds (default: the clock); `nonce` is the JWT nonce (default: the signer's
//! nonce source, as lowercase hex, so it is unique per process and reproducible with
//! [`super::FixedNonce`]); `host` defaults to `api.coinbase.com`. `query` and `body` are sent as
//! given and are not signed. [`SignedRequest::signature`] is the whole JWT.

use base64::Engine as _;

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::Mac;

/// The host the `uri` claim names when the request gives none.
const DEFAULT_HOST: &str = "api.coinbase.com";

/// How long a JWT is valid, in seconds (Coinbase: two minutes).
const LIFETIME_S: u64 = 120;

/// Coinbase Advanced Trade, CDP API keys (id `coinbase-advanced`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CoinbaseAdvanced;

impl Exchange for CoinbaseAdvanced {
    fn id(&self) -> &str {
        "coinbase-advanced"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let alg = match mac.kind() {
            KeyKind::P256 => "ES256",
            KeyKind::Ed25519 => "EdDSA",
            other => {
                return Err(Error::WrongKeyKind {
                    name: mac.key_name().to_owned(),
                    kind: other.name().into(),
                    wanted: "a P-256 (ES256) or Ed25519 (EdDSA) key for a Coinbase JWT".into(),
                })
            }
        };
        let kid = req.api_key.as_deref().filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::invalid(
                "coinbase-advanced needs `api_key`: the CDP key name (organizations/.../apiKeys/...)",
            )
        })?;
        let nbf = match req.timestamp.as_deref() {
            Some(t) => t.parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "coinbase-advanced `timestamp` must be Unix seconds, got `{t}`"
                ))
            })?,
            None => ctx.now_s(),
        };
        let exp = nbf
            .checked_add(LIFETIME_S)
            .ok_or_else(|| Error::invalid("coinbase-advanced `timestamp` is too large"))?;
        let nonce = match req.nonce.as_deref() {
            Some(n) => n.to_owned(),
            None => format!("{:016x}", ctx.nonce()),
        };
        let method = req.method_or_get();
        let host = req.host.as_deref().unwrap_or(DEFAULT_HOST);
        let uri = format!("{method} {host}{}", req.path_or_empty());

        let header = format!(
            r#"{{"alg":{},"kid":{},"nonce":{},"typ":"JWT"}}"#,
            json_string(alg)?,
            json_string(kid)?,
            json_string(&nonce)?
        );
        let claims = format!(
            r#"{{"sub":{},"iss":"cdp","nbf":{nbf},"exp":{exp},"uri":{}}}"#,
            json_string(kid)?,
            json_string(&uri)?
        );
        let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!("{}.{}", b64url.encode(header), b64url.encode(claims));
        let sig = mac.sign_asym(signing_input.as_bytes())?;
        if sig.as_bytes().len() != 64 {
            return Err(Error::invalid(format!(
                "the token returned a {}-byte {alg} signature; a JWT needs 64 bytes",
                sig.as_bytes().len()
            )));
        }
        let jwt = format!("{signing_input}.{}", sig.to_base64url());

        let body = req.body_or_empty();
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            jwt.clone(),
        )
        .with_header("Authorization", format!("Bearer {jwt}"));
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

/// A JSON string literal (quoted, escaped).
fn json_string(s: &str) -> Result<String> {
    serde_json::to_string(s).map_err(|e| Error::invalid(format!("cannot encode `{s}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::{FixedClock, FixedNonce};
    use crate::sign::Signature;

    /// A fake key of a given kind that "signs" with 64 zero bytes.
    struct Fake(KeyKind);

    impl Mac for Fake {
        fn key_name(&self) -> &str {
            "fake"
        }
        fn exchange(&self) -> Option<&str> {
            Some("coinbase-advanced")
        }
        fn mac(&self, _: crate::HmacAlg, _: &[u8]) -> Result<Signature> {
            Err(Error::invalid("no HMAC"))
        }
        fn kind(&self) -> KeyKind {
            self.0
        }
        fn sign_for(&self, _: &[u8], _: &crate::RequestContext<'_>) -> Result<Signature> {
            Ok(Signature::from_bytes(vec![0; 64]))
        }
    }

    fn part(jwt: &str, i: usize) -> serde_json::Value {
        let b64 = jwt.split('.').nth(i).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn jwt_has_the_documented_header_and_claims() {
        let clock = FixedClock(1_700_000_000_123);
        let nonces = FixedNonce(0xabc);
        let ctx = Context::new(&clock, &nonces);
        let req = Request::get("/api/v3/brokerage/accounts")
            .query("limit=5")
            .api_key("organizations/o/apiKeys/k");
        let signed = CoinbaseAdvanced
            .sign(&req, &Fake(KeyKind::P256), &ctx)
            .unwrap();
        let jwt = &signed.signature;
        assert_eq!(
            signed.header("Authorization"),
            Some(&*format!("Bearer {jwt}"))
        );
        assert_eq!(
            part(jwt, 0),
            serde_json::json!({"alg":"ES256","kid":"organizations/o/apiKeys/k",
                "nonce":"0000000000000abc","typ":"JWT"})
        );
        assert_eq!(
            part(jwt, 1),
            serde_json::json!({"sub":"organizations/o/apiKeys/k","iss":"cdp",
                "nbf":1_700_000_000u64,"exp":1_700_000_120u64,
                "uri":"GET api.coinbase.com/api/v3/brokerage/accounts"})
        );
        let eddsa = CoinbaseAdvanced
            .sign(&req, &Fake(KeyKind::Ed25519), &ctx)
            .unwrap();
        assert_eq!(part(&eddsa.signature, 0)["alg"], "EdDSA");
    }

    #[test]
    fn hmac_and_rsa_keys_and_a_missing_key_name_are_refused() {
        let ctx = Context::new(&FixedClock(0), &FixedNonce(1));
        let req = Request::get("/x").api_key("k");
        for kind in [KeyKind::Hmac, KeyKind::Rsa2048] {
            assert!(matches!(
                CoinbaseAdvanced.sign(&req, &Fake(kind), &ctx),
                Err(Error::WrongKeyKind { .. })
            ));
        }
        assert!(matches!(
            CoinbaseAdvanced.sign(&Request::get("/x"), &Fake(KeyKind::P256), &ctx),
            Err(Error::InvalidInput(_))
        ));
    }
}
