//! Signing algorithms and signature values.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use cryptoki::mechanism::Mechanism;
use hmac::{Hmac, Mac as _};

use crate::error::{Error, Result};
use crate::keys::KeyKind;

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

/// Anything that can compute a keyed MAC by name of algorithm: a token key ([`crate::KeyRef`])
/// or, outside this crate, whatever a user plugs in.
pub trait Mac {
    /// The key's name (for error messages and audit).
    fn key_name(&self) -> &str;

    /// The exchange the key is bound to, if any.
    fn exchange(&self) -> Option<&str>;

    /// Computes the MAC of `msg`.
    ///
    /// # Errors
    /// Whatever the backing token reports.
    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<Signature>;

    /// The exchange API key recorded with the key, if any: exchange signers send it, and refuse
    /// a request that names another one.
    fn api_key(&self) -> Option<&str> {
        None
    }

    /// The exchange API passphrase recorded with the key, if any (OKX, Coinbase, Bitget,
    /// KuCoin): signers send it, and refuse a request that names another one.
    fn passphrase(&self) -> Option<&str> {
        None
    }

    /// Computes the MAC of `msg` for a request, so that guard rails see the exchange, method
    /// and path. Exchange signers call this; the default ignores the context.
    ///
    /// # Errors
    /// Whatever the backing token, or a guard, reports.
    fn mac_for(
        &self,
        alg: HmacAlg,
        msg: &[u8],
        request: &crate::guard::RequestContext<'_>,
    ) -> Result<Signature> {
        let _ = request;
        self.mac(alg, msg)
    }

    /// The kind of key behind this `Mac`: exchange signers pick the scheme variant by it
    /// (Binance HMAC hex, or Ed25519/RSA base64; Coinbase Advanced ES256 or EdDSA). The default
    /// is [`KeyKind::Hmac`], so that implementations that only MAC keep working unchanged.
    fn kind(&self) -> KeyKind {
        KeyKind::Hmac
    }

    /// Signs `msg` with an asymmetric key for a request, so that guard rails see the exchange,
    /// method and path: pure Ed25519; ECDSA P-256 over SHA-256 as raw `r || s` (64 bytes);
    /// RSA PKCS#1 v1.5 over SHA-256. The default refuses: an HMAC-only `Mac` cannot sign.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] by default; otherwise whatever the backing token, or a guard,
    /// reports.
    fn sign_for(
        &self,
        msg: &[u8],
        request: &crate::guard::RequestContext<'_>,
    ) -> Result<Signature> {
        let _ = (msg, request);
        Err(Error::WrongKeyKind {
            name: self.key_name().to_owned(),
            kind: self.kind().name().into(),
            wanted: "an asymmetric key (ed25519, p256 or rsa2048)".into(),
        })
    }

    /// [`Mac::sign_for`] without request context: what exchange signers call (the wrapper that
    /// [`crate::exchanges`] puts around every key adds the request's context).
    ///
    /// # Errors
    /// As [`Mac::sign_for`].
    fn sign_asym(&self, msg: &[u8]) -> Result<Signature> {
        self.sign_for(msg, &crate::guard::RequestContext::default())
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
