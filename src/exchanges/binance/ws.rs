//! The Binance spot WebSocket API (`binance-ws`): every parameter but `signature` sorted by
//! name, signed as raw UTF-8.

use super::super::encode::{param, split_query};
use super::super::{grammar, Context, Exchange, Inputs, Reach, Request, SignedRequest};
use super::rest::{check_host, check_name, not_expired, refuse_unused};
use super::sign::{api_key, binance_signature, Keys};
use super::{SPOT_RULES, WS_INFO};
use crate::error::Result;
use crate::sign::Mac;

/// The Binance spot WebSocket API (id `binance-ws`): sorted parameters, raw UTF-8.
#[derive(Clone, Copy, Debug, Default)]
pub struct BinanceWs;

impl Exchange for BinanceWs {
    fn id(&self) -> &str {
        WS_INFO.id
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        crate::exchanges::registry::same_keys(self.id(), bound)
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        ws_reach(req, inputs)
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let key = api_key(req, mac);
        let payload = ws_payload(req, key.as_deref(), ctx.now_ms());
        // WebSocket API parameters travel in JSON: the base64 is sent as is.
        let (signature, _) = binance_signature(mac, Keys::HmacEd25519Rsa, &payload)?;
        let query = format!("{payload}&signature={signature}");
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or_default(),
            req.path_or_empty(),
            query,
            req.body_or_empty(),
            signature,
        ))
    }
}

/// The validator of a WebSocket API request: `method`, when given, is the WebSocket method
/// (`order.place`), `path`, when given, the endpoint (`/ws-api/v3`); `query` holds the
/// parameters unencoded (raw UTF-8), no body. The signed bytes are also a REST query (same
/// key): the names are checked as REST names, and reported with split names.
fn ws_reach(req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
    let method = match req.method.as_deref() {
        None => "",
        Some(m)
            if !m.is_empty()
                && m.len() <= 64
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._".contains(&b)) =>
        {
            m
        }
        Some(_) => {
            return Err(inputs.refuse(
                "method",
                "must be a WebSocket API method name (letters, digits, `.`, `_`)",
            ))
        }
    };
    let path = match req.path.as_deref() {
        None => "",
        Some(p) => grammar::path(inputs, p, "/ws-api/")?,
    };
    if req.body.as_deref().is_some_and(|b| !b.is_empty()) {
        return Err(inputs.refuse(
            "body",
            "is not signed by the WebSocket API scheme: parameters go in `query`",
        ));
    }
    let query = req.query.as_deref().unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    if !query.is_empty() {
        for pair in query.split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(inputs.refuse("query", "every parameter must be `name=value`"));
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.[]".contains(&b))
            {
                return Err(inputs.refuse(
                    "query",
                    "parameter names may hold only letters, digits and - _ . [ ]",
                ));
            }
            if value.contains(|c: char| c == '=' || c.is_control()) {
                return Err(inputs.refuse(
                    "query",
                    format!("value of `{name}` holds `=` or a control character"),
                ));
            }
            if name == "apiKey" {
                return Err(inputs.refuse(
                    "query",
                    "carries `apiKey`: give it as `api_key` (or record it with the key)",
                ));
            }
            check_name(inputs, "query", name, &SPOT_RULES)?;
            if names.iter().any(|n| n == name) {
                return Err(inputs.refuse("query", format!("parameter `{name}` appears twice")));
            }
            names.push(name.to_owned());
        }
    }
    let (mut ts_ms, mut window_ms) = (None, None);
    match param(query, "timestamp") {
        Some(ts) => {
            ts_ms = Some(inputs.timestamp_ms("timestamp", ts)?);
            if req.timestamp.is_some() {
                return Err(inputs.refuse(
                    "timestamp",
                    "is given both as a field and as the `timestamp` parameter",
                ));
            }
        }
        None => {
            if let Some(ts) = &req.timestamp {
                ts_ms = Some(inputs.timestamp_ms("timestamp", ts)?);
            }
            names.push("timestamp".to_owned());
        }
    }
    match param(query, "recvWindow") {
        Some(w) => {
            window_ms = Some(inputs.recv_window_ms("recvWindow", w)?);
            if req.recv_window.is_some() {
                return Err(inputs.refuse(
                    "recv_window",
                    "is given both as a field and as the `recvWindow` parameter",
                ));
            }
        }
        None => {
            if let Some(w) = &req.recv_window {
                window_ms = Some(inputs.recv_window_ms("recv_window", w)?);
                names.push("recvWindow".to_owned());
            }
        }
    }
    not_expired(inputs, ts_ms, window_ms)?;
    if inputs.api_key(req.api_key.as_deref())?.is_none() {
        return Err(inputs.refuse(
            "api_key",
            "is signed by the WebSocket API: give it, or record it with the key",
        ));
    }
    names.push("apiKey".to_owned());
    check_host(req, inputs, WS_INFO.id)?;
    refuse_unused(req, inputs)?;
    Ok(Reach::unbound(method, path, names).with_split_names())
}

/// The sorted `k=v&...` payload of a WebSocket API request.
fn ws_payload(req: &Request, api_key: Option<&str>, now_ms: u64) -> String {
    let mut params: Vec<(String, String)> = split_query(req.query_or_empty())
        .into_iter()
        .filter(|(k, _)| *k != "signature")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            if !params.iter().any(|(name, _)| name == k) {
                params.push((k.to_owned(), v));
            }
        }
    };
    add("apiKey", api_key.map(str::to_owned));
    add("recvWindow", req.recv_window.clone());
    add(
        "timestamp",
        Some(req.timestamp.clone().unwrap_or_else(|| now_ms.to_string())),
    );
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::super::tests::NOW;
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as refused;

    #[test]
    fn ws_payload_sorts_and_adds_api_key() {
        let req = Request::default()
            .query("symbol=BTCUSDT&side=SELL&signature=x")
            .api_key("K")
            .timestamp("5");
        assert_eq!(
            ws_payload(&req, req.api_key.as_deref(), 0),
            "apiKey=K&side=SELL&symbol=BTCUSDT&timestamp=5"
        );
    }

    #[test]
    fn ws_reach_refuses_what_the_signer_would_drop_or_rewrite() {
        let ok = Request::default()
            .query("symbol=\u{ff11}\u{ff12}&side=SELL&price=52000.00")
            .api_key("K");
        let reach = reach_at(&BinanceWs, NOW, &ok).unwrap();
        assert!(reach.split_names());
        for name in ["symbol", "side", "price", "apiKey", "timestamp"] {
            assert!(reach.carries(name), "{name}");
        }
        let with_path = ok.clone().method("order.place").path("/ws-api/v3");
        assert_eq!(
            reach_at(&BinanceWs, NOW, &with_path).unwrap().endpoint(),
            "/ws-api/v3"
        );
        let cases: Vec<(Request, &str)> = vec![
            (ok.clone().method("ORDER PLACE"), "method"),
            (ok.clone().path("/api/v3/order"), "path"),
            (ok.clone().body("coin=BTC"), "body"),
            (ok.clone().query("apiKey=K&side=SELL"), "query"),
            (ok.clone().query("side=SELL&side=BUY"), "query"),
            (ok.clone().query("side=a=b"), "query"),
            (ok.clone().query("side=a\nb"), "query"),
            (ok.clone().query("signature=x"), "query"),
            (ok.clone().query("xtimestamp=1"), "query"),
            (ok.clone().query("timestamp=1"), "timestamp"),
            (
                ok.clone()
                    .query(format!("timestamp={NOW}"))
                    .timestamp(NOW.to_string()),
                "timestamp",
            ),
            (
                ok.clone().query("recvWindow=5000").recv_window("5000"),
                "recv_window",
            ),
            (ok.clone().recv_window("600000"), "recv_window"),
            (ok.clone().api_key("K&coin=BTC"), "api_key"),
            (Request::default().query("symbol=BTCUSDT"), "api_key"),
            (ok.clone().host("api.binance.com"), "host"),
            (ok.clone().expires("1"), "expires"),
        ];
        for (req, field) in cases {
            assert_eq!(refused(reach_at(&BinanceWs, NOW, &req)), field, "{req:?}");
        }
    }
}
