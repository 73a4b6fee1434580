//! Arbitrary bytes as a `sign-request` JSON request, validated (`Exchange::reach`, the canonical
//! form and what the signature is good for) and "signed" by every exchange scheme with a fake
//! in-memory key (no token): must never panic.
//!
//! The first byte picks the fake key's kind (HMAC, Ed25519, P-256, RSA-2048) so that the
//! asymmetric scheme variants (Binance, Bybit, Coinbase Advanced) are reached too; the rest is
//! the request JSON.
#![no_main]

use hsm_custody::exchanges::{self, Context, FixedClock, FixedNonce, Inputs, Limits, Request};
use hsm_custody::{HmacAlg, KeyKind, Mac, RequestContext, Result, Signature};
use libfuzzer_sys::fuzz_target;

/// A key bound to `exchange` whose MAC/signature is a fixed pattern of the right length.
struct FakeKey {
    exchange: &'static str,
    kind: KeyKind,
}

impl Mac for FakeKey {
    fn key_name(&self) -> &str {
        "fuzz"
    }

    fn exchange(&self) -> Option<&str> {
        Some(self.exchange)
    }

    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<Signature> {
        Ok(fake_signature(msg, alg.output_len()))
    }

    fn kind(&self) -> KeyKind {
        self.kind
    }

    fn sign_for(&self, msg: &[u8], _: &RequestContext<'_>) -> Result<Signature> {
        let len = match self.kind {
            KeyKind::Rsa2048 => 256,
            _ => 64,
        };
        Ok(fake_signature(msg, len))
    }
}

/// `len` bytes that depend on the message, so that the output is not constant.
fn fake_signature(msg: &[u8], len: usize) -> Signature {
    let seed = msg.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    Signature::from_bytes(vec![seed; len])
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let kind = match selector % 4 {
        0 => KeyKind::Hmac,
        1 => KeyKind::Ed25519,
        2 => KeyKind::P256,
        _ => KeyKind::Rsa2048,
    };
    let Ok(text) = std::str::from_utf8(json) else {
        return;
    };
    let Ok(req) = Request::from_json(text) else {
        return;
    };
    let clock = FixedClock(1_700_000_000_123);
    let nonces = FixedNonce(42);
    let ctx = Context::new(&clock, &nonces);
    let limits = Limits::default();
    for id in exchanges::all_ids() {
        let exchange = exchanges::by_id(id).expect("every listed id has a signer");
        let key = FakeKey { exchange: id, kind };
        let inputs = Inputs::new(id, clock.0, &limits, None, None);
        let _ = exchange.reach(&req, &inputs);
        // Errors (a request the scheme cannot sign, a key kind it refuses) are fine; panics not.
        if let Ok(signed) = exchange.sign(&req, &key, &ctx) {
            let _ = signed.path_and_query();
            let _ = signed.to_json();
        }
    }
});
