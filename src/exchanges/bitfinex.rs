//! Bitfinex v2.
//!
//! `bfx-signature = hex(HMAC-SHA384(secret, "/api" || path || nonce || body))`, `path` being the
//! URL path as sent (`/v2/auth/...`), body `{}` when absent. The nonce must strictly increase
//! (default: the nonce source, microseconds).
//!
//! Neither the method nor the query is signed, and the nonce is a run of digits between the
//! path and the body with no separator. So the validator takes `POST` only (all of Bitfinex's
//! authenticated endpoints), refuses a query (unsigned: its holder could change it), refuses a
//! path that ends in a digit (the nonce could absorb it, or give digits to it), takes a JSON
//! object body (it begins with `{`, which ends the nonce), and holds a caller's nonce to the
//! crate's clock: a time in µs (16 digits) or ms (13, as ccxt sends) within the skew; keep one
//! length per key.
//!
//! What no validator can close: the holder of a signature can read leading nonce digits as
//! the end of the path (`/v2/auth/r/wallets` + `1` and a 15-digit nonce). That path is no
//! Bitfinex endpoint, and the shorter nonce is below every nonce the crate issues, so Bitfinex
//! refuses it (`nonce: small`) for any key the crate has signed with.

use std::sync::Arc;

use super::checks;
use super::registry::{g, ExchangeInfo, SHA384};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Bitfinex v2 (id `bitfinex`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitfinex;

/// The registry entry of `bitfinex` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "bitfinex",
    key_family: "bitfinex",
    ccxt: &["bitfinex"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA384,
    asymmetric: false,
    binding: Binding::REQUEST.with("method", false).with("query", false),
    endpoint_from: EndpointFrom::Path,
    owned: "bfx-nonce (±skew), bfx-apikey",
    hosts: &["api.bitfinex.com"],
    guarded: &[
        g("/v2/auth/w/withdraw"),
        g("/v2/auth/w/transfer"),
        g("/v1/withdraw"),
        g("/v1/transfer"),
    ],
    signer: || Arc::new(Bitfinex),
};

impl Exchange for Bitfinex {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method =
            super::grammar::method(inputs, req.method.as_deref().unwrap_or("POST"), &["POST"])?;
        let path = super::grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/v2/auth/")?;
        if checks::ends_numeric(path) {
            return Err(inputs.refuse(
                "path",
                "ends in a digit, which the nonce that follows it could absorb",
            ));
        }
        if req.query.as_deref().is_some_and(|q| !q.is_empty()) {
            return Err(inputs.refuse(
                "query",
                "Bitfinex does not sign the query: put the parameters in the JSON body",
            ));
        }
        let body = req.body_or_empty();
        if !body.is_empty() {
            checks::json_body(inputs, body, false)?;
        }
        checks::unused(
            inputs,
            req,
            &["timestamp", "expires", "recv_window", "passphrase"],
        )?;
        if let Some(n) = req.nonce.as_deref() {
            // µs, as the crate's nonce source and Bitfinex's documentation (ms × 1000) give, or
            // ms, as ccxt sends: a key's nonces only go up, so keep one length per key (a
            // shorter nonce fails after longer ones); ns is above Bitfinex's limit of 2^53 - 1
            // and would burn the key's nonces.
            if n.len() != 16 && n.len() != 13 {
                return Err(inputs.refuse(
                    "nonce",
                    "must be the time in µs (16 digits, as the crate's nonce source gives) or ms \
                     (13); leave it out and the crate sets it",
                ));
            }
            inputs.time_nonce("nonce", n)?;
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
        let nonce = req.nonce.clone().unwrap_or_else(|| ctx.nonce().to_string());
        let body = match req.body_or_empty() {
            "" => "{}",
            b => b,
        };
        let path = req.path_or_empty();
        let prehash = format!("/api{path}{nonce}{body}");
        let signature = mac.mac(HmacAlg::HmacSha384, prehash.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            path,
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header("Content-Type", "application/json")
        .with_header("bfx-nonce", nonce)
        .with_header_opt(
            "bfx-apikey",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("bfx-signature", signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;

    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Bitfinex, NOW, req)
    }

    #[test]
    fn ordinary_requests_reach_their_path() {
        let r = Request::post("/v2/auth/r/wallets").nonce("1700000000000000");
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("POST", "/v2/auth/r/wallets")
        );
        let mut r = Request::post("/v2/auth/w/order/submit").body(r#"{"type":"EXCHANGE LIMIT"}"#);
        r.method = None;
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("POST", "/v2/auth/w/order/submit")
        );
    }

    #[test]
    fn the_nonce_cannot_move() {
        assert_eq!(field(reach(&Request::post("/v2/auth/r/orders/12"))), "path");
        for body in ["1{}", " {}", "[]", "x"] {
            let r = Request::post("/v2/auth/r/wallets").body(body);
            assert_eq!(field(reach(&r)), "body", "{body}");
        }
        for bad in [
            "1700000006000000",
            "17000000000000000",
            "1",
            "01700000000000000",
            "abc",
        ] {
            let r = Request::post("/v2/auth/r/wallets").nonce(bad);
            assert_eq!(field(reach(&r)), "nonce", "{bad}");
        }
    }

    #[test]
    fn unsigned_parts_are_refused() {
        assert_eq!(
            field(reach(&Request::post("/v2/auth/r/wallets").query("a=1"))),
            "query"
        );
        assert_eq!(field(reach(&Request::get("/v2/auth/r/wallets"))), "method");
        for path in [
            "/api/v2/auth/r/wallets",
            "/v1/withdraw",
            "/v2/auth/r/x?y",
            "/v2/auth/r/",
        ] {
            assert_eq!(field(reach(&Request::post(path))), "path", "{path}");
        }
        assert_eq!(
            field(reach(&Request::post("/v2/auth/r/wallets").timestamp("1"))),
            "timestamp"
        );
    }
}
