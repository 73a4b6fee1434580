//! KuCoin (API key v1, v2, v3).
//!
//! `KC-API-SIGN = base64(HMAC-SHA256(secret, timestamp || METHOD || path(?query) || body))`,
//! timestamp in ms (default: the clock). For v2/v3 keys the passphrase header is
//! `base64(HMAC-SHA256(secret, passphrase))`, a second MAC with the same token key; v1 keys send
//! the plaintext passphrase. Default key version: 2 (`KC-API-KEY-VERSION: 2`).
//!
//! # Security
//! The v2/v3 passphrase header is a MAC of the passphrase under the API secret: MACing a
//! caller's passphrase would hand out the MAC of any bytes. So the crate MACs only the
//! passphrase recorded with the key ([`Mac::passphrase`]); a request's passphrase must equal it,
//! and with none recorded a request that carries one is refused (and none is sent). The
//! validator also makes the concatenation unambiguous: methods `GET`/`DELETE` (plain query, no
//! body) and `POST` (JSON body beginning with `{` or `[`, no query); `/api/` paths of plain
//! segments; a caller's timestamp in ms within the skew.

use std::borrow::Cow;
use std::sync::Arc;

use super::checks;
use super::encode::{base64, path_with_query};
use super::registry::{g, ExchangeInfo, SHA256};
use super::{Binding, Context, EndpointFrom, Exchange, Inputs, Reach, Request, SignedRequest};
use crate::error::{Error, Result};
use crate::keys::SecretEncoding;
use crate::sign::{HmacAlg, Mac};

/// KuCoin (id `kucoin`).
#[derive(Clone, Copy, Debug)]
pub struct KuCoin {
    key_version: u8,
}

impl Default for KuCoin {
    fn default() -> Self {
        KuCoin { key_version: 2 }
    }
}

impl KuCoin {
    /// For keys of API version 1, 2 or 3.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for another version.
    pub fn with_key_version(version: u8) -> Result<Self> {
        if !(1..=3).contains(&version) {
            return Err(Error::invalid("kucoin key versions are 1, 2 and 3"));
        }
        Ok(KuCoin {
            key_version: version,
        })
    }
}

const RULES: checks::Target = checks::Target {
    methods: &["GET", "POST", "DELETE"],
    prefix: "/api/",
    body_methods: &["POST"],
    arrays: true,
    decoded_query: false,
};

/// Why a request's passphrase is not MACed when none is recorded.
const RECORD_IT: &str = "KuCoin v2/v3 keys send HMAC(secret, passphrase): the crate MACs only \
                         the passphrase recorded with the key; record it with the key and leave \
                         it out of the request";

/// The registry entry of `kucoin` (listed in [`super::ALL`]).
pub(super) static INFO: ExchangeInfo = ExchangeInfo {
    id: "kucoin",
    key_family: "kucoin",
    ccxt: &["kucoin", "kucoinfutures"],
    encoding: SecretEncoding::Raw,
    algorithms: SHA256,
    asymmetric: false,
    binding: Binding::REQUEST,
    endpoint_from: EndpointFrom::Path,
    owned: "KC-API-TIMESTAMP (±skew), KC-API-KEY, KC-API-PASSPHRASE (HMAC of the recorded passphrase only)",
    hosts: &["api.kucoin.com", "api-futures.kucoin.com"],
    guarded: &[
        g("/api/*/withdrawals"),
        g("/api/*/accounts/inner-transfer"),
        g("/api/*/accounts/sub-transfer"),
        g("/api/*/accounts/universal-transfer"),
    ],
    signer: || Arc::new(KuCoin::default()),
};

impl Exchange for KuCoin {
    fn id(&self) -> &str {
        INFO.id
    }

    fn reach(&self, req: &Request, inputs: &Inputs<'_>) -> Result<Reach> {
        let (method, path) = checks::target(inputs, req, &RULES)?;
        checks::unused(inputs, req, &["nonce", "expires", "recv_window"])?;
        if let Some(ts) = req.timestamp.as_deref() {
            inputs.timestamp_ms("timestamp", ts)?;
        }
        inputs.api_key(req.api_key.as_deref())?;
        if self.key_version > 1 && inputs.stored_passphrase().is_none() && req.passphrase.is_some()
        {
            return Err(inputs.refuse("passphrase", RECORD_IT));
        }
        inputs.passphrase(req.passphrase.as_deref())?;
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
            .unwrap_or_else(|| ctx.now_ms().to_string());
        let method = req.method_or_get();
        let target = path_with_query(req.path_or_empty(), req.query_or_empty());
        let body = req.body_or_empty();
        let prehash = format!("{ts}{method}{target}{body}");
        let passphrase: Option<Cow<'r, str>> = if self.key_version == 1 {
            checks::or_recorded(req.passphrase.as_deref(), mac.passphrase())
        } else {
            // Only the recorded passphrase is MACed, whatever the caller skipped (`reach`).
            let recorded = match (req.passphrase.as_deref(), mac.passphrase()) {
                (Some(given), Some(recorded)) if given == recorded => Some(recorded),
                (Some(_), Some(_)) => {
                    return Err(Error::RequestRefused {
                        exchange: self.id().to_owned(),
                        field: "passphrase".into(),
                        reason: "differs from the passphrase recorded with the key".into(),
                    })
                }
                (Some(_), None) => {
                    return Err(Error::RequestRefused {
                        exchange: self.id().to_owned(),
                        field: "passphrase".into(),
                        reason: RECORD_IT.into(),
                    })
                }
                (None, recorded) => recorded,
            };
            match recorded {
                Some(p) => Some(Cow::Owned(base64(
                    mac.mac(HmacAlg::HmacSha256, p.as_bytes())?.as_bytes(),
                ))),
                None => None,
            }
        };
        let signature = base64(mac.mac(HmacAlg::HmacSha256, prehash.as_bytes())?.as_bytes());
        let mut signed = SignedRequest::new(
            method,
            req.path_or_empty(),
            req.query_or_empty(),
            body,
            signature.clone(),
        )
        .with_header_opt(
            "KC-API-KEY",
            checks::or_recorded(req.api_key.as_deref(), mac.api_key()),
        )
        .with_header("KC-API-SIGN", signature)
        .with_header("KC-API-TIMESTAMP", ts)
        .with_header_opt("KC-API-PASSPHRASE", passphrase)
        .with_header("KC-API-KEY-VERSION", self.key_version.to_string());
        if !body.is_empty() {
            signed = signed.with_header("Content-Type", "application/json");
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::exchanges::refused_field as field;
    use crate::exchanges::{FixedClock, FixedNonce, Limits, SoftKey};

    const NOW: u64 = 1_700_000_000_000;

    /// A software key that records every message it MACs.
    struct Recording {
        key: SoftKey,
        passphrase: Option<&'static str>,
        seen: Mutex<Vec<Vec<u8>>>,
    }

    impl Recording {
        fn new(passphrase: Option<&'static str>) -> Self {
            Recording {
                key: SoftKey {
                    exchange: "kucoin",
                    secret: b"secret",
                },
                passphrase,
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    impl Mac for Recording {
        fn key_name(&self) -> &str {
            "rec"
        }
        fn exchange(&self) -> Option<&str> {
            Some("kucoin")
        }
        fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<crate::Signature> {
            self.seen.lock().unwrap().push(msg.to_vec());
            self.key.mac(alg, msg)
        }
        fn passphrase(&self) -> Option<&str> {
            self.passphrase
        }
    }

    /// Validates with the key's recorded passphrase, then signs.
    fn sign(k: KuCoin, req: &Request, key: &Recording) -> Result<SignedRequest<'static>> {
        let limits = Limits::default();
        let inputs = Inputs::new("kucoin", NOW, &limits, None, key.passphrase);
        k.reach(req, &inputs)?;
        let ctx = Context::new(&FixedClock(NOW), &FixedNonce(1));
        k.sign(req, key, &ctx).map(SignedRequest::into_owned)
    }

    #[test]
    fn the_passphrase_mac_covers_only_the_recorded_passphrase() {
        let req = Request::get("/api/v1/accounts");
        // None recorded: a request passphrase is refused before any MAC, and none is sent.
        let key = Recording::new(None);
        let with = req
            .clone()
            .passphrase("1700000000000POST/api/v1/withdrawals{}");
        assert_eq!(field(sign(KuCoin::default(), &with, &key)), "passphrase");
        assert!(key.seen.lock().unwrap().is_empty());
        let signed = sign(KuCoin::default(), &req, &key).unwrap();
        assert_eq!(signed.header("KC-API-PASSPHRASE"), None);
        assert_eq!(key.seen.lock().unwrap().len(), 1);
        // Exchange::sign alone (no reach) refuses too.
        let ctx = Context::new(&FixedClock(NOW), &FixedNonce(1));
        assert!(KuCoin::default().sign(&with, &key, &ctx).is_err());
        assert_eq!(key.seen.lock().unwrap().len(), 1);

        // Recorded: MACed, whether or not the request repeats it; another one is refused.
        let key = Recording::new(Some("my-passphrase"));
        let signed = sign(KuCoin::default(), &req, &key).unwrap();
        let expected = base64(&HmacAlg::HmacSha256.software(b"secret", b"my-passphrase"));
        assert_eq!(signed.header("KC-API-PASSPHRASE"), Some(expected.as_str()));
        assert!(key
            .seen
            .lock()
            .unwrap()
            .contains(&b"my-passphrase".to_vec()));
        let same = req.clone().passphrase("my-passphrase");
        assert!(sign(KuCoin::default(), &same, &key).is_ok());
        let other = req.clone().passphrase("other");
        assert!(sign(KuCoin::default(), &other, &key).is_err());
        assert!(KuCoin::default().sign(&other, &key, &ctx).is_err());
        assert!(!key.seen.lock().unwrap().contains(&b"other".to_vec()));
    }

    #[test]
    fn v1_sends_the_passphrase_as_is() {
        let key = Recording::new(None);
        let v1 = KuCoin::with_key_version(1).unwrap();
        let req = Request::get("/api/v1/accounts").passphrase("plain");
        let signed = sign(v1, &req, &key).unwrap();
        assert_eq!(signed.header("KC-API-PASSPHRASE"), Some("plain"));
        assert_eq!(key.seen.lock().unwrap().len(), 1);
        let bad = Request::get("/api/v1/accounts").passphrase("a b");
        assert!(sign(v1, &bad, &key).is_err());
    }

    #[test]
    fn requests_fit_the_grammar() {
        let limits = Limits::default();
        let inputs = Inputs::new("kucoin", NOW, &limits, None, None);
        let k = KuCoin::default();
        let ok = Request::post("/api/v1/orders").body(r#"{"clientOid":"1","side":"buy"}"#);
        assert_eq!(
            k.reach(&ok, &inputs).unwrap(),
            Reach::bound("POST", "/api/v1/orders")
        );
        assert!(k
            .reach(
                &Request::delete("/api/v1/orders").query("symbol=BTC-USDT"),
                &inputs
            )
            .is_ok());
        for (req, f) in [
            (
                Request::post("/api/v1/with").body(r#"drawals{"a":1}"#),
                "body",
            ),
            (Request::post("/api/v1/orders").query("a=1"), "query"),
            (Request::get("/api/v1/orders").body("{}"), "body"),
            (Request::get("/api/v1/orders").query("a=1&a=2"), "query"),
            (Request::get("/api/v1/orders?x=1"), "path"),
            (Request::get("/api/v1//withdrawals"), "path"),
            (Request::new("PUT", "/api/v1/orders"), "method"),
            (
                Request::get("/api/v1/orders").timestamp("1700000006000"),
                "timestamp",
            ),
            (Request::get("/api/v1/orders").nonce("1"), "nonce"),
            (Request::get("/api/v1/orders").passphrase("p"), "passphrase"),
            (
                Request::get("/api/v1/orders").host("api.kucoin.com.evil"),
                "host",
            ),
        ] {
            assert_eq!(field(k.reach(&req, &inputs)), f, "{req:?}");
        }
    }
}
