//! Schemes that carry time, API key and signature in headers: OKX, Coinbase Exchange, Bitget,
//! Gate, Bybit v5, KuCoin (key version 2), Bitfinex v2, Bitstamp, MEXC futures, BitMEX, and
//! Coinbase Advanced (a JWT in `Authorization`).

use super::{Body, Form};

pub(super) static MEXC_FUTURES: Form = Form {
    sig_params: &[],
    sig_headers: &["Signature"],
    owned_headers: &["Request-Time", "ApiKey"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.timestamp = Some(h.need("Request-Time")?);
        r.api_key = Some(h.need("ApiKey")?);
        Ok(r)
    },
};

macro_rules! header_scheme {
    ($name:ident, sig = $sig:expr, ts = $ts:expr, key = $key:expr, pass = $pass:expr) => {
        pub(super) static $name: Form = Form {
            sig_params: &[],
            sig_headers: &[$sig],
            owned_headers: &[$ts, $key],
            signed_presentation: &[],
            body: Body::Signed,
            extract: |h| {
                let mut r = h.base_request();
                r.timestamp = Some(h.need($ts)?);
                r.api_key = Some(h.need($key)?);
                let pass: Option<&str> = $pass;
                if let Some(p) = pass {
                    r.passphrase = Some(h.need(p)?);
                }
                Ok(r)
            },
        };
    };
}

header_scheme!(
    OKX,
    sig = "OK-ACCESS-SIGN",
    ts = "OK-ACCESS-TIMESTAMP",
    key = "OK-ACCESS-KEY",
    pass = Some("OK-ACCESS-PASSPHRASE")
);
header_scheme!(
    COINBASE,
    sig = "CB-ACCESS-SIGN",
    ts = "CB-ACCESS-TIMESTAMP",
    key = "CB-ACCESS-KEY",
    pass = Some("CB-ACCESS-PASSPHRASE")
);
header_scheme!(
    BITGET,
    sig = "ACCESS-SIGN",
    ts = "ACCESS-TIMESTAMP",
    key = "ACCESS-KEY",
    pass = Some("ACCESS-PASSPHRASE")
);
header_scheme!(
    GATE,
    sig = "SIGN",
    ts = "Timestamp",
    key = "KEY",
    pass = None
);

pub(super) static BYBIT: Form = Form {
    sig_params: &[],
    sig_headers: &["X-BAPI-SIGN"],
    owned_headers: &["X-BAPI-TIMESTAMP", "X-BAPI-API-KEY", "X-BAPI-RECV-WINDOW"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if h.header("X-BAPI-SIGN-TYPE").is_some() || h.header("X-BAPI-RECV-WINDOW").is_none() {
            return Err("only Bybit v5 requests are re-signed".into());
        }
        let mut r = h.base_request();
        r.timestamp = Some(h.need("X-BAPI-TIMESTAMP")?);
        r.api_key = Some(h.need("X-BAPI-API-KEY")?);
        r.recv_window = Some(h.need("X-BAPI-RECV-WINDOW")?);
        Ok(r)
    },
};

pub(super) static KUCOIN: Form = Form {
    sig_params: &[],
    // The v2 passphrase header is a MAC of the recorded passphrase: the crate makes it.
    sig_headers: &["KC-API-SIGN", "KC-API-PASSPHRASE"],
    owned_headers: &["KC-API-TIMESTAMP", "KC-API-KEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if h.header("KC-API-KEY-VERSION") != Some("2") {
            return Err("KuCoin: only API key version 2 is re-signed".into());
        }
        let mut r = h.base_request();
        r.timestamp = Some(h.need("KC-API-TIMESTAMP")?);
        r.api_key = Some(h.need("KC-API-KEY")?);
        Ok(r)
    },
};

pub(super) static BITFINEX: Form = Form {
    sig_params: &[],
    sig_headers: &["bfx-signature"],
    owned_headers: &["bfx-nonce", "bfx-apikey"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        if !h.path.starts_with("/v2/") {
            return Err("Bitfinex: only v2 requests are re-signed".into());
        }
        let mut r = h.base_request();
        r.nonce = Some(h.need("bfx-nonce")?);
        r.api_key = Some(h.need("bfx-apikey")?);
        Ok(r)
    },
};

pub(super) static BITSTAMP: Form = Form {
    sig_params: &[],
    sig_headers: &["X-Auth-Signature"],
    owned_headers: &["X-Auth", "X-Auth-Nonce", "X-Auth-Timestamp"],
    signed_presentation: &["Content-Type"],
    body: Body::Signed,
    extract: |h| {
        let auth = h.need("X-Auth")?;
        let key = auth
            .strip_prefix("BITSTAMP ")
            .ok_or("`X-Auth` is not `BITSTAMP <key>`")?;
        let mut r = h.base_request();
        r.api_key = Some(key.to_owned());
        r.nonce = Some(h.need("X-Auth-Nonce")?);
        r.timestamp = Some(h.need("X-Auth-Timestamp")?);
        r.host = Some(h.host.clone());
        Ok(r)
    },
};

pub(super) static BITMEX: Form = Form {
    sig_params: &[],
    sig_headers: &["api-signature"],
    owned_headers: &["api-expires", "api-key"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        // A legacy `api-nonce` request is read as sent: the canonical form refuses it.
        let mut r = h.base_request();
        r.expires = Some(h.need("api-expires")?);
        r.api_key = Some(h.need("api-key")?);
        r.nonce = h.header("api-nonce").map(str::to_owned);
        Ok(r)
    },
};

/// Coinbase Advanced (CDP keys): the whole `Authorization: Bearer <JWT>` is the crate's. The
/// bot's JWT (signed with its placeholder key) gives only the key name (`sub`, else `kid`);
/// its time, nonce and claims are dropped: the crate's JWT names the request's method, host
/// and path with its own clock.
pub(super) static COINBASE_ADVANCED: Form = Form {
    sig_params: &[],
    sig_headers: &["Authorization"],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        use base64::Engine as _;
        let auth = h.need("Authorization")?;
        let jwt = auth
            .strip_prefix("Bearer ")
            .ok_or("`Authorization` is not `Bearer <JWT>`")?;
        let part = |i: usize| -> Option<serde_json::Value> {
            let text = jwt.split('.').nth(i)?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        let (header, claims) = match (part(0), part(1)) {
            (Some(h), Some(c)) if jwt.split('.').count() == 3 => (h, c),
            _ => return Err("`Authorization` does not carry a JWT".into()),
        };
        let name = claims
            .get("sub")
            .or_else(|| header.get("kid"))
            .and_then(|v| v.as_str())
            .ok_or("the JWT names no key (`sub` or `kid`)")?;
        let mut r = h.base_request();
        r.api_key = Some(name.to_owned());
        r.host = Some(h.host.clone());
        Ok(r)
    },
};
