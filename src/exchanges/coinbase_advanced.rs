//! Coinbase Advanced Trade with CDP API keys (id `coinbase-advanced`): a short-lived JWT in
//! `Authorization: Bearer <jwt>`, signed in the token. No HMAC.
//!
//! - JWT header: `{"alg": "ES256" | "EdDSA", "kid": <key name>, "nonce": <nonce>, "typ": "JWT"}`.
//! - Claims: `{"sub": <key name>, "iss": "cdp", "nbf": now, "exp": now + 60,
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
//!
//! What the JWT binds is its `uri` claim (method, host and path) and its validity: the validator
//! takes the methods Coinbase serves, a `/api/v3/` or `/v2/` path of plain segments, a host that
//! is Coinbase's API host or a configured test host, a CDP key name of letters, digits, `-`, `_`
//! and `/` (the recorded one, when the key has one), a nonce of letters, digits, `-` and `_`,
//! and a caller's `nbf` within the skew of the crate's clock. The JWT is valid for [`LIFETIME_S`] seconds, the
//! crate's longest validity (Coinbase allows two minutes). The query and the body are not
//! signed: whoever holds the JWT can send any at the signed method and path until it expires;
//! they are still held to the exchange's grammar.

use std::sync::Arc;

use base64::Engine as _;

use super::checks;
use super::registry::{g, ExchangeInfo};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::keys::SecretEncoding;
use crate::sign::Mac;

/// The host the `uri` claim names when the request gives none.
const DEFAULT_HOST: &str = "api.coinbase.com";

/// How long a JWT is valid, in seconds: the crate's longest validity ([`super::Limits`], 60 s by
/// default; Coinbase accepts up to two minutes).
pub const LIFETIME_S: u64 = 60;

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST", "PUT", "PATCH", "DELETE"],
    prefix: "/",
    body_methods: &["POST", "PUT", "PATCH"],
    arrays: false,
    decoded_query: false,
};

/// Coinbase Advanced Trade, CDP API keys (id `coinbase-advanced`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CoinbaseAdvanced;

/// The registry entry of `coinbase-advanced` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "coinbase-advanced",
    key_family: "coinbase-advanced",
    ccxt: &[],
    encoding: SecretEncoding::Base64,
    algorithms: &[],
    asymmetric: true,
    binding: Binding {
        method: true,
        path: true,
        host: true,
        query: false,
        body: false,
        time: true,
    },
    endpoint_from: EndpointFrom::Path,
    owned: "nbf/exp (±skew, ≤ TTL), kid (the CDP key name)",
    hosts: &["api.coinbase.com"],
    guarded: &[
        g("/api/v3/brokerage/portfolios/move_funds"),
        g("/v2/accounts/*/transactions"),
        g("/v2/accounts/*/withdrawals"),
    ],
    signer: || Arc::new(CoinbaseAdvanced),
};

impl Exchange for CoinbaseAdvanced {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        if !(path.starts_with("/api/v3/") || path.starts_with("/v2/")) {
            return Err(inputs.refuse("path", "must start with `/api/v3/` or `/v2/`"));
        }
        checks::unused(inputs, req, &["expires", "recv_window", "passphrase"])?;
        // The CDP key name (`organizations/{org}/apiKeys/{id}`); JSON-escaped in the JWT, held
        // to the characters key names have. Without one, `sign` says it is needed.
        inputs.api_key_with(req.api_key.as_deref(), b"-_/")?;
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_s("timestamp", ts)?;
        }
        if let Some(n) = req.nonce.as_deref() {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(inputs.refuse(
                    "nonce",
                    "must be 1 to 64 letters, digits, `-` or `_`; leave it out and the crate \
                     sets it",
                ));
            }
        }
        let hosts = INFO.hosts;
        inputs.host(req.host.as_deref().unwrap_or(DEFAULT_HOST), hosts)?;
        Ok(Reach::bound(method, path))
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
        let kid = req.api_key.as_deref().or(mac.api_key());
        let kid = kid.filter(|k| !k.is_empty()).ok_or_else(|| {
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
            .checked_add(LIFETIME_S.min(ctx.ttl_ms() / 1000))
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
    use crate::exchanges::refused_field as field;
    use crate::exchanges::{reach_with, Limits, TEST_HOST};
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
                "nbf":1_700_000_000u64,"exp":1_700_000_060u64,
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

    const KID: &str = "organizations/0f1e2d3c/apiKeys/4b5a6978";
    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_with(
            &CoinbaseAdvanced,
            NOW,
            &Limits::default().test_host(TEST_HOST),
            None,
            req,
        )
    }

    #[test]
    fn ordinary_requests_reach_their_path() {
        let r = Request::get("/api/v3/brokerage/accounts")
            .query("limit=10")
            .api_key(KID);
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("GET", "/api/v3/brokerage/accounts")
        );
        let r = Request::post("/api/v3/brokerage/orders")
            .body(r#"{"product_id":"BTC-USD","side":"BUY"}"#)
            .api_key(KID)
            .timestamp("1700000003")
            .nonce("c0ffee")
            .host("127.0.0.1:8443");
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("POST", "/api/v3/brokerage/orders")
        );
        let limits = crate::exchanges::Limits::default();
        let recorded = Inputs::new("coinbase-advanced", NOW, &limits, Some(KID), None);
        assert!(CoinbaseAdvanced
            .reach(&Request::get("/v2/accounts"), &recorded)
            .is_ok());
    }

    #[test]
    fn what_the_uri_claim_binds_is_validated() {
        let ok = || Request::get("/api/v3/brokerage/accounts").api_key(KID);
        for (req, f) in [
            (ok().api_key("organizations/o/apiKeys/k\"}"), "api_key"),
            (
                ok().api_key("organizations/o/apiKeys/k GET api.coinbase.com/v2"),
                "api_key",
            ),
            (
                ok().host("api.coinbase.com/v2/accounts/x/withdrawals"),
                "host",
            ),
            (ok().host("API.COINBASE.COM"), "host"),
            (ok().host("evil.example"), "host"),
            (ok().timestamp("1700000006"), "timestamp"),
            (ok().timestamp("1700000000000"), "timestamp"),
            (ok().nonce("a\"b"), "nonce"),
            (ok().expires("1700000060"), "expires"),
            (ok().body("{}"), "body"),
            (
                Request::get("/api/v3/brokerage/accounts?x=1").api_key(KID),
                "path",
            ),
            (
                Request::get("/api/v3/brokerage//accounts").api_key(KID),
                "path",
            ),
            (Request::get("/platform/v1/x").api_key(KID), "path"),
            (Request::new("TRACE", "/api/v3/x").api_key(KID), "method"),
        ] {
            assert_eq!(field(reach(&req)), f, "{req:?}");
        }
    }

    #[test]
    fn the_jwt_is_valid_for_the_crate_ttl_and_uses_the_recorded_key_name() {
        struct Named(Fake);
        impl Mac for Named {
            fn key_name(&self) -> &str {
                "named"
            }
            fn exchange(&self) -> Option<&str> {
                Some("coinbase-advanced")
            }
            fn mac(&self, alg: crate::HmacAlg, m: &[u8]) -> Result<Signature> {
                self.0.mac(alg, m)
            }
            fn kind(&self) -> KeyKind {
                self.0.kind()
            }
            fn api_key(&self) -> Option<&str> {
                Some(KID)
            }
            fn sign_for(&self, m: &[u8], r: &crate::RequestContext<'_>) -> Result<Signature> {
                self.0.sign_for(m, r)
            }
        }
        let clock = FixedClock(NOW);
        let nonces = FixedNonce(1);
        let ctx = Context::new(&clock, &nonces);
        let req = Request::get("/v2/accounts");
        let signed = CoinbaseAdvanced
            .sign(&req, &Named(Fake(KeyKind::Ed25519)), &ctx)
            .unwrap();
        let claims = part(&signed.signature, 1);
        assert_eq!(claims["sub"], KID);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            LIFETIME_S
        );
    }
}
