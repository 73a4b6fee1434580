//! Binance spot and USD-M futures (REST), and the spot WebSocket API.
//!
//! REST: `signature = hex(HMAC-SHA256(secret, query || body))`, no `&` between query and body.
//! The request's `query` and `body` are signed as sent (non-ASCII values must already be
//! percent-encoded). When neither carries `timestamp`, the signer appends `recvWindow` (if given)
//! and `timestamp` (given, else the clock in ms) to the body when there is one, else to the
//! query; the signature goes to the same place. Header `X-MBX-APIKEY`.
//!
//! WebSocket API: every parameter except `signature` (apiKey included) sorted by name, joined as
//! `k=v` with `&`, signed as raw UTF-8. The request's `query` holds the parameters unencoded;
//! `api_key`, `recv_window` and `timestamp` are added when missing.
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

use super::encode::{has_param, percent_encode, push_u64, split_query};
use super::{check_binding, Context, Exchange, InRequest, Reach, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::{HmacAlg, Mac};

/// Binance REST (spot `binance`, USD-M futures `binance-usdm`); also the shape MEXC spot copies.
#[derive(Clone, Copy, Debug)]
pub struct Binance {
    id: &'static str,
}

impl Binance {
    /// Spot (`api.binance.com`, id `binance`).
    pub fn spot() -> Self {
        Binance { id: "binance" }
    }

    /// USD-M futures (`fapi.binance.com`, id `binance-usdm`).
    pub fn usdm() -> Self {
        Binance { id: "binance-usdm" }
    }
}

/// One API key serves Binance spot, futures and the WebSocket API.
fn binance_family(bound: &str) -> bool {
    matches!(bound, "binance" | "binance-usdm" | "binance-ws")
}

impl Exchange for Binance {
    fn id(&self) -> &str {
        self.id
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        binance_family(bound)
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
    .with_header_opt(key_header, req.api_key.as_deref());
    if in_body {
        signed = signed.with_header("Content-Type", "application/x-www-form-urlencoded");
    }
    Ok(signed)
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
        "binance-ws"
    }

    fn accepts_key_for(&self, bound: &str) -> bool {
        binance_family(bound)
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let payload = ws_payload(req, ctx.now_ms());
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
        let key = InRequest::new(key, "binance", &reach);
        Ok(key.sign_asym(self.payload().as_bytes())?.to_base64())
    }
}

/// The sorted `k=v&...` payload of a WebSocket API request.
fn ws_payload(req: &Request, now_ms: u64) -> String {
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
    add("apiKey", req.api_key.clone());
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
    use crate::exchanges::{FixedClock, FixedNonce, SoftKey};
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
            ws_payload(&req, 0),
            "apiKey=K&side=SELL&symbol=BTCUSDT&timestamp=5"
        );
    }
}
