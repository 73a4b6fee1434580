//! HTX (Huobi), Signature V2.
//!
//! String to sign: `METHOD \n host(lowercase) \n path \n Q`, where Q holds the query parameters
//! percent-encoded (uppercase hex) and sorted by name: the request's own `query` parameters plus
//! `AccessKeyId` (= `api_key`, else the API key recorded with the key),
//! `SignatureMethod=HmacSHA256`, `SignatureVersion=2` and `Timestamp` (= `timestamp`:
//! `YYYY-MM-DDThh:mm:ss` used as is, or Unix seconds/ms formatted; default: the clock) unless
//! present. POST body fields are not signed.
//! `Signature = base64(HMAC-SHA256(secret, ...))` is appended as `&Signature=<url-encoded>`.
//! Host default `api.huobi.pro`.
//!
//! What the signature binds ([`Exchange::reach`]): method, host, path and query, separated by
//! newlines that no part may hold; not the body. The validator takes `GET` or `POST`, a host of
//! the exchange's (or a configured test host; lower case), a path in the strict grammar, a
//! strict query, and a `Timestamp` (given as the field or in the query) parsed and held to the
//! crate's clock. `AccessKeyId`, `SignatureMethod`, `SignatureVersion` and `Timestamp` in the
//! query must agree with what the crate would put there, and `Signature` is the crate's to add.
//! A POST body, when given, must be a JSON object (it is not signed: whoever holds the
//! signature can send any body to the signed endpoint).

use std::sync::Arc;

use super::encode::{base64, iso8601_seconds, percent_decode, percent_encode, split_query};
use super::registry::{g, ExchangeInfo, SHA256};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// HTX Signature V2 (id `htx`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Htx;

/// The host signed when the request names none.
const DEFAULT_HOST: &str = "api.huobi.pro";

/// A `Timestamp` as HTX reads it (`YYYY-MM-DDThh:mm:ss`, UTC), or Unix seconds (10 digits) or
/// milliseconds (13 digits) that the signer formats: held to the clock; returns the text signed.
fn check_timestamp(inputs: &Inputs<'_>, field: &str, value: &str) -> Result<String> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let ms = match value.len() {
            10 => inputs.timestamp_s(field, value)?.saturating_mul(1000),
            13 => inputs.timestamp_ms(field, value)?,
            _ => {
                return Err(inputs.refuse(
                    field,
                    "must be `YYYY-MM-DDThh:mm:ss` (UTC), or Unix seconds or milliseconds",
                ))
            }
        };
        return iso8601_seconds(ms).map_err(|_| inputs.refuse(field, "is out of range"));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let parsed = (value.len() == 19)
        .then(|| time::PrimitiveDateTime::parse(value, format).ok())
        .flatten()
        .ok_or_else(|| {
            inputs.refuse(
                field,
                "must be `YYYY-MM-DDThh:mm:ss` (UTC), or Unix seconds or milliseconds",
            )
        })?;
    let secs = parsed.assume_utc().unix_timestamp();
    let ms = u64::try_from(secs)
        .map_err(|_| inputs.refuse(field, "is before 1970"))?
        .saturating_mul(1000);
    // Whole seconds: the time is anywhere in the second `ms` starts.
    let late = ms + 999 + inputs.limits().skew_ms < inputs.now_ms();
    if late || ms > inputs.now_ms() + inputs.limits().skew_ms {
        inputs.within_skew(field, ms)?;
    }
    Ok(value.to_owned())
}

/// The registry entry of `htx` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "htx",
    key_family: "htx",
    ccxt: &["htx"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST.with("host", true).with("body", false),
    endpoint_from: EndpointFrom::Path,
    owned: "Timestamp (±skew), AccessKeyId, host (documented hosts or test hosts)",
    hosts: &[
        "api.huobi.pro",
        "api-aws.huobi.pro",
        "api.htx.com",
        "api.hbdm.com",
    ],
    guarded: &[
        g("/v1/dw/withdraw/api/create"),
        g("/v1/account/transfer"),
        g("/v2/account/transfer"),
        g("/v1/futures/transfer"),
        g("/v1/subuser/transfer"),
        g("/v2/point/transfer"),
    ],
    signer: || Arc::new(Htx),
};

impl Exchange for Htx {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let method = grammar::method(
            inputs,
            req.method.as_deref().unwrap_or("GET"),
            &["GET", "POST"],
        )?;
        let hosts = INFO.hosts;
        inputs.host(req.host.as_deref().unwrap_or(DEFAULT_HOST), hosts)?;
        let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/")?;
        let query = req.query.as_deref().unwrap_or("");
        let names = grammar::form(inputs, "query", query)?;
        let field_ts = req
            .timestamp
            .as_deref()
            .map(|t| check_timestamp(inputs, "timestamp", t))
            .transpose()?;
        let mut key_in_query = None;
        for (name, raw) in split_query(query) {
            let value = percent_decode(raw);
            match name {
                "Signature" => {
                    return Err(inputs.refuse("query", "`Signature` is the crate's to add"));
                }
                "AccessKeyId" => key_in_query = Some(value),
                "SignatureMethod" if value != "HmacSHA256" => {
                    return Err(inputs.refuse("query", "`SignatureMethod` must be HmacSHA256"));
                }
                "SignatureVersion" if value != "2" => {
                    return Err(inputs.refuse("query", "`SignatureVersion` must be 2"));
                }
                "Timestamp" => {
                    let signed = check_timestamp(inputs, "query", &value)?;
                    if field_ts.as_deref().is_some_and(|t| t != signed) {
                        return Err(
                            inputs.refuse("timestamp", "differs from the query's `Timestamp`")
                        );
                    }
                }
                _ => {}
            }
        }
        match (key_in_query.as_deref(), req.api_key.as_deref()) {
            (Some(q), Some(given)) if q != given => {
                return Err(inputs.refuse("api_key", "differs from the query's `AccessKeyId`"));
            }
            (Some(q), _) => {
                inputs.api_key(Some(q))?;
            }
            (None, given) => {
                inputs.api_key(given)?;
            }
        }
        let body = req.body.as_deref().unwrap_or("");
        if !body.is_empty() {
            if method == "GET" {
                return Err(inputs.refuse("body", "a GET has no body"));
            }
            grammar::json_object(inputs, "body", body)?;
        }
        Ok(Reach::bound(method, path).with_params(names))
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let host = req
            .host
            .as_deref()
            .unwrap_or("api.huobi.pro")
            .to_ascii_lowercase();
        let mut params: Vec<(String, String)> = split_query(req.query_or_empty())
            .into_iter()
            .filter(|(k, _)| *k != "Signature")
            .map(|(k, v)| (percent_decode(k), percent_decode(v)))
            .collect();
        let timestamp = match &req.timestamp {
            Some(t) if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() => {
                let n: u64 = t.parse().unwrap_or(0);
                // Ten digits or fewer: seconds; more: milliseconds.
                iso8601_seconds(if t.len() <= 10 { n * 1000 } else { n })?
            }
            Some(t) => t.clone(),
            None => iso8601_seconds(ctx.now_ms())?,
        };
        let defaults = [
            (
                "AccessKeyId",
                req.api_key
                    .as_deref()
                    .or(mac.api_key())
                    .unwrap_or("")
                    .to_owned(),
            ),
            ("SignatureMethod", "HmacSHA256".to_owned()),
            ("SignatureVersion", "2".to_owned()),
            ("Timestamp", timestamp),
        ];
        for (k, v) in defaults {
            if !params.iter().any(|(name, _)| name == k) {
                params.push((k.to_owned(), v));
            }
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let q = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let method = req.method_or_get();
        let path = req.path_or_empty();
        let prehash = format!("{method}\n{host}\n{path}\n{q}");
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let query = format!("{q}&Signature={}", percent_encode(&signature));
        let body = req.body_or_empty();
        let mut signed = SignedRequest::new(method, path, query, body, signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::Limits;
    use crate::exchanges::{expect_refused, reach_with, TEST_HOST};

    /// 2017-05-11T15:19:30Z.
    const NOW: u64 = 1_494_515_970_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_with(
            &Htx,
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
        Request::get("/v1/order/openOrders")
            .query("symbol=btcusdt&account-id=123")
            .timestamp("2017-05-11T15:19:30")
            .api_key("e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx")
    }

    #[test]
    fn reach_is_method_and_path() {
        let r = reach(&ok()).unwrap();
        assert_eq!((r.method(), r.endpoint()), ("GET", "/v1/order/openOrders"));
        assert!(reach(&ok().host("api.hbdm.com")).is_ok());
        assert!(reach(&ok().host("127.0.0.1:8443")).is_ok());
        assert!(reach(&ok().timestamp("1494515971")).is_ok());
        assert!(reach(&ok().timestamp("1494515971000")).is_ok());
        let q = "AccessKeyId=e2xxxxxx-99xxxxxx-84xxxxxx-7xxxx&SignatureMethod=HmacSHA256\
                 &SignatureVersion=2&Timestamp=2017-05-11T15%3A19%3A30&symbol=btcusdt";
        assert!(reach(&ok().query(q)).is_ok());
        let post = Request::post("/v1/order/orders/place").body(r#"{"symbol":"btcusdt"}"#);
        assert!(reach(&post).is_ok());
    }

    #[test]
    fn reach_refuses_hosts_times_and_auth_params_the_crate_owns() {
        for host in [
            "API.HUOBI.PRO",
            "evil.example",
            "api.huobi.pro\n/v1/x",
            "api.huobi.pro:443",
        ] {
            refused(&ok().host(host), "host");
        }
        for ts in [
            "2017-05-11T15:19:40",
            "2017-05-11 15:19:30",
            "2017-05-11T15:19:30Z",
            "1",
            "149451597",
        ] {
            refused(&ok().timestamp(ts), "timestamp");
        }
        refused(&ok().query("Timestamp=2030-01-01T00%3A00%3A00"), "query");
        refused(
            &ok()
                .query("Timestamp=2017-05-11T15%3A19%3A31")
                .timestamp("2017-05-11T15:19:30"),
            "timestamp",
        );
        refused(&ok().query("SignatureMethod=HmacSHA1"), "query");
        refused(&ok().query("SignatureVersion=1"), "query");
        refused(&ok().query("Signature=abc"), "query");
        refused(&ok().query("AccessKeyId=other"), "api_key");
        let mut keyless = ok().query("AccessKeyId=a%26b");
        keyless.api_key = None;
        refused(&keyless, "api_key");
    }

    #[test]
    fn reach_refuses_paths_queries_and_bodies_that_read_otherwise() {
        for path in [
            "/v1/order/openOrders/",
            "/v1//x",
            "/v1/x/../withdraw",
            "/v1/%78",
            "/v1/x\n",
            "v1/x",
            "/v1/x?y",
        ] {
            refused(&ok().path(path), "path");
        }
        for q in ["a=1&a=2", "a", "a=1\n", "?a=1", "a=%zz"] {
            refused(&ok().query(q), "query");
        }
        refused(&ok().method("DELETE"), "method");
        refused(&ok().body("{}"), "body");
        refused(&Request::post("/v1/order/orders/place").body("a=1"), "body");
    }
}
