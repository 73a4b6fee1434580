//! The hardened attribute templates, in one place.
//!
//! An imported HMAC secret becomes a token object that is private, sensitive, non-extractable,
//! not modifiable, and usable for sign/verify with the listed HMAC mechanisms only: no encrypt,
//! decrypt, wrap, unwrap or derive. `CKA_VALUE_LEN` is not supplied (some modules refuse it
//! together with `CKA_VALUE`); the length lives in our metadata.

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use zeroize::Zeroize;

use super::{KeyMeta, APPLICATION};
use crate::sign::HmacAlg;

/// Minimum stored HMAC key length: SoftHSM2 refuses keys shorter than the digest at
/// `C_SignInit`, and HMAC zero-pads short keys to the block size anyway, so padding to 64 bytes
/// gives the same MACs for SHA-256/384/512 (the import self-check proves it every time).
pub(crate) const MIN_STORED_LEN: usize = 64;

/// Template for a hardened HMAC secret key. `value` is moved in; wipe the returned template
/// with [`wipe`] after the call that used it.
pub(crate) fn hmac_secret_key(
    label: &str,
    id: Vec<u8>,
    value: Vec<u8>,
    algorithms: &[HmacAlg],
) -> Vec<Attribute> {
    let mechanisms = algorithms
        .iter()
        .map(|a| match a {
            HmacAlg::HmacSha256 => MechanismType::SHA256_HMAC,
            HmacAlg::HmacSha384 => MechanismType::SHA384_HMAC,
            HmacAlg::HmacSha512 => MechanismType::SHA512_HMAC,
        })
        .collect();
    vec![
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
        Attribute::Id(id),
        Attribute::Value(value),
    ]
}

/// Overwrites every `CKA_VALUE` in a template (cryptoki's `Attribute` never wipes itself).
///
/// DANGER, tests only: the `danger-skip-wipe-for-tests` feature makes this a no-op so that
/// `tests/memory_hygiene.rs` can prove its memory scan finds an unwiped secret.
pub(crate) fn wipe(template: &mut [Attribute]) {
    if cfg!(feature = "danger-skip-wipe-for-tests") {
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

/// Search template for a key version's secret key object.
pub(crate) fn find_secret_key(name: &str, id: Option<Vec<u8>>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(name.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        t.push(Attribute::Id(id));
    }
    t
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
