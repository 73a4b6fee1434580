//! BitMEX.
//!
//! `api-signature = hex(HMAC-SHA256(secret, VERB || path(?query, URL-encoded as sent) ||
//! expires || body))`, `api-expires` in Unix seconds (default: the clock + 60 s).
//!
//! `expires` is a run of digits between the target and the body with no separator: a target
//! that ends in a digit (`?count=10`) lets whoever holds the signature move digits from the
//! query into the expiry (`count=1` and expires `01700000060`, or `count=` and
//! `101700000060`, three thousand years ahead). So the validator refuses a path or query that
//! ends in a digit (or a digit and `e`); a body is a JSON object, so it begins with `{` and
//! ends the expiry. A caller's `expires` must lie within the TTL ahead of the crate's clock.
//! The legacy `api-nonce` header is refused: BitMEX retired it, and a nonce-signed request
//! never expires.

use std::sync::Arc;

use super::checks;
use super::encode::path_with_query;
use super::registry::{g, ExchangeInfo, SHA256};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// BitMEX (id `bitmex`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitmex;

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST", "PUT", "DELETE"],
    prefix: "/api/v1/",
    body_methods: &[],
    arrays: false,
    decoded_query: false,
};

/// How long a signature the crate dates itself is valid, in seconds.
const EXPIRES_IN_S: u64 = 60;

/// The registry entry of `bitmex` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "bitmex",
    key_family: "bitmex",
    ccxt: &[],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "api-expires (≤ TTL ahead), api-key",
    hosts: &["www.bitmex.com"],
    guarded: &[
        g("/api/v1/user/requestWithdrawal"),
        g("/api/v1/user/confirmWithdrawal"),
        g("/api/v1/user/walletTransfer"),
    ],
    signer: || Arc::new(Bitmex),
};

impl Exchange for Bitmex {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        if method == "GET" && !req.body_or_empty().is_empty() {
            return Err(inputs.refuse("body", "a GET request has no body"));
        }
        let target = path_with_query(path, req.query_or_empty());
        if checks::ends_numeric(&target) {
            return Err(inputs.refuse(
                if req.query_or_empty().is_empty() {
                    "path"
                } else {
                    "query"
                },
                "ends in a digit, which the expiry that follows it could absorb: end the query \
                 with another parameter",
            ));
        }
        if req.nonce.is_some() {
            return Err(inputs.refuse(
                "nonce",
                "BitMEX retired `api-nonce`, and a nonce-signed request never expires: leave it \
                 out (the crate sets `api-expires`)",
            ));
        }
        checks::unused(inputs, req, &["timestamp", "recv_window", "passphrase"])?;
        if let Some(e) = req.expires.as_deref() {
            inputs.expires_s("expires", e)?;
        }
        inputs.api_key(req.api_key.as_deref())?;
        checks::host(inputs, req, self.id())?;
        Ok(Reach::bound(method, path))
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let expires = match &req.expires {
            Some(e) => e.clone(),
            None => (ctx.now_s() + EXPIRES_IN_S.min(ctx.ttl_ms() / 1000)).to_string(),
        };
        let method = req.method_or_get();
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{method}{target}{expires}{body}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt(
            "api-key",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("api-expires", expires)
        .with_header("api-signature", signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;
    use crate::exchanges::{FixedClock, FixedNonce, SoftKey};

    const NOW: u64 = 1_518_064_200_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Bitmex, NOW, req)
    }

    #[test]
    fn documented_requests_reach_their_path() {
        let r = Request::get("/api/v1/instrument")
            .query("filter=%7B%22symbol%22%3A+%22XBTM15%22%7D")
            .expires("1518064237");
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("GET", "/api/v1/instrument")
        );
        let r = Request::post("/api/v1/order")
            .body(r#"{"symbol":"XBTM15","price":219.0,"orderQty":98}"#)
            .expires("1518064238");
        assert_eq!(reach(&r).unwrap(), Reach::bound("POST", "/api/v1/order"));
    }

    #[test]
    fn nothing_before_the_expiry_ends_in_a_digit() {
        for (path, query) in [
            ("/api/v1/order", "count=10"),
            ("/api/v1/order", "count=1e"),
            ("/api/v1/order", "filter=%20"),
            ("/api/v1/position/2", ""),
        ] {
            let f = field(reach(&Request::get(path).query(query)));
            assert!(f == "query" || f == "path", "{path}?{query}: {f}");
        }
        assert!(reach(&Request::get("/api/v1/order").query("count=10&reverse=true")).is_ok());
    }

    #[test]
    fn expiry_nonce_and_body_rules() {
        for bad in ["1518064190", "1518064266", "01518064230", "1518064230.5"] {
            let r = Request::get("/api/v1/order").expires(bad);
            assert_eq!(field(reach(&r)), "expires", "{bad}");
        }
        let r = Request::get("/api/v1/order").nonce("1518064200000");
        assert_eq!(field(reach(&r)), "nonce");
        for body in ["123{}", " {}", "[{}]", "a=1"] {
            let r = Request::post("/api/v1/order").body(body);
            assert_eq!(field(reach(&r)), "body", "{body}");
        }
        assert_eq!(
            field(reach(&Request::get("/api/v1/order").body("{}"))),
            "body"
        );
        assert_eq!(
            field(reach(&Request::get("/api/v1/order").timestamp("1"))),
            "timestamp"
        );
        for path in [
            "/api/v1/user/request%57ithdrawal",
            "/api/v1/order/../user",
            "/api/v2/x",
        ] {
            assert_eq!(field(reach(&Request::get(path))), "path", "{path}");
        }
    }

    #[test]
    fn the_clock_sets_a_short_expiry() {
        let ctx = Context::new(&FixedClock(NOW), &FixedNonce(1));
        let key = SoftKey {
            exchange: "bitmex",
            secret: b"s",
        };
        let req = Request::get("/api/v1/order");
        let signed = Bitmex.sign(&req, &key, &ctx).unwrap();
        assert_eq!(signed.header("api-expires"), Some("1518064260"));
        assert_eq!(signed.header("api-nonce"), None);
    }
}
