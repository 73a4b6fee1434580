//! Server models of group A: Binance spot (`binance`), USD-M futures (`binance-usdm`), COIN-M
//! futures (`binance-coinm`) and the spot WebSocket API (`binance-ws`); MEXC spot (`mexc`) and futures (`mexc-futures`); Bybit v5
//! (`bybit`). None of them signs the path or the method, so every reading is `endpoint: None`
//! (any endpoint whose parameters the bytes carry), and the judge looks at parameter sets and
//! times.
//!
//! Written from the exchanges' documentation (shared/design/exchange-schemes.md; Binance's
//! "request security" pages, MEXC's spot v3 "general info" and contract "integration guide",
//! Bybit's v5 "integration guidance"), deliberately more lenient than the crate where the
//! servers may be:
//! - **Binance REST** verifies `HMAC(query || body)` with the `signature` parameter taken out of
//!   whichever part carries it, reads form parameters from both parts (split on `&`, then on the
//!   first `=`, then percent-decoded), in any method, at any path. The holder of a signature can
//!   put the query/body boundary anywhere in the signed bytes: [`rest_split_readings`]
//!   enumerates every split point. A signed request needs `timestamp` (ms, or µs with 16+
//!   digits); `recvWindow` is at most 60000, so a reading is executable from `timestamp - 1 s`
//!   to `timestamp + 60 s` (`time_ms` is the timestamp; readings whose last moment has passed
//!   are dropped: no one can execute them). Duplicate names: either value may be read.
//! - **One Binance key** serves spot, USD-M, COIN-M and the WebSocket API: the models of all four
//!   read the same bytes every way ([`binance_readings`]): as REST bytes at any split, and as
//!   WebSocket API parameters (sorted `k=v&...`; see [`ws_reading`]). All four judge against
//!   the spot withdrawal/transfer table (neither USD-M nor COIN-M has an endpoint of its own that
//!   moves funds out: money enters and leaves their wallets through `/sapi/` transfers).
//! - **MEXC spot** is Binance's scheme, and also reads a JSON body ("parameters may be sent ...
//!   in the request body with content type application/json"); Jackson reads the first JSON
//!   value and ignores what follows. **MEXC futures** verifies
//!   `HMAC(ApiKey || Request-Time || paramString)` (for GET/DELETE, paramString is rebuilt from
//!   the received parameters, sorted, values URL-encoded as Java's `URLEncoder` does with `%20`;
//!   for POST, the raw JSON body); `Recv-Window` is a header, not signed, at most 60 s. One
//!   MEXC key may hold both permissions: both models read bytes both ways ([`mexc_readings`]),
//!   the futures way at every boundary between access key, request time and parameters.
//! - **Bybit** verifies `HMAC(X-BAPI-TIMESTAMP || X-BAPI-API-KEY || X-BAPI-RECV-WINDOW ||
//!   payload)` (payload: the query for GET, the body for POST); the request is executable from
//!   `timestamp - 1 s` to `timestamp + recv_window` (no maximum window is documented, so none
//!   is assumed): `time_ms` is that expiry. The key is looked up by the header, so with no key
//!   recorded the model takes any `[A-Za-z0-9_-]+` as a key: [`bybit_readings`] enumerates
//!   every boundary.

use std::collections::{BTreeSet, HashMap, HashSet};

use hsm_custody::exchanges::{self, Inputs, Limits, Request};
use hsm_custody::HmacAlg;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::Value;

use super::props::{self, Oracle};
use super::replay::{self, SoftMac};
use super::{hmac, now_ms, Executed, Http, ModelGuarded, ServerModel};

/// This group's models.
pub fn models() -> Vec<Box<dyn ServerModel>> {
    vec![
        Box::new(BinanceRest {
            id: "binance",
            host: "api.binance.com",
        }),
        Box::new(BinanceRest {
            id: "binance-usdm",
            host: "fapi.binance.com",
        }),
        Box::new(BinanceRest {
            id: "binance-coinm",
            host: "dapi.binance.com",
        }),
        Box::new(BinanceWsApi),
        Box::new(MexcSpot),
        Box::new(MexcFutures),
        Box::new(Bybit),
    ]
}

// ---------------------------------------------------------------------------------------------
// Guarded endpoints, from the exchanges' documentation.

/// Binance: withdrawals, transfers between accounts and to others, gift cards (spot API
/// documentation, "Wallet", "Sub-account", "Gift card" sections).
const BINANCE_GUARDED: &[ModelGuarded] = &[
    (
        "POST",
        "/sapi/*/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    (
        "POST",
        "/sapi/*/localentity/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    (
        "POST",
        "/sapi/*/asset/transfer",
        &["type", "asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/futures/transfer",
        &["asset", "amount", "type"],
    ),
    (
        "POST",
        "/sapi/*/margin/transfer",
        &["asset", "amount", "type"],
    ),
    (
        "POST",
        "/sapi/*/margin/isolated/transfer",
        &["asset", "symbol", "transFrom", "transTo", "amount"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/transfer/subToMaster",
        &["asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/transfer/subToSub",
        &["toEmail", "asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/futures/transfer",
        &["email", "asset", "amount", "type"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/futures/internalTransfer",
        &["fromEmail", "toEmail", "futuresType", "asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/sub-account/margin/transfer",
        &["email", "asset", "amount", "type"],
    ),
    (
        "POST",
        "/sapi/*/managed-subaccount/deposit",
        &["toEmail", "asset", "amount"],
    ),
    (
        "POST",
        "/sapi/*/managed-subaccount/withdraw",
        &["email", "asset", "amount"],
    ),
    ("POST", "/sapi/*/giftcard/createCode", &["token", "amount"]),
    (
        "POST",
        "/sapi/*/giftcard/buyCode",
        &["baseToken", "faceToken", "baseTokenAmount"],
    ),
    (
        "POST",
        "/wapi/*/withdraw.html",
        &["asset", "address", "amount"],
    ),
];

/// MEXC spot v3 ("Wallet" endpoints); the contract API has none that moves funds out.
const MEXC_GUARDED: &[ModelGuarded] = &[
    (
        "POST",
        "/api/v3/capital/withdraw",
        &["coin", "address", "amount"],
    ),
    (
        "POST",
        "/api/v3/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    (
        "POST",
        "/api/v3/capital/transfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    (
        "POST",
        "/api/v3/capital/transfer/internal",
        &["toAccountType", "toAccount", "asset", "amount"],
    ),
    (
        "POST",
        "/api/v3/capital/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
];

/// Bybit v5 ("Asset": withdraw, internal, universal and sub-member transfers).
const BYBIT_GUARDED: &[ModelGuarded] = &[
    (
        "POST",
        "/v5/asset/withdraw/create",
        &["coin", "chain", "address", "amount"],
    ),
    (
        "POST",
        "/v5/asset/transfer/inter-transfer",
        &[
            "transferId",
            "coin",
            "amount",
            "fromAccountType",
            "toAccountType",
        ],
    ),
    (
        "POST",
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
    (
        "POST",
        "/v5/asset/transfer/save-transfer-sub-member",
        &["subMemberIds", "transferable"],
    ),
];

// ---------------------------------------------------------------------------------------------
// Shared pieces.

fn hmac_sha256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac(HmacAlg::HmacSha256, secret, msg)
}

/// The longest window Binance and MEXC accept (`recvWindow`, `Recv-Window`), in ms.
const MAX_WINDOW_MS: u64 = 60_000;

/// Whether a request executable until `last_ms` (plus a second of the exchanges' leeway) can
/// still be executed by anyone.
fn still_live(last_ms: u64, now: u64) -> bool {
    last_ms.saturating_add(1_000) >= now
}

/// Decodes `%XX` (and `+` as a space, as form decoding does); invalid escapes stay.
fn form_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `name=value` piece of a form: (decoded name, decoded value). No `=`: an empty value.
fn form_pair(piece: &[u8], decode: bool) -> (String, String) {
    let (name, value) = match piece.iter().position(|&b| b == b'=') {
        Some(eq) => (&piece[..eq], &piece[eq + 1..]),
        None => (piece, &piece[piece.len()..]),
    };
    if decode {
        (form_decode(name), form_decode(value))
    } else {
        (
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        )
    }
}

/// The `name=value` pairs of a form, split on `&` (empty pieces skipped).
fn form_pairs(bytes: &[u8], decode: bool) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| form_pair(p, decode))
        .collect()
}

/// The top-level members of the first JSON value in `bytes` (what Jackson reads, ignoring what
/// follows), as `(name, value)`; `None` unless it is an object.
fn json_members(bytes: &[u8]) -> Option<Vec<(String, Value)>> {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    match stream.next() {
        Some(Ok(Value::Object(map))) => Some(map.into_iter().collect()),
        _ => None,
    }
}

fn json_non_empty(v: &Value) -> bool {
    !matches!(v, Value::Null) && v.as_str() != Some("")
}

/// A Binance/MEXC `timestamp` value as a time in ms: decimal digits, ms (or µs with 16 or more
/// digits, as Binance accepts).
fn binance_time(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = value.parse().ok()?;
    Some(if value.len() >= 16 { n / 1000 } else { n })
}

/// Collects readings without duplicates.
#[derive(Default)]
struct Readings {
    seen: HashSet<(Vec<String>, Option<u64>)>,
    out: Vec<Executed>,
}

impl Readings {
    fn add(&mut self, params: BTreeSet<String>, time_ms: Option<u64>) {
        let key = (params.iter().cloned().collect::<Vec<_>>(), time_ms);
        if self.seen.insert(key) {
            self.out.push(Executed {
                method: None,
                endpoint: None,
                params,
                time_ms,
            });
        }
    }

    /// A Binance-shaped reading: the names with a non-empty value, once for each `timestamp`
    /// the exchange could take (first or last of duplicates); none when no timestamp is live.
    fn add_timed(&mut self, pairs: &[(String, String)], window_ms: u64, now: u64) {
        let params: BTreeSet<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for (_, v) in pairs.iter().filter(|(n, _)| n == "timestamp") {
            if let Some(t) = binance_time(v) {
                if still_live(t.saturating_add(window_ms), now) {
                    self.add(params.clone(), Some(t));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binance (and MEXC spot): the query || body readings.

/// Every reading of `signed` as REST bytes `query || body`, the boundary put at every byte.
/// With `json`, a body starting with `{` is also read as JSON (MEXC spot).
fn rest_split_readings(signed: &[u8], json: bool, now: u64, out: &mut Readings) {
    // The pieces between `&`, with their byte ranges; a split at `s` inside piece `k` leaves
    // every other piece whole and cuts piece `k` into a query tail and a body head.
    let mut ranges = Vec::new();
    let mut start = 0;
    for (i, &b) in signed.iter().enumerate() {
        if b == b'&' {
            ranges.push((start, i));
            start = i + 1;
        }
    }
    ranges.push((start, signed.len()));
    let whole: Vec<Option<(String, String)>> = ranges
        .iter()
        .map(|&(a, e)| (a < e).then(|| form_pair(&signed[a..e], true)))
        .collect();
    for (k, &(a, e)) in ranges.iter().enumerate() {
        for s in a..=e {
            let mut pairs: Vec<(String, String)> = whole
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .filter_map(|(_, p)| p.clone())
                .collect();
            if s > a {
                pairs.push(form_pair(&signed[a..s], true));
            }
            if e > s {
                pairs.push(form_pair(&signed[s..e], true));
            }
            out.add_timed(&pairs, MAX_WINDOW_MS, now);
        }
    }
    if json {
        for s in signed
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'{')
            .map(|(i, _)| i)
        {
            let Some(members) = json_members(&signed[s..]) else {
                continue;
            };
            let mut pairs = form_pairs(&signed[..s], true);
            for (name, value) in members {
                let text = match &value {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                pairs.push((name, text));
            }
            out.add_timed(&pairs, MAX_WINDOW_MS, now);
        }
    }
}

/// The WebSocket API reading of `signed`: the server sorts the JSON parameters of a request
/// and joins them as `k=v&...`, so a holder needs parameters whose join is `signed`. Since a
/// JSON key or value may hold `&` and `=`, any grouping of the `&`-pieces is a possible
/// parameter list; but each grouping's plain names are a subset of the ungrouped pieces' names,
/// and its `timestamp` is the ungrouped one or not a number. The ungrouped reading, taken here
/// without requiring the order to be sorted, therefore carries every parameter set and time any
/// grouping could (the unit test `ws_groupings_are_dominated` checks this on small inputs).
fn ws_reading(signed: &[u8], now: u64, out: &mut Readings) {
    out.add_timed(&form_pairs(signed, false), MAX_WINDOW_MS, now);
}

/// Every reading of bytes signed with a Binance key: REST at every split, and the WebSocket
/// API.
fn binance_readings(signed: &[u8]) -> Vec<Executed> {
    let now = now_ms();
    let mut out = Readings::default();
    rest_split_readings(signed, false, now, &mut out);
    ws_reading(signed, now, &mut out);
    out.out
}

/// Takes the `signature` parameter out of a query or body: (the rest, the signature).
fn strip_signature(part: &str) -> (String, Option<String>) {
    let pieces: Vec<&str> = part.split('&').collect();
    match pieces.iter().rposition(|p| p.starts_with("signature=")) {
        Some(at) => {
            let sig = pieces[at]["signature=".len()..].to_owned();
            let rest: Vec<&str> = pieces
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, p)| *p)
                .collect();
            (rest.join("&"), Some(sig))
        }
        None => (part.to_owned(), None),
    }
}

/// `totalParams` and the signature of a Binance-shaped REST request.
fn rest_total_params(http: &Http) -> Option<(String, String)> {
    let (query, in_query) = strip_signature(&http.query);
    let (body, in_body) = strip_signature(&http.body);
    let sig = in_query.or(in_body)?;
    Some((format!("{query}{body}"), sig))
}

/// What a Binance-shaped REST request executes: its path, with the parameters of query and body.
fn rest_executes(http: &Http, window_ms: u64) -> Executed {
    let mut pairs = form_pairs(http.query.as_bytes(), true);
    pairs.extend(form_pairs(http.body.as_bytes(), true));
    let mut r = Readings::default();
    r.add_timed(&pairs, window_ms, 0);
    let time_ms = r.out.first().and_then(|e| e.time_ms);
    Executed {
        method: Some(http.method.clone()),
        endpoint: Some(http.path.clone()),
        params: pairs
            .into_iter()
            .filter(|(n, v)| !v.is_empty() && n != "signature")
            .map(|(n, _)| n)
            .collect(),
        time_ms,
    }
}

/// Binance spot or USD-M futures REST.
struct BinanceRest {
    id: &'static str,
    host: &'static str,
}

impl ServerModel for BinanceRest {
    fn id(&self) -> &'static str {
        self.id
    }
    fn host(&self) -> &'static str {
        self.host
    }
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>> {
        rest_total_params(http).map(|(total, _)| total.into_bytes())
    }
    fn verify(&self, http: &Http, secret: &[u8]) -> bool {
        // Binance accepts the hex in either case.
        rest_total_params(http).is_some_and(|(total, sig)| {
            hex::encode(hmac_sha256(secret, total.as_bytes())).eq_ignore_ascii_case(&sig)
        })
    }
    fn executes(&self, http: &Http) -> Executed {
        rest_executes(http, MAX_WINDOW_MS)
    }
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed> {
        binance_readings(signed)
    }
    fn guarded(&self) -> &'static [ModelGuarded] {
        BINANCE_GUARDED
    }
}

/// The Binance spot WebSocket API. The crate's signed request carries the parameters as a
/// query (`payload&signature=...`); the server takes the JSON params, drops `signature`, sorts
/// the rest by name and joins them.
struct BinanceWsApi;

impl BinanceWsApi {
    fn payload(http: &Http) -> Option<(String, String)> {
        let mut sig = None;
        let mut params: Vec<(&str, &str)> = Vec::new();
        for piece in http.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            if k == "signature" {
                sig = Some(v.to_owned());
            } else {
                params.push((k, v));
            }
        }
        params.sort_by(|a, b| a.0.cmp(b.0));
        let payload = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        Some((payload, sig?))
    }
}

impl ServerModel for BinanceWsApi {
    fn id(&self) -> &'static str {
        "binance-ws"
    }
    fn host(&self) -> &'static str {
        "ws-api.binance.com"
    }
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>> {
        Self::payload(http).map(|(p, _)| p.into_bytes())
    }
    fn verify(&self, http: &Http, secret: &[u8]) -> bool {
        Self::payload(http).is_some_and(|(p, sig)| {
            hex::encode(hmac_sha256(secret, p.as_bytes())).eq_ignore_ascii_case(&sig)
        })
    }
    fn executes(&self, http: &Http) -> Executed {
        let pairs = form_pairs(http.query.as_bytes(), false);
        let mut r = Readings::default();
        r.add_timed(&pairs, MAX_WINDOW_MS, 0);
        Executed {
            method: Some(http.method.clone()),
            endpoint: None,
            params: pairs
                .into_iter()
                .filter(|(n, v)| !v.is_empty() && n != "signature")
                .map(|(n, _)| n)
                .collect(),
            time_ms: r.out.first().and_then(|e| e.time_ms),
        }
    }
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed> {
        binance_readings(signed)
    }
    fn guarded(&self) -> &'static [ModelGuarded] {
        BINANCE_GUARDED
    }
}

// ---------------------------------------------------------------------------------------------
// MEXC.

/// The characters of an API key as the exchanges' lookups could take it.
fn key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The futures readings of `signed`: `accessKey || Request-Time || paramString` at every
/// boundary (a non-empty key of key characters, a live time of digits, the rest read as GET
/// parameters, and as a POST JSON body when it is one).
fn mexc_futures_readings(signed: &[u8], now: u64, out: &mut Readings) {
    let key_end = signed
        .iter()
        .position(|&b| !key_char(b))
        .unwrap_or(signed.len());
    for i in 1..=key_end {
        let digits = signed[i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
            .min(20);
        for j in i + 1..=i + digits {
            let Some(t) = std::str::from_utf8(&signed[i..j])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if !still_live(t.saturating_add(MAX_WINDOW_MS), now) {
                continue;
            }
            let rest = &signed[j..];
            let get: BTreeSet<String> = form_pairs(rest, true)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, _)| n)
                .collect();
            out.add(get, Some(t));
            if let Some(members) = json_members(rest) {
                let post = members
                    .into_iter()
                    .filter(|(_, v)| json_non_empty(v))
                    .map(|(n, _)| n)
                    .collect();
                out.add(post, Some(t));
            }
        }
    }
}

/// Every reading of bytes signed with a MEXC key: spot at every query/body split (form or
/// JSON body), and futures at every key/time/parameters boundary.
fn mexc_readings(signed: &[u8]) -> Vec<Executed> {
    let now = now_ms();
    let mut out = Readings::default();
    rest_split_readings(signed, true, now, &mut out);
    mexc_futures_readings(signed, now, &mut out);
    out.out
}

/// MEXC spot v3.
struct MexcSpot;

impl ServerModel for MexcSpot {
    fn id(&self) -> &'static str {
        "mexc"
    }
    fn host(&self) -> &'static str {
        "api.mexc.com"
    }
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>> {
        rest_total_params(http).map(|(total, _)| total.into_bytes())
    }
    fn verify(&self, http: &Http, secret: &[u8]) -> bool {
        // "The signature is support lowercase only."
        rest_total_params(http)
            .is_some_and(|(total, sig)| hex::encode(hmac_sha256(secret, total.as_bytes())) == sig)
    }
    fn executes(&self, http: &Http) -> Executed {
        rest_executes(http, MAX_WINDOW_MS)
    }
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed> {
        mexc_readings(signed)
    }
    fn guarded(&self) -> &'static [ModelGuarded] {
        MEXC_GUARDED
    }
}

/// Java's `URLEncoder.encode(s, "UTF-8")` with `+` replaced by `%20`, as MEXC's contract
/// documentation rebuilds GET parameters.
fn java_url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// MEXC futures (contract v1).
struct MexcFutures;

impl MexcFutures {
    fn param_string(http: &Http) -> String {
        if http.method.eq_ignore_ascii_case("POST") {
            return http.body.clone();
        }
        // Rebuilt from the received parameters: a sorted map (the last of duplicates), values
        // decoded then encoded again.
        let map: std::collections::BTreeMap<String, String> =
            form_pairs(http.query.as_bytes(), true)
                .into_iter()
                .collect();
        map.iter()
            .map(|(k, v)| format!("{k}={}", java_url_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

impl ServerModel for MexcFutures {
    fn id(&self) -> &'static str {
        "mexc-futures"
    }
    fn host(&self) -> &'static str {
        "contract.mexc.com"
    }
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>> {
        let key = http.header("ApiKey")?;
        let time = http.header("Request-Time")?;
        Some(format!("{key}{time}{}", Self::param_string(http)).into_bytes())
    }
    fn verify(&self, http: &Http, secret: &[u8]) -> bool {
        match (self.signed_bytes(http), http.header("Signature")) {
            (Some(bytes), Some(sig)) => {
                hex::encode(hmac_sha256(secret, &bytes)).eq_ignore_ascii_case(sig)
            }
            _ => false,
        }
    }
    fn executes(&self, http: &Http) -> Executed {
        let params = if http.method.eq_ignore_ascii_case("POST") {
            json_members(http.body.as_bytes())
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| json_non_empty(v))
                .map(|(n, _)| n)
                .collect()
        } else {
            form_pairs(http.query.as_bytes(), true)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, _)| n)
                .collect()
        };
        Executed {
            method: Some(http.method.clone()),
            endpoint: Some(http.path.clone()),
            params,
            time_ms: http.header("Request-Time").and_then(|t| t.parse().ok()),
        }
    }
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed> {
        mexc_readings(signed)
    }
    fn guarded(&self) -> &'static [ModelGuarded] {
        MEXC_GUARDED
    }
}

// ---------------------------------------------------------------------------------------------
// Bybit.

/// Every reading of bytes signed with a Bybit key: `timestamp || apiKey || recvWindow ||
/// payload` at every boundary (digits, key characters, digits, the rest), each payload read as
/// a GET query and, when it is one, as a POST JSON body. `time_ms` is the last moment the
/// request is executable, `timestamp + recvWindow`.
fn bybit_readings(signed: &[u8]) -> Vec<Executed> {
    let now = now_ms();
    let mut out = Readings::default();
    // The payload readings depend only on where the payload starts.
    let mut payloads: HashMap<usize, Vec<BTreeSet<String>>> = HashMap::new();
    let ts_digits = signed
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
        .min(20);
    for i in 1..=ts_digits {
        let Some(ts) = std::str::from_utf8(&signed[..i])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let key_run = signed[i..].iter().take_while(|&&b| key_char(b)).count();
        for j in i + 1..=i + key_run {
            let window_digits = signed[j..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
                .min(20);
            for k in j + 1..=j + window_digits {
                let Some(window) = std::str::from_utf8(&signed[j..k])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                let last = ts.saturating_add(window);
                if !still_live(last, now) {
                    continue;
                }
                let sets = payloads.entry(k).or_insert_with(|| {
                    let rest = &signed[k..];
                    let mut sets = vec![form_pairs(rest, true)
                        .into_iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(n, _)| n)
                        .collect()];
                    if let Some(members) = json_members(rest) {
                        sets.push(
                            members
                                .into_iter()
                                .filter(|(_, v)| json_non_empty(v))
                                .map(|(n, _)| n)
                                .collect(),
                        );
                    }
                    sets
                });
                for set in sets.iter() {
                    out.add(set.clone(), Some(last));
                }
            }
        }
    }
    out.out
}

/// Bybit v5.
struct Bybit;

impl ServerModel for Bybit {
    fn id(&self) -> &'static str {
        "bybit"
    }
    fn host(&self) -> &'static str {
        "api.bybit.com"
    }
    fn signed_bytes(&self, http: &Http) -> Option<Vec<u8>> {
        let ts = http.header("X-BAPI-TIMESTAMP")?;
        let key = http.header("X-BAPI-API-KEY")?;
        let window = http.header("X-BAPI-RECV-WINDOW").unwrap_or("5000");
        let payload = if http.method.eq_ignore_ascii_case("GET") {
            &http.query
        } else {
            &http.body
        };
        Some(format!("{ts}{key}{window}{payload}").into_bytes())
    }
    fn verify(&self, http: &Http, secret: &[u8]) -> bool {
        match (self.signed_bytes(http), http.header("X-BAPI-SIGN")) {
            (Some(bytes), Some(sig)) => {
                hex::encode(hmac_sha256(secret, &bytes)).eq_ignore_ascii_case(sig)
            }
            _ => false,
        }
    }
    fn executes(&self, http: &Http) -> Executed {
        let params = if http.method.eq_ignore_ascii_case("GET") {
            form_pairs(http.query.as_bytes(), true)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, _)| n)
                .collect()
        } else {
            json_members(http.body.as_bytes())
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| json_non_empty(v))
                .map(|(n, _)| n)
                .collect()
        };
        let ts: Option<u64> = http.header("X-BAPI-TIMESTAMP").and_then(|t| t.parse().ok());
        let window: u64 = http
            .header("X-BAPI-RECV-WINDOW")
            .and_then(|w| w.parse().ok())
            .unwrap_or(5000);
        Executed {
            method: Some(http.method.clone()),
            endpoint: Some(http.path.clone()),
            params,
            time_ms: ts.map(|t| t.saturating_add(window)),
        }
    }
    fn reinterpret(&self, signed: &[u8]) -> Vec<Executed> {
        bybit_readings(signed)
    }
    fn guarded(&self) -> &'static [ModelGuarded] {
        BYBIT_GUARDED
    }
}

// ---------------------------------------------------------------------------------------------
// Vectors: every published or independent vector of this group, signed through the crate's
// validator and signer with a software key, verified by the model.

const IDS: &[&str] = &[
    "binance",
    "binance-usdm",
    "binance-coinm",
    "binance-ws",
    "mexc",
    "mexc-futures",
    "bybit",
];

/// The vector's own time: its `timestamp` field, else the `timestamp` parameter.
fn vector_time(req: &Request) -> u64 {
    let param = |part: &Option<String>| {
        part.as_deref().and_then(|p| {
            p.split('&')
                .find_map(|kv| kv.strip_prefix("timestamp=").map(str::to_owned))
        })
    };
    req.timestamp
        .clone()
        .or_else(|| param(&req.query))
        .or_else(|| param(&req.body))
        .expect("every vector of this group carries a time")
        .trim()
        .parse()
        .expect("a time in ms")
}

/// The published Binance futures examples whose `timestamp= 1591702613943` holds the doc's space.
const DOC_TYPOS: &[&str] = &[
    "binance-usdm-hmac-3-mixed-doc-typo",
    "binance-coinm-hmac-3-mixed-doc-typo",
];

#[test]
fn group_a_models_verify_every_vector() {
    let mut replayed = 0;
    for v in &replay::vectors(IDS) {
        let id = v["exchange"].as_str().unwrap();
        let vid = v["id"].as_str().unwrap();
        // Every vector of this group is HMAC (the asymmetric Binance keys are covered by
        // tests/integration/exchanges_asym.rs); an asymmetric one would be skipped here.
        assert_eq!(v["encoding"], "raw", "{vid}");
        let secret = replay::secret(v);
        let req = Request::from_json(&v["request"].to_string()).unwrap();
        // Within the skew of the vector's own time, and within its receive window (the
        // WebSocket API examples carry `recvWindow=100`).
        let ts = vector_time(&req);
        let now = ts + 50;
        let limits = Limits::default();
        let exchange = exchanges::by_id(id).unwrap();
        let reach = exchange.reach(&req, &Inputs::new(id, now, &limits, None, None));
        if DOC_TYPOS.contains(&vid) {
            // The doc's `timestamp= 1591702613943` (a space in the value) is a typo, not what
            // Binance issues or accepts as a time: the validator refuses it. The model still
            // verifies the doc's signature over those bytes.
            assert!(
                matches!(&reach, Err(hsm_custody::Error::RequestRefused { field, .. }) if field == "body"),
                "{vid}: {reach:?}"
            );
        } else {
            reach.unwrap_or_else(|e| panic!("{vid}: the validator refuses the vector: {e}"));
        }
        let mac = SoftMac::new(id, &secret);
        let signed = replay::sign_at(exchange.as_ref(), &req, &mac, now)
            .unwrap_or_else(|e| panic!("{vid}: {e}"));
        assert_eq!(
            signed.signature,
            v["expected_signature"].as_str().unwrap(),
            "{vid}"
        );
        let model = super::model(id);
        let http = Http::from_signed(&signed, model.host());
        assert!(
            model.verify(&http, &secret),
            "{vid}: the model does not verify {http:?}"
        );
        // What the exchange executes for it: the vector's own time, at the request's path.
        let executed = model.executes(&http);
        if !DOC_TYPOS.contains(&vid) {
            let t = executed.time_ms.unwrap_or_else(|| panic!("{vid}: no time"));
            // Bybit's is the expiry: timestamp + window (5000 by default, 20000 in one vector).
            assert!([ts, ts + 5_000, ts + 20_000].contains(&t), "{vid}: {t}");
        }
        if let Some(path) = &req.path {
            assert_eq!(executed.endpoint.as_deref(), Some(path.as_str()), "{vid}");
        }
        assert!(!executed.params.is_empty(), "{vid}");
        let mut wrong = secret.clone();
        wrong[0] ^= 1;
        assert!(
            !model.verify(&http, &wrong),
            "{vid}: verifies under another secret"
        );
        replayed += 1;
    }
    assert_eq!(
        replayed, 24,
        "every vector of binance, binance-usdm, binance-coinm, binance-ws, mexc, mexc-futures, bybit"
    );
}

#[test]
fn ws_groupings_are_dominated() {
    // Every grouping of the `&`-pieces of a WebSocket payload (a key or value holding `&`)
    // carries a subset of the ungrouped reading's names, and the same timestamp or none.
    let now = now_ms();
    for payload in [
        format!("apiKey=K&coin=BTC&side=a&timestamp={now}"),
        format!("address=x&amount=1&coin=BTC&timestamp={now}&z=1"),
        format!("a=1&timestamp={now}&timestamp=1"),
    ] {
        let pieces: Vec<&str> = payload.split('&').collect();
        let mut whole = Readings::default();
        ws_reading(payload.as_bytes(), now, &mut whole);
        for mask in 0u32..(1 << (pieces.len() - 1)) {
            // Bit i set: piece i+1 joins the group before it.
            let mut groups: Vec<String> = vec![pieces[0].to_owned()];
            for (i, p) in pieces[1..].iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let last = groups.last_mut().unwrap();
                    last.push('&');
                    last.push_str(p);
                } else {
                    groups.push((*p).to_owned());
                }
            }
            let pairs: Vec<(String, String)> = groups
                .iter()
                .map(|g| form_pair(g.as_bytes(), false))
                .collect();
            let mut grouped = Readings::default();
            grouped.add_timed(&pairs, MAX_WINDOW_MS, now);
            for g in &grouped.out {
                assert!(
                    whole
                        .out
                        .iter()
                        .any(|w| w.time_ms == g.time_ms && g.params.is_subset(&w.params)),
                    "{payload} grouped {groups:?}"
                );
            }
        }
    }
}

#[test]
fn readings_find_what_a_holder_could_do() {
    let now = now_ms();
    // Binance: `xaddress` cut at its front, a live timestamp.
    let bytes = format!("coin=BTC&xaddress=A&amount=1&timestamp={now}");
    let ways = binance_readings(bytes.as_bytes());
    assert!(ways.iter().any(|e| ["coin", "address", "amount"]
        .iter()
        .all(|n| e.params.contains(*n))));
    // A timestamp cut short is dead: no reading carries it.
    assert!(ways.iter().all(|e| e.time_ms == Some(now)));
    // MEXC: futures bytes read at spot through a JSON body, and spot bytes at futures.
    let futures =
        format!(r#"mx0key{now}{{"coin":"BTC","address":"A","amount":1,"timestamp":{now}}}"#);
    assert!(mexc_readings(futures.as_bytes())
        .iter()
        .any(|e| e.params.contains("address") && e.params.contains("timestamp")));
    let spot = format!("x{now}coin=BTC&address=A&amount=1");
    assert!(mexc_readings(spot.as_bytes())
        .iter()
        .any(|e| e.params.contains("coin") && e.time_ms == Some(now)));
    // Bybit: a key ending in a digit makes the window grow.
    let bybit = format!("{now}KEY9{}category=spot", 5000);
    assert!(bybit_readings(bybit.as_bytes())
        .iter()
        .any(|e| e.time_ms == Some(now + 95_000)));
}

// ---------------------------------------------------------------------------------------------
// Adversarial properties.
//
// Each exchange's strategy mixes ordinary requests (so that some are signed), ordinary requests
// with one or two fields made hostile (so that the hostile value meets every later check and,
// when the validator lets it through, the guard and the model), and requests hostile in every
// field at once.

/// Cases per exchange and oracle (`HSM_CUSTODY_PROP_CASES`, default 1000).
fn cases() -> u32 {
    props::cases()
}

/// An offset from the clock, in ms: mostly within the 5 s skew, some outside, none within
/// 200 ms of its edge (where the crate's clock and the test's may disagree).
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => -10_000i64..=-5_200,
        4 => -4_800i64..=4_800,
        1 => 5_200i64..=10_000,
    ]
}

/// A time in ms near the clock (computed when the case is generated).
fn time_ms() -> BoxedStrategy<String> {
    offset()
        .prop_map(|o| (now_ms() as i64 + o).to_string())
        .boxed()
}

/// A time well within the skew, or (mostly) none.
fn good_time() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => (-4_000i64..=4_000).prop_map(|o| Some((now_ms() as i64 + o).to_string())),
    ]
    .boxed()
}

/// A time field: absent, a time near the clock, or junk.
fn time_field() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => time_ms().prop_map(Some),
        2 => select(vec![
            "abc",
            "-1",
            "01700000000000",
            "99999999999999",
            "1",
            " 1700000000000",
            "1700000000000&coin=BTC",
            "1700000000000000",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
    .boxed()
}

/// Fills a template: `{T}` a time near the clock, `{F}` far ahead.
fn fill(template: &str, t: &str) -> String {
    template.replace("{T}", t).replace("{F}", "99999999999999")
}

fn from_pool(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    (select(pool), time_ms())
        .prop_map(|(tpl, t)| fill(tpl, &t))
        .boxed()
}

fn opt(pool: &'static [Option<&'static str>]) -> BoxedStrategy<Option<String>> {
    select(pool).prop_map(|o| o.map(str::to_owned)).boxed()
}

fn owned(frags: &[&str]) -> Vec<String> {
    frags.iter().map(|s| (*s).to_owned()).collect()
}

const SEPARATORS: &[&str] = &["&&", ";", "\n", "", "?", "#", "&?"];

/// Parameters an order carries (Binance, MEXC spot).
const ORDER: &[&str] = &[
    "symbol=BTCUSDT",
    "side=BUY",
    "type=LIMIT",
    "timeInForce=GTC",
    "quantity=1",
    "price=0.1",
    "newClientOrderId=my-order_1",
    "newOrderRespType=ACK",
];

/// Parameters that smuggle: guarded endpoints' names (one by one and as whole sets), names cut
/// at the front, the crate's own inputs, separators and encodings, JSON, digits that read as
/// times, a path in a value.
const SMUGGLE: &[&str] = &[
    "coin=BTC",
    "address=bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
    "amount=1",
    "asset=USDT",
    "type=MAIN_UMFUTURE",
    "toEmail=a%40b.c",
    "email=a%40b.c",
    "token=USDT",
    "coin=BTC&address=A&amount=1",
    "asset=USDT&amount=1",
    "asset=USDT&amount=1&type=MAIN_UMFUTURE",
    "toEmail=a%40b.c&asset=USDT&amount=1",
    "token=USDT&amount=1",
    "baseToken=USDT&faceToken=BTC&baseTokenAmount=10",
    "fromAccountType=SPOT&toAccountType=FUTURES&asset=USDT&amount=1",
    "toAccountType=SPOT&toAccount=x&asset=USDT&amount=1",
    "coin=BTC&xaddress=A&amount=1",
    "qcoin=BTC&newaddress=A&myamount=1",
    "xasset=USDT&yamount=1",
    "newtoken=USDT&amount=1",
    "btype=MAIN&masset=USDT&qamount=1",
    "timestamp={T}",
    "timestamp={F}",
    "recvWindow=5000",
    "recvWindow=60000",
    "recvWindow=600000",
    "xtimestamp={T}",
    "xtimestamp={F}",
    "Timestamp={T}",
    "signature=00ff",
    "xrecvWindow=99999",
    "a=x%26coin%3DBTC%26address%3DA%26amount%3D1",
    "a=b=c",
    "coin",
    "",
    "a=1%0A",
    "a=1\n",
    "a=?x",
    "a=#x",
    "a=x y",
    "a=%zz",
    "a=+",
    "{\"coin\":\"BTC\",\"address\":\"A\",\"amount\":\"1\",\"timestamp\":{T}}",
    "a=\u{e9}",
    "x{T}coin=BTC",
    "x{F}coin=BTC",
    "mx0key{T}coin=BTC",
    "path=%2Fsapi%2Fv1%2Fcapital%2Fwithdraw%2Fapply",
    "asset=USDT&x=amount=1",
    "a=timestamp={F}",
];

/// Methods, mostly hostile.
const METHODS: &[Option<&str>] = &[
    Some("GET"),
    Some("DELETE"),
    Some("PUT"),
    Some("PATCH"),
    Some("post"),
    Some("POST /sapi"),
    Some(""),
    Some("POST\n"),
    None,
];

const HOSTS: &[Option<&str>] = &[
    None,
    Some("api.binance.com"),
    Some("fapi.binance.com"),
    Some("dapi.binance.com"),
    Some("ws-api.binance.com"),
    Some("api.mexc.com"),
    Some("api.bybit.com"),
    Some("contract.mexc.com"),
    Some("127.0.0.1:8443"),
    Some("evil.example"),
    Some("api.binance.com/sapi/v1/capital/withdraw/apply"),
    Some("API.BYBIT.COM"),
];

const WINDOWS: &[Option<&str>] = &[
    None,
    Some("5000"),
    Some("60000"),
    Some("60001"),
    Some("0"),
    Some("05000"),
    Some("5000&coin=BTC"),
    Some("10"),
    Some("61"),
    Some("99999999"),
];

/// A request in parts, before it is assembled: the hostile fields replace parts.
#[derive(Clone, Debug, Default)]
struct Draft {
    method: Option<String>,
    path: Option<String>,
    query: Vec<String>,
    query_sep: String,
    body: Vec<String>,
    /// The body is a JSON object of `body` members (else a form of `body` pieces).
    json: bool,
    /// `lead`, `trail`, `nested` or none: junk around a JSON body.
    wrap: String,
    raw_body: Option<Option<String>>,
    timestamp: Option<String>,
    recv_window: Option<String>,
    api_key: Option<String>,
    host: Option<String>,
    unused: [Option<String>; 3],
}

impl Draft {
    fn request(self) -> Request {
        let mut r = Request::default();
        r.method = self.method;
        r.path = self.path;
        let sep = if self.query_sep.is_empty() {
            "&"
        } else {
            &self.query_sep
        };
        r.query = (!self.query.is_empty()).then(|| self.query.join(sep));
        r.body = match self.raw_body {
            Some(raw) => raw,
            None if self.body.is_empty() && !self.json => None,
            None if self.json => {
                let object = format!("{{{}}}", self.body.join(","));
                Some(match self.wrap.as_str() {
                    "lead" => format!(" {object}"),
                    "trail" => format!("{object}x"),
                    "nested" => format!("{{\"data\":{object}}}"),
                    _ => object,
                })
            }
            None => Some(self.body.join("&")),
        };
        r.timestamp = self.timestamp;
        r.recv_window = self.recv_window;
        r.api_key = self.api_key;
        r.host = self.host;
        let [nonce, expires, passphrase] = self.unused;
        (r.nonce, r.expires, r.passphrase) = (nonce, expires, passphrase);
        r
    }
}

/// One hostile field.
#[derive(Clone, Debug)]
enum Hostile {
    Method(Option<String>),
    Path(String),
    Query(Vec<String>),
    QueryFront(Vec<String>),
    QuerySep(String),
    Body(Vec<String>),
    RawBody(Option<String>),
    Wrap(String),
    Timestamp(Option<String>),
    Window(Option<String>),
    Key(Option<String>),
    Host(Option<String>),
    Unused(usize, String),
}

impl Hostile {
    fn apply(self, d: &mut Draft) {
        match self {
            Hostile::Method(m) => d.method = m,
            Hostile::Path(p) => d.path = Some(p),
            Hostile::Query(q) => d.query.extend(q),
            Hostile::QueryFront(mut q) => {
                q.append(&mut d.query);
                d.query = q;
            }
            Hostile::QuerySep(s) => d.query_sep = s,
            Hostile::Body(b) => d.body.extend(b),
            Hostile::RawBody(b) => d.raw_body = Some(b),
            Hostile::Wrap(w) => d.wrap = w,
            Hostile::Timestamp(t) => d.timestamp = t,
            Hostile::Window(w) => d.recv_window = w,
            Hostile::Key(k) => d.api_key = k,
            Hostile::Host(h) => d.host = h,
            Hostile::Unused(i, v) => d.unused[i % 3] = Some(v),
        }
    }
}

/// What an exchange's strategy draws from.
struct Pools {
    /// Ordinary requests.
    good: BoxedStrategy<Draft>,
    paths: &'static [&'static str],
    /// Query pieces that smuggle.
    query: &'static [&'static str],
    /// Body pieces (form) or members (JSON) that smuggle.
    body: &'static [&'static str],
    /// Query pieces that carry a time, or digits that could be read as one.
    time_query: &'static [&'static str],
    /// Body pieces or members that carry a time.
    time_body: &'static [&'static str],
    /// Whole bodies that do not fit.
    raw_bodies: &'static [Option<&'static str>],
    keys: &'static [Option<&'static str>],
    methods: &'static [Option<&'static str>],
}

fn hostile(p: &Pools) -> BoxedStrategy<Hostile> {
    prop_oneof![
        2 => opt(p.methods).prop_map(Hostile::Method),
        3 => select(p.paths).prop_map(|s| Hostile::Path(s.to_owned())),
        4 => prop::collection::vec(from_pool(p.query), 1..4).prop_map(Hostile::Query),
        3 => prop::collection::vec(from_pool(p.query), 1..3).prop_map(Hostile::QueryFront),
        2 => from_pool(p.time_query).prop_map(|f| Hostile::Query(vec![f])),
        2 => from_pool(p.time_query).prop_map(|f| Hostile::QueryFront(vec![f])),
        2 => from_pool(p.time_body).prop_map(|f| Hostile::Body(vec![f])),
        1 => select(SEPARATORS).prop_map(|s| Hostile::QuerySep(s.to_owned())),
        6 => prop::collection::vec(from_pool(p.body), 1..4).prop_map(Hostile::Body),
        1 => (select(p.raw_bodies), time_ms())
            .prop_map(|(b, t)| Hostile::RawBody(b.map(|b| fill(b, &t)))),
        1 => select(vec!["lead", "trail", "nested"]).prop_map(|w| Hostile::Wrap(w.to_owned())),
        2 => time_field().prop_map(Hostile::Timestamp),
        2 => opt(WINDOWS).prop_map(Hostile::Window),
        2 => opt(p.keys).prop_map(Hostile::Key),
        1 => opt(HOSTS).prop_map(Hostile::Host),
        1 => (0usize..3, select(vec!["1", "x", "1700000000000"]))
            .prop_map(|(i, v)| Hostile::Unused(i, v.to_owned())),
    ]
    .boxed()
}

/// Ordinary requests, the same with one to three hostile fields, and with many.
fn requests(p: Pools) -> BoxedStrategy<Request> {
    let good = p.good.clone().prop_map(Draft::request);
    let few =
        (p.good.clone(), prop::collection::vec(hostile(&p), 1..=2)).prop_map(|(mut d, hs)| {
            for h in hs {
                h.apply(&mut d);
            }
            d.request()
        });
    let many =
        (p.good.clone(), prop::collection::vec(hostile(&p), 4..=10)).prop_map(|(mut d, hs)| {
            for h in hs {
                h.apply(&mut d);
            }
            d.request()
        });
    prop_oneof![3 => good, 7 => few, 2 => many].boxed()
}

/// Ordinary Binance-shaped REST orders at `order`: order parameters split between query and
/// body, a time and a window or none.
fn rest_orders(order: &'static str, key: &'static str) -> BoxedStrategy<Draft> {
    (
        subsequence(ORDER, 1..=ORDER.len()),
        0usize..=ORDER.len(),
        good_time(),
        opt(&[None, None, None, Some("5000"), Some("60000")]),
        prop::bool::ANY,
    )
        .prop_map(move |(frags, cut, timestamp, recv_window, with_key)| {
            let cut = cut.min(frags.len());
            Draft {
                method: Some("POST".into()),
                path: Some(order.into()),
                query: owned(&frags[..cut]),
                body: owned(&frags[cut..]),
                timestamp,
                recv_window,
                api_key: with_key.then(|| key.to_owned()),
                ..Draft::default()
            }
        })
        .boxed()
}

const BINANCE_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

const BINANCE_KEYS: &[Option<&str>] = &[
    None,
    Some("K&coin=BTC"),
    Some("key\r\nX-Evil: 1"),
    Some(""),
    Some("K=1"),
];

const BINANCE_PATHS: &[&str] = &[
    "/api/v3/openOrders",
    "/fapi/v1/order",
    "/api/v3/order",
    "/sapi/v1/capital/withdraw/apply",
    "/sapi/v1/asset/transfer",
    "/sapi/v1/giftcard/createCode",
    "/api/v3/ord",
    "/api/v3/order/../../sapi/v1/capital/withdraw/apply",
    "/api/v3/%6Frder",
    "/api//v3/order",
    "/api/v3/order/",
    "/api/v3/order?coin=BTC",
    "/api/v3/order#x",
    "/API/V3/ORDER",
    "/Sapi/v1/Capital/Withdraw/Apply",
    "/api/v3/order\n",
    "/api/v3/orderwithdraw",
    "/wapi/v3/withdraw.html",
    "/fapi/v1/order/../../../sapi/v1/asset/transfer",
    "/dapi/v1/order",
    "/dapi/v1/order/../../../sapi/v1/futures/transfer",
    "/api/v3/order/./x",
];

const REST_TIMES: &[&str] = &[
    "timestamp={F}",
    "timestamp={T}",
    "xtimestamp={F}",
    "Timestamp={F}",
    "x{F}coin=BTC",
    "mx0key{F}x=1",
    "a=timestamp={F}",
    "recvWindow=99999999",
    "xrecvWindow=99999999",
    "timestamp=1{T}",
    "signature=00ff",
    "xsignature=1",
];

const REST_RAW_BODIES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("{\"coin\":\"BTC\",\"address\":\"A\",\"amount\":\"1\"}"),
    Some("&coin=BTC"),
    Some("=1&address=A"),
];

fn binance_pools(order: &'static str) -> Pools {
    Pools {
        good: rest_orders(order, BINANCE_KEY),
        paths: BINANCE_PATHS,
        query: SMUGGLE,
        body: SMUGGLE,
        time_query: REST_TIMES,
        time_body: REST_TIMES,
        raw_bodies: REST_RAW_BODIES,
        keys: BINANCE_KEYS,
        methods: METHODS,
    }
}

const MEXC_PATHS: &[&str] = &[
    "/api/v3/openOrders",
    "/api/v3/order",
    "/api/v3/capital/withdraw",
    "/api/v3/capital/transfer",
    "/api/v3/order/../capital/withdraw",
    "/api/v3/%63apital/withdraw",
    "/api/v3/order/",
    "/api/v3/order?coin=BTC",
    "/API/V3/ORDER",
    "/api/v1/private/order/submit",
    "/api/v3/orderwithdraw",
];

const MEXC_SPOT_KEYS: &[Option<&str>] = &[None, Some("mx0&coin=BTC"), Some("mx0vgl1"), Some("")];

fn mexc_pools() -> Pools {
    Pools {
        good: rest_orders("/api/v3/order", "mx0vglAccessKey"),
        paths: MEXC_PATHS,
        query: SMUGGLE,
        body: SMUGGLE,
        time_query: REST_TIMES,
        time_body: REST_TIMES,
        raw_bodies: REST_RAW_BODIES,
        keys: MEXC_SPOT_KEYS,
        methods: METHODS,
    }
}

const WS_ORDER: &[&str] = &[
    "symbol=BTCUSDT",
    "side=SELL",
    "type=LIMIT",
    "timeInForce=GTC",
    "quantity=0.01000000",
    "price=52000.00",
    "newOrderRespType=ACK",
];

const WS_SMUGGLE: &[&str] = &[
    "apiKey=K",
    "symbol=\u{ff11}\u{ff12}",
    "side=a=b",
    "side=a\ny",
    "coin=BTC&address=A&amount=1",
    "coin=BTC&xaddress=A&amount=1",
    "asset=USDT&amount=1",
    "xasset=USDT&yamount=1",
    "address=A",
    "timestamp={T}",
    "timestamp={F}",
    "xtimestamp={T}",
    "xtimestamp={F}",
    "recvWindow=60000",
    "recvWindow=60001",
    "signature=00",
    "a=x&coin=BTC",
    "a=x y",
    "a=%26coin%3DBTC",
    "",
    "x{T}coin=BTC",
];

fn ws_pools() -> Pools {
    let good = (
        subsequence(WS_ORDER, 1..=WS_ORDER.len()),
        opt(&[None, Some("order.place")]),
        opt(&[None, Some("/ws-api/v3")]),
        good_time(),
        opt(&[None, Some("5000")]),
    )
        .prop_map(|(frags, method, path, timestamp, recv_window)| Draft {
            method,
            path,
            query: owned(&frags),
            timestamp,
            recv_window,
            api_key: Some(BINANCE_KEY.into()),
            ..Draft::default()
        })
        .boxed();
    Pools {
        good,
        paths: &[
            "/ws-api/v3",
            "/api/v3/order",
            "/ws-api/v3/../../sapi/v1/capital/withdraw/apply",
            "/ws-api/v3/",
            "/ws-api/%76",
        ],
        query: WS_SMUGGLE,
        body: SMUGGLE,
        time_query: REST_TIMES,
        time_body: REST_TIMES,
        raw_bodies: &[None, Some(""), Some("coin=BTC&address=A&amount=1")],
        keys: &[None, Some("K&coin=BTC"), Some("K=x"), Some("K"), Some("")],
        methods: &[
            None,
            Some("ORDER PLACE"),
            Some("POST"),
            Some("order.place\n"),
        ],
    }
}

/// JSON members for MEXC futures and Bybit bodies.
const JSON_ORDER: &[&str] = &[
    "\"category\":\"spot\"",
    "\"orderType\":\"Limit\"",
    "\"price\":20000",
    "\"qty\":\"0.01\"",
    "\"side\":\"Buy\"",
    "\"symbol\":\"BTC_USDT\"",
    "\"vol\":1",
];

const JSON_SMUGGLE: &[&str] = &[
    "\"coin\":\"BTC\"",
    "\"coin\":\"BTC\",\"chain\":\"ETH\",\"address\":\"A\",\"amount\":\"1\"",
    "\"coin\":\"BTC\",\"address\":\"A\",\"amount\":\"1\"",
    "\"fromAccountType\":\"SPOT\",\"toAccountType\":\"FUND\",\"asset\":\"USDT\",\"amount\":\"1\"",
    "\"toAccountType\":\"SPOT\",\"toAccount\":\"x\",\"asset\":\"USDT\",\"amount\":\"1\"",
    "\"transferId\":\"x\",\"coin\":\"BTC\",\"amount\":\"1\",\"fromAccountType\":\"SPOT\",\"toAccountType\":\"FUND\"",
    "\"subMemberIds\":[\"1\"],\"transferable\":true",
    "\"subMemberIds\":[\"1\"]",
    "\"transferable\":true",
    "\"timestamp\":{T}",
    "\"timestamp\":{F}",
    "\"\\u0074imestamp\":{T}",
    "\"x\":{\"coin\":\"BTC\",\"address\":\"A\",\"amount\":\"1\",\"timestamp\":{T}}",
    "\"x\":{\"coin\":\"BTC\",\"address\":\"A\",\"amount\":\"1\"}",
    "\"x\":[{\"coin\":\"BTC\",\"chain\":\"ETH\",\"address\":\"A\",\"amount\":\"1\"}]",
    "\"a\":\"x&coin=BTC&address=A&amount=1&timestamp={T}\"",
    "\"a\":\"x&coin=BTC&chain=ETH&address=A&amount=1\"",
    "\"a\":\"b=c\"",
    "\"symbol\":\"ETH_USDT\"",
    "\"request\":\"/v5/asset/withdraw/create\"",
    "\"a\":\"x%26coin%3DBTC\"",
    "\"a\":null",
];

const JSON_TIMES: &[&str] = &[
    "\"timestamp\":{F}",
    "\"timestamp\":\"{F}\"",
    "\"\\u0074imestamp\":{F}",
    "\"x\":{\"timestamp\":{F}}",
    "\"x\":[{\"timestamp\":{F}}]",
    "\"openTimestamp\":{F}",
];

const JSON_RAW_BODIES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("coin=BTC&chain=ETH&address=A&amount=1"),
    Some("{\"coin\":\"BTC\"}{\"address\":\"A\"}"),
    Some("[{\"coin\":\"BTC\"}]"),
    Some("1{\"coin\":\"BTC\"}"),
    Some("{\"a\":1,\"a\":2}"),
];

/// Ordinary GET queries at `get` (a sorted subset of `query`) and POST JSON orders at `post`.
fn json_scheme_orders(
    get: &'static str,
    post: &'static str,
    query: &'static [&'static str],
    key: &'static str,
) -> BoxedStrategy<Draft> {
    let get =
        (subsequence(query, 1..=query.len()), good_time()).prop_map(move |(q, timestamp)| Draft {
            method: Some("GET".into()),
            path: Some(get.into()),
            query: owned(&q),
            timestamp,
            api_key: Some(key.into()),
            ..Draft::default()
        });
    let post = (
        subsequence(JSON_ORDER, 0..=JSON_ORDER.len()),
        good_time(),
        opt(&[None, Some("5000"), Some("30")]),
    )
        .prop_map(move |(members, timestamp, recv_window)| Draft {
            method: Some("POST".into()),
            path: Some(post.into()),
            body: owned(&members),
            json: true,
            timestamp,
            recv_window,
            api_key: Some(key.into()),
            ..Draft::default()
        });
    prop_oneof![get, post].boxed()
}

const MEXC_FUTURES_QUERY: &[&str] = &["page_num=1", "page_size=20", "symbol=BTC_USDT"];

const MEXC_FUTURES_SMUGGLE: &[&str] = &[
    "coin=BTC",
    "address=A",
    "amount=1",
    "amount=1&coin=BTC&xaddress=A",
    "address=A&amount=1&coin=BTC",
    "asset=USDT&fromAccountType=SPOT&toAccountType=FUTURES",
    "a{T}b=1",
    "a{F}b=1",
    "xtimestamp={T}",
    "xtimestamp={F}",
    "timestamp={T}",
    "1a=1",
    "a=%2c",
    "a=%2C",
    "a=x~y",
    "zz=1",
    "a=b=c",
];

fn mexc_futures_pools() -> Pools {
    Pools {
        good: json_scheme_orders(
            "/api/v1/private/order/list/open_orders",
            "/api/v1/private/order/submit",
            MEXC_FUTURES_QUERY,
            "mx0vglAccessKey",
        ),
        paths: &[
            "/api/v1/private/order/submit",
            "/api/v1/private/order/list/open_orders",
            "/api/v3/capital/withdraw",
            "/api/v1/private/order/submit/../../../v3/capital/withdraw",
            "/api/v1/private/%6Frder/submit",
            "/api/v1/private/order/submit/",
            "/api/v1/private/order/submit?coin=BTC",
            "/api/v1/private//order/submit",
        ],
        query: MEXC_FUTURES_SMUGGLE,
        body: JSON_SMUGGLE,
        time_query: &[
            "a{F}b=1",
            "xtimestamp={F}",
            "1a=1",
            "0=1",
            "a=%2c",
            "a=x~y",
            "a=%41",
        ],
        time_body: JSON_TIMES,
        raw_bodies: JSON_RAW_BODIES,
        keys: &[
            None,
            Some("mx0vgl1"),
            Some("mx0vgl99999999999999x"),
            Some("mx0&coin=BTC"),
            Some("mx0 key"),
            Some("mx0vglAccessKey1700000000000"),
        ],
        methods: &[
            Some("GET"),
            Some("POST"),
            Some("DELETE"),
            Some("PUT"),
            Some("get"),
            None,
        ],
    }
}

const BYBIT_QUERY: &[&str] = &[
    "category=linear",
    "limit=20",
    "orderId=abc",
    "symbol=BTCUSDT",
];

const BYBIT_SMUGGLE: &[&str] = &[
    "coin=BTC",
    "chain=ETH",
    "address=A",
    "amount=1",
    "coin=BTC&chain=ETH&address=A&amount=1",
    "subMemberIds=1&transferable=1",
    "x1coin=BTC",
    "x1coin=BTC&chain=ETH&address=A&amount=1",
    "5000=1",
    "99999999a=1",
    "1category=linear",
    "transferId=x",
    "a=b=c",
    "a=%7B%22coin%22%3A1%7D",
];

fn bybit_pools() -> Pools {
    Pools {
        good: json_scheme_orders(
            "/v5/order/realtime",
            "/v5/order/create",
            BYBIT_QUERY,
            "XXXXXXXXXXXXXXXXXX",
        ),
        paths: &[
            "/v5/order/create",
            "/v5/order/realtime",
            "/v5/asset/withdraw/create",
            "/v5/asset/transfer/inter-transfer",
            "/v5/order/create/../../asset/withdraw/create",
            "/v5/order/%63reate",
            "/v5/order/create/",
            "/v5/order/create?coin=BTC",
            "/V5/ORDER/CREATE",
            "/v3/private/order/create",
        ],
        query: BYBIT_SMUGGLE,
        body: JSON_SMUGGLE,
        time_query: &["99999999a=1", "1a=1", "x99999999coin=1", "0=1", "a{F}b=1"],
        time_body: JSON_TIMES,
        raw_bodies: JSON_RAW_BODIES,
        keys: &[
            None,
            Some("1XXXXXXXX"),
            Some("XXXXXXXX9"),
            Some("XXX99999XXX"),
            Some("XX9999XX"),
            Some("XX&coin=BTC"),
            Some("XX\nX"),
            Some("XX-_XX"),
        ],
        methods: &[
            Some("GET"),
            Some("POST"),
            Some("DELETE"),
            Some("PUT"),
            Some("post"),
            None,
        ],
    }
}

/// The order endpoints each exchange's order-only policy allows.
fn order_only(id: &str) -> Oracle {
    Oracle::OrderOnly(match id {
        "binance" => vec![("POST", "/api/v3/order")],
        "binance-usdm" => vec![("POST", "/fapi/v1/order")],
        "binance-coinm" => vec![("POST", "/dapi/v1/order")],
        "binance-ws" => vec![("*", "/ws-api/v3")],
        "mexc" => vec![("POST", "/api/v3/order")],
        "mexc-futures" => vec![("POST", "/api/v1/private/order/submit")],
        "bybit" => vec![("POST", "/v5/order/create")],
        other => panic!("no order endpoint for {other}"),
    })
}

fn strategy(id: &str) -> BoxedStrategy<Request> {
    requests(match id {
        "binance" => binance_pools("/api/v3/order"),
        "binance-usdm" => binance_pools("/fapi/v1/order"),
        "binance-coinm" => binance_pools("/dapi/v1/order"),
        "binance-ws" => ws_pools(),
        "mexc" => mexc_pools(),
        "mexc-futures" => mexc_futures_pools(),
        "bybit" => bybit_pools(),
        other => panic!("no strategy for {other}"),
    })
}

fn run_both(id: &str) {
    let seen = props::run(id, order_only(id), strategy(id), cases());
    eprintln!("{id} order-only: {seen:?}");
    let seen = props::run(id, Oracle::DenyOnly(vec![]), strategy(id), cases());
    eprintln!("{id} deny-only: {seen:?}");
}

#[test]
fn binance_signatures_reach_no_guarded_endpoint() {
    run_both("binance");
}

#[test]
fn binance_usdm_signatures_reach_no_guarded_endpoint() {
    run_both("binance-usdm");
}

#[test]
fn binance_coinm_signatures_reach_no_guarded_endpoint() {
    run_both("binance-coinm");
}

#[test]
fn binance_ws_signatures_reach_no_guarded_endpoint() {
    run_both("binance-ws");
}

#[test]
fn mexc_signatures_reach_no_guarded_endpoint() {
    run_both("mexc");
}

#[test]
fn mexc_futures_signatures_reach_no_guarded_endpoint() {
    run_both("mexc-futures");
}

#[test]
fn bybit_signatures_reach_no_guarded_endpoint() {
    run_both("bybit");
}
