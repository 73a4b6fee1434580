//! The closed sets of values flags take, as `clap::ValueEnum`s (clap lists them in `--help` and
//! refuses anything else, exit 2), each mapped onto the library's type.

use clap::ValueEnum;
use hsm_custody::{HmacAlg, KeyKind, SecretEncoding};

/// An HMAC algorithm (`--alg`, `--algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Alg {
    /// HMAC-SHA256.
    HmacSha256,
    /// HMAC-SHA384.
    HmacSha384,
    /// HMAC-SHA512.
    HmacSha512,
}

impl From<Alg> for HmacAlg {
    fn from(alg: Alg) -> Self {
        match alg {
            Alg::HmacSha256 => HmacAlg::HmacSha256,
            Alg::HmacSha384 => HmacAlg::HmacSha384,
            Alg::HmacSha512 => HmacAlg::HmacSha512,
        }
    }
}

/// How the exchange shows a secret (`--encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    /// The secret's text is the key.
    Raw,
    /// The secret is base64; the key is the decoded bytes.
    Base64,
}

impl From<Encoding> for SecretEncoding {
    fn from(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Raw => SecretEncoding::Raw,
            Encoding::Base64 => SecretEncoding::Base64,
        }
    }
}

/// What `key import` imports (`--type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportKind {
    /// An HMAC secret.
    Hmac,
    /// An exchange-issued Ed25519 private key.
    Ed25519,
}

/// What `key generate` generates in the token (`--type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PairKind {
    /// An Ed25519 key pair.
    Ed25519,
    /// An ECDSA P-256 key pair.
    P256,
    /// An RSA-2048 key pair.
    Rsa2048,
}

impl From<PairKind> for KeyKind {
    fn from(kind: PairKind) -> Self {
        match kind {
            PairKind::Ed25519 => KeyKind::Ed25519,
            PairKind::P256 => KeyKind::P256,
            PairKind::Rsa2048 => KeyKind::Rsa2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' spellings are the library's names, so that one parses what the other prints.
    #[test]
    fn values_are_spelled_as_the_library_names_them() {
        for alg in Alg::value_variants() {
            let name = alg.to_possible_value().unwrap();
            assert_eq!(name.get_name(), HmacAlg::from(*alg).name());
        }
        for encoding in Encoding::value_variants() {
            let name = encoding.to_possible_value().unwrap();
            assert_eq!(name.get_name(), SecretEncoding::from(*encoding).name());
        }
        for kind in PairKind::value_variants() {
            let name = kind.to_possible_value().unwrap();
            assert_eq!(name.get_name(), KeyKind::from(*kind).name());
        }
        let names: Vec<_> = ImportKind::value_variants()
            .iter()
            .map(|k| k.to_possible_value().unwrap().get_name().to_owned())
            .collect();
        assert_eq!(names, [KeyKind::Hmac.name(), KeyKind::Ed25519.name()]);
    }
}
