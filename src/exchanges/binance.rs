//! Binance spot and USD-M futures (REST), and the spot WebSocket API.
//!
//! REST: `signature = hex(HMAC-SHA256(secret, query || body))`, no `&` between query and body.
//! The request's `query` and `body` are signed as sent (non-ASCII values must already be
//! percent-encoded). When neither carries `timestamp`, the signer appends `recvWindow` (if given)
//! and `timestamp` (given, else the clock in ms) to the body when there is one, else to the
//! query; the signature goes to the same place. Header `X-MBX-APIKEY` (the request's `api_key`,
//! else the one recorded with the key).
//!
//! WebSocket API: every parameter except `signature` (apiKey included) sorted by name, joined as
//! `k=v` with `&`, signed as raw UTF-8. The request's `query` holds the parameters unencoded;
//! `api_key` (else the recorded one), `recv_window` and `timestamp` are added when missing.
//!
//! ## What a signature is good for ([`Exchange::reach`])
//! Neither scheme signs the method or the path, and one API key serves spot, USD-M futures and
//! the WebSocket API: a signature is good at every endpoint of all three whose parameters the
//! signed bytes carry. And since `query || body` has no separator, whoever holds a REST
//! signature can re-send the same bytes split anywhere between query and body: a parameter name
//! can then be read cut at its front (`xaddress=..` is also `address=..`), and the tail of a value
//! becomes a name (without a value: values hold no raw `=`). WebSocket bytes are a valid REST
//! query too. So the validators:
//! - accept only `name=value&...` in the strict form grammar (no raw `=` or `&` in a value, no
//!   duplicate, no `signature`), and report every name with [`Reach::with_split_names`], so that
//!   the guard judges every suffix of every name;
//! - refuse any name other than `timestamp`, `recvWindow` and `signature` themselves that ends
//!   with one of them (any case): cut at its front it would be read as the crate's own input;
//! - hold a caller's `timestamp` (parameter or field) to the crate's clock and `recvWindow` to
//!   the TTL, and refuse a field the signer would ignore (a `timestamp` field beside a
//!   `timestamp` parameter).
//!
//! Asymmetric API keys (chosen by the key's kind, [`Mac::kind`]): an Ed25519 key signs the same
//! payload with pure Ed25519, an RSA key with RSASSA-PKCS1-v1_5/SHA-256; the signature is
//! standard base64 (with padding, case-sensitive). [`SignedRequest::signature`] is that base64;
//! in a REST query or form body it is percent-encoded (`+`, `/`, `=` become `%2B`, `%2F`, `%3D`),
//! in a WebSocket API request it is sent as is (JSON string). Binance takes no ECDSA keys, so a
//! P-256 key is refused. The same applies to USD-M futures (`binance-usdm`), which share the
//! key and the scheme.
//!
//! FIX API Logon`<A>` ([`BinanceFixLogon`], Ed25519 keys only): pure Ed25519 over
//! `A␁SenderCompID␁TargetCompID␁MsgSeqNum␁SendingTime` (␁ = 0x01), base64, sent in
//! RawData(96) with RawDataLength(95).

use std::borrow::Cow;

use super::encode::{has_param, param, percent_encode, push_u64, split_query};
use super::{
    check_binding, grammar, Context, Exchange, InRequest, Inputs, Reach, Request, SignedRequest,
};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::{HmacAlg, Mac};
use std::sync::Arc;

use super::registry::{gp, ExchangeInfo, Guarded, SHA256};
use super::{Binding, EndpointFrom};
use crate::keys::SecretEncoding;

/// Binance REST (spot `binance`, USD-M futures `binance-usdm`); also the shape MEXC spot copies.
#[derive(Clone, Copy, Debug)]
pub struct Binance {
    id: &'static str,
}

impl Binance {
    /// Spot (`api.binance.com`, id `binance`).
    pub fn spot() -> Self {
        Binance { id: SPOT_INFO.id }
    }

    /// USD-M futures (`fapi.binance.com`, id `binance-usdm`).
    pub fn usdm() -> Self {
        Binance { id: USDM_INFO.id }
    }

    fn rules(&self) -> &'static RestRules {
        if self.id == USDM_INFO.id {
            &USDM_RULES
        } else {
            &SPOT_RULES
        }
    }
}

const SPOT_RULES: RestRules = RestRules {
    prefixes: &["/api/", "/sapi/"],
    no_time_in_names: false,
};

const USDM_RULES: RestRules = RestRules {
    prefixes: &["/fapi/"],
    no_time_in_names: false,
};

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
fn refuse_unused(req: &Request, inputs: &Inputs<'_>) -> Result<()> {
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
fn check_host(req: &Request, inputs: &Inputs<'_>, id: &str) -> Result<()> {
    match &req.host {
        Some(host) => inputs.host(host, super::info(id).map_or(&[], |i| i.hosts)),
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

const BINANCE_GUARDED: &[Guarded] = &[
    gp(
        "/sapi/*/capital/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp(
        "/sapi/*/localentity/withdraw/apply",
        &["coin", "address", "amount"],
    ),
    gp("/sapi/*/asset/transfer", &["type", "asset", "amount"]),
    gp("/sapi/*/futures/transfer", &["asset", "amount", "type"]),
    gp("/sapi/*/margin/transfer", &["asset", "amount", "type"]),
    gp(
        "/sapi/*/margin/isolated/transfer",
        &["asset", "symbol", "transFrom", "transTo", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/universalTransfer",
        &["fromAccountType", "toAccountType", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/transfer/subToMaster",
        &["asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/transfer/subToSub",
        &["toEmail", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/futures/transfer",
        &["email", "asset", "amount", "type"],
    ),
    gp(
        "/sapi/*/sub-account/futures/internalTransfer",
        &["fromEmail", "toEmail", "futuresType", "asset", "amount"],
    ),
    gp(
        "/sapi/*/sub-account/margin/transfer",
        &["email", "asset", "amount", "type"],
    ),
    gp(
        "/sapi/*/managed-subaccount/withdraw",
        &["email", "asset", "amount"],
    ),
    gp("/sapi/*/giftcard/createCode", &["token", "amount"]),
    gp(
        "/sapi/*/giftcard/buyCode",
        &["baseToken", "faceToken", "baseTokenAmount"],
    ),
    gp("/wapi/*/withdraw.html", &["asset", "address", "amount"]),
];

/// Binance's API hosts (spot, futures, WebSocket API).
const BINANCE_HOSTS: &[&str] = &[
    "api.binance.com",
    "api1.binance.com",
    "api2.binance.com",
    "api3.binance.com",
    "api4.binance.com",
    "api-gcp.binance.com",
];

/// The registry entry of `binance` (listed in [`super::ALL`]).
pub(super) static SPOT_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance",
    key_family: "binance",
    ccxt: &["binance"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
    hosts: BINANCE_HOSTS,
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(Binance::spot()),
};

/// The registry entry of `binance-usdm` (listed in [`super::ALL`]).
pub(super) static USDM_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance-usdm",
    key_family: "binance",
    ccxt: &["binanceusdm"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS,
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), X-MBX-APIKEY",
    hosts: &["fapi.binance.com"],
    // One key serves spot and futures, and the path is not signed: a futures signature is
    // a spot signature for the same parameters.
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(Binance::usdm()),
};

/// The registry entry of `binance-ws` (listed in [`super::ALL`]).
pub(super) static WS_INFO: ExchangeInfo = ExchangeInfo {
    id: "binance-ws",
    key_family: "binance",
    ccxt: &[],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: true,
    binding: Binding::PARAMS.with("body", false),
    endpoint_from: EndpointFrom::Params,
    owned: "timestamp (±skew), recvWindow (≤ TTL), apiKey",
    hosts: &["ws-api.binance.com"],
    guarded: BINANCE_GUARDED,
    signer: || Arc::new(BinanceWs),
};

impl Exchange for Binance {
    fn id(&self) -> &str {
        self.id
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        super::registry::same_keys(self.id(), bound)
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        rest_reach(self.id, req, inputs, self.rules())
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        query_body(req, mac, ctx, "X-MBX-APIKEY", Keys::HmacEd25519Rsa)
    }
}

/// Which kinds of key a Binance-shaped scheme takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// HMAC only (MEXC spot copies the HMAC scheme, not the asymmetric keys).
    Hmac,
    /// HMAC, Ed25519 and RSA (Binance).
    HmacEd25519Rsa,
}

/// A Binance signature over `payload`: `(as documented, as sent in a URL or form body)`.
/// HMAC: lowercase hex (the same both ways). Ed25519/RSA: base64, percent-encoded on the wire.
/// The wire form is `None` when it is the documented form itself.
fn binance_signature(mac: &dyn Mac, keys: Keys, payload: &str) -> Result<(String, Option<String>)> {
    match mac.kind() {
        KeyKind::Hmac => Ok((
            mac.mac(HmacAlg::HmacSha256, payload.as_bytes())?.to_hex(),
            None,
        )),
        kind => asym_signature(mac, keys, kind, payload),
    }
}

/// [`binance_signature`] for Ed25519 and RSA keys, and the refusal of others: out of line, so
/// that the HMAC path stays compact (docs/fast-path.md).
#[inline(never)]
fn asym_signature(
    mac: &dyn Mac,
    keys: Keys,
    kind: KeyKind,
    payload: &str,
) -> Result<(String, Option<String>)> {
    match kind {
        KeyKind::Ed25519 | KeyKind::Rsa2048 if keys == Keys::HmacEd25519Rsa => {
            let b64 = mac.sign_asym(payload.as_bytes())?.to_base64();
            let wire = percent_encode(&b64);
            Ok((b64, Some(wire)))
        }
        other => Err(Error::WrongKeyKind {
            name: mac.key_name().to_owned(),
            kind: other.name().into(),
            wanted: if keys == Keys::Hmac {
                "an HMAC key".into()
            } else {
                "an HMAC, Ed25519 or RSA key (Binance takes no ECDSA keys)".into()
            },
        }),
    }
}

/// The Binance REST scheme with a given API-key header, HMAC keys only (shared with MEXC spot).
pub(crate) fn sign_query_body<'r>(
    req: &'r Request,
    mac: &dyn Mac,
    ctx: &Context<'_>,
    key_header: &'static str,
) -> Result<SignedRequest<'r>> {
    query_body(req, mac, ctx, key_header, Keys::Hmac)
}

fn query_body<'r>(
    req: &'r Request,
    mac: &dyn Mac,
    ctx: &Context<'_>,
    key_header: &'static str,
    keys: Keys,
) -> Result<SignedRequest<'r>> {
    // Room for `&recvWindow=…&timestamp=…&signature=…` (an HMAC's 64 hex digits, or an RSA
    // signature's percent-encoded base64), so that the hot path does not grow its buffers.
    const EXTRA: usize = 64 + 480;
    let with_room = |s: &str| {
        let mut out = String::with_capacity(s.len() + EXTRA);
        out.push_str(s);
        out
    };
    let mut query = with_room(req.query_or_empty());
    let body = req.body_or_empty();
    let in_body = !body.is_empty();
    let mut body = if in_body {
        with_room(body)
    } else {
        String::new()
    };
    if !has_param(&query, "timestamp") && !has_param(&body, "timestamp") {
        let target = if in_body { &mut body } else { &mut query };
        if let Some(w) = &req.recv_window {
            if !has_param(target, "recvWindow") {
                append(target, "recvWindow", w);
            }
        }
        match &req.timestamp {
            Some(ts) => append(target, "timestamp", ts),
            None => {
                append(target, "timestamp", "");
                push_u64(target, ctx.now_ms());
            }
        }
    }
    // Signed: query || body (no `&` between them).
    let (signature, wire) = if in_body {
        let mut total = String::with_capacity(query.len() + body.len());
        total.push_str(&query);
        total.push_str(&body);
        binance_signature(mac, keys, &total)?
    } else {
        binance_signature(mac, keys, &query)?
    };
    let target = if in_body { &mut body } else { &mut query };
    append(target, "signature", wire.as_deref().unwrap_or(&signature));
    let mut signed = SignedRequest::new(
        req.method_or_get(),
        req.path_or_empty(),
        query,
        body,
        signature,
    )
    .with_header_opt(key_header, api_key(req, mac));
    if in_body {
        signed = signed.with_header("Content-Type", "application/x-www-form-urlencoded");
    }
    Ok(signed)
}

/// The request's API key, else the one recorded with the key (owned: it lives in the key).
pub(crate) fn api_key<'r>(req: &'r Request, mac: &dyn Mac) -> Option<Cow<'r, str>> {
    match &req.api_key {
        Some(k) => Some(Cow::Borrowed(k.as_str())),
        None => mac.api_key().map(|k| Cow::Owned(k.to_owned())),
    }
}

fn append(target: &mut String, key: &str, value: &str) {
    if !target.is_empty() {
        target.push('&');
    }
    target.push_str(key);
    target.push('=');
    target.push_str(value);
}

/// The Binance spot WebSocket API (id `binance-ws`): sorted parameters, raw UTF-8.
#[derive(Clone, Copy, Debug, Default)]
pub struct BinanceWs;

impl Exchange for BinanceWs {
    fn id(&self) -> &str {
        WS_INFO.id
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        super::registry::same_keys(self.id(), bound)
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

/// The fields of a Binance FIX API Logon`<A>` that its signature covers.
///
/// ```
/// use hsm_custody::exchanges::BinanceFixLogon;
///
/// let logon = BinanceFixLogon {
///     sender_comp_id: "EXAMPLE",
///     target_comp_id: "SPOT",
///     msg_seq_num: 1,
///     sending_time: "20240627-11:17:25.223",
/// };
/// assert_eq!(logon.payload(), "A\x01EXAMPLE\x01SPOT\x011\x0120240627-11:17:25.223");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinanceFixLogon<'a> {
    /// SenderCompID(49), chosen by the client.
    pub sender_comp_id: &'a str,
    /// TargetCompID(56): `SPOT`.
    pub target_comp_id: &'a str,
    /// MsgSeqNum(34) of the Logon.
    pub msg_seq_num: u64,
    /// SendingTime(52) exactly as sent (`YYYYMMDD-HH:MM:SS.sss`).
    pub sending_time: &'a str,
}

impl BinanceFixLogon<'_> {
    /// The signed payload: MsgType `A`, SenderCompID, TargetCompID, MsgSeqNum, SendingTime,
    /// joined by SOH (0x01).
    pub fn payload(&self) -> String {
        format!(
            "A\x01{}\x01{}\x01{}\x01{}",
            self.sender_comp_id, self.target_comp_id, self.msg_seq_num, self.sending_time
        )
    }

    /// Signs the Logon in the token and returns the base64 for RawData(96). The key must be an
    /// Ed25519 key bound to Binance (FIX sessions take Ed25519 keys only); guard rails see
    /// exchange `binance`, method `FIX`, path `Logon`.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] for another kind of key, [`Error::WrongExchange`] or
    /// [`Error::InvalidInput`] for the key binding, or the token's error.
    pub fn sign(&self, key: &dyn Mac) -> Result<String> {
        check_binding(&BinanceWs, key)?;
        if key.kind() != KeyKind::Ed25519 {
            return Err(Error::WrongKeyKind {
                name: key.key_name().to_owned(),
                kind: key.kind().name().into(),
                wanted: "an Ed25519 key (Binance FIX sessions take Ed25519 keys only)".into(),
            });
        }
        let reach = Reach::bound("FIX", "Logon");
        let key = InRequest::new(key, SPOT_INFO.id, &reach);
        Ok(key.sign_asym(self.payload().as_bytes())?.to_base64())
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
    use super::*;
    use crate::exchanges::refused_field as refused;
    use crate::exchanges::{FixedClock, FixedNonce, Recorded, SoftKey};
    use std::borrow::Cow;

    /// Binance's documented example key, in software.
    const DOC_KEY: SoftKey = SoftKey {
        exchange: "binance",
        secret: b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    };

    #[test]
    fn rest_request_borrows_what_it_passes_on() {
        let clock = FixedClock(1_499_827_319_559);
        let nonces = FixedNonce(0);
        let ctx = Context::new(&clock, &nonces);
        let req = Request::post("/api/v3/order")
            .query("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1")
            .recv_window("5000")
            .api_key("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A");
        let signed = Binance::spot().sign(&req, &DOC_KEY, &ctx).unwrap();
        // Binance's documented example 1.
        assert_eq!(
            signed.signature,
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
        // The method, the path and the API key are the request's own, not copies.
        assert!(matches!(signed.method, Cow::Borrowed("POST")));
        assert!(matches!(signed.path, Cow::Borrowed("/api/v3/order")));
        assert!(
            matches!(&signed.headers[0].1, Cow::Borrowed(k) if *k == req.api_key.as_deref().unwrap())
        );
        // A method set by hand in lower case is upper-cased, so owned.
        let mut lower = req.clone();
        lower.method = Some("post".into());
        let relaxed = Binance::spot().sign(&lower, &DOC_KEY, &ctx).unwrap();
        assert!(matches!(relaxed.method, Cow::Owned(ref m) if m == "POST"));
        // `into_owned` keeps every part and outlives the request.
        let debug = format!("{signed:?}");
        let kept = signed.into_owned();
        drop(req);
        assert_eq!(format!("{kept:?}"), debug);
        assert!(matches!(kept.path, Cow::Owned(ref p) if p == "/api/v3/order"));
        assert_eq!(
            kept.header("x-mbx-apikey"),
            Some("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A")
        );
    }

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

    const NOW: u64 = 1_700_000_000_000;

    /// A software key with an API key recorded with it.
    fn reach_of(ex: &dyn Exchange, req: &Request) -> Result<Reach> {
        let limits = crate::exchanges::Limits::default();
        ex.reach(req, &Inputs::new(ex.id(), NOW, &limits, None, None))
    }

    fn order() -> Request {
        Request::post("/api/v3/order").query("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1")
    }

    #[test]
    fn rest_reach_names_every_parameter_and_split_names() {
        let spot = Binance::spot();
        let reach = reach_of(&spot, &order().body("price=1").recv_window("5000")).unwrap();
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
        let cut = reach_of(&spot, &order().body("xaddress=abc")).unwrap();
        assert!(cut.carries("address"));
        // A caller's timestamp within the skew is kept as the crate's.
        let ts = format!("symbol=BTCUSDT&timestamp={}", NOW + 1000);
        assert!(reach_of(&spot, &Request::get("/api/v3/openOrders").query(ts)).is_ok());
        // USD-M takes its own prefix only.
        assert!(reach_of(&Binance::usdm(), &Request::post("/fapi/v1/order")).is_ok());
        assert_eq!(refused(reach_of(&Binance::usdm(), &order())), "path");
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
            assert_eq!(refused(reach_of(&spot, &req)), field, "{req:?}");
        }
        assert!(reach_of(&spot, &order().host("api1.binance.com")).is_ok());
    }

    #[test]
    fn signers_use_the_recorded_api_key() {
        let clock = FixedClock(NOW);
        let nonces = FixedNonce(0);
        let ctx = Context::new(&clock, &nonces);
        let key = Recorded {
            key: DOC_KEY,
            api_key: Some("RECORDED"),
            passphrase: None,
        };
        let req = order();
        let signed = Binance::spot().sign(&req, &key, &ctx).unwrap();
        assert_eq!(signed.header("X-MBX-APIKEY"), Some("RECORDED"));
        let ws = Request::default().query("symbol=BTCUSDT");
        let signed = BinanceWs.sign(&ws, &key, &ctx).unwrap();
        assert!(
            signed
                .query
                .starts_with("apiKey=RECORDED&symbol=BTCUSDT&timestamp="),
            "{}",
            signed.query
        );
    }

    #[test]
    fn ws_reach_refuses_what_the_signer_would_drop_or_rewrite() {
        let ok = Request::default()
            .query("symbol=\u{ff11}\u{ff12}&side=SELL&price=52000.00")
            .api_key("K");
        let reach = reach_of(&BinanceWs, &ok).unwrap();
        assert!(reach.split_names());
        for name in ["symbol", "side", "price", "apiKey", "timestamp"] {
            assert!(reach.carries(name), "{name}");
        }
        let with_path = ok.clone().method("order.place").path("/ws-api/v3");
        assert_eq!(
            reach_of(&BinanceWs, &with_path).unwrap().endpoint(),
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
            assert_eq!(refused(reach_of(&BinanceWs, &req)), field, "{req:?}");
        }
    }
}
