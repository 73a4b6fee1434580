//! MEXC spot v3 and futures (contract v1).
//!
//! Spot is a Binance clone: `signature = hex(HMAC-SHA256(secret, query || body))`, header
//! `X-MEXC-APIKEY`, same `timestamp`/`recvWindow` handling and the same validator as
//! [`super::Binance`] (the path is not signed, the query/body boundary can be moved).
//!
//! Futures: `Signature = hex(HMAC-SHA256(secret, accessKey || Request-Time || paramString))`;
//! paramString is the body (raw JSON) for POST, else the query (for GET and DELETE, the sorted,
//! URL-encoded `k=v&...`). `Request-Time` is the `timestamp` (ms, default: the clock). Headers
//! `ApiKey` (the request's `api_key`, else the one recorded with the key), `Request-Time`,
//! `Signature`, and `Recv-Window` (seconds, not signed) when given.
//!
//! ## What a signature is good for ([`Exchange::reach`])
//! Neither scheme signs the path, and one MEXC key (with both permissions) serves spot and
//! futures, so each signature is judged by the parameters both APIs could read from its bytes:
//! - spot bytes (`query || body`) read at futures: an access key, a request time and
//!   parameters run together, so a spot name holding a run of 10 or more digits is refused (a
//!   name `x1700000000000coin` would read as key `x`, time `1700000000000`, parameter `coin`);
//! - futures bytes read at spot, split anywhere between query and body (MEXC spot also reads a
//!   JSON body): the futures query must be canonical (sorted, escapes as the exchange makes
//!   them), no name may start with a digit (it would run into `Request-Time`) or end with
//!   `timestamp`, `recvWindow` or `signature` (cut at its front it reads as spot's own input);
//!   a JSON body may hold no `&` or `=` (read as a form it would carry parameters) and no member
//!   named `...timestamp` at any depth (spot reads a JSON object starting anywhere, and a spot
//!   request needs `timestamp`); the names reported are the members at every depth;
//! - an access key given by the caller (not recorded with the key) may not end with a digit,
//!   which would run into `Request-Time`, nor hold a run of 10 or more digits (a key cut before
//!   them reads them as `Request-Time`).

use std::sync::Arc;

use super::binance::{self, rest_reach, RestRules};
use super::registry::{gp, ExchangeInfo, Guarded, SHA256};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// MEXC spot v3 (id `mexc`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mexc;

const SPOT_RULES: RestRules = RestRules {
    prefixes: &["/api/v3/"],
    no_time_in_names: true,
};

const MEXC_GUARDED: &[Guarded] = &[
    gp("/api/v3/capital/withdraw", &["coin", "address", "amount"]),
    gp(
        "/api/v3/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp(
        "/api/v3/capital/transfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    gp(
        "/api/v3/capital/transfer/internal",
        &["toAccountType", "toAccount", "asset", "amount"],
    ),
    gp(
        "/api/v3/capital/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
];

/// The registry entry of `mexc` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "mexc",
    key_family: "mexc",
    ccxt: &["mexc"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), X-MEXC-APIKEY",
    hosts: &["api.mexc.com"],
    guarded: MEXC_GUARDED,
    signer: || Arc::new(Mexc),
};

/// The registry entry of `mexc-futures` (listed in [`super::ALL`]).
pub(super) static FUTURES_INFO: ExchangeInfo = ExchangeInfo {
    id: "mexc-futures",
    key_family: "mexc-futures",
    ccxt: &["mexc"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "Request-Time (±skew), Recv-Window (≤ TTL), ApiKey",
    hosts: &["contract.mexc.com"],
    guarded: MEXC_GUARDED,
    signer: || Arc::new(MexcFutures),
};

impl Exchange for Mexc {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        rest_reach(INFO.id, req, inputs, &SPOT_RULES)
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        binance::sign_query_body(req, mac, ctx, "X-MEXC-APIKEY")
    }
}

/// MEXC futures, contract v1 (id `mexc-futures`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MexcFutures;

impl Exchange for MexcFutures {
    fn id(&self) -> &str {
        FUTURES_INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        futures_reach(req, inputs)
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
        let body = req.body_or_empty();
        let params = if body.is_empty() {
            req.query_or_empty()
        } else {
            body
        };
        let key = binance::api_key(req, mac);
        let prehash = format!("{}{ts}{params}", key.as_deref().unwrap_or(""));
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        Ok(SignedRequest::new(
            req.method_or_get(),
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("ApiKey", key)
        .with_header("Request-Time", ts)
        .with_header("Signature", signature)
        .with_header_opt("Recv-Window", req.recv_window.as_deref())
        .with_header("Content-Type", "application/json"))
    }
}

/// Rules for futures query names: as spot's (the same bytes read at spot).
const FUTURES_NAMES: RestRules = RestRules {
    prefixes: &[],
    no_time_in_names: true,
};

fn futures_reach(req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
    let method = grammar::method(
        inputs,
        req.method.as_deref().unwrap_or("GET"),
        &["GET", "POST", "DELETE"],
    )?;
    let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/api/v1/")?;
    let query = req.query.as_deref().unwrap_or("");
    let body = req.body.as_deref().unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    let from_query = method != "POST";
    if from_query {
        if !body.is_empty() {
            return Err(inputs.refuse("body", "GET and DELETE sign the query, not a body"));
        }
        names = grammar::form_with(inputs, "query", query, b"-._*")?;
        for name in &names {
            binance::check_name(inputs, "query", name, &FUTURES_NAMES)?;
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(inputs.refuse(
                    "query",
                    format!("parameter `{name}` starts with a digit (runs into Request-Time)"),
                ));
            }
        }
        if !names.windows(2).all(|w| w[0] < w[1]) {
            return Err(inputs.refuse(
                "query",
                "parameters must be sorted by name (the exchange signs them sorted)",
            ));
        }
        for (_, value) in super::encode::split_query(query) {
            canonical_escapes(inputs, value)?;
        }
    } else {
        if !query.is_empty() {
            return Err(inputs.refuse(
                "query",
                "is not signed for POST: the parameters go in the JSON body",
            ));
        }
        if !body.is_empty() {
            if body.contains(['&', '=']) {
                return Err(inputs.refuse(
                    "body",
                    "holds `&` or `=`: read as a spot query, the signed bytes would carry \
                     parameters",
                ));
            }
            let object = grammar::json_object(inputs, "body", body)?;
            let value = serde_json::Value::Object(object);
            collect_members(&value, &mut names);
            if let Some(name) = names
                .iter()
                .find(|n| n.to_ascii_lowercase().ends_with("timestamp"))
            {
                return Err(inputs.refuse(
                    "body",
                    format!(
                        "has a member `{name}`: MEXC spot reads a JSON body, and its `timestamp` \
                         would make these bytes a spot request"
                    ),
                ));
            }
        }
    }
    if let Some(ts) = &req.timestamp {
        inputs.timestamp_ms("timestamp", ts)?;
    }
    if let Some(w) = &req.recv_window {
        let seconds = inputs.number("recv_window", w)?;
        if seconds == 0 || seconds.saturating_mul(1000) > inputs.limits().ttl_ms {
            return Err(inputs.refuse(
                "recv_window",
                format!(
                    "must be from 1 to {} seconds",
                    inputs.limits().ttl_ms / 1000
                ),
            ));
        }
    }
    let Some(key) = inputs.api_key(req.api_key.as_deref())? else {
        return Err(inputs.refuse(
            "api_key",
            "is signed (accessKey): give it, or record it with the key",
        ));
    };
    if inputs.stored_api_key().is_none()
        && (key.ends_with(|c: char| c.is_ascii_digit()) || binance::longest_digit_run(key) >= 10)
    {
        return Err(inputs.refuse(
            "api_key",
            "ends with a digit, or holds 10 or more digits in a row, which could be read as \
             (part of) Request-Time; record the key's API key with the key to sign with it",
        ));
    }
    if let Some(host) = &req.host {
        inputs.host(host, FUTURES_INFO.hosts)?;
    }
    for (field, value) in [
        ("nonce", &req.nonce),
        ("expires", &req.expires),
        ("passphrase", &req.passphrase),
    ] {
        if value.is_some() {
            return Err(inputs.refuse(field, "is not part of this scheme"));
        }
    }
    let reach = Reach::unbound(method, path, names);
    Ok(if from_query {
        // Read at spot, the query's first name runs on from accessKey || Request-Time, and
        // the query/body boundary can be put anywhere: names can be read cut at the front.
        reach.with_split_names()
    } else {
        reach
    })
}

/// Checks that a query value is written as the exchange re-encodes it (Java's `URLEncoder`,
/// spaces as `%20`): letters, digits, `- . _ *` as they are, every other byte as `%XX` in
/// upper case.
fn canonical_escapes(inputs: &Inputs<'_>, value: &str) -> Result<()> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // `form_with` has checked that every `%` starts a `%XX` escape.
            let hex = bytes.get(i + 1..i + 3).unwrap_or_default();
            let decoded = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let canonical = hex.iter().all(|b| !b.is_ascii_lowercase())
                && decoded.is_some_and(|d| !(d.is_ascii_alphanumeric() || b"-._*".contains(&d)));
            if !canonical {
                return Err(inputs.refuse(
                    "query",
                    "escapes must be upper-case `%XX` of bytes the exchange encodes",
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Every member name of a JSON value, at any depth (arrays included).
fn collect_members(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if !out.contains(k) {
                    out.push(k.clone());
                }
                collect_members(v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect_members(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::refused_field as refused;
    use crate::exchanges::{FixedClock, FixedNonce, Limits, Recorded, SoftKey};

    const NOW: u64 = 1_700_000_000_000;

    fn reach_with(ex: &dyn Exchange, req: &Request, stored: Option<&str>) -> Result<Reach> {
        crate::exchanges::reach_with(ex, NOW, &Limits::default(), stored, req)
    }

    #[test]
    fn spot_refuses_names_that_read_as_a_futures_request_time() {
        let req = Request::post("/api/v3/order").query("mx0key1700000000000coin=BTC&side=BUY");
        assert_eq!(refused(reach_with(&Mexc, &req, None)), "query");
        // Binance, which has no such scheme beside it, takes the name.
        let binance = super::super::Binance::spot();
        assert!(reach_with(&binance, &req.clone().path("/api/v3/order"), None).is_ok());
        let ok = Request::post("/api/v3/order").query("symbol=BTCUSDT&side=BUY&quantity=1");
        let reach = reach_with(&Mexc, &ok, None).unwrap();
        assert!(reach.split_names() && reach.carries("timestamp"));
        assert_eq!(
            refused(reach_with(&Mexc, &ok.clone().path("/sapi/v1/x"), None)),
            "path"
        );
    }

    fn get() -> Request {
        Request::get("/api/v1/private/order/list/open_orders")
            .query("page_num=1&page_size=20&symbol=BTC_USDT")
            .api_key("mx0vglAccessKey")
    }

    fn post(body: &str) -> Request {
        Request::post("/api/v1/private/order/submit")
            .body(body)
            .api_key("mx0vglAccessKey")
    }

    #[test]
    fn futures_reach_reads_query_names_or_every_json_member() {
        let reach = reach_with(&MexcFutures, &get(), None).unwrap();
        assert!(reach.split_names() && reach.carries("page_num") && reach.carries("symbol"));
        let reach = reach_with(
            &MexcFutures,
            &post(r#"{"symbol":"BTC_USDT","x":{"coin":"BTC"},"y":[{"amount":1}]}"#),
            None,
        )
        .unwrap();
        assert!(!reach.split_names());
        for name in ["symbol", "x", "coin", "y", "amount"] {
            assert!(reach.carries(name), "{name}");
        }
    }

    #[test]
    fn futures_reach_refuses_what_moves_a_boundary_or_reads_at_spot() {
        let cases: Vec<(Request, &str)> = vec![
            (get().method("PUT"), "method"),
            (get().path("/api/v3/capital/withdraw"), "path"),
            (get().path("/api/v1/private//order"), "path"),
            (get().query("symbol=BTC_USDT&page_num=1"), "query"),
            (get().query("page_num=1&page_num=2"), "query"),
            (get().query("a=%2c"), "query"),
            (get().query("a=%41"), "query"),
            (get().query("a=x~y"), "query"),
            (get().query("1a=1"), "query"),
            (get().query("a=1&xtimestamp=1"), "query"),
            (get().query("a1700000000000b=1"), "query"),
            (get().body("{}"), "body"),
            (post("{}").query("a=1"), "query"),
            (post(r#"{"a":"x&coin=BTC"}"#), "body"),
            (post(r#"{"a":"x=1"}"#), "body"),
            (post(r#"{"a":{"timestamp":1700000000000}}"#), "body"),
            (post(r#"{"openTimestamp":1}"#), "body"),
            (post(r#"{"a":1,"a":2}"#), "body"),
            (post(r#" {"a":1}"#), "body"),
            (post("{}").api_key("mx0key1"), "api_key"),
            (post("{}").api_key("mx0&key"), "api_key"),
            (post("{}").api_key("mx0k99999999999999y"), "api_key"),
            (Request::post("/api/v1/private/order/submit"), "api_key"),
            (post("{}").timestamp("1600000000000"), "timestamp"),
            (post("{}").recv_window("61"), "recv_window"),
            (post("{}").recv_window("0"), "recv_window"),
            (post("{}").host("api.mexc.com"), "host"),
            (post("{}").nonce("1"), "nonce"),
        ];
        for (req, field) in cases {
            assert_eq!(
                refused(reach_with(&MexcFutures, &req, None)),
                field,
                "{req:?}"
            );
        }
        // A key recorded with the key may end with a digit: the exchange looks it up exactly.
        let stored = post("{}").api_key("mx0key1");
        assert!(reach_with(&MexcFutures, &stored, Some("mx0key1")).is_ok());
        assert!(reach_with(&MexcFutures, &get().query("a=%2C&b=x%20y"), None).is_ok());
        assert!(reach_with(&MexcFutures, &post("{}").recv_window("60"), None).is_ok());
    }

    #[test]
    fn futures_signs_the_recorded_api_key() {
        let soft = SoftKey {
            exchange: "mexc-futures",
            secret: b"7a4f1d0c9e2b48a6b3c5d7e9f1a2b3c4",
        };
        let clock = FixedClock(NOW);
        let nonces = FixedNonce(0);
        let ctx = Context::new(&clock, &nonces);
        // The independent vector mexc-futures-get, with the API key from the key's record.
        let mut req = get();
        req.api_key = None;
        let signed = MexcFutures
            .sign(
                &req,
                &Recorded {
                    key: soft,
                    api_key: Some("mx0vglAccessKey"),
                    passphrase: None,
                },
                &ctx,
            )
            .unwrap();
        assert_eq!(signed.header("ApiKey"), Some("mx0vglAccessKey"));
        assert_eq!(
            signed.signature,
            "a6917fc060ad7a1427a5b750d5d980db72a2841b3c621cbf64bef4f37bf174ae"
        );
    }
}
