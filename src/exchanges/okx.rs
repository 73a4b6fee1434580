//! OKX v5.
//!
//! `OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path(?query) || body))`.
//! The timestamp is ISO-8601 UTC with milliseconds (`2020-12-08T09:08:57.715Z`; default: the
//! clock) and is sent as signed in `OK-ACCESS-TIMESTAMP`; the passphrase goes as plaintext in
//! `OK-ACCESS-PASSPHRASE` (not signed).
//!
//! What the signature binds is the concatenation, without separators: the validator
//! ([`Exchange::reach`]) makes its parts unambiguous. The method is `GET` or `POST`; the path is
//! an `/api/v5/` path of plain segments (no `?`, `%`, `{`), so it ends at `?` or where the body
//! begins; a `GET` carries its parameters in a plain query and no body, a `POST` in a JSON body
//! (an object, or an array for batch endpoints) and no query, so the body always begins with `{`
//! or `[` and a path cannot be cut short and continued in it. A caller's timestamp must be the
//! exact ISO form within the allowed skew of the crate's clock.

use std::borrow::Cow;
use std::sync::Arc;

use super::checks;
use super::encode::{base64, iso8601_millis};
use super::registry::{g, ExchangeInfo, SHA256};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// OKX v5 (id `okx`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Okx;

/// What an OKX request may look like.
const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST"],
    prefix: "/api/v5/",
    body_methods: &["POST"],
    arrays: true,
    decoded_query: false,
};

/// The registry entry of `okx` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "okx",
    key_family: "okx",
    ccxt: &["okx", "myokx"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "OK-ACCESS-TIMESTAMP (±skew), OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE",
    hosts: &["www.okx.com", "aws.okx.com"],
    guarded: &[
        g("/api/v5/asset/withdrawal"),
        g("/api/v5/asset/withdrawal-lightning"),
        g("/api/v5/asset/transfer"),
        g("/api/v5/asset/subaccount/transfer"),
        g("/api/v5/fiat/create-withdrawal"),
    ],
    signer: || Arc::new(Okx),
};

impl Exchange for Okx {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        checks::unused(inputs, req, &["nonce", "expires", "recv_window"])?;
        if let Some(ts) = req.timestamp.as_deref() {
            iso_timestamp(inputs, ts)?;
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
        let ts: Cow<'r, str> = match &req.timestamp {
            Some(t) => Cow::Borrowed(t),
            None => Cow::Owned(iso8601_millis(ctx.now_ms())?),
        };
        let method = req.method_or_get();
        let (path, query) = (req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        // timestamp || method || path[?query] || body, built in one buffer.
        let mut prehash = String::with_capacity(
            ts.len() + method.len() + path.len() + query.len() + body.len() + 1,
        );
        for part in [&*ts, &*method, path] {
            prehash.push_str(part);
        }
        if !query.is_empty() {
            prehash.push('?');
            prehash.push_str(query);
        }
        prehash.push_str(body);
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        Ok(
            SignedRequest::new(method, path, query, body, signature.clone())
                .with_header_opt(
                    "OK-ACCESS-KEY",
                    checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
                )
                .with_header("OK-ACCESS-SIGN", signature)
                .with_header("OK-ACCESS-TIMESTAMP", ts)
                .with_header_opt(
                    "OK-ACCESS-PASSPHRASE",
                    checks::or_recorded(req.passphrase.as_deref(), mac.passphrase()),
                )
                .with_header("Content-Type", "application/json"),
        )
    }
}

/// A caller's OKX timestamp: exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`, within the skew. Returns ms.
fn iso_timestamp(inputs: &Inputs<'_>, value: &str) -> Result<u64> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let refuse = || {
        inputs.refuse(
            "timestamp",
            "must be ISO-8601 UTC with milliseconds (2020-12-08T09:08:57.715Z); leave it out \
             and the crate sets it",
        )
    };
    let parsed = time::PrimitiveDateTime::parse(value, format).map_err(|_| refuse())?;
    let ms = u64::try_from(parsed.assume_utc().unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| refuse())?;
    // Only the one spelling the crate itself would send (no other year or digit forms).
    if iso8601_millis(ms).ok().as_deref() != Some(value) {
        return Err(refuse());
    }
    inputs.within_skew("timestamp", ms)?;
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;
    use crate::exchanges::{FixedClock, FixedNonce, Limits, Recorded, SoftKey};

    const NOW: u64 = 1_607_418_537_715; // 2020-12-08T09:08:57.715Z

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Okx, NOW, req)
    }

    #[test]
    fn ordinary_requests_reach_their_path() {
        let get = Request::get("/api/v5/account/balance").query("ccy=BTC,ETH");
        assert_eq!(
            reach(&get).unwrap(),
            Reach::bound("GET", "/api/v5/account/balance")
        );
        let post = Request::post("/api/v5/trade/order")
            .body(r#"{"instId":"BTC-USDT","side":"buy","sz":"1"}"#)
            .timestamp("2020-12-08T09:08:59.000Z")
            .api_key("6a2f3b1c-0000-4d4e-9f00-123456789abc")
            .passphrase("Pass-1!");
        assert_eq!(
            reach(&post).unwrap(),
            Reach::bound("POST", "/api/v5/trade/order")
        );
        let batch = Request::post("/api/v5/trade/batch-orders").body(r#"[{"a":"1"},{"a":"2"}]"#);
        assert!(reach(&batch).is_ok());
    }

    #[test]
    fn a_path_cannot_be_cut_short_and_continued() {
        for (path, query, body) in [
            ("/api/v5/asset/with", None, Some(r#"drawal{"ccy":"BTC"}"#)),
            ("/api/v5/asset", None, Some(r#"/withdrawal{"ccy":"BTC"}"#)),
            ("/api/v5/trade/order", None, Some(r#" {"a":1}"#)),
            ("/api/v5/trade/order?x=1", None, None),
            ("/api/v5/trade/order/../../asset/withdrawal", None, None),
            ("/api/v5/trade//order", None, None),
            ("/api/v5/%61sset/withdrawal", None, None),
            ("/api/v5/trade/order{", None, None),
            ("/api/v5/trade/order/", None, None),
            ("/api/v4/trade/order", None, None),
        ] {
            let mut req = Request::post(path);
            req.query = query.map(str::to_owned);
            req.body = body.map(str::to_owned);
            assert!(reach(&req).is_err(), "{path} {body:?}");
        }
    }

    #[test]
    fn query_and_body_stay_in_their_place() {
        let get_body = Request::get("/api/v5/account/balance").body("{}");
        assert_eq!(field(reach(&get_body)), "body");
        let post_query = Request::post("/api/v5/trade/order").query("a=1");
        assert_eq!(field(reach(&post_query)), "query");
        for bad in ["a=1&a=2", "?a=1", "a=1#x", "a={}", "a=1\n"] {
            let r = Request::get("/api/v5/account/balance").query(bad);
            assert_eq!(field(reach(&r)), "query", "{bad}");
        }
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            "[1]x",
            r#"[{"a":1,"a":2}]"#,
            "a=1",
        ] {
            let r = Request::post("/api/v5/trade/order").body(bad);
            assert_eq!(field(reach(&r)), "body", "{bad}");
        }
        for bad in ["get", "PUT", "DELETE", ""] {
            let mut r = Request::get("/api/v5/account/balance");
            r.method = Some(bad.to_owned());
            assert_eq!(field(reach(&r)), "method", "{bad}");
        }
    }

    #[test]
    fn timestamps_are_exact_iso_within_the_skew() {
        for ok in ["2020-12-08T09:08:57.715Z", "2020-12-08T09:09:02.000Z"] {
            assert!(
                reach(&Request::get("/api/v5/x").timestamp(ok)).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "2020-12-08T09:09:03.000Z",
            "2020-12-08T09:08:57Z",
            "2020-12-08T09:08:57.715+00:00",
            "2020-12-08t09:08:57.715z",
            "1607418537715",
            "2020-12-08T09:08:57.715ZGET/api/v5/asset/withdrawal",
            "+2020-12-08T09:08:57.715Z",
        ] {
            let r = Request::get("/api/v5/x").timestamp(bad);
            assert_eq!(field(reach(&r)), "timestamp", "{bad}");
        }
    }

    #[test]
    fn unused_inputs_keys_and_hosts_are_refused() {
        assert_eq!(field(reach(&Request::get("/api/v5/x").nonce("1"))), "nonce");
        assert_eq!(
            field(reach(&Request::get("/api/v5/x").expires("1"))),
            "expires"
        );
        assert_eq!(
            field(reach(&Request::get("/api/v5/x").recv_window("1"))),
            "recv_window"
        );
        assert_eq!(
            field(reach(&Request::get("/api/v5/x").api_key("a&b"))),
            "api_key"
        );
        assert_eq!(
            field(reach(&Request::get("/api/v5/x").passphrase("a b"))),
            "passphrase"
        );
        assert_eq!(
            field(reach(&Request::get("/api/v5/x").host("evil.example"))),
            "host"
        );
        assert!(reach(&Request::get("/api/v5/x").host("www.okx.com")).is_ok());
        let limits = Limits::default();
        let recorded = Inputs::new("okx", NOW, &limits, Some("AK"), Some("PP"));
        let other = Request::get("/api/v5/x").api_key("BK");
        assert!(Okx.reach(&other, &recorded).is_err());
        let other = Request::get("/api/v5/x").passphrase("QQ");
        assert!(Okx.reach(&other, &recorded).is_err());
    }

    #[test]
    fn recorded_key_and_passphrase_are_sent_when_the_request_has_none() {
        let key = Recorded {
            key: SoftKey {
                exchange: "okx",
                secret: b"s",
            },
            api_key: Some("AK"),
            passphrase: Some("PP"),
        };
        let ctx = Context::new(&FixedClock(NOW), &FixedNonce(1));
        let req = Request::get("/api/v5/account/balance");
        let signed = Okx.sign(&req, &key, &ctx).unwrap();
        assert_eq!(signed.header("OK-ACCESS-KEY"), Some("AK"));
        assert_eq!(signed.header("OK-ACCESS-PASSPHRASE"), Some("PP"));
        assert_eq!(
            signed.header("OK-ACCESS-TIMESTAMP"),
            Some("2020-12-08T09:08:57.715Z")
        );
    }

    #[test]
    fn numeric_ends_are_seen() {
        assert!(checks::ends_numeric("/a?count=10"));
        assert!(checks::ends_numeric("/a?x=1e"));
        assert!(!checks::ends_numeric("/a?reverse=true"));
        assert!(!checks::ends_numeric(""));
    }
}
