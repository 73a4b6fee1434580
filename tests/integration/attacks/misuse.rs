//! The key used for what it may not: a cipher, weak or truncated MACs, a digest of its value.

use cryptoki_sys::*;
use hsm_custody::{HmacAlg, KeySpec, SecretString};

use super::{key_objects, test_secret, Attempts};
use crate::common::{backend, fresh_token, software_hmac};
use crate::raw_pkcs11::{Mech, OpKind, Raw};

/// AES-ECB and AES-CBC-PAD encryption and decryption, MD5, SHA-1 and SHA-224 HMAC, a 1-byte
/// SHA-256 HMAC, then `C_DigestKey(SHA256)` last. Returns the digest if the module gave one
/// (a guess-confirmation oracle, judged by the caller).
pub(super) fn attempts(
    raw: &Raw,
    key: CK_OBJECT_HANDLE,
    log: &mut Attempts<'_>,
) -> Option<Vec<u8>> {
    for (name, kind, mech) in [
        (
            "C_EncryptInit(AES_ECB)",
            OpKind::Encrypt,
            Mech::new(CKM_AES_ECB),
        ),
        (
            "C_EncryptInit(AES_CBC_PAD)",
            OpKind::Encrypt,
            Mech::with_param(CKM_AES_CBC_PAD, vec![0u8; 16]),
        ),
        (
            "C_DecryptInit(AES_ECB)",
            OpKind::Decrypt,
            Mech::new(CKM_AES_ECB),
        ),
        (
            "C_DecryptInit(AES_CBC_PAD)",
            OpKind::Decrypt,
            Mech::with_param(CKM_AES_CBC_PAD, vec![0u8; 16]),
        ),
        (
            "C_SignInit(MD5_HMAC)",
            OpKind::Sign,
            Mech::new(CKM_MD5_HMAC),
        ),
        (
            "C_SignInit(SHA_1_HMAC)",
            OpKind::Sign,
            Mech::new(CKM_SHA_1_HMAC),
        ),
        (
            "C_SignInit(SHA224_HMAC)",
            OpKind::Sign,
            Mech::new(CKM_SHA224_HMAC),
        ),
        (
            "C_SignInit(SHA256_HMAC_GENERAL, 1-byte MAC)",
            OpKind::Sign,
            Mech::with_param(
                CKM_SHA256_HMAC_GENERAL,
                (1 as CK_ULONG).to_ne_bytes().to_vec(),
            ),
        ),
    ] {
        let (rv, output) = raw.init_and_finish(kind, mech, key);
        let note = match &output {
            Some(o) => format!("operation accepted ({} output bytes)", o.len()),
            None => String::new(),
        };
        log.record(name, rv, output.is_none(), note);
    }
    let (rv, digest) = raw.digest_key(key);
    let note = match &digest {
        Some(d) => format!("{}-byte digest of the value returned", d.len()),
        None => String::new(),
    };
    log.record("C_DigestKey(SHA256)", rv, digest.is_none(), note);
    digest
}

/// Issue 26: SoftHSM2 digests a sensitive, non-extractable key (`C_DigestKey`). For a secret
/// longer than the hash's block, HMAC keys with the hash of the secret, so the digest of the
/// stored secret *was* the effective HMAC key: a clone. The crate now stores that hash (same
/// MACs), and the digest the module hands out is a hash of it, no key.
#[test]
fn c_digest_key_does_not_clone_a_long_secret() {
    // Only SoftHSM2 digests sensitive keys (Kryoptic and NSS refuse C_DigestKey on them, or
    // make no crate keys at all).
    if backend() != "softhsm" {
        return;
    }
    use sha2::Digest as _;
    let t = fresh_token("digest-clone");
    let c = t.connect();
    let raw = Raw::open(&t.module, &t.label, None);
    // 100 bytes: longer than SHA-256's 64-byte block.
    let secret = format!("{}{}", test_secret(&raw), test_secret(&raw)) + &"x".repeat(4);
    assert_eq!(secret.len(), 100);
    c.import_hmac_secret(
        KeySpec::hmac("long")
            .exchange("binance")
            .algorithms(&[HmacAlg::HmacSha256]),
        SecretString::from(secret.clone()),
    )
    .unwrap();
    let msg = b"symbol=BTCUSDT&side=BUY&timestamp=1";
    let mac = c.sign_hmac("long", HmacAlg::HmacSha256, msg).unwrap();
    assert_eq!(
        mac.as_bytes(),
        software_hmac(HmacAlg::HmacSha256, secret.as_bytes(), msg),
        "the stored form MACs like the secret"
    );
    let objects = key_objects(&raw);
    let (handle, _, _) = objects
        .iter()
        .find(|(_, label, token)| label == "long" && *token)
        .expect("the key object");
    let (_, digest) = raw.digest_key(*handle);
    let digest = digest.expect("SoftHSM2 digests the key (see the attack suite)");
    // The effective HMAC key is SHA-256(secret): the digest must not be it.
    let effective = sha2::Sha256::digest(secret.as_bytes()).to_vec();
    assert_ne!(
        digest, effective,
        "C_DigestKey handed out the effective HMAC key"
    );
    assert_ne!(
        software_hmac(HmacAlg::HmacSha256, &digest, msg),
        mac.as_bytes(),
        "a MAC computed with the digest must not verify"
    );
    // What it is: SHA-256 of the stored hash, zero-padded to 64 bytes.
    let mut stored = effective.clone();
    stored.resize(64, 0);
    assert_eq!(digest, sha2::Sha256::digest(&stored).to_vec());
    // A long secret for algorithms of different hashes has no one stored form: refused.
    let err = c
        .import_hmac_secret(KeySpec::hmac("mixed"), SecretString::from(secret))
        .unwrap_err();
    assert!(err.to_string().contains("one hash only"), "{err}");
}
