//! Coinbase Exchange (ex-Pro/GDAX).
//!
//! `CB-ACCESS-SIGN = base64(HMAC-SHA256(base64decode(secret),
//! timestamp || METHOD || path(?query) || body))`. The timestamp is Unix seconds (decimals
//! allowed; default: the clock's whole seconds) and is sent as signed in `CB-ACCESS-TIMESTAMP`.
//! The passphrase is sent as plaintext in `CB-ACCESS-PASSPHRASE` (not signed).
//!
//! The validator makes the concatenation unambiguous: methods `GET`, `POST`, `PUT`, `DELETE`; a
//! path of plain segments; `GET`/`DELETE` carry a plain query and no body, `POST`/`PUT` a JSON
//! object body and no query (so the body begins with `{`, and a path cannot be continued in it);
//! a caller's timestamp is `seconds[.fraction]` within the skew.

use std::sync::Arc;

use super::checks;
use super::encode::{base64, path_with_query};
use super::registry::{g, ExchangeInfo, SHA256};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Coinbase Exchange (id `coinbase-exchange`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CoinbaseExchange;

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST", "PUT", "DELETE"],
    prefix: "/",
    body_methods: &["POST", "PUT"],
    arrays: false,
    decoded_query: false,
};

/// The registry entry of `coinbase-exchange` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "coinbase-exchange",
    key_family: "coinbase-exchange",
    ccxt: &["coinbaseexchange"],
    encoding: SecretEncoding::Base64,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "CB-ACCESS-TIMESTAMP (±skew), CB-ACCESS-KEY, CB-ACCESS-PASSPHRASE",
    hosts: &["api.exchange.coinbase.com"],
    guarded: &[
        g("/withdrawals/crypto"),
        g("/withdrawals/coinbase-account"),
        g("/withdrawals/payment-method"),
        g("/profiles/transfer"),
    ],
    signer: || Arc::new(CoinbaseExchange),
};

impl Exchange for CoinbaseExchange {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        checks::unused(inputs, req, &["nonce", "expires", "recv_window"])?;
        if let Some(ts) = req.timestamp.as_deref() {
            decimal_seconds(inputs, ts)?;
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
            .unwrap_or_else(|| ctx.now_s().to_string());
        let method = req.method_or_get();
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{ts}{method}{target}{body}");
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt(
            "CB-ACCESS-KEY",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("CB-ACCESS-SIGN", signature)
        .with_header("CB-ACCESS-TIMESTAMP", ts)
        .with_header_opt(
            "CB-ACCESS-PASSPHRASE",
            checks::or_recorded(req.passphrase.as_deref(), mac.passphrase()),
        );
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

/// A caller's timestamp: whole seconds, or seconds with 1 to 6 decimals, within the skew.
/// Returns ms.
fn decimal_seconds(inputs: &Inputs<'_>, value: &str) -> Result<u64> {
    let (whole, fraction) = match value.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (value, None),
    };
    let s = inputs.number("timestamp", whole)?;
    let mut ms = s.saturating_mul(1000);
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(inputs.refuse("timestamp", "must be Unix seconds, with at most 6 decimals"));
        }
        let millis: String = f.chars().chain("000".chars()).take(3).collect();
        ms = ms.saturating_add(millis.parse::<u64>().unwrap_or(0));
    }
    inputs.within_skew("timestamp", ms)?;
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;
    use crate::exchanges::Limits;

    const NOW: u64 = 1_700_000_000_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&CoinbaseExchange, NOW, req)
    }

    #[test]
    fn ordinary_requests_reach_their_path() {
        let r = Request::get("/orders")
            .query("status=open&limit=2")
            .timestamp("1700000001");
        assert_eq!(reach(&r).unwrap(), Reach::bound("GET", "/orders"));
        let r = Request::post("/orders")
            .body(r#"{"size":"0.01","side":"buy","product_id":"BTC-USD"}"#)
            .timestamp("1700000000.123");
        assert_eq!(reach(&r).unwrap(), Reach::bound("POST", "/orders"));
        let r = Request::delete("/orders").query("product_id=BTC-USD");
        assert!(reach(&r).is_ok());
    }

    #[test]
    fn a_path_cannot_be_cut_short_and_continued() {
        for (path, body) in [
            ("/profiles", "/transfer{}"),
            ("/withdrawals/cry", r#"pto{"amount":"1"}"#),
            ("/orders", r#" {"a":1}"#),
            ("/orders", "[{}]"),
        ] {
            assert_eq!(
                field(reach(&Request::post(path).body(body))),
                "body",
                "{path}"
            );
        }
        for path in [
            "/orders?x=1",
            "/orders/",
            "//orders",
            "/a/../withdrawals/crypto",
            "orders",
        ] {
            assert_eq!(field(reach(&Request::get(path))), "path", "{path}");
        }
        assert_eq!(
            field(reach(&Request::post("/orders").query("a=1"))),
            "query"
        );
        assert_eq!(field(reach(&Request::get("/orders").body("{}"))), "body");
    }

    #[test]
    fn timestamps_are_seconds_within_the_skew() {
        for bad in [
            "1700000006",
            "1700000000.",
            "1700000000.1234567",
            "1700000000000",
            "01700000000",
            "1.7e9",
            "1700000000POST/profiles/transfer",
            // Refused, not an overflow panic (a fuzz find).
            "18446744073709551615.999",
        ] {
            let r = Request::get("/orders").timestamp(bad);
            assert_eq!(field(reach(&r)), "timestamp", "{bad}");
        }
        assert_eq!(
            decimal_seconds_ok("1700000004.999"),
            Some(1_700_000_004_999)
        );
        assert_eq!(decimal_seconds_ok("1699999995.5"), Some(1_699_999_995_500));
    }

    fn decimal_seconds_ok(v: &str) -> Option<u64> {
        let limits = Limits::default();
        decimal_seconds(
            &Inputs::new("coinbase-exchange", NOW, &limits, None, None),
            v,
        )
        .ok()
    }

    #[test]
    fn unused_inputs_and_foreign_values_are_refused() {
        assert_eq!(field(reach(&Request::get("/orders").nonce("1"))), "nonce");
        assert_eq!(
            field(reach(&Request::get("/orders").api_key("k\n"))),
            "api_key"
        );
        assert_eq!(
            field(reach(&Request::get("/orders").passphrase(""))),
            "passphrase"
        );
        assert_eq!(
            field(reach(&Request::get("/orders").host("api.coinbase.com"))),
            "host"
        );
    }
}
