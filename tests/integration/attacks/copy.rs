//! Copies with weaker attributes (`C_CopyObject`); a copy that gained a permission is attacked
//! with the whole list once more.

use cryptoki_sys::*;

use super::{attack_key_depth, weaknesses, Attempts, Outcome};
use crate::raw_pkcs11::{Raw, Template};

/// Copies asking for EXTRACTABLE, SENSITIVE=false, DERIVE, WRAP+ENCRYPT or weaker allowed
/// mechanisms. Returns the outcomes of the attacks on weaker copies (while `depth > 0`), which
/// [`super::attack_key`] lists after the first-order ones.
pub(super) fn attempts(
    raw: &Raw,
    key: CK_OBJECT_HANDLE,
    depth: u32,
    log: &mut Attempts<'_>,
) -> Vec<Outcome> {
    let mut nested: Vec<Outcome> = Vec::new();
    for (name, template) in [
        (
            "C_CopyObject(EXTRACTABLE=true)",
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_EXTRACTABLE, true),
        ),
        (
            "C_CopyObject(SENSITIVE=false)",
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_SENSITIVE, false),
        ),
        (
            "C_CopyObject(DERIVE=true)",
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_DERIVE, true),
        ),
        (
            "C_CopyObject(WRAP=true, ENCRYPT=true)",
            Template::new()
                .bool(CKA_TOKEN, false)
                .bool(CKA_WRAP, true)
                .bool(CKA_ENCRYPT, true),
        ),
        (
            "C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
            Template::new()
                .bool(CKA_TOKEN, false)
                .ulongs(CKA_ALLOWED_MECHANISMS, &[CKM_MD5_HMAC, CKM_SHA_1_HMAC]),
        ),
    ] {
        let (rv, copy) = raw.copy(key, template);
        let mut note = String::new();
        let mut refused = rv != CKR_OK;
        if rv == CKR_OK {
            // A copy that is exactly as strict as the original is harmless; report what it got.
            let weak = weaknesses(raw, copy);
            if !weak.is_empty() {
                note = format!("copy made: {}", weak.join(", "));
                if depth > 0 {
                    for mut o in attack_key_depth(raw, copy, log.target, depth - 1) {
                        o.attempt = format!("{name} -> {}", o.attempt);
                        nested.push(o);
                    }
                }
            } else {
                note = "copy made, but as strict as the original".into();
                refused = true;
            }
            raw.destroy(copy);
        }
        log.record(name, rv, refused, note);
    }
    nested
}
