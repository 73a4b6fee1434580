//! Wrapping the key out with a key the attacker holds (`C_WrapKey`).

use cryptoki_sys::*;

use super::{AttackerKeys, Attempts};
use crate::raw_pkcs11::{Mech, Raw};

/// AES key wrap (with and without padding), AES-CBC-PAD and AES-ECB with a token-generated and
/// an attacker-imported AES key, and RSA PKCS#1 with the attacker's RSA public key.
pub(super) fn attempts(
    raw: &Raw,
    key: CK_OBJECT_HANDLE,
    keys: &AttackerKeys,
    log: &mut Attempts<'_>,
) {
    let mut wraps: Vec<(String, Mech<'_>, CK_OBJECT_HANDLE)> = Vec::new();
    for (who, wrapping) in [
        ("token-generated AES", keys.generated_aes),
        ("attacker-imported AES", keys.imported_aes),
    ] {
        let Some(wrapping) = wrapping else { continue };
        wraps.push((
            format!("C_WrapKey(AES_KEY_WRAP, {who})"),
            Mech::new(CKM_AES_KEY_WRAP),
            wrapping,
        ));
        wraps.push((
            format!("C_WrapKey(AES_KEY_WRAP_PAD, {who})"),
            Mech::new(CKM_AES_KEY_WRAP_PAD),
            wrapping,
        ));
        wraps.push((
            format!("C_WrapKey(AES_CBC_PAD, {who})"),
            Mech::with_param(CKM_AES_CBC_PAD, vec![0u8; 16]),
            wrapping,
        ));
        wraps.push((
            format!("C_WrapKey(AES_ECB, {who})"),
            Mech::new(CKM_AES_ECB),
            wrapping,
        ));
    }
    if let Some(rsa) = keys.rsa_public {
        wraps.push((
            "C_WrapKey(RSA_PKCS, attacker RSA public key)".into(),
            Mech::new(CKM_RSA_PKCS),
            rsa,
        ));
    }
    for (name, mech, wrapping) in wraps {
        let (rv, blob) = raw.wrap(mech, wrapping, key);
        let note = match &blob {
            Some(b) => format!("{}-byte wrapped blob returned", b.len()),
            None => String::new(),
        };
        log.record(&name, rv, blob.is_none(), note);
    }
}
