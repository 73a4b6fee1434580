//! Schemes that sign a payload the bot's body or one header carries: Kraken (the nonce in the
//! body), Gemini (a base64 JSON payload header), Crypto.com (the `sig` member of a JSON-RPC
//! body), Deribit (one `Authorization` header holding key, time, nonce and signature).

use super::params::{param, percent_decode};
use super::{Body, Form};

pub(super) static KRAKEN: Form = Form {
    sig_params: &[],
    sig_headers: &["API-Sign"],
    owned_headers: &["API-Key"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.nonce = if h.body.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(&h.body).map_err(|_| "body: not JSON".to_owned())?;
            v.get("nonce").map(|n| match n {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        } else {
            param(&h.body, "nonce").map(percent_decode)
        };
        r.api_key = Some(h.need("API-Key")?);
        Ok(r)
    },
};

pub(super) static GEMINI: Form = Form {
    sig_params: &[],
    sig_headers: &["X-GEMINI-SIGNATURE"],
    owned_headers: &["X-GEMINI-APIKEY"],
    signed_presentation: &[],
    body: Body::Keep,
    extract: |h| {
        use base64::Engine as _;
        let payload = h.need("X-GEMINI-PAYLOAD")?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("`X-GEMINI-PAYLOAD` is not base64 of UTF-8 text")?;
        let v: serde_json::Value =
            serde_json::from_str(&payload).map_err(|_| "Gemini payload is not JSON".to_owned())?;
        let mut r = h.base_request();
        r.nonce = v.get("nonce").map(|n| match n {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        r.body = Some(payload);
        r.api_key = Some(h.need("X-GEMINI-APIKEY")?);
        Ok(r)
    },
};

pub(super) static DERIBIT: Form = Form {
    sig_params: &[],
    // The whole header: key id, time, nonce and signature, all the crate's.
    sig_headers: &["Authorization"],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let auth = h.need("Authorization")?;
        let (scheme, params) = auth.split_once(' ').unwrap_or((&auth, ""));
        if scheme != "deri-hmac-sha256" {
            return Err(format!("Deribit: unknown authorization scheme `{scheme}`"));
        }
        let get = |k: &str| {
            params.split(',').find_map(|p| {
                let (n, v) = p.split_once('=')?;
                (n == k).then(|| v.to_owned())
            })
        };
        let mut r = h.base_request();
        r.api_key = get("id");
        r.timestamp = get("ts");
        r.nonce = get("nonce");
        Ok(r)
    },
};

pub(super) static CRYPTOCOM: Form = Form {
    sig_params: &[],
    sig_headers: &[],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::JsonMember("sig"),
    extract: |h| {
        let mut rpc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&h.body).map_err(|_| "body: not a JSON object".to_owned())?;
        let api_key = rpc.remove("api_key");
        rpc.remove("sig");
        let mut r = h.base_request();
        r.body = Some(serde_json::to_string(&rpc).map_err(|e| e.to_string())?);
        r.api_key = match api_key {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err("body: `api_key` is not a string".into()),
            None => None,
        };
        Ok(r)
    },
};
