//! The bytes and signature of a Binance-shaped REST request: HMAC (hex), Ed25519 or RSA
//! (base64, percent-encoded on the wire) over `query || body`.

use std::borrow::Cow;

use super::super::encode::{has_param, percent_encode, push_u64};
use super::super::{Context, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::KeyKind;
use crate::sign::{HmacAlg, Mac};

/// Which kinds of key a Binance-shaped scheme takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// HMAC only (MEXC spot copies the HMAC scheme, not the asymmetric keys).
    Hmac,
    /// HMAC, Ed25519 and RSA (Binance).
    HmacEd25519Rsa,
}

/// A Binance signature over `payload`: `(as documented, as sent in a URL or form body)`.
/// HMAC: lowercase hex (the same both ways). Ed25519/RSA: base64, percent-encoded on the wire.
/// The wire form is `None` when it is the documented form itself.
pub(super) fn binance_signature(
    mac: &dyn Mac,
    keys: Keys,
    payload: &str,
) -> Result<(String, Option<String>)> {
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

pub(super) fn query_body<'r>(
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

pub(super) fn append(target: &mut String, key: &str, value: &str) {
    if !target.is_empty() {
        target.push('&');
    }
    target.push_str(key);
    target.push('=');
    target.push_str(value);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::super::tests::DOC_KEY;
    use super::super::Binance;
    use super::*;
    use crate::exchanges::{Exchange, FixedClock, FixedNonce};

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
}
