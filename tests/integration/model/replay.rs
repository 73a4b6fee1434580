//! What the three groups' vector tests share: the vectors of `tests/data/exchange_vectors.json`,
//! a software key that MACs on the host as the token would, and the signer run at a vector's
//! own clock.

use hsm_custody::exchanges::{Context, Exchange, FixedClock, FixedNonce, Request, SignedRequest};
use hsm_custody::{HmacAlg, Signature};
use serde_json::Value;

const VECTORS: &str = include_str!("../../data/exchange_vectors.json");

/// The vectors of the exchange ids `ids`, in file order.
pub fn vectors(ids: &[&str]) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_str(VECTORS).expect("vectors parse");
    all.into_iter()
        .filter(|v| ids.contains(&v["exchange"].as_str().unwrap_or("")))
        .collect()
}

/// A vector's secret, decoded as the exchange shows it (`encoding`: `raw` or `base64`).
pub fn secret(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let text = v["secret"].as_str().expect("secret");
    if v["encoding"] == "base64" {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64 secret")
    } else {
        text.as_bytes().to_vec()
    }
}

/// A software HMAC key (what the token computes), with the API key and passphrase recorded with
/// it when given.
pub struct SoftMac {
    pub exchange: String,
    pub secret: Vec<u8>,
    pub api_key: Option<String>,
    pub passphrase: Option<String>,
}

impl SoftMac {
    /// A key bound to `exchange` with nothing recorded besides the secret.
    pub fn new(exchange: &str, secret: &[u8]) -> SoftMac {
        SoftMac {
            exchange: exchange.to_owned(),
            secret: secret.to_vec(),
            api_key: None,
            passphrase: None,
        }
    }
}

impl hsm_custody::Mac for SoftMac {
    fn key_name(&self) -> &str {
        "soft"
    }
    fn exchange(&self) -> Option<&str> {
        Some(&self.exchange)
    }
    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> hsm_custody::Result<Signature> {
        Ok(Signature::from_bytes(super::hmac(alg, &self.secret, msg)))
    }
    fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }
    fn passphrase(&self) -> Option<&str> {
        self.passphrase.as_deref()
    }
}

/// Signs `req` with `exchange`'s signer (no validator) at the clock `now_ms`, nonce source 1.
pub fn sign_at<'r>(
    exchange: &dyn Exchange,
    req: &'r Request,
    mac: &dyn hsm_custody::Mac,
    now_ms: u64,
) -> hsm_custody::Result<SignedRequest<'r>> {
    let (clock, nonces) = (FixedClock(now_ms), FixedNonce(1));
    exchange.sign(req, mac, &Context::new(&clock, &nonces))
}
