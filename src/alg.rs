//! The crate's vocabulary, below every other layer: the HMAC algorithms ([`HmacAlg`]), the kinds
//! of key ([`KeyKind`]), the signature values ([`Signature`]) and the [`Limits`] on the time
//! inputs of a signature. It imports nothing of the crate but [`crate::Error`], so that the token, keys, exchanges and policy layers can all speak it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use cryptoki::mechanism::Mechanism;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An HMAC algorithm computed inside the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HmacAlg {
    /// HMAC-SHA256 (`CKM_SHA256_HMAC`).
    HmacSha256,
    /// HMAC-SHA384 (`CKM_SHA384_HMAC`).
    HmacSha384,
    /// HMAC-SHA512 (`CKM_SHA512_HMAC`).
    HmacSha512,
}

impl HmacAlg {
    /// All supported HMAC algorithms.
    pub const ALL: [HmacAlg; 3] = [
        HmacAlg::HmacSha256,
        HmacAlg::HmacSha384,
        HmacAlg::HmacSha512,
    ];

    /// The name used on the command line and in metadata (`hmac-sha256` ...).
    pub fn name(self) -> &'static str {
        match self {
            HmacAlg::HmacSha256 => "hmac-sha256",
            HmacAlg::HmacSha384 => "hmac-sha384",
            HmacAlg::HmacSha512 => "hmac-sha512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HmacAlg::HmacSha256 => 32,
            HmacAlg::HmacSha384 => 48,
            HmacAlg::HmacSha512 => 64,
        }
    }

    pub(crate) fn mechanism_type(self) -> cryptoki::mechanism::MechanismType {
        self.mechanism().mechanism_type()
    }

    pub(crate) fn mechanism(self) -> Mechanism<'static> {
        match self {
            HmacAlg::HmacSha256 => Mechanism::Sha256Hmac,
            HmacAlg::HmacSha384 => Mechanism::Sha384Hmac,
            HmacAlg::HmacSha512 => Mechanism::Sha512Hmac,
        }
    }

    /// The same MAC in software; used only by the import self-check, never for signing.
    pub(crate) fn software(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        macro_rules! hmac_with {
            ($digest:ty) => {{
                // HMAC accepts keys of any length, so this cannot fail.
                let mut mac = <Hmac<$digest> as hmac::digest::KeyInit>::new_from_slice(key)
                    .expect("HMAC takes any key length");
                mac.update(msg);
                mac.finalize().into_bytes().to_vec()
            }};
        }
        match self {
            HmacAlg::HmacSha256 => hmac_with!(sha2::Sha256),
            HmacAlg::HmacSha384 => hmac_with!(sha2::Sha384),
            HmacAlg::HmacSha512 => hmac_with!(sha2::Sha512),
        }
    }
}

impl fmt::Display for HmacAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HmacAlg {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        HmacAlg::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown algorithm `{s}` (expected hmac-sha256, hmac-sha384 or hmac-sha512)"
                ))
            })
    }
}

/// A MAC or signature computed in the token. Not secret: it is what goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature(pub(crate) Vec<u8>);

impl Signature {
    /// Wraps bytes computed elsewhere (for [`crate::Mac`] implementations outside the crate).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Signature(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        // A table loop through a stack buffer, 32 bytes a step: it runs on every Binance-style
        // request, between two token calls, where the code it pulls into the CPU's caches is
        // what costs (`hex::encode_to_slice` is several times the code; docs/fast-path.md), and
        // a `char` push per digit checks capacity and UTF-8 width every time (~23 instructions
        // a byte against ~8 here).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(self.0.len() * 2);
        let mut buf = [0u8; 64];
        for chunk in self.0.chunks(32) {
            let hex = &mut buf[..chunk.len() * 2];
            for (pair, &b) in hex.chunks_exact_mut(2).zip(chunk) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 0x0f)];
            }
            out.push_str(std::str::from_utf8(hex).expect("hex digits are ASCII"));
        }
        out
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// URL-safe base64 without padding (JWTs).
    pub fn to_base64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

/// What kind of key a name holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyKind {
    /// An imported HMAC secret.
    Hmac,
    /// An Ed25519 key pair (`CKM_EDDSA`).
    Ed25519,
    /// An ECDSA P-256 key pair.
    P256,
    /// An RSA-2048 key pair (PKCS#1 v1.5 with SHA-256).
    Rsa2048,
}

impl KeyKind {
    /// `hmac`, `ed25519`, `p256` or `rsa2048`.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Hmac => "hmac",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::P256 => "p256",
            KeyKind::Rsa2048 => "rsa2048",
        }
    }

    /// Whether versions of this kind are key pairs.
    pub fn is_asymmetric(self) -> bool {
        self != KeyKind::Hmac
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hmac" => Ok(KeyKind::Hmac),
            "ed25519" => Ok(KeyKind::Ed25519),
            "p256" => Ok(KeyKind::P256),
            "rsa2048" => Ok(KeyKind::Rsa2048),
            other => Err(Error::invalid(format!(
                "unknown key type `{other}` (expected ed25519, p256 or rsa2048)"
            ))),
        }
    }
}

/// Limits on the time inputs a caller may give, and the test hosts the crate accepts besides the
/// exchanges' own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How far a caller's timestamp or nonce may be from the crate's clock, in ms (default 5000).
    pub skew_ms: u64,
    /// The longest validity a signature may carry (expiry, receive window), in ms (default 60000).
    pub ttl_ms: u64,
    /// Hosts accepted besides each exchange's documented API hosts (test servers), as
    /// `host` or `host:port`.
    pub test_hosts: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            skew_ms: 5_000,
            ttl_ms: 60_000,
            test_hosts: Vec::new(),
        }
    }
}

impl Limits {
    /// Sets the allowed clock skew.
    pub fn skew_ms(mut self, ms: u64) -> Self {
        self.skew_ms = ms;
        self
    }

    /// Sets the longest validity.
    pub fn ttl_ms(mut self, ms: u64) -> Self {
        self.ttl_ms = ms;
        self
    }

    /// Adds a test host.
    pub fn test_host(mut self, host: impl Into<String>) -> Self {
        self.test_hosts.push(host.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_hmac_matches_rfc4231_tc2() {
        let mac = HmacAlg::HmacSha256.software(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(Signature(all.clone()).to_hex(), hex::encode(&all));
        assert_eq!(Signature(Vec::new()).to_hex(), "");
        for len in [1, 31, 32, 33, 64, 65] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(Signature(bytes.clone()).to_hex(), hex::encode(&bytes));
        }
    }

    #[test]
    fn zero_padding_to_64_bytes_gives_the_same_mac() {
        let mut padded = b"Jefe".to_vec();
        padded.resize(64, 0);
        for alg in HmacAlg::ALL {
            assert_eq!(
                alg.software(b"Jefe", b"m"),
                alg.software(&padded, b"m"),
                "{alg}"
            );
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in HmacAlg::ALL {
            assert_eq!(alg.name().parse::<HmacAlg>().unwrap(), alg);
        }
        assert!("md5".parse::<HmacAlg>().is_err());
    }
}
