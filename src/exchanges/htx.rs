//! HTX (Huobi), Signature V2.
//!
//! String to sign: `METHOD \n host(lowercase) \n path \n Q`, where Q holds the query parameters
//! percent-encoded (uppercase hex) and sorted by name: the request's own `query` parameters plus
//! `AccessKeyId` (= `api_key`), `SignatureMethod=HmacSHA256`, `SignatureVersion=2` and
//! `Timestamp` (= `timestamp`: `YYYY-MM-DDThh:mm:ss` used as is, or Unix seconds/ms formatted;
//! default: the clock) unless present. POST body fields are not signed.
//! `Signature = base64(HMAC-SHA256(secret, ...))` is appended as `&Signature=<url-encoded>`.
//! Host default `api.huobi.pro`.

use super::encode::{base64, iso8601_seconds, percent_decode, percent_encode, split_query};
use super::{Context, Exchange, Request, SignedRequest};
use crate::error::Result;
use crate::sign::{HmacAlg, Mac};

/// HTX Signature V2 (id `htx`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Htx;

impl Exchange for Htx {
    fn id(&self) -> &str {
        "htx"
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let host = req
            .host
            .as_deref()
            .unwrap_or("api.huobi.pro")
            .to_ascii_lowercase();
        let mut params: Vec<(String, String)> = split_query(req.query_or_empty())
            .into_iter()
            .filter(|(k, _)| *k != "Signature")
            .map(|(k, v)| (percent_decode(k), percent_decode(v)))
            .collect();
        let timestamp = match &req.timestamp {
            Some(t) if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() => {
                let n: u64 = t.parse().unwrap_or(0);
                // Ten digits or fewer: seconds; more: milliseconds.
                iso8601_seconds(if t.len() <= 10 { n * 1000 } else { n })?
            }
            Some(t) => t.clone(),
            None => iso8601_seconds(ctx.now_ms())?,
        };
        let defaults = [
            ("AccessKeyId", req.api_key_or_empty().to_owned()),
            ("SignatureMethod", "HmacSHA256".to_owned()),
            ("SignatureVersion", "2".to_owned()),
            ("Timestamp", timestamp),
        ];
        for (k, v) in defaults {
            if !params.iter().any(|(name, _)| name == k) {
                params.push((k.to_owned(), v));
            }
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let q = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let method = req.method_or_get();
        let path = req.path_or_empty();
        let prehash = format!("{method}\n{host}\n{path}\n{q}");
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let query = format!("{q}&Signature={}", percent_encode(&signature));
        let body = req.body_or_empty();
        let mut signed = SignedRequest::new(method, path, query, body, signature);
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}
