//! Helpers for the signers' unit tests: software keys, and an exchange's validator at a fixed
//! clock.

use super::{Exchange, Inputs, Limits, Reach, Request};
use crate::error::{Error, Result};
use crate::sign::{HmacAlg, Mac};

/// The test host the validator tests accept besides the exchanges' own
/// ([`Limits::test_host`]).
pub(crate) const TEST_HOST: &str = "127.0.0.1:8443";

/// `exchange`'s validator at `now_ms` with the default limits and nothing recorded with the key.
pub(crate) fn reach_at(exchange: &dyn Exchange, now_ms: u64, req: &Request) -> Result<Reach> {
    reach_with(exchange, now_ms, &Limits::default(), None, req)
}

/// `exchange`'s validator at `now_ms` with `limits` and the API key `recorded` with the key.
pub(crate) fn reach_with(
    exchange: &dyn Exchange,
    now_ms: u64,
    limits: &Limits,
    recorded: Option<&str>,
    req: &Request,
) -> Result<Reach> {
    exchange.reach(
        req,
        &Inputs::new(exchange.id(), now_ms, limits, recorded, None),
    )
}

/// Asserts that a validator refused `req` naming `field`.
pub(crate) fn expect_refused(r: Result<Reach>, req: &Request, field: &str) {
    match r {
        Err(Error::RequestRefused { field: f, .. }) if f == field => {}
        other => panic!("{req:?}: expected a refusal of `{field}`, got {other:?}"),
    }
}

/// A software HMAC key for the signers' unit tests: what a token key would MAC, computed on the
/// host, so that a signer's bytes can be checked without a token.
pub(crate) struct SoftKey {
    pub exchange: &'static str,
    pub secret: &'static [u8],
}

impl Mac for SoftKey {
    fn key_name(&self) -> &str {
        "soft"
    }
    fn exchange(&self) -> Option<&str> {
        Some(self.exchange)
    }
    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<crate::sign::Signature> {
        Ok(crate::sign::Signature::from_bytes(
            alg.software(self.secret, msg),
        ))
    }
}

/// The field a validator's refusal names (the signers' unit tests); panics on anything else.
pub(crate) fn refused_field<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::RequestRefused { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A [`SoftKey`] with an API key and passphrase recorded with it, as a token key's version
/// carries them (`Mac::api_key`, `Mac::passphrase`): for the signers' unit tests.
pub(crate) struct Recorded {
    pub key: SoftKey,
    pub api_key: Option<&'static str>,
    pub passphrase: Option<&'static str>,
}

impl Mac for Recorded {
    fn key_name(&self) -> &str {
        "recorded"
    }
    fn exchange(&self) -> Option<&str> {
        self.key.exchange()
    }
    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<crate::sign::Signature> {
        self.key.mac(alg, msg)
    }
    fn api_key(&self) -> Option<&str> {
        self.api_key
    }
    fn passphrase(&self) -> Option<&str> {
        self.passphrase
    }
}
