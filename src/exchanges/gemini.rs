//! Gemini.
//!
//! The payload JSON (with `"request"` and `"nonce"`) is base64-encoded into `X-GEMINI-PAYLOAD`
//! and `X-GEMINI-SIGNATURE = hex(HMAC-SHA384(secret, <the base64 text>))`; the HTTP body is
//! empty. The request's `body` is the payload JSON, encoded byte for byte; without one the
//! payload is `{"request": "<path>", "nonce": <nonce>}` (Python `json.dumps` spacing; the nonce
//! unquoted when it is all digits, from the nonce source when absent).
//!
//! What the signature binds ([`Exchange::reach`]): the payload, and Gemini executes its
//! `request` member, whatever the URL says. So the validator reads the payload strictly (one
//! JSON object, no duplicate member at any depth, surrounding JSON whitespace allowed since the
//! base64 covers it), requires `request` to be a path `/v1/...` or `/v2/...` equal to the
//! request's path when one is given, and takes that as the endpoint. The payload's `nonce` (or
//! the nonce field) must be a time near the crate's clock, and the two must agree. The method
//! and the query are not signed: `POST` only, no query.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::encode::base64;
use super::registry::{g, ExchangeInfo, SHA384};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::{Error, Result};
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Gemini (id `gemini`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gemini;

/// JSON's whitespace, which may surround the payload object.
const JSON_WS: &[char] = &[' ', '\t', '\r', '\n'];

/// A Gemini endpoint path: `/v1/...` or `/v2/...` in the strict path grammar.
fn endpoint<'p>(inputs: &Inputs<'_>, field: &str, value: &'p str) -> Result<&'p str> {
    if !(value.starts_with("/v1/") || value.starts_with("/v2/")) {
        return Err(inputs.refuse(
            field,
            "must be a Gemini endpoint path `/v1/...` or `/v2/...`",
        ));
    }
    grammar::path(inputs, value, "/v").map_err(|_| {
        inputs.refuse(
            field,
            "must be a plain path: segments of letters, digits and - _ . ~ : (no %, ?, #, \
             empty, `.` or `..` segment, no trailing `/`)",
        )
    })
}

/// The registry entry of `gemini` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "gemini",
    key_family: "gemini",
    ccxt: &["gemini"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA384,
    asymmetric: false,
    binding: Binding::REQUEST.with("method", false).with("query", false),
    endpoint_from: EndpointFrom::BodyMember("request"),
    owned: "nonce (±skew), X-GEMINI-APIKEY",
    hosts: &["api.gemini.com"],
    guarded: &[g("/v1/withdraw/*"), g("/v1/account/transfer/*")],
    signer: || Arc::new(Gemini),
};

impl Exchange for Gemini {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method = grammar::method(inputs, req.method.as_deref().unwrap_or("POST"), &["POST"])?;
        if req.query.as_deref().is_some_and(|q| !q.is_empty()) {
            return Err(inputs.refuse(
                "query",
                "Gemini reads parameters from the signed payload; the query is not signed",
            ));
        }
        inputs.api_key(req.api_key.as_deref())?;
        let path = req.path.as_deref().filter(|p| !p.is_empty());
        if let Some(p) = path {
            endpoint(inputs, "path", p)?;
        }
        let Some(body) = req.body.as_deref().filter(|b| !b.is_empty()) else {
            let p = path
                .ok_or_else(|| inputs.refuse("path", "a request needs a path or a payload body"))?;
            if let Some(n) = req.nonce.as_deref() {
                inputs.time_nonce("nonce", n)?;
            }
            return Ok(
                Reach::bound(method, p).with_params(["request".to_owned(), "nonce".to_owned()])
            );
        };
        let payload = grammar::json_object(inputs, "body", body.trim_matches(JSON_WS))?;
        let Some(Value::String(request)) = payload.get("request") else {
            return Err(inputs.refuse(
                "body",
                "the payload must name its endpoint in a string member `request`",
            ));
        };
        endpoint(inputs, "body", request)?;
        if path.is_some_and(|p| p != request) {
            return Err(inputs.refuse(
                "body",
                "the payload's `request` differs from the path: Gemini executes `request`",
            ));
        }
        let nonce = match payload.get("nonce") {
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(
                    inputs.refuse("body", "the payload needs its `nonce` (a time in s or ms)")
                )
            }
        };
        if req.nonce.as_deref().is_some_and(|given| given != nonce) {
            return Err(inputs.refuse("nonce", "differs from the payload's `nonce`"));
        }
        inputs.time_nonce("nonce", &nonce)?;
        Ok(Reach::bound(method, request.clone()).with_params(payload.keys().cloned()))
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
        let api_key: Option<Cow<'r, str>> = match req.api_key.as_deref() {
            Some(k) => Some(Cow::Borrowed(k)),
            None => mac.api_key().map(|k| Cow::Owned(k.to_owned())),
        };
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            req.path_or_empty(),
            req.query_or_empty(),
            "",
            signature.clone(),
        )
        .with_header("Content-Type", "text/plain")
        .with_header("Content-Length", "0")
        .with_header_opt("X-GEMINI-APIKEY", api_key)
        .with_header("X-GEMINI-PAYLOAD", encoded)
        .with_header("X-GEMINI-SIGNATURE", signature)
        .with_header("Cache-Control", "no-cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::{expect_refused, reach_at};
    use crate::exchanges::{FixedClock, FixedNonce, SoftKey};

    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Gemini, NOW, req)
    }

    fn refused(req: &Request, field: &str) {
        expect_refused(reach(req), req, field);
    }

    fn payload(body: &str) -> Request {
        Request::post("/v1/order/new").body(body)
    }

    #[test]
    fn reach_is_the_payloads_request() {
        let r = reach(&payload(
            "{\n  \"request\": \"/v1/order/new\",\n  \"nonce\": 1700000000000,\n  \"symbol\": \"btcusd\"\n}\n",
        ))
        .unwrap();
        assert_eq!((r.method(), r.endpoint()), ("POST", "/v1/order/new"));
        assert_eq!(r.params(), ["nonce", "request", "symbol"]);
        // No path: the payload names the endpoint.
        let r =
            reach(&Request::default().body(r#"{"request":"/v1/balances","nonce":"1700000000"}"#))
                .unwrap();
        assert_eq!(r.endpoint(), "/v1/balances");
        // No body: the payload is built from the path.
        let r = reach(&Request::post("/v1/balances").nonce("1700000000000123")).unwrap();
        assert_eq!(r.endpoint(), "/v1/balances");
    }

    #[test]
    fn reach_refuses_a_payload_that_names_another_endpoint() {
        refused(
            &payload(r#"{"request":"/v1/withdraw/btc","nonce":1700000000000}"#),
            "body",
        );
        refused(
            &payload(
                r#"{"request":"/v1/order/new","request":"/v1/withdraw/btc","nonce":1700000000000}"#,
            ),
            "body",
        );
        refused(&payload(r#"{"nonce":1700000000000}"#), "body");
        refused(&payload(r#"{"request":7,"nonce":1700000000000}"#), "body");
        refused(
            &Request::default()
                .body(r#"{"request":"/v1/order/new/../../withdraw/btc","nonce":1700000000000}"#),
            "body",
        );
        refused(
            &Request::default().body(r#"{"request":"/v1/withdraw/%62tc","nonce":1700000000000}"#),
            "body",
        );
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":1700000000000}x"#),
            "body",
        );
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":1700000000000,"o":{"a":1,"a":2}}"#),
            "body",
        );
        for path in [
            "/v1/order/new/",
            "/v1//order",
            "/api/v1/order",
            "/v1/order?x",
            "/v1/%6Frder",
        ] {
            refused(&Request::post(path), "path");
        }
    }

    #[test]
    fn reach_holds_the_nonce_to_the_clock() {
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":123456}"#),
            "nonce",
        );
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":99999999999999999}"#),
            "nonce",
        );
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":1.7e12}"#),
            "body",
        );
        refused(&payload(r#"{"request":"/v1/order/new"}"#), "body");
        refused(
            &payload(r#"{"request":"/v1/order/new","nonce":1700000000000}"#).nonce("1700000000001"),
            "nonce",
        );
        refused(
            &Request::post("/v1/balances").nonce("1800000000000"),
            "nonce",
        );
        refused(&Request::post("/v1/balances").method("GET"), "method");
        refused(
            &Request::post("/v1/balances").query("request=/v1/withdraw/btc"),
            "query",
        );
        refused(&Request::post("/v1/balances").api_key("a b"), "api_key");
    }

    #[test]
    fn built_payload_names_the_path() {
        let req = Request::post("/v1/balances").nonce("1700000000000");
        reach(&req).unwrap();
        let soft = SoftKey {
            exchange: "gemini",
            secret: b"gemini-secret",
        };
        let (clock, nonces) = (FixedClock(NOW), FixedNonce(1));
        let s = Gemini
            .sign(&req, &soft, &Context::new(&clock, &nonces))
            .unwrap();
        let payload = base64(br#"{"request": "/v1/balances", "nonce": 1700000000000}"#);
        assert_eq!(s.header("X-GEMINI-PAYLOAD"), Some(payload.as_str()));
    }
}
