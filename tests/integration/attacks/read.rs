//! Reading the value: asking for its length, then for the bytes.

use cryptoki_sys::*;

use super::Attempts;
use crate::raw_pkcs11::Raw;

/// `C_GetAttributeValue(CKA_VALUE)`, first for the length, then with a buffer.
pub(super) fn attempts(raw: &Raw, key: CK_OBJECT_HANDLE, log: &mut Attempts<'_>) {
    let (rv, len) = raw.attribute_len(key, CKA_VALUE);
    let refused = rv != CKR_OK || len == CK_UNAVAILABLE_INFORMATION;
    log.record(
        "C_GetAttributeValue(CKA_VALUE) length",
        rv,
        refused,
        if refused {
            String::new()
        } else {
            format!("length {len} revealed")
        },
    );
    let (rv, value) = raw.attribute(key, CKA_VALUE);
    let leaked = value.as_ref().is_some_and(|v| !v.is_empty());
    log.record(
        "C_GetAttributeValue(CKA_VALUE) with buffer",
        rv,
        !leaked,
        if leaked {
            format!("{} value bytes returned", value.map_or(0, |v| v.len()))
        } else {
            String::new()
        },
    );
}
