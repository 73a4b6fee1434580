//! Gate.io APIv4.
//!
//! `SIGN = hex(HMAC-SHA512(secret, METHOD \n path \n query \n hex(SHA512(body)) \n timestamp))`,
//! no trailing newline; the body hash runs on the host, the timestamp is Unix seconds (default:
//! the clock). The query is sent as given and signed **percent-decoded** (`%2C` as `,`), in its
//! order: Gate verifies the query it decoded, so a signature over the encoded text fails
//! (`Signature mismatch`) for any value with an escape; ccxt signs the raw query too (checked
//! against ccxt 4.5.90 in `docs/ccxt-oracle.md`). Queries without escapes are unchanged.
//!
//! The parts are separated by newlines: the validator keeps every newline out of them. The path
//! is an `/api/v4/` path of plain segments; the query is plain `name=value&...` whose escapes
//! decode to no newline, no separator (`&`, `=`, `?`, `#`) and only UTF-8, so that the decoded
//! query Gate verifies has the parameters that were sent; the body is a JSON object or array
//! (no body on `GET`); a caller's timestamp is seconds within the skew.

use std::sync::Arc;

use super::checks;
use super::encode::{percent_decode_bytes, sha512_hex};
use super::registry::{g, ExchangeInfo, SHA512};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::Result;
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// Gate.io APIv4 (id `gate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gate;

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST", "PUT", "PATCH", "DELETE"],
    prefix: "/api/v4/",
    body_methods: &[],
    arrays: true,
    decoded_query: true,
};

/// The registry entry of `gate` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "gate",
    key_family: "gate",
    ccxt: &["gate"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA512,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "Timestamp (±skew), KEY",
    hosts: &["api.gateio.ws", "fx-api.gateio.ws"],
    guarded: &[
        g("/api/v4/withdrawals"),
        g("/api/v4/withdrawals/push"),
        g("/api/v4/wallet/transfers"),
        g("/api/v4/wallet/sub_account_transfers"),
        g("/api/v4/wallet/sub_account_to_sub_account"),
    ],
    signer: || Arc::new(Gate),
};

impl Exchange for Gate {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        if method == "GET" && !req.body_or_empty().is_empty() {
            return Err(inputs.refuse("body", "a GET request has no body"));
        }
        checks::unused(
            inputs,
            req,
            &["nonce", "expires", "recv_window", "passphrase"],
        )?;
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_s("timestamp", ts)?;
        }
        inputs.api_key(req.api_key.as_deref())?;
        checks::host(inputs, req, self.id())?;
        Ok(Reach::bound(method, path))
    }

    fn sign<'r>(
        &self,
        req: &'r Request,
        mac: &dyn Mac,
        ctx: &Context<'_>,
    ) -> Result<SignedRequest<'r>> {
        let ts = req
            .timestamp
            .clone()
            .unwrap_or_else(|| ctx.now_s().to_string());
        let method = req.method_or_get();
        let body = req.body_or_empty();
        let mut prehash = format!("{method}\n{}\n", req.path_or_empty()).into_bytes();
        prehash.extend_from_slice(&percent_decode_bytes(req.query_or_empty()));
        prehash.extend_from_slice(format!("\n{}\n{ts}", sha512_hex(body.as_bytes())).as_bytes());
        let signature = mac.mac(HmacAlg::HmacSha512, &prehash)?.to_hex();
        Ok(SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt(
            "KEY",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("Timestamp", ts)
        .with_header("SIGN", signature)
        .with_header("Content-Type", "application/json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchanges::reach_at;
    use crate::exchanges::refused_field as field;

    const NOW: u64 = 1_541_993_715_000;

    fn reach(req: &Request) -> Result<Reach> {
        reach_at(&Gate, NOW, req)
    }

    #[test]
    fn documented_requests_reach_their_path() {
        let r = Request::get("/api/v4/futures/orders")
            .query("contract=BTC_USD&status=finished&limit=50")
            .timestamp("1541993715")
            .api_key("key");
        assert_eq!(
            reach(&r).unwrap(),
            Reach::bound("GET", "/api/v4/futures/orders")
        );
        let r = Request::post("/api/v4/futures/orders")
            .body(r#"{"contract":"BTC_USD","type":"limit","size":100}"#);
        assert!(reach(&r).is_ok());
        let r =
            Request::post("/api/v4/futures/usdt/positions/BTC_USDT/leverage").query("leverage=10");
        assert!(reach(&r).is_ok());
        let r = Request::post("/api/v4/spot/batch_orders").body(r#"[{"text":"t-1"}]"#);
        assert!(reach(&r).is_ok());
        let r = Request::get("/api/v4/spot/batch_fee").query("currency_pairs=BTC_USDT%2CETH_USDT");
        assert!(reach(&r).is_ok());
    }

    #[test]
    fn no_newline_reaches_the_prehash() {
        for q in [
            "a=%0A",
            "a=%0D",
            "a=%0a",
            "a=1\n",
            "a=%26b%3D1",
            "a=%3Fb",
            "a=%FF",
        ] {
            assert_eq!(
                field(reach(&Request::get("/api/v4/x").query(q))),
                "query",
                "{q}"
            );
        }
        for p in [
            "/api/v4/x\n/api/v4/withdrawals",
            "/api/v4/%0A",
            "/api/v4/wallet//transfers",
        ] {
            assert_eq!(field(reach(&Request::get(p))), "path", "{p}");
        }
        let mut r = Request::get("/api/v4/x");
        r.method = Some("GET\n/api/v4/withdrawals".to_owned());
        assert_eq!(field(reach(&r)), "method");
    }

    #[test]
    fn time_body_and_unused_inputs() {
        for bad in ["1541993721", "1541993715000", "1541993715\n"] {
            let r = Request::get("/api/v4/x").timestamp(bad);
            assert_eq!(field(reach(&r)), "timestamp", "{bad}");
        }
        assert_eq!(field(reach(&Request::get("/api/v4/x").body("{}"))), "body");
        assert_eq!(
            field(reach(&Request::post("/api/v4/x").body(r#"{"a":1,"a":2}"#))),
            "body"
        );
        assert_eq!(field(reach(&Request::get("/api/v4/x").nonce("1"))), "nonce");
        assert_eq!(
            field(reach(&Request::get("/api/v4/x").passphrase("p"))),
            "passphrase"
        );
    }
}
