//! Bitstamp v2.
//!
//! `X-Auth-Signature = hex(HMAC-SHA256(secret, "BITSTAMP " + api_key || METHOD || host || path
//! || ["?" query] || [content-type] || nonce || timestamp || "v2" || [body]))`. With a `body`,
//! the content type `application/x-www-form-urlencoded` is signed and sent; without one neither
//! is signed and no body is invented. Nonce: a lowercase UUIDv4 (default: random); timestamp in
//! ms (default: the clock); host default `www.bitstamp.net`; API key default: the one recorded
//! with the key.
//!
//! What the signature binds ([`Exchange::reach`]): all of it, run together without separators,
//! so the validator makes every boundary unambiguous:
//! - API key | method: the key is letters, digits, `-` and `_` and the method `GET` or `POST`;
//!   no HTTP method ends with another, so the method read back is ours.
//! - method | host | path: the host is one of Bitstamp's (or a configured test host; lower
//!   case, no `/`), so the path starts at the first `/`.
//! - path | query | content type | nonce | timestamp | `v2` | body: the path is
//!   `/api/v2/<segments>/` in the strict grammar with its trailing `/`, the query and body are
//!   strict forms, the nonce a lower-case UUID and the timestamp a time near the crate's clock.
//!   The literal `v2` ends the timestamp: it may appear nowhere after the path's `/api/v2/`
//!   (not in the path's rest, the query or the body), so no other `<nonce><time>v2` can be read
//!   in what follows the host, and the timestamp read back is ours.
//!
//! What stays open: the content type is a header the holder of a signature chooses. Where a body
//! is signed, the holder can move the end of the path into the content type, so the signature
//! is also good at each prefix of the path that ends in `/` (never a guarded endpoint unless the
//! path itself contains one: every guarded path names a withdrawal or transfer).

use std::borrow::Cow;
use std::sync::Arc;

use super::encode::uuid_v4;
use super::registry::{g, ExchangeInfo, SHA256};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Bitstamp v2 (id `bitstamp`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitstamp;

const FORM: &str = "application/x-www-form-urlencoded";

/// The host signed when the request names none.
const DEFAULT_HOST: &str = "www.bitstamp.net";

/// Where every v2 endpoint lives.
const PREFIX: &str = "/api/v2/";

/// A lower-case UUID: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The registry entry of `bitstamp` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "bitstamp",
    key_family: "bitstamp",
    ccxt: &["bitstamp"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST.with("host", true),
    endpoint_from: EndpointFrom::Path,
    owned: "X-Auth-Timestamp (±skew), X-Auth-Nonce (UUID), X-Auth, host",
    hosts: &["www.bitstamp.net"],
    guarded: &[
        g("/api/v2/*_withdrawal"),
        g("/api/v2/withdrawal/open"),
        g("/api/v2/transfer-to-main"),
        g("/api/v2/transfer-from-main"),
    ],
    signer: || Arc::new(Bitstamp),
};

impl Exchange for Bitstamp {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method = grammar::method(
            inputs,
            req.method.as_deref().unwrap_or("POST"),
            &["GET", "POST"],
        )?;
        let hosts = INFO.hosts;
        inputs.host(req.host.as_deref().unwrap_or(DEFAULT_HOST), hosts)?;
        inputs.api_key(req.api_key.as_deref())?;
        let path = req.path.as_deref().unwrap_or("");
        let Some(bare) = path.strip_suffix('/') else {
            return Err(inputs.refuse("path", "Bitstamp's endpoints end with `/`"));
        };
        grammar::path(inputs, bare, PREFIX)?;
        if bare[PREFIX.len()..].contains("v2") {
            return Err(inputs.refuse(
                "path",
                "may not hold `v2` after /api/v2/: `v2` ends the timestamp in the signed string",
            ));
        }
        let query = req.query.as_deref().unwrap_or("");
        let mut names = grammar::form(inputs, "query", query)?;
        let body = req.body.as_deref().unwrap_or("");
        if !body.is_empty() {
            if method == "GET" {
                return Err(inputs.refuse("body", "a GET has no body"));
            }
            names.extend(grammar::form(inputs, "body", body)?);
        }
        for (field, text) in [("query", query), ("body", body)] {
            if text.contains("v2") {
                return Err(inputs.refuse(
                    field,
                    "may not hold `v2`: it ends the timestamp in the signed string",
                ));
            }
        }
        if let Some(nonce) = req.nonce.as_deref() {
            if !is_uuid(nonce) {
                return Err(inputs.refuse(
                    "nonce",
                    "must be a lower-case UUID (8-4-4-4-12 hex digits); leave it out and the \
                     crate sets one",
                ));
            }
        }
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_ms("timestamp", ts)?;
        }
        Ok(Reach::bound(method, path).with_params(names))
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let host = req.host.as_deref().unwrap_or(DEFAULT_HOST);
        let api_key: Cow<'_, str> = match req.api_key.as_deref() {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(mac.api_key().unwrap_or("").to_owned()),
        };
        let nonce = req.nonce.clone().unwrap_or_else(uuid_v4);
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let method = req.method.clone().unwrap_or_else(|| "POST".to_owned());
        let query = req.query_or_empty();
        let query_part = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let body = req.body.as_deref().filter(|b| !b.is_empty());
        let content_type = if body.is_some() { FORM } else { "" };
        let prehash = format!(
            "BITSTAMP {}{method}{host}{}{query_part}{content_type}{nonce}{ts}v2{}",
            api_key,
            req.path_or_empty(),
            body.unwrap_or("")
        );
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            query,
            body.unwrap_or(""),
            signature.clone(),
        )
        .with_header("X-Auth", format!("BITSTAMP {api_key}"))
        .with_header("X-Auth-Signature", signature)
        .with_header("X-Auth-Nonce", nonce)
        .with_header("X-Auth-Timestamp", ts)
        .with_header("X-Auth-Version", "v2");
        if body.is_some() {
            signed = signed.with_header("Content-Type", FORM);
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::{expect_refused, reach_with, TEST_HOST};
    use crate::exchanges::{FixedClock, FixedNonce, Limits, SoftKey};

    const NOW: u64 = 1_700_000_000_000;
    const UUID: &str = "f93c979d-b00d-43a9-9b9c-fd4cd9547fa6";

    fn reach(req: &Request) -> Result<Reach> {
        reach_with(
            &Bitstamp,
            NOW,
            &Limits::default().test_host(TEST_HOST),
            None,
            req,
        )
    }

    fn refused(req: &Request, field: &str) {
        expect_refused(reach(req), req, field);
    }

    fn ok() -> Request {
        Request::post("/api/v2/buy/btcusd/")
            .body("amount=0.01&price=20000")
            .nonce(UUID)
            .timestamp("1700000000000")
            .api_key("abc123")
    }

    #[test]
    fn reach_is_the_path() {
        let r = reach(&ok()).unwrap();
        assert_eq!((r.method(), r.endpoint()), ("POST", "/api/v2/buy/btcusd/"));
        assert_eq!(r.params(), ["amount", "price"]);
        assert!(reach(&ok().query("x=1")).is_ok());
        assert!(reach(&ok().host("127.0.0.1:8443")).is_ok());
        assert!(reach(&Request::post("/api/v2/account_balances/")).is_ok());
    }

    #[test]
    fn reach_refuses_what_could_move_a_boundary() {
        for host in [
            "WWW.BITSTAMP.NET",
            "www.bitstamp.net/api",
            "evil.example",
            "",
        ] {
            refused(&ok().host(host), "host");
        }
        for path in [
            "/api/v2/buy/btcusd",
            "/api/v2/buy//",
            "/api/v2/buy/../btc_withdrawal/",
            "/api/v2/%62tc_withdrawal/",
            "/api/v2/buy/btcusd/?x=1/",
            "/api/v2/buy/1700000000000v2/",
            "/api/v2/",
            "/api/v3/buy/",
        ] {
            refused(&ok().path(path), "path");
        }
        refused(&ok().query("?x=1"), "query");
        refused(
            &ok().query("x=f93c979d-b00d-43a9-9b9c-fd4cd9547fa61700000000000v2"),
            "query",
        );
        refused(&ok().body("amount=1&x=v2"), "body");
        refused(&ok().body("amount=1&amount=2"), "body");
        refused(&ok().body("amount=1 2"), "body");
        refused(&ok().method("GET"), "body");
        refused(&ok().method("PUT"), "method");
        refused(&ok().method("POSTGET"), "method");
        for nonce in [
            "F93C979D-B00D-43A9-9B9C-FD4CD9547FA6",
            "f93c979db00d43a99b9cfd4cd9547fa6",
            "f93c979d-b00d-43a9-9b9c-fd4cd9547fa6x",
            "1700000000000",
        ] {
            refused(&ok().nonce(nonce), "nonce");
        }
        refused(&ok().timestamp("1700000006000"), "timestamp");
        refused(&ok().timestamp("17000000000000"), "timestamp");
        refused(&ok().api_key("abc POST"), "api_key");
        // A key that ends like a method is harmless: no method ends with another.
        assert!(reach(&ok().api_key("abcGET")).is_ok());
    }

    #[test]
    fn the_validated_request_is_signed_as_is() {
        let req = ok();
        reach(&req).unwrap();
        let soft = SoftKey {
            exchange: "bitstamp",
            secret: b"s",
        };
        let (clock, nonces) = (FixedClock(NOW), FixedNonce(1));
        let s = Bitstamp
            .sign(&req, &soft, &Context::new(&clock, &nonces))
            .unwrap();
        let msg = format!(
            "BITSTAMP abc123POSTwww.bitstamp.net/api/v2/buy/btcusd/{FORM}{UUID}1700000000000v2\
             amount=0.01&price=20000"
        );
        assert_eq!(
            s.signature,
            hex::encode(HmacAlg::HmacSha256.software(b"s", msg.as_bytes()))
        );
    }
}
