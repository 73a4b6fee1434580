//! Crypto.com Exchange v1.
//!
//! `sig = hex(HMAC-SHA256(secret, method || id || api_key || paramString || nonce))`; paramString
//! concatenates the params sorted by key as key+value, list items recursively (up to depth 3),
//! `null` as `"null"`. The request's `body` is the JSON-RPC request `{"id","method","params",
//! "nonce"}`; the `api_key` and `nonce` fields, when given, override the body's (nonce default:
//! the clock in ms). The signer adds `api_key` and `sig` and returns the body to send.
//!
//! Numbers are signed as JSON text after parsing (`1.50` becomes `1.5`): send decimal values as
//! strings, as Crypto.com recommends.

use serde_json::{Map, Value};

use super::{Context, Exchange, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::sign::{HmacAlg, Mac};

/// Crypto.com Exchange v1 (id `cryptocom`).
#[derive(Clone, Copy, Debug, Default)]
pub struct CryptoCom;

const MAX_LEVEL: usize = 3;

impl Exchange for CryptoCom {
    fn id(&self) -> &str {
        "cryptocom"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let body = req
            .body
            .as_deref()
            .ok_or_else(|| Error::invalid("cryptocom: the body must hold the JSON-RPC request"))?;
        let Ok(Value::Object(mut rpc)) = serde_json::from_str::<Value>(body) else {
            return Err(Error::invalid("cryptocom: the body must be a JSON object"));
        };
        if let Some(key) = &req.api_key {
            rpc.insert("api_key".into(), Value::String(key.clone()));
        }
        match &req.nonce {
            Some(n) => {
                let v = n
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(n.clone()));
                rpc.insert("nonce".into(), v);
            }
            None if !rpc.contains_key("nonce") => {
                rpc.insert("nonce".into(), Value::from(ctx.now_ms()));
            }
            None => {}
        }
        let method = rpc
            .get("method")
            .map(scalar)
            .ok_or_else(|| Error::invalid("cryptocom: the request has no method"))?;
        let id = rpc.get("id").map(scalar).unwrap_or_default();
        let api_key = rpc.get("api_key").map(scalar).unwrap_or_default();
        let nonce = rpc.get("nonce").map(scalar).unwrap_or_default();
        let params = match rpc.get("params") {
            Some(Value::Object(p)) => params_to_string(p, 0),
            _ => String::new(),
        };
        let prehash = format!("{method}{id}{api_key}{params}{nonce}");
        let signature = mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.to_hex();
        rpc.insert("sig".into(), Value::String(signature.clone()));
        Ok(SignedRequest::new(
            req.method.as_deref().unwrap_or("POST"),
            req.path_or_empty(),
            req.query_or_empty(),
            Value::Object(rpc).to_string(),
            signature,
        )
        .with_header("Content-Type", "application/json"))
    }
}

/// A scalar as Crypto.com signs it: strings raw, everything else as JSON text.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

fn params_to_string(obj: &Map<String, Value>, level: usize) -> String {
    if level >= MAX_LEVEL {
        return Value::Object(obj.clone()).to_string();
    }
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort();
    let mut out = String::new();
    for key in keys {
        out.push_str(key);
        match &obj[key] {
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(o) => out.push_str(&params_to_string(o, level + 1)),
                        other => out.push_str(&scalar(other)),
                    }
                }
            }
            other => out.push_str(&scalar(other)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_sorted_and_flattened() {
        let v: Value =
            serde_json::from_str(r#"{"b":"2","a":null,"l":[{"y":"1","x":"0"},"s"],"n":10}"#)
                .unwrap();
        let Value::Object(m) = v else { panic!() };
        assert_eq!(params_to_string(&m, 0), "anullb2lx0y1sn10");
    }
}
