//! Derivations into a readable, extractable key (`C_DeriveKey`), the attacks of Clulow.

use cryptoki_sys::*;

use super::{weaknesses, AttackerKeys, Attempts};
use crate::raw_pkcs11::{Mech, Raw, Template};

/// A derived-key template that asks for everything the attacker wants: readable, extractable.
pub(super) fn extractable_secret(len: Option<CK_ULONG>) -> Template {
    let t = Template::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
        .bool(CKA_TOKEN, false)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true);
    match len {
        Some(n) => t.ulong(CKA_VALUE_LEN, n),
        None => t,
    }
}

/// Concatenation with the attacker's key (both ways) and with data, XOR with data, bit
/// extraction, SHA-1 and SHA-256 key derivation. `mechanisms` is what the module offers (an
/// attempt with a mechanism it lacks says so in its note).
pub(super) fn attempts(
    raw: &Raw,
    key: CK_OBJECT_HANDLE,
    keys: &AttackerKeys,
    mechanisms: &[CK_MECHANISM_TYPE],
    log: &mut Attempts<'_>,
) {
    let mut derivations: Vec<(&str, Mech<'_>, CK_OBJECT_HANDLE, Template)> = Vec::new();
    let data = [0x43u8; 16];
    if let Some(generic) = keys.generic {
        derivations.push((
            "C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=key)",
            Mech::with_param(CKM_CONCATENATE_BASE_AND_KEY, generic.to_ne_bytes().to_vec()),
            key,
            extractable_secret(None),
        ));
        derivations.push((
            "C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
            Mech::with_param(CKM_CONCATENATE_BASE_AND_KEY, key.to_ne_bytes().to_vec()),
            generic,
            extractable_secret(None),
        ));
    }
    derivations.push((
        "C_DeriveKey(CONCATENATE_BASE_AND_DATA)",
        Mech::string_data(CKM_CONCATENATE_BASE_AND_DATA, &data),
        key,
        extractable_secret(None),
    ));
    derivations.push((
        "C_DeriveKey(XOR_BASE_AND_DATA)",
        Mech::string_data(CKM_XOR_BASE_AND_DATA, &data),
        key,
        extractable_secret(Some(16)),
    ));
    derivations.push((
        "C_DeriveKey(EXTRACT_KEY_FROM_KEY, bit 0)",
        Mech::with_param(
            CKM_EXTRACT_KEY_FROM_KEY,
            (0 as CK_EXTRACT_PARAMS).to_ne_bytes().to_vec(),
        ),
        key,
        extractable_secret(Some(8)),
    ));
    derivations.push((
        "C_DeriveKey(SHA256_KEY_DERIVATION)",
        Mech::new(CKM_SHA256_KEY_DERIVATION),
        key,
        extractable_secret(Some(32)),
    ));
    derivations.push((
        "C_DeriveKey(SHA1_KEY_DERIVATION)",
        Mech::new(CKM_SHA1_KEY_DERIVATION),
        key,
        extractable_secret(Some(20)),
    ));
    for (name, mech, base, template) in derivations {
        let mechanism = mech.mechanism();
        let (rv, derived) = raw.derive(mech, base, template);
        let mut note = if mechanisms.contains(&mechanism) {
            String::new()
        } else {
            "mechanism not offered by the module".into()
        };
        if rv == CKR_OK {
            let weak = weaknesses(raw, derived);
            note = format!("derived key made: {}", weak.join(", "));
            raw.destroy(derived);
        }
        log.record(name, rv, rv != CKR_OK, note);
    }
}
