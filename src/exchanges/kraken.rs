//! Kraken spot REST.
//!
//! `API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path || SHA256(nonce || postdata)))`
//! with the SHA-256 (32 raw bytes) computed on the host. `postdata` is the body as sent and
//! carries `nonce=`. The nonce is the request's `nonce`, else the body's `nonce` parameter, else
//! the signer's nonce source (strictly increasing, even across threads); a form body without a
//! `nonce` parameter gets `nonce=<n>` put first. A JSON body (starting with `{`) is signed as
//! sent and needs an explicit `nonce` that matches the one inside it.
//!
//! What the signature binds ([`Exchange::reach`]): the path (the signed string is the path
//! followed by a 32-byte digest, so the path cannot be cut short or continued), the body and the
//! nonce. Not the method or the query: the validator takes `POST` only (Kraken's private calls)
//! and no query, a path `/0/private/<Method>` (one segment of letters), a strict form or JSON
//! body, and a nonce that is a time near the crate's clock (a huge nonce would burn the key's
//! nonce space for everyone). The nonce field and the body's nonce must agree.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;
use sha2::Digest as _;

use super::encode::{base64, param, push_u64};
use super::registry::{g, ExchangeInfo, SHA512};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::{Error, Result};
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Kraken spot (id `kraken`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kraken;

/// Where every private endpoint lives.
const PREFIX: &str = "/0/private/";

/// Kraken API keys are base64 text.
const API_KEY_EXTRA: &[u8] = b"+/=-_";

/// The registry entry of `kraken` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "kraken",
    key_family: "kraken",
    ccxt: &["kraken"],
    encoding: SecretEncoding::Base64,
    algorithms: SHA512,
    asymmetric: false,
    binding: Binding::REQUEST.with("method", false).with("query", false),
    endpoint_from: EndpointFrom::Path,
    owned: "nonce (±skew), API-Key",
    hosts: &["api.kraken.com"],
    guarded: &[
        g("/0/private/Withdraw"),
        g("/0/private/WalletTransfer"),
        g("/0/private/AccountTransfer"),
    ],
    signer: || Arc::new(Kraken),
};

impl Exchange for Kraken {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method = grammar::method(inputs, req.method.as_deref().unwrap_or("POST"), &["POST"])?;
        let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), PREFIX)?;
        let name = &path[PREFIX.len()..];
        if !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(inputs.refuse(
                "path",
                "must be /0/private/<Method>: one segment of letters",
            ));
        }
        if req.query.as_deref().is_some_and(|q| !q.is_empty()) {
            return Err(inputs.refuse(
                "query",
                "Kraken reads private parameters from the signed body; the query is not signed",
            ));
        }
        inputs.api_key_with(req.api_key.as_deref(), API_KEY_EXTRA)?;
        let body = req.body.as_deref().unwrap_or("");
        let names: Vec<String> = if body.starts_with('{') {
            let object = grammar::json_object(inputs, "body", body)?;
            let inside = match object.get("nonce") {
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(inputs.refuse(
                        "body",
                        "a JSON body must carry its `nonce` (a whole number)",
                    ))
                }
            };
            let given = req.nonce.as_deref().ok_or_else(|| {
                inputs.refuse(
                    "nonce",
                    "a JSON body needs the nonce field too, equal to the body's `nonce`",
                )
            })?;
            if given != inside {
                return Err(inputs.refuse("nonce", "differs from the body's `nonce`"));
            }
            inputs.time_nonce("nonce", given)?;
            object.keys().cloned().collect()
        } else {
            let names = grammar::form(inputs, "body", body)?;
            match (param(body, "nonce"), req.nonce.as_deref()) {
                (Some(inside), Some(given)) if inside != given => {
                    return Err(inputs.refuse("nonce", "differs from the body's `nonce` parameter"));
                }
                (Some(n), _) | (None, Some(n)) => {
                    inputs.time_nonce("nonce", n)?;
                }
                (None, None) => {}
            }
            names
        };
        Ok(Reach::bound(method, path).with_params(names))
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
        .with_header_opt("API-Key", api_key_of(req, mac))
        .with_header("API-Sign", signature)
        .with_header("Content-Type", content_type))
    }
}

/// The API key to send: the request's, else the one recorded with the key.
fn api_key_of<'r>(req: &'r Request, mac: &dyn Mac) -> Option<Cow<'r, str>> {
    match req.api_key.as_deref() {
        Some(k) => Some(Cow::Borrowed(k)),
        None => mac.api_key().map(|k| Cow::Owned(k.to_owned())),
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
    use crate::exchanges::{expect_refused, reach_at};

    const SOFT: SoftKey = SoftKey {
        exchange: "kraken",
        secret: b"kraken-test-secret",
    };

    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Kraken, NOW, req)
    }

    fn refused(req: &Request, field: &str) {
        expect_refused(reach(req), req, field);
    }

    #[test]
    fn reach_is_the_private_path_and_the_body_names() {
        let order = Request::post("/0/private/AddOrder")
            .body("nonce=1700000000000&ordertype=limit&pair=XBTUSD")
            .api_key("AbC+/xyz==");
        let r = reach(&order).unwrap();
        assert_eq!((r.method(), r.endpoint()), ("POST", "/0/private/AddOrder"));
        assert!(r.path_bound());
        assert_eq!(r.params(), ["nonce", "ordertype", "pair"]);
        // The nonce in the field only, or nowhere (the nonce source sets it).
        assert!(reach(&Request::post("/0/private/Balance").nonce("1700000001000123")).is_ok());
        assert!(reach(&Request::post("/0/private/Balance")).is_ok());
        let json = Request::post("/0/private/AddOrder")
            .body(r#"{"nonce":1700000000000,"pair":"XBTUSD"}"#)
            .nonce("1700000000000");
        assert!(reach(&json).is_ok());
    }

    #[test]
    fn reach_refuses_what_kraken_would_read_otherwise() {
        let ok = || Request::post("/0/private/AddOrder").body("pair=XBTUSD");
        refused(&ok().method("GET"), "method");
        for path in [
            "/0/private/AddOrder/",
            "/0/private/AddOrder/../Withdraw",
            "/0/private//Withdraw",
            "/0/private/%57ithdraw",
            "/0/private/AddOrder?x=1",
            "/0/private/Add-Order",
            "/0/private/Add/Order",
            "/0/public/Time",
            "/0/private/",
        ] {
            refused(&ok().path(path), "path");
        }
        refused(&ok().query("nonce=1"), "query");
        refused(&ok().query("?"), "query");
        for body in [
            "pair=XBTUSD&pair=ETHUSD",
            "a=1&",
            "a=1\n",
            " {\"a\":1}",
            "a=1 2",
        ] {
            refused(&ok().body(body), "body");
        }
        // Nonces: a time near the clock, the same in the field and the body.
        refused(&ok().nonce("18446744073709551615"), "nonce");
        refused(&ok().nonce("1"), "nonce");
        refused(&ok().nonce("1700000009000"), "nonce");
        refused(&ok().body("nonce=1800000000000&pair=XBTUSD"), "nonce");
        refused(
            &ok()
                .body("nonce=1700000000000&pair=XBTUSD")
                .nonce("1700000000001"),
            "nonce",
        );
        // A JSON body: strict, with its nonce, equal to the field.
        let json = |b: &str| Request::post("/0/private/AddOrder").body(b);
        refused(&json(r#"{"pair":"XBTUSD"}"#).nonce("1700000000000"), "body");
        refused(&json(r#"{"nonce":1700000000000}"#), "nonce");
        refused(
            &json(r#"{"nonce":1700000000000}"#).nonce("1700000000001"),
            "nonce",
        );
        refused(
            &json(r#"{"nonce":1700000000000,"nonce":1}"#).nonce("1700000000000"),
            "body",
        );
        refused(&ok().api_key("key&nonce=1"), "api_key");
    }

    #[test]
    fn the_validated_request_is_signed_as_is() {
        let req = Request::post("/0/private/AddOrder")
            .body("ordertype=limit&pair=XBTUSD")
            .nonce("1700000000000");
        reach(&req).unwrap();
        let nonces = crate::exchanges::FixedNonce(7);
        let clock = crate::exchanges::FixedClock(NOW);
        let signed = Kraken
            .sign(&req, &SOFT, &Context::new(&clock, &nonces))
            .unwrap();
        assert_eq!(
            signed.body,
            "nonce=1700000000000&ordertype=limit&pair=XBTUSD"
        );
        assert_eq!(signed.path, "/0/private/AddOrder");
        assert_eq!(
            signed.signature,
            api_sign(&SOFT, "/0/private/AddOrder", "1700000000000", &signed.body).unwrap()
        );
    }

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
