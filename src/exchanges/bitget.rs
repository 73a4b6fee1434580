//! Bitget v2.
//!
//! `ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path || ["?" query] ||
//! body))`, `?` only for a non-empty query. Timestamp in ms (default: the clock); passphrase as
//! plaintext in `ACCESS-PASSPHRASE`. The query is sent as given and signed **percent-decoded**
//! (`%E5%B8%81` as `币`), in its order: Bitget verifies the decoded query (its own samples sign
//! it unencoded; a signature over the encoded text gives `40009 sign signature error`), and
//! so does ccxt (checked against ccxt 4.5.90, `docs/ccxt-oracle.md`). Queries without escapes
//! are unchanged.
//!
//! Because the query is verified decoded, an escape would put its character into the signed
//! bytes: `%26` an `&` (another parameter), `%7B` a `{` (where a body could begin), `%3F` a `?`.
//! The validator allows escapes only for non-ASCII text and harmless marks. Methods `GET` (plain
//! query, no body) and `POST` (JSON object body, no query); `/api/` paths of plain segments; a
//! caller's timestamp in ms within the skew.

use std::sync::Arc;

use super::checks;
use super::encode::{base64, percent_decode_bytes};
use super::registry::{g, ExchangeInfo, SHA256};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Bitget v2 (id `bitget`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bitget;

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST"],
    prefix: "/api/",
    body_methods: &["POST"],
    arrays: false,
    decoded_query: true,
};

/// The registry entry of `bitget` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "bitget",
    key_family: "bitget",
    ccxt: &["bitget"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "ACCESS-TIMESTAMP (±skew), ACCESS-KEY, ACCESS-PASSPHRASE",
    hosts: &["api.bitget.com"],
    guarded: &[
        g("/api/v2/spot/wallet/withdrawal"),
        g("/api/v2/spot/wallet/transfer"),
        g("/api/v2/spot/wallet/subaccount-transfer"),
        g("/api/spot/v1/wallet/withdrawal*"),
        g("/api/spot/v1/wallet/transfer*"),
    ],
    signer: || Arc::new(Bitget),
};

impl Exchange for Bitget {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        checks::unused(inputs, req, &["nonce", "expires", "recv_window"])?;
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_ms("timestamp", ts)?;
        }
        inputs.api_key(req.api_key.as_deref())?;
        inputs.passphrase(req.passphrase.as_deref())?;
        checks::host(inputs, req, self.id())?;
        Ok(Reach::bound(method, path))
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
        let body = req.body_or_empty();
        let mut prehash = format!("{ts}{method}{}", req.path_or_empty()).into_bytes();
        let query = req.query_or_empty();
        if !query.is_empty() {
            prehash.push(b'?');
            prehash.extend_from_slice(&percent_decode_bytes(query));
        }
        prehash.extend_from_slice(body.as_bytes());
        let signature = base64(mac.mac(HmacAlg::HmacSha256, &prehash)?.as_bytes());
        Ok(SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt(
            "ACCESS-KEY",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("ACCESS-SIGN", signature)
        .with_header("ACCESS-TIMESTAMP", ts)
        .with_header_opt(
            "ACCESS-PASSPHRASE",
            checks::or_recorded(req.passphrase.as_deref(), mac.passphrase()),
        )
        .with_header("Content-Type", "application/json")
        .with_header("locale", "en-US"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;

    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Bitget, NOW, req)
    }

    #[test]
    fn ordinary_requests_reach_their_path() {
        let r = Request::get("/api/v2/spot/trade/unfilled-orders")
            .query("limit=10&symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT")
            .timestamp("1700000000123");
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("GET", "/api/v2/spot/trade/unfilled-orders")
        );
        let r = Request::post("/api/v2/spot/trade/place-order").body(r#"{"symbol":"BTCUSDT"}"#);
        assert!(reach(&r).is_ok());
        let r = Request::get("/api/v2/x").query("a=BTC%2CETH%20x");
        assert!(reach(&r).is_ok());
    }

    #[test]
    fn escapes_that_decode_to_separators_are_refused() {
        for bad in [
            "symbol=BTC%26orderId%3D5",
            "a=%7B%22b%22%3A1%7D",
            "a=%3F",
            "a=%0A",
            "a=%25",
            "a=%23",
            "a=%5B",
            "a=%FF",
            "a=%E5%B8",
        ] {
            let r = Request::get("/api/v2/spot/trade/orderInfo").query(bad);
            assert_eq!(field(reach(&r)), "query", "{bad}");
        }
    }

    #[test]
    fn a_path_cannot_be_cut_short_and_continued() {
        let r = Request::post("/api/v2/spot/wallet/with").body(r#"drawal{"coin":"BTC"}"#);
        assert_eq!(field(reach(&r)), "body");
        let r = Request::post("/api/v2/spot/wallet").body("[{}]");
        assert_eq!(field(reach(&r)), "body");
        let r = Request::post("/api/v2/spot/trade/place-order").query("a=1");
        assert_eq!(field(reach(&r)), "query");
        for path in [
            "/api/v2/spot//wallet",
            "/api/v2/a?b",
            "/v2/spot",
            "/api/v2/x/",
        ] {
            assert_eq!(field(reach(&Request::get(path))), "path", "{path}");
        }
    }

    #[test]
    fn time_and_unused_inputs() {
        for bad in ["1700000005001", "170000000012", "1700000000123.0", "-1"] {
            let r = Request::get("/api/v2/x").timestamp(bad);
            assert_eq!(field(reach(&r)), "timestamp", "{bad}");
        }
        assert_eq!(field(reach(&Request::get("/api/v2/x").nonce("1"))), "nonce");
        assert_eq!(
            field(reach(&Request::get("/api/v2/x").expires("1"))),
            "expires"
        );
    }
}
