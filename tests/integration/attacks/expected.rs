//! What each backend is known to let through on a key the crate made: the attack suite fails if
//! the set grows or shrinks.

/// What NSS softokn 3.87 lets through (75 attempts). First order: every wrap of the key (AES
/// key wrap with and without padding, CBC-PAD, ECB, RSA), copies with EXTRACTABLE / DERIVE /
/// WRAP+ENCRYPT, derivations whose result is readable (CONCATENATE_BASE_AND_KEY with the
/// attacker's key: the value in clear; SHA-1/SHA-256 key derivation: a hash of it) and weak MACs
/// (MD5, SHA-1, SHA-224). Second order: each weaker copy lets through the same and more.
const NSS_ACCEPTED: &[&str] = &[
    "C_CopyObject(DERIVE=true)",
    "C_CopyObject(DERIVE=true) -> C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
    "C_CopyObject(DERIVE=true) -> C_CopyObject(DERIVE=true)",
    "C_CopyObject(DERIVE=true) -> C_CopyObject(EXTRACTABLE=true)",
    "C_CopyObject(DERIVE=true) -> C_CopyObject(WRAP=true, ENCRYPT=true)",
    "C_CopyObject(DERIVE=true) -> C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
    "C_CopyObject(DERIVE=true) -> C_DeriveKey(SHA1_KEY_DERIVATION)",
    "C_CopyObject(DERIVE=true) -> C_DeriveKey(SHA256_KEY_DERIVATION)",
    "C_CopyObject(DERIVE=true) -> C_SignInit(MD5_HMAC)",
    "C_CopyObject(DERIVE=true) -> C_SignInit(SHA224_HMAC)",
    "C_CopyObject(DERIVE=true) -> C_SignInit(SHA_1_HMAC)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_CBC_PAD, attacker-imported AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_CBC_PAD, token-generated AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_ECB, attacker-imported AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_ECB, token-generated AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_KEY_WRAP, attacker-imported AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_KEY_WRAP, token-generated AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_KEY_WRAP_PAD, attacker-imported AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(AES_KEY_WRAP_PAD, token-generated AES)",
    "C_CopyObject(DERIVE=true) -> C_WrapKey(RSA_PKCS, attacker RSA public key)",
    "C_CopyObject(EXTRACTABLE=true)",
    "C_CopyObject(EXTRACTABLE=true) -> C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
    "C_CopyObject(EXTRACTABLE=true) -> C_CopyObject(DERIVE=true)",
    "C_CopyObject(EXTRACTABLE=true) -> C_CopyObject(EXTRACTABLE=true)",
    "C_CopyObject(EXTRACTABLE=true) -> C_CopyObject(WRAP=true, ENCRYPT=true)",
    "C_CopyObject(EXTRACTABLE=true) -> C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
    "C_CopyObject(EXTRACTABLE=true) -> C_DeriveKey(SHA1_KEY_DERIVATION)",
    "C_CopyObject(EXTRACTABLE=true) -> C_DeriveKey(SHA256_KEY_DERIVATION)",
    "C_CopyObject(EXTRACTABLE=true) -> C_SignInit(MD5_HMAC)",
    "C_CopyObject(EXTRACTABLE=true) -> C_SignInit(SHA224_HMAC)",
    "C_CopyObject(EXTRACTABLE=true) -> C_SignInit(SHA_1_HMAC)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_CBC_PAD, attacker-imported AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_CBC_PAD, token-generated AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_ECB, attacker-imported AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_ECB, token-generated AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_KEY_WRAP, attacker-imported AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_KEY_WRAP, token-generated AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_KEY_WRAP_PAD, attacker-imported AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(AES_KEY_WRAP_PAD, token-generated AES)",
    "C_CopyObject(EXTRACTABLE=true) -> C_WrapKey(RSA_PKCS, attacker RSA public key)",
    "C_CopyObject(WRAP=true, ENCRYPT=true)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(DERIVE=true)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(EXTRACTABLE=true)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(WRAP=true, ENCRYPT=true)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_DeriveKey(SHA1_KEY_DERIVATION)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_DeriveKey(SHA256_KEY_DERIVATION)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_SignInit(MD5_HMAC)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_SignInit(SHA224_HMAC)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_SignInit(SHA_1_HMAC)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_CBC_PAD, attacker-imported AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_CBC_PAD, token-generated AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_ECB, attacker-imported AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_ECB, token-generated AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_KEY_WRAP, attacker-imported AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_KEY_WRAP, token-generated AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_KEY_WRAP_PAD, attacker-imported AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(AES_KEY_WRAP_PAD, token-generated AES)",
    "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_WrapKey(RSA_PKCS, attacker RSA public key)",
    "C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
    "C_DeriveKey(SHA1_KEY_DERIVATION)",
    "C_DeriveKey(SHA256_KEY_DERIVATION)",
    "C_SignInit(MD5_HMAC)",
    "C_SignInit(SHA224_HMAC)",
    "C_SignInit(SHA_1_HMAC)",
    "C_WrapKey(AES_CBC_PAD, attacker-imported AES)",
    "C_WrapKey(AES_CBC_PAD, token-generated AES)",
    "C_WrapKey(AES_ECB, attacker-imported AES)",
    "C_WrapKey(AES_ECB, token-generated AES)",
    "C_WrapKey(AES_KEY_WRAP, attacker-imported AES)",
    "C_WrapKey(AES_KEY_WRAP, token-generated AES)",
    "C_WrapKey(AES_KEY_WRAP_PAD, attacker-imported AES)",
    "C_WrapKey(AES_KEY_WRAP_PAD, token-generated AES)",
    "C_WrapKey(RSA_PKCS, attacker RSA public key)",
];

/// The attempts each backend lets through on a key the crate made (not refused, and not a
/// digest oracle), the same for every target. Any change, either way, fails the test.
pub(super) fn expected_accepted(backend: &str) -> &'static [&'static str] {
    match backend {
        "softhsm" => &[],
        // Kryoptic 1.5.4 lets C_CopyObject change any attribute not flagged unchangeable, even
        // on a CKA_MODIFIABLE=false key: a copy can gain DERIVE, WRAP and ENCRYPT (and copies
        // of it more of the same). It also derives CONCATENATE_BASE_AND_KEY from the
        // attacker's key with ours appended. None of it gives the value: every copy and derived
        // key stays sensitive and non-extractable (checked by `weaknesses`), and the whole list
        // run again on each weaker copy (the `->` entries) gets nothing else: every
        // derivation, wrap, cipher and weak MAC from it is refused.
        "kryoptic" => &[
            "C_CopyObject(DERIVE=true)",
            "C_CopyObject(DERIVE=true) -> C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
            "C_CopyObject(DERIVE=true) -> C_CopyObject(DERIVE=true)",
            "C_CopyObject(DERIVE=true) -> C_CopyObject(WRAP=true, ENCRYPT=true)",
            "C_CopyObject(DERIVE=true) -> C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
            "C_CopyObject(WRAP=true, ENCRYPT=true)",
            "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(ALLOWED_MECHANISMS = MD5/SHA1_HMAC)",
            "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(DERIVE=true)",
            "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_CopyObject(WRAP=true, ENCRYPT=true)",
            "C_CopyObject(WRAP=true, ENCRYPT=true) -> C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
            "C_DeriveKey(CONCATENATE_BASE_AND_KEY, base=attacker, key appended)",
        ],
        "nss" => NSS_ACCEPTED,
        other => panic!("no expected attack outcomes recorded for backend `{other}`"),
    }
}
