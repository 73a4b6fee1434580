//! The hardened attribute templates, in one place.
//!
//! Private and secret keys are always private, sensitive, non-extractable, not modifiable and
//! sign-only (plus verify for HMAC). An imported HMAC secret becomes a token object that is private, sensitive, non-extractable,
//! not modifiable, and usable for sign/verify with the listed HMAC mechanisms only: no encrypt,
//! decrypt, wrap, unwrap or derive. `CKA_VALUE_LEN` is not supplied (some modules refuse it
//! together with `CKA_VALUE`); the length lives in our metadata.

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::types::Date;
use zeroize::Zeroize;

use super::{version_id, KeyKind, KeyMeta, APPLICATION};
use crate::alg::HmacAlg;

/// Minimum stored HMAC key length: SoftHSM2 refuses keys shorter than the digest at
/// `C_SignInit`, and HMAC zero-pads short keys to the block size anyway, so padding to 64 bytes
/// gives the same MACs for SHA-256/384/512 (the import self-check proves it every time).
pub(crate) const MIN_STORED_LEN: usize = 64;

/// Template for a hardened HMAC secret key. `value` is moved in; wipe the returned template
/// with [`wipe`] after the call that used it.
pub(crate) fn hmac_secret_key(
    label: &str,
    version: u32,
    value: Vec<u8>,
    algorithms: &[HmacAlg],
    validity: Validity,
) -> Vec<Attribute> {
    let mechanisms = algorithms
        .iter()
        .map(|a| match a {
            HmacAlg::HmacSha256 => MechanismType::SHA256_HMAC,
            HmacAlg::HmacSha384 => MechanismType::SHA384_HMAC,
            HmacAlg::HmacSha512 => MechanismType::SHA512_HMAC,
        })
        .collect();
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::AllowedMechanisms(mechanisms),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(version_id(version)),
    ];
    validity.push_into(&mut t);
    t.push(Attribute::Value(value));
    t
}

pub(crate) use crate::token::attr::flag;

/// Validity dates for `CKA_START_DATE` / `CKA_END_DATE`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Validity {
    pub not_before: Option<time::Date>,
    pub not_after: Option<time::Date>,
}

impl Validity {
    fn push_into(self, t: &mut Vec<Attribute>) {
        if let Some(d) = self.not_before {
            t.push(Attribute::StartDate(ck_date(d)));
        }
        if let Some(d) = self.not_after {
            t.push(Attribute::EndDate(ck_date(d)));
        }
    }
}

fn ck_date(d: time::Date) -> Date {
    let year = format!("{:04}", d.year());
    let month = format!("{:02}", u8::from(d.month()));
    let day = format!("{:02}", d.day());
    let mut y = [0u8; 4];
    y.copy_from_slice(&year.as_bytes()[..4]);
    let mut m = [0u8; 2];
    m.copy_from_slice(&month.as_bytes()[..2]);
    let mut dd = [0u8; 2];
    dd.copy_from_slice(&day.as_bytes()[..2]);
    Date::new(y, m, dd)
}

/// `CKA_EC_PARAMS` for Ed25519: the OID 1.3.101.112 (RFC 8410).
pub(crate) const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `CKA_EC_PARAMS` for P-256: the OID 1.2.840.10045.3.1.7.
pub(crate) const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Public and private templates for a key pair generated in the token. The private key is
/// private, sensitive, non-extractable, not modifiable and sign-only.
pub(crate) fn key_pair(
    kind: KeyKind,
    label: &str,
    version: u32,
    validity: Validity,
) -> (Vec<Attribute>, Vec<Attribute>) {
    let common = |t: &mut Vec<Attribute>| {
        t.push(Attribute::Token(true));
        t.push(Attribute::Label(label.as_bytes().to_vec()));
        t.push(Attribute::Id(version_id(version)));
        validity.push_into(t);
    };
    let mut public = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
    ];
    common(&mut public);
    let mut private = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ];
    common(&mut private);
    match kind {
        KeyKind::Ed25519 => {
            public.push(Attribute::KeyType(KeyType::EC_EDWARDS));
            public.push(Attribute::EcParams(ED25519_PARAMS.to_vec()));
            private.push(Attribute::KeyType(KeyType::EC_EDWARDS));
        }
        KeyKind::P256 => {
            public.push(Attribute::KeyType(KeyType::EC));
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            private.push(Attribute::KeyType(KeyType::EC));
        }
        KeyKind::Rsa2048 | KeyKind::Hmac => {
            public.push(Attribute::KeyType(KeyType::RSA));
            public.push(Attribute::ModulusBits(2048.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            private.push(Attribute::KeyType(KeyType::RSA));
        }
    }
    (public, private)
}

/// Template importing an Ed25519 private key from its 32-byte seed (Coinbase CDP EdDSA keys,
/// the RFC 8032 test vector). Wipe it with [`wipe`] after the call.
pub(crate) fn ed25519_private(
    label: &str,
    version: u32,
    seed: Vec<u8>,
    validity: Validity,
) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(version_id(version)),
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
    ];
    validity.push_into(&mut t);
    t.push(Attribute::Value(seed));
    t
}

/// Template for the public half of an imported Ed25519 key.
pub(crate) fn ed25519_public(label: &str, version: u32, point: &[u8]) -> Vec<Attribute> {
    // CKA_EC_POINT as a DER OCTET STRING (what SoftHSM2 reports for generated keys).
    let mut der = vec![0x04, point.len() as u8];
    der.extend_from_slice(point);
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Modifiable(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(version_id(version)),
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
        Attribute::EcPoint(der),
    ]
}

/// Overwrites every `CKA_VALUE` in a template (cryptoki's `Attribute` never wipes itself).
///
/// DANGER, tests only: the `danger-skip-wipe-for-tests` feature skips the wipe and leaks the
/// buffer instead (an unwiped buffer that is freed lingers only until the allocator reuses it,
/// which made the proof flaky), so that `tests/memory_hygiene.rs` can prove its memory scan
/// finds an unwiped secret.
pub(crate) fn wipe(template: &mut [Attribute]) {
    if cfg!(feature = "danger-skip-wipe-for-tests") {
        for attribute in template.iter_mut() {
            if let Attribute::Value(bytes) = attribute {
                std::mem::forget(std::mem::take(bytes));
            }
        }
        return;
    }
    for attribute in template.iter_mut() {
        if let Attribute::Value(bytes) = attribute {
            bytes.zeroize();
        }
    }
}

/// Template for the metadata data object.
pub(crate) fn metadata_object(meta: &KeyMeta, json: Vec<u8>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Modifiable(true),
        Attribute::Label(meta.name.as_bytes().to_vec()),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Value(json),
    ]
}

/// Search template for every key object (secret, private or public) labelled `name`.
pub(crate) fn find_key_objects(name: &str) -> Vec<Attribute> {
    vec![Attribute::Label(name.as_bytes().to_vec())]
}

/// Search template for one version's signing object (secret or private key).
pub(crate) fn find_version(name: &str, kind: KeyKind, version: u32) -> Vec<Attribute> {
    let class = if kind.is_asymmetric() {
        ObjectClass::PRIVATE_KEY
    } else {
        ObjectClass::SECRET_KEY
    };
    vec![
        Attribute::Class(class),
        Attribute::Label(name.as_bytes().to_vec()),
        Attribute::Id(version_id(version)),
    ]
}

/// Search template for one version's public key.
pub(crate) fn find_public(name: &str, version: u32) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Label(name.as_bytes().to_vec()),
        Attribute::Id(version_id(version)),
    ]
}

/// Search template for a key's metadata object (all of them when `name` is `None`).
pub(crate) fn find_metadata(name: Option<&str>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
    ];
    if let Some(name) = name {
        t.push(Attribute::Label(name.as_bytes().to_vec()));
    }
    t
}
