//! Schemes that carry the signature in a query or form-body parameter: Binance (spot and USD-M),
//! MEXC spot, HTX.

use super::params::{drop_params, param, percent_decode};
use super::{Body, Form, Http};
use crate::exchanges::Request;

fn binance_like(http: &Http, key_header: &str) -> Result<Request, String> {
    let mut r = http.base_request();
    r.query = Some(drop_params(&http.query, &["signature"]));
    r.body = Some(if http.body.is_empty() {
        String::new()
    } else {
        drop_params(&http.body, &["signature"])
    });
    r.api_key = Some(http.need(key_header)?);
    Ok(r)
}

pub(super) static BINANCE: Form = Form {
    sig_params: &["signature"],
    sig_headers: &[],
    owned_headers: &["X-MBX-APIKEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| binance_like(h, "X-MBX-APIKEY"),
};

pub(super) static MEXC: Form = Form {
    sig_params: &["signature"],
    sig_headers: &[],
    owned_headers: &["X-MEXC-APIKEY"],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| binance_like(h, "X-MEXC-APIKEY"),
};

pub(super) static HTX: Form = Form {
    sig_params: &["Signature"],
    sig_headers: &[],
    owned_headers: &[],
    signed_presentation: &[],
    body: Body::Signed,
    extract: |h| {
        let mut r = h.base_request();
        r.query = Some(drop_params(&h.query, &["Signature"]));
        r.host = Some(h.host.clone());
        r.api_key = param(&h.query, "AccessKeyId").map(percent_decode);
        r.timestamp = param(&h.query, "Timestamp").map(percent_decode);
        Ok(r)
    },
};
