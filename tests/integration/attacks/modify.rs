//! Lowering the key's protection in place (`C_SetAttributeValue`).

use cryptoki_sys::*;

use super::Attempts;
use crate::raw_pkcs11::{Raw, Template};

/// Clears SENSITIVE, sets EXTRACTABLE, MODIFIABLE, DERIVE, ENCRYPT, WRAP, widens the allowed
/// mechanisms; a flag counts as refused only if the call failed and the flag did not change.
pub(super) fn attempts(raw: &Raw, key: CK_OBJECT_HANDLE, log: &mut Attempts<'_>) {
    for (name, type_, value) in [
        ("C_SetAttributeValue(SENSITIVE=false)", CKA_SENSITIVE, false),
        (
            "C_SetAttributeValue(EXTRACTABLE=true)",
            CKA_EXTRACTABLE,
            true,
        ),
        ("C_SetAttributeValue(MODIFIABLE=true)", CKA_MODIFIABLE, true),
        ("C_SetAttributeValue(DERIVE=true)", CKA_DERIVE, true),
        ("C_SetAttributeValue(ENCRYPT=true)", CKA_ENCRYPT, true),
        ("C_SetAttributeValue(WRAP=true)", CKA_WRAP, true),
    ] {
        let before = raw.bool_attribute(key, type_);
        let rv = raw.set(key, Template::new().bool(type_, value));
        let after = raw.bool_attribute(key, type_);
        let changed = after == Some(value) && before != Some(value);
        log.record(
            name,
            rv,
            rv != CKR_OK && !changed,
            if changed {
                "attribute changed".into()
            } else {
                String::new()
            },
        );
    }
    {
        let rv = raw.set(
            key,
            Template::new().ulongs(
                CKA_ALLOWED_MECHANISMS,
                &[CKM_SHA256_HMAC, CKM_MD5_HMAC, CKM_SHA_1_HMAC],
            ),
        );
        log.record(
            "C_SetAttributeValue(ALLOWED_MECHANISMS += MD5/SHA1_HMAC)",
            rv,
            rv != CKR_OK,
            String::new(),
        );
    }
}
