//! Deribit v2.
//!
//! `Signature = hex(HMAC-SHA256(ClientSecret, Timestamp \n Nonce \n Data))`, timestamp in ms
//! (default: the clock), nonce free-form (default: the nonce source).
//! - A request with neither `method` nor `path` is the WebSocket `public/auth` form
//!   (`grant_type=client_signature`): Data is the `body` (empty if absent), and the signed
//!   body is the `public/auth` params object (client_id, timestamp, signature, nonce, data).
//! - Otherwise HTTP: Data is `METHOD \n URI(?query) \n body \n` and the header is
//!   `Authorization: deri-hmac-sha256 id=<api_key>,ts=<ts>,sig=<sig>,nonce=<nonce>`.
//!
//! What the signature binds ([`Exchange::reach`]): the timestamp, the nonce and Data. The
//! validator holds the timestamp to the crate's clock, takes a nonce of letters, digits, `_` and
//! `-` (at most 64, so no newline can move the Data boundary) and:
//! - in the WebSocket form, signs no Data (ccxt and Deribit's docs send it empty): a caller's
//!   Data could carry a whole HTTP request (`GET\n/api/v2/private/withdraw?...\n\n`), and the
//!   same signature would then be good for that request. Its endpoint is `public/auth`.
//! - in the HTTP form, takes `GET` or `POST`, a path `/api/v2/public/<name>` or
//!   `/api/v2/private/<name>`, a strict query, and no body (Deribit's JSON-RPC over HTTP can name
//!   a method in the body; ccxt sends every parameter in the query). Its endpoint is the path.
//!
//! Every Deribit HMAC signature, of either form, is also a `public/auth` `client_signature`
//! credential: `public/auth` verifies `ts \n nonce \n data` for any `data`, so the holder of an
//! HTTP signature can exchange it, within the timestamp's window, for an access token with the
//! key's scope. Only the key's scope at Deribit limits that (see the crate's guard-rail docs).

use std::borrow::Cow;
use std::sync::Arc;

use super::encode::path_with_query;
use super::registry::{g, ExchangeInfo, SHA256};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Deribit v2 (id `deribit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deribit;

/// The endpoint a WebSocket `client_signature` is good for.
pub(crate) const AUTH: &str = "/api/v2/public/auth";

/// A nonce Deribit reads as one line: letters, digits, `_` and `-`, at most 64.
fn check_nonce(inputs: &Inputs<'_>, nonce: &str) -> Result<()> {
    let ok = !nonce.is_empty()
        && nonce.len() <= 64
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(inputs.refuse(
            "nonce",
            "must be 1 to 64 letters, digits, `_` or `-`; leave it out and the crate sets it",
        ))
    }
}

/// The registry entry of `deribit` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "deribit",
    key_family: "deribit",
    ccxt: &["deribit"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "ts (±skew), nonce, client id; the WebSocket form signs no data; every signature also opens a `public/auth` session (guarded)",
    hosts: &["www.deribit.com"],
    guarded: &[
        // Every Deribit signature (HTTP or WebSocket) also verifies as a `public/auth`
        // client signature, which opens a session with the key's full scope: guarded,
        // lifted only by `allow_withdrawals` or an exact `GET /api/v2/public/auth` entry
        // for a key whose Deribit scope has no wallet access.
        g("/api/v2/public/auth"),
        g("/api/v2/private/withdraw"),
        g("/api/v2/private/submit_transfer_to_subaccount"),
        g("/api/v2/private/submit_transfer_to_user"),
        g("/api/v2/private/submit_transfer_between_subaccounts"),
    ],
    signer: || Arc::new(Deribit),
};

impl Exchange for Deribit {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_ms("timestamp", ts)?;
        }
        if let Some(nonce) = req.nonce.as_deref() {
            check_nonce(inputs, nonce)?;
        }
        inputs.api_key(req.api_key.as_deref())?;
        let body = req.body.as_deref().unwrap_or("");
        let query = req.query.as_deref().unwrap_or("");
        if req.method.is_none() && req.path.is_none() {
            if !body.is_empty() {
                return Err(inputs.refuse(
                    "body",
                    "the WebSocket client_signature form signs no data: data could carry an HTTP \
                     request that the same signature would authorise",
                ));
            }
            if !query.is_empty() {
                return Err(inputs.refuse("query", "the WebSocket form has no query"));
            }
            return Ok(Reach::bound("GET", AUTH));
        }
        let method = grammar::method(
            inputs,
            req.method.as_deref().unwrap_or("GET"),
            &["GET", "POST"],
        )?;
        let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/api/v2/")?;
        let shape = path["/api/v2/".len()..]
            .split_once('/')
            .is_some_and(|(scope, name)| {
                (scope == "public" || scope == "private")
                    && !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
        if !shape {
            return Err(inputs.refuse(
                "path",
                "must be /api/v2/public/<name> or /api/v2/private/<name> (lower-case letters and _)",
            ));
        }
        let names = grammar::form(inputs, "query", query)?;
        if !body.is_empty() {
            return Err(inputs.refuse(
                "body",
                "send parameters in the query: Deribit's JSON-RPC over HTTP can name another \
                 method in the body",
            ));
        }
        // The same bytes verify as a `public/auth` client signature (`ts\nnonce\ndata` with
        // the request as data): the signature also opens a session with the key's full scope.
        Ok(Reach::bound(method, path)
            .with_params(names)
            .with_also("GET", AUTH))
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
        let nonce = req.nonce.clone().unwrap_or_else(|| ctx.nonce().to_string());
        let body = req.body_or_empty();
        let http = req.method.is_some() || req.path.is_some();
        let data = if http {
            format!(
                "{}\n{}\n{body}\n",
                req.method_or_get(),
                path_with_query(req.path_or_empty(), req.query_or_empty())
            )
        } else {
            body.to_owned()
        };
        let prehash = format!("{ts}\n{nonce}\n{data}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        if http {
            let auth = format!(
                "deri-hmac-sha256 id={},ts={ts},sig={signature},nonce={nonce}",
                client_id(req, mac)
            );
            return Ok(SignedRequest::new(
                req.method_or_get(),
                req.path_or_empty(),
                req.query_or_empty(),
                body,
                signature,
            )
            .with_header("Authorization", auth));
        }
        // WebSocket: the body to send is the `public/auth` params object.
        let ts_json = match ts.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(ts.clone()),
        };
        let params = serde_json::json!({
            "grant_type": "client_signature",
            "client_id": client_id(req, mac),
            "timestamp": ts_json,
            "signature": signature,
            "nonce": nonce,
            "data": data,
        });
        Ok(SignedRequest::new(
            "",
            "",
            "",
            params.to_string(),
            signature,
        ))
    }
}

/// The client id to send: the request's, else the one recorded with the key.
fn client_id<'r>(req: &'r Request, mac: &dyn Mac) -> Cow<'r, str> {
    match req.api_key.as_deref() {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(mac.api_key().unwrap_or("").to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::{expect_refused, reach_at};
    use crate::exchanges::{FixedClock, FixedNonce, SoftKey};

    const NOW: u64 = 1_576_074_319_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Deribit, NOW, req)
    }

    fn refused(req: &Request, field: &str) {
        expect_refused(reach(req), req, field);
    }

    #[test]
    fn reach_is_the_path_or_public_auth() {
        let get = Request::get("/api/v2/private/buy")
            .query("instrument_name=BTC-PERPETUAL&amount=10")
            .timestamp("1576074319000")
            .nonce("1iqt2wls");
        let r = reach(&get).unwrap();
        assert_eq!((r.method(), r.endpoint()), ("GET", "/api/v2/private/buy"));
        let ws = Request::default()
            .timestamp("1576074319000")
            .nonce("abc_12-x");
        assert_eq!(reach(&ws).unwrap().endpoint(), AUTH);
    }

    #[test]
    fn reach_refuses_data_that_could_carry_a_request() {
        let ws = || Request::default().timestamp("1576074319000").nonce("n");
        refused(
            &ws().body("GET\n/api/v2/private/withdraw?currency=BTC&address=x&amount=1\n\n"),
            "body",
        );
        refused(&ws().body("some data"), "body");
        refused(&ws().query("a=1"), "query");
        // A newline in the nonce or a far timestamp would move or stretch what is signed.
        refused(&ws().nonce("n\nGET\n/api/v2/private/withdraw"), "nonce");
        refused(&ws().nonce(""), "nonce");
        refused(&ws().nonce("n".repeat(65)), "nonce");
        refused(&ws().timestamp("1576074329000"), "timestamp");
        refused(&ws().timestamp("99999999999999"), "timestamp");
        refused(&ws().api_key("id\n"), "api_key");
    }

    #[test]
    fn reach_refuses_http_requests_that_read_otherwise() {
        let get = |p: &str| Request::get(p);
        for path in [
            "/api/v2/private/buy/",
            "/api/v2/private/buy/../withdraw",
            "/api/v2/private//withdraw",
            "/api/v2/private/%77ithdraw",
            "/api/v2/private/buy?x=1",
            "/api/v2/private/Buy",
            "/api/v2/private",
            "/api/v2/other/buy",
            "/api/v1/private/buy",
            "/api/v2/private/buy\n",
        ] {
            refused(&get(path), "path");
        }
        refused(&get("/api/v2/private/buy").method("PUT"), "method");
        refused(&get("/api/v2/private/buy").query("a=1&a=2"), "query");
        refused(&get("/api/v2/private/buy").query("a=1\nGET"), "query");
        refused(&get("/api/v2/private/buy").query("?a=1"), "query");
        refused(
            &Request::post("/api/v2/private/buy")
                .body(r#"{"method":"private/withdraw","params":{}}"#),
            "body",
        );
    }

    #[test]
    fn the_websocket_form_signs_empty_data() {
        let req = Request::default()
            .timestamp("1576074319000")
            .nonce("1iqt2wls");
        reach(&req).unwrap();
        let soft = SoftKey {
            exchange: "deribit",
            secret: b"s",
        };
        let (clock, nonces) = (FixedClock(NOW), FixedNonce(1));
        let s = Deribit
            .sign(&req, &soft, &Context::new(&clock, &nonces))
            .unwrap();
        let want = HmacAlg::HmacSha256.software(b"s", b"1576074319000\n1iqt2wls\n");
        assert_eq!(s.signature, hex::encode(want));
    }
}
