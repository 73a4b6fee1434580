//! The validator of Binance-shaped REST requests (`query || body` signed, path not signed):
//! Binance spot and USD-M, and MEXC spot, which copies the scheme.

use super::super::encode::param;
use super::super::{grammar, Inputs, Reach, Request};
use crate::error::Result;

/// What the `query || body` validator of a Binance-shaped REST API checks besides the grammar.
pub(crate) struct RestRules {
    /// The path prefixes of the API (`/api/`, `/sapi/` ...).
    pub prefixes: &'static [&'static str],
    /// Refuse names holding a run of 10 or more digits (MEXC: the same key signs futures
    /// requests, `accessKey || Request-Time || params`, and a name `x1700000000000y` at the
    /// front of the signed bytes reads as an access key and a request time there).
    pub no_time_in_names: bool,
}

/// The inputs the crate owns in a Binance-shaped request: a name that ends with one of them
/// (in any case) but is not it could be read as it once cut at its front.
const OWNED_NAMES: &[&str] = &["timestamp", "recvWindow", "signature"];

/// Checks one parameter name of a Binance-shaped request (REST or WebSocket).
pub(crate) fn check_name(
    inputs: &Inputs<'_>,
    field: &str,
    name: &str,
    rules: &RestRules,
) -> Result<()> {
    if name == "signature" {
        return Err(inputs.refuse(
            field,
            "carries `signature`: the crate computes and appends it",
        ));
    }
    let lower = name.to_ascii_lowercase();
    for owned in OWNED_NAMES {
        if name != *owned && lower.ends_with(&owned.to_ascii_lowercase()) {
            return Err(inputs.refuse(
                field,
                format!(
                    "parameter `{name}` ends with `{owned}`: with the query/body boundary moved, \
                     the exchange reads it as `{owned}`"
                ),
            ));
        }
    }
    if rules.no_time_in_names && longest_digit_run(name) >= 10 {
        return Err(inputs.refuse(
            field,
            format!("parameter `{name}` holds a run of 10 or more digits (reads as a time)"),
        ));
    }
    Ok(())
}

pub(crate) fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Refuses a request whose validity (`timestamp` + receive window, 5000 ms by default) has
/// already ended by the crate's clock: the exchange would refuse it, and nothing should be
/// signed for nothing.
pub(crate) fn not_expired(
    inputs: &Inputs<'_>,
    ts_ms: Option<u64>,
    window_ms: Option<u64>,
) -> Result<()> {
    let last = ts_ms
        .unwrap_or_else(|| inputs.now_ms())
        .saturating_add(window_ms.unwrap_or(5_000));
    if last < inputs.now_ms() {
        return Err(inputs.refuse(
            "recv_window",
            "timestamp + receive window is already past by the crate's clock",
        ));
    }
    Ok(())
}

/// Fields the Binance-shaped schemes do not use: refused rather than silently dropped.
pub(super) fn refuse_unused(req: &Request, inputs: &Inputs<'_>) -> Result<()> {
    if req.nonce.is_some() {
        return Err(inputs.refuse("nonce", "is not part of this scheme"));
    }
    if req.expires.is_some() {
        return Err(inputs.refuse("expires", "is not part of this scheme"));
    }
    if req.passphrase.is_some() {
        return Err(inputs.refuse("passphrase", "is not part of this scheme"));
    }
    Ok(())
}

/// Checks a request's host (not signed, but owned) against the exchange's hosts.
pub(super) fn check_host(req: &Request, inputs: &Inputs<'_>, id: &str) -> Result<()> {
    match &req.host {
        Some(host) => inputs.host(host, crate::exchanges::info(id).map_or(&[], |i| i.hosts)),
        None => Ok(()),
    }
}

/// The validator of a Binance-shaped REST request (`query || body` signed, path not signed):
/// Binance spot and USD-M, MEXC spot. See the module documentation.
pub(crate) fn rest_reach(
    id: &str,
    req: &Request,
    inputs: &Inputs<'_>,
    rules: &RestRules,
) -> Result<Reach> {
    let method = grammar::method(
        inputs,
        req.method.as_deref().unwrap_or("GET"),
        &["GET", "POST", "PUT", "DELETE"],
    )?;
    let path = req.path.as_deref().unwrap_or("");
    let Some(prefix) = rules.prefixes.iter().find(|p| path.starts_with(**p)) else {
        return Err(inputs.refuse(
            "path",
            format!("must start with one of {}", rules.prefixes.join(", ")),
        ));
    };
    let path = grammar::path(inputs, path, prefix)?;
    let query = req.query.as_deref().unwrap_or("");
    let body = req.body.as_deref().unwrap_or("");
    // Values may hold JSON punctuation as ccxt writes it (`batchOrders=[{"type":...}]`): it
    // holds no `&` or `=`, so the parameters read the same.
    const VALUES: &[u8] = b"-_.~,:*+/@!$'()[]{}\"";
    let query_names = grammar::form_with(inputs, "query", query, VALUES)?;
    let body_names = grammar::form_with(inputs, "body", body, VALUES)?;
    // A server that decodes escapes before splitting would read `a=x%26coin%3DBTC` as two
    // parameters: not assumed either way, refused.
    for (field, text) in [("query", query), ("body", body)] {
        let lower = text.to_ascii_lowercase();
        if lower.contains("%26") || lower.contains("%3d") {
            return Err(inputs.refuse(
                field,
                "may not hold an escaped `&` or `=` (%26, %3D): a server that decodes before \
                 splitting would read another parameter",
            ));
        }
    }
    for name in &query_names {
        check_name(inputs, "query", name, rules)?;
    }
    for name in &body_names {
        check_name(inputs, "body", name, rules)?;
        if query_names.contains(name) {
            return Err(inputs.refuse("body", format!("parameter `{name}` is in the query too")));
        }
    }
    let mut names = query_names;
    names.extend(body_names);
    let given = |name: &str| param(query, name).or_else(|| param(body, name));
    let (mut ts_ms, mut window_ms) = (None, None);
    if let Some(w) = given("recvWindow") {
        window_ms = Some(inputs.recv_window_ms("recvWindow", w)?);
        if req.recv_window.is_some() {
            return Err(inputs.refuse(
                "recv_window",
                "is given both as a field and as the `recvWindow` parameter",
            ));
        }
    }
    match given("timestamp") {
        Some(ts) => {
            ts_ms = Some(inputs.timestamp_ms("timestamp", ts)?);
            if req.timestamp.is_some() {
                return Err(inputs.refuse(
                    "timestamp",
                    "is given both as a field and as the `timestamp` parameter",
                ));
            }
            if req.recv_window.is_some() {
                return Err(inputs.refuse(
                    "recv_window",
                    "is added only with the crate's `timestamp`: put `recvWindow` in the \
                     parameters beside `timestamp`",
                ));
            }
        }
        None => {
            if let Some(ts) = &req.timestamp {
                ts_ms = Some(inputs.timestamp_ms("timestamp", ts)?);
            }
            if let Some(w) = &req.recv_window {
                window_ms = Some(inputs.recv_window_ms("recv_window", w)?);
                names.push("recvWindow".to_owned());
            }
            names.push("timestamp".to_owned());
        }
    }
    not_expired(inputs, ts_ms, window_ms)?;
    inputs.api_key(req.api_key.as_deref())?;
    check_host(req, inputs, id)?;
    refuse_unused(req, inputs)?;
    Ok(Reach::unbound(method, path, names).with_split_names())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{order, NOW};
    use super::super::Binance;
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as refused;

    #[test]
    fn rest_reach_names_every_parameter_and_split_names() {
        let spot = Binance::spot();
        let reach = reach_at(&spot, NOW, &order().body("price=1").recv_window("5000")).unwrap();
        assert!(!reach.path_bound() && reach.split_names());
        assert_eq!(reach.endpoint(), "/api/v3/order");
        for name in [
            "symbol",
            "side",
            "type",
            "quantity",
            "price",
            "recvWindow",
            "timestamp",
        ] {
            assert!(reach.carries(name), "{name}");
        }
        // Cut at its front by a moved query/body boundary, `xaddress` reads as `address`.
        let cut = reach_at(&spot, NOW, &order().body("xaddress=abc")).unwrap();
        assert!(cut.carries("address"));
        // A caller's timestamp within the skew is kept as the crate's.
        let ts = format!("symbol=BTCUSDT&timestamp={}", NOW + 1000);
        assert!(reach_at(&spot, NOW, &Request::get("/api/v3/openOrders").query(ts)).is_ok());
        // USD-M and COIN-M take their own prefix only.
        assert!(reach_at(&Binance::usdm(), NOW, &Request::post("/fapi/v1/order")).is_ok());
        assert_eq!(refused(reach_at(&Binance::usdm(), NOW, &order())), "path");
        let coinm = Binance::coinm();
        let dapi = Request::post("/dapi/v1/order").query("symbol=BTCUSD_PERP&side=BUY");
        let reach = reach_at(&coinm, NOW, &dapi.clone().host("dapi.binance.com")).unwrap();
        assert!(!reach.path_bound() && reach.split_names() && reach.carries("symbol"));
        for other in [
            order(),
            Request::post("/fapi/v1/order"),
            dapi.clone().path("/sapi/v1/futures/transfer"),
        ] {
            assert_eq!(refused(reach_at(&coinm, NOW, &other)), "path", "{other:?}");
        }
        assert_eq!(
            refused(reach_at(
                &coinm,
                NOW,
                &dapi.clone().host("fapi.binance.com")
            )),
            "host"
        );
        assert_eq!(
            refused(reach_at(&coinm, NOW, &dapi.query("xtimestamp=1"))),
            "query"
        );
    }

    #[test]
    fn rest_reach_refuses_what_could_carry_another_field() {
        let spot = Binance::spot();
        let mut lower = order();
        lower.method = Some("post".into());
        let cases: Vec<(Request, &str)> = vec![
            (lower, "method"),
            (order().method("PATCH"), "method"),
            (order().path("/api/v3/order/"), "path"),
            (
                order().path("/api/v3/../../sapi/v1/capital/withdraw/apply"),
                "path",
            ),
            (order().path("/api/v3/%6Frder"), "path"),
            (order().path("/api/v3/order?coin=BTC"), "path"),
            (order().path("/wapi/v3/withdraw.html"), "path"),
            (order().query("symbol=BTCUSDT&symbol=ETHUSDT"), "query"),
            (order().query("?symbol=BTCUSDT"), "query"),
            (order().query("a=1&&b=2"), "query"),
            (order().query("a=b=c"), "query"),
            (order().query("a=1&coin"), "query"),
            (order().query("a=x%26coin%3DBTC&b=1 2"), "query"),
            (order().query("a=x%26coin%3dBTC"), "query"),
            (order().body("symbol=ETHUSDT"), "body"),
            (order().body("{\"coin\":\"BTC\"}"), "body"),
            (order().body("signature=00"), "body"),
            (order().query("xtimestamp=1"), "query"),
            (order().query("Timestamp=1"), "query"),
            (order().body("myrecvwindow=1"), "body"),
            (order().query("oldSignature=1"), "query"),
            (order().query("timestamp=1800000000000"), "timestamp"),
            (
                order().query(format!("timestamp={}", NOW + 6000)),
                "timestamp",
            ),
            (
                order()
                    .query(format!("timestamp={NOW}"))
                    .timestamp(NOW.to_string()),
                "timestamp",
            ),
            (
                order()
                    .query(format!("timestamp={NOW}"))
                    .recv_window("5000"),
                "recv_window",
            ),
            (
                order().query("recvWindow=5000").recv_window("5000"),
                "recv_window",
            ),
            (order().query("recvWindow=60001"), "recvWindow"),
            (order().timestamp("01700000000000"), "timestamp"),
            (order().recv_window("0"), "recv_window"),
            (order().recv_window("5000&coin=BTC"), "recv_window"),
            (
                order()
                    .timestamp((NOW - 3000).to_string())
                    .recv_window("10"),
                "recv_window",
            ),
            (order().api_key("key\r\nX-Evil: 1"), "api_key"),
            (order().host("evil.example"), "host"),
            (order().nonce("1"), "nonce"),
            (order().passphrase("p"), "passphrase"),
        ];
        for (req, field) in cases {
            assert_eq!(refused(reach_at(&spot, NOW, &req)), field, "{req:?}");
        }
        assert!(reach_at(&spot, NOW, &order().host("api1.binance.com")).is_ok());
    }
}
