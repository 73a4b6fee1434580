//! Bybit v5.
//!
//! `X-BAPI-SIGN = hex(HMAC-SHA256(secret, timestamp || apiKey || recvWindow || payload))`; the
//! payload is the body when there is one (POST JSON as sent), else the query string as sent.
//! Timestamp in ms (default: the clock), receive window default `5000`.
//!
//! Self-generated (RSA) API keys, chosen by the key's kind ([`Mac::kind`]): the same string is
//! signed with RSASSA-PKCS1-v1_5/SHA-256 and `X-BAPI-SIGN` carries standard base64. Bybit knows
//! the key's type from the API key: the v5 authentication guide lists no signature-type header
//! (`X-BAPI-SIGN-TYPE` appears only in older examples), so none is sent. Bybit takes no Ed25519
//! or ECDSA keys.
//!
//! ## What a signature is good for ([`Exchange::reach`])
//! The path and the method are not signed, and the four fields run together without
//! separators: the exchange reads `X-BAPI-TIMESTAMP`, `X-BAPI-API-KEY` and
//! `X-BAPI-RECV-WINDOW` from headers, so whoever holds a signature can move each boundary as
//! long as the pieces still parse. The validator fixes every boundary:
//! - timestamp ‖ apiKey: an API key given by the caller (not recorded with the key) may not
//!   start with a digit (the timestamp would grow into it: a time centuries ahead);
//! - apiKey ‖ recvWindow: nor end with one (the receive window would grow: `…7` ‖ `5000` reads
//!   as a window of 75 s), nor hold more than 4 digits in a row (a key cut before them reads
//!   them as the window); recvWindow is 1 to the TTL;
//! - recvWindow ‖ payload: a GET query's names hold no digit (the window would grow into the
//!   first name, or its digits would end a window and cut the name at its front);
//!   a POST body is a strict JSON object (starts with `{`) with no `&` or `=` (read as a
//!   query, the same bytes would carry parameters); GET has no body, POST no query.
//!
//! An API key is required (the exchange needs it, and without it the timestamp and the window
//! run together).

use std::sync::Arc;

use super::registry::{gp, ExchangeInfo, Guarded, SHA256};
use super::{
    grammar, Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest,
};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Bybit v5 (id `bybit`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bybit;

const BYBIT_GUARDED: &[Guarded] = &[
    gp(
        "/v5/asset/withdraw/create",
        &["coin", "chain", "address", "amount"],
    ),
    gp(
        "/v5/asset/transfer/inter-transfer",
        &[
            "transferId",
            "coin",
            "amount",
            "fromAccountType",
            "toAccountType",
        ],
    ),
    gp(
        "/v5/asset/transfer/universal-transfer",
        &[
            "transferId",
            "coin",
            "amount",
            "fromMemberId",
            "toMemberId",
            "fromAccountType",
            "toAccountType",
        ],
    ),
    gp(
        "/v5/asset/transfer/save-transfer-sub-member",
        &["subMemberIds", "transferable"],
    ),
];

/// The registry entry of `bybit` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "bybit",
    key_family: "bybit",
    ccxt: &["bybit"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "X-BAPI-TIMESTAMP (±skew), X-BAPI-RECV-WINDOW (≤ TTL), X-BAPI-API-KEY",
    hosts: &["api.bybit.com", "api.bytick.com"],
    guarded: BYBIT_GUARDED,
    signer: || Arc::new(Bybit),
};

impl Exchange for Bybit {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        bybit_reach(req, inputs)
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
        let window = req.recv_window.clone().unwrap_or_else(|| "5000".to_owned());
        let body = req.body_or_empty();
        let payload = if body.is_empty() {
            req.query_or_empty()
        } else {
            body
        };
        let key = super::binance::api_key(req, mac);
        let prehash = format!("{ts}{}{window}{payload}", key.as_deref().unwrap_or(""));
        let signature = match mac.kind() {
            KeyKind::Hmac => mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex(),
            KeyKind::Rsa2048 => mac.sign_asym(prehash.as_bytes())?.to_base64(),
            other => {
                return Err(Error::WrongKeyKind {
                    name: mac.key_name().to_owned(),
                    kind: other.name().into(),
                    wanted: "an HMAC or RSA key (Bybit takes no Ed25519 or ECDSA keys)".into(),
                })
            }
        };
        let mut signed = SignedRequest::new(
            req.method_or_get(),
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt("X-BAPI-API-KEY", key)
        .with_header("X-BAPI-TIMESTAMP", ts)
        .with_header("X-BAPI-RECV-WINDOW", window)
        .with_header("X-BAPI-SIGN", signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

fn bybit_reach(req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
    let method = grammar::method(
        inputs,
        req.method.as_deref().unwrap_or("GET"),
        &["GET", "POST"],
    )?;
    let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), "/v5/")?;
    let query = req.query.as_deref().unwrap_or("");
    let body = req.body.as_deref().unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    if method == "GET" {
        if !body.is_empty() {
            return Err(inputs.refuse("body", "GET signs the query, not a body"));
        }
        names = grammar::form(inputs, "query", query)?;
        if let Some(name) = names.iter().find(|n| n.bytes().any(|b| b.is_ascii_digit())) {
            return Err(inputs.refuse(
                "query",
                format!(
                    "parameter `{name}` holds a digit: the receive window before the query is \
                     a digit string, and the exchange could read the digits as part of it"
                ),
            ));
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
                    "holds `&` or `=`: read as a query, the signed bytes would carry parameters",
                ));
            }
            names = grammar::json_object(inputs, "body", body)?
                .keys()
                .cloned()
                .collect();
        }
    }
    let ts_ms = match &req.timestamp {
        Some(ts) => Some(inputs.timestamp_ms("timestamp", ts)?),
        None => None,
    };
    let window_ms = match &req.recv_window {
        Some(w) => Some(inputs.recv_window_ms("recv_window", w)?),
        None => None,
    };
    super::binance::not_expired(inputs, ts_ms, window_ms)?;
    let Some(key) = inputs.api_key(req.api_key.as_deref())? else {
        return Err(inputs.refuse("api_key", "is signed: give it, or record it with the key"));
    };
    let digit_at = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    let longest_run = key
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if inputs.stored_api_key().is_none()
        && (digit_at(key.chars().next()) || digit_at(key.chars().last()) || longest_run > 4)
    {
        return Err(inputs.refuse(
            "api_key",
            "starts or ends with a digit, or holds more than 4 digits in a row, which could be \
             read as part of the timestamp or as a receive window; record the key's API key \
             with the key to sign with it",
        ));
    }
    if let Some(host) = &req.host {
        inputs.host(host, INFO.hosts)?;
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
    Ok(Reach::unbound(method, path, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::refused_field as refused;
    use crate::exchanges::{FixedClock, FixedNonce, Limits, Recorded, SoftKey};

    const NOW: u64 = 1_700_000_000_000;

    fn reach_with(req: &Request, stored: Option<&str>) -> Result<Reach> {
        crate::exchanges::reach_with(&Bybit, NOW, &Limits::default(), stored, req)
    }

    fn get() -> Request {
        Request::get("/v5/order/realtime")
            .query("category=linear&symbol=BTCUSDT")
            .api_key("XXXXXXXXXXXXXXXXXX")
    }

    fn post(body: &str) -> Request {
        Request::post("/v5/order/create")
            .body(body)
            .api_key("XXXXXXXXXXXXXXXXXX")
    }

    #[test]
    fn reach_reads_query_names_or_top_level_members() {
        let reach = reach_with(&get(), None).unwrap();
        assert!(!reach.path_bound() && reach.carries("category") && reach.carries("symbol"));
        let reach = reach_with(&post(r#"{"category":"spot","x":{"coin":"BTC"}}"#), None).unwrap();
        assert!(reach.carries("category") && reach.carries("x") && !reach.carries("coin"));
    }

    #[test]
    fn reach_fixes_every_boundary_of_the_prehash() {
        let cases: Vec<(Request, &str)> = vec![
            (get().method("DELETE"), "method"),
            (get().path("/v5/order/realtime/"), "path"),
            (get().path("/v3/private/order"), "path"),
            (get().query("category=linear&symbol=BTCUSDT&x1=1"), "query"),
            (get().query("5000=1"), "query"),
            (get().query("a=1&a=2"), "query"),
            (get().body("{}"), "body"),
            (post("{}").query("a=1"), "query"),
            (post("category=spot"), "body"),
            (post(r#"{"a":"&coin=BTC"}"#), "body"),
            (post(r#"{"a":"b=c"}"#), "body"),
            (post(r#"{"a":1,"a":2}"#), "body"),
            (post(r#"{"a":1}x"#), "body"),
            (post("{}").api_key("1XXXX"), "api_key"),
            (post("{}").api_key("XXXX9"), "api_key"),
            (post("{}").api_key("XX XX"), "api_key"),
            (post("{}").api_key("XX99999XX"), "api_key"),
            (Request::post("/v5/order/create").body("{}"), "api_key"),
            (post("{}").recv_window("60001"), "recv_window"),
            (post("{}").recv_window("05000"), "recv_window"),
            (post("{}").timestamp("1700000006000"), "timestamp"),
            (
                post("{}").timestamp("1699999997000").recv_window("30"),
                "recv_window",
            ),
            (post("{}").host("api.bybit.com.evil"), "host"),
            (post("{}").passphrase("p"), "passphrase"),
        ];
        for (req, field) in cases {
            assert_eq!(refused(reach_with(&req, None)), field, "{req:?}");
        }
        // A key recorded with the key is the exchange's own: its digits cannot move anything.
        assert!(reach_with(&post("{}").api_key("1XXXX9"), Some("1XXXX9")).is_ok());
        assert!(reach_with(&post("{}"), Some("1XXXX9")).is_err());
        assert!(reach_with(&post("{}").recv_window("60000"), None).is_ok());
        assert!(reach_with(&post("{}").api_key("X9999X"), None).is_ok());
    }

    #[test]
    fn signs_the_recorded_api_key() {
        let soft = SoftKey {
            exchange: "bybit",
            secret: b"7a4f1d0c9e2b48a6b3c5d7e9f1a2b3c4",
        };
        let clock = FixedClock(NOW);
        let nonces = FixedNonce(0);
        let ctx = Context::new(&clock, &nonces);
        // The independent vector bybit-v5-get-orders, with the API key from the key's record.
        let req = Request::get("/v5/order/realtime")
            .query("category=linear&symbol=BTCUSDT")
            .recv_window("20000");
        let signed = Bybit
            .sign(
                &req,
                &Recorded {
                    key: soft,
                    api_key: Some("XXXXXXXXXXXXXXXXXX"),
                    passphrase: None,
                },
                &ctx,
            )
            .unwrap();
        assert_eq!(signed.header("X-BAPI-API-KEY"), Some("XXXXXXXXXXXXXXXXXX"));
        assert_eq!(
            signed.signature,
            "38362a04aee2d5e67580764481d01601dc354d0901f0a5c89803924ca24946b3"
        );
    }
}
