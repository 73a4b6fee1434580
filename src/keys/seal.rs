//! Sealed session copies: the signing fast path where the module will not copy a hardened key.
//!
//! A session object signs in less than half the time of a token object on SoftHSM2 (its file
//! store re-reads a token object on every `C_SignInit`), but SoftHSM2 refuses `C_CopyObject` of
//! any key with `CKA_MODIFIABLE=false`, and a modifiable key would let anyone logged in turn on
//! `CKA_DERIVE`. So an imported HMAC version is also kept sealed, for the token alone:
//!
//! - a key-encryption key (KEK, AES-256) made for that version from fresh random bytes: a token
//!   object labelled `<name>#seal` with the version's `CKA_ID`; private, sensitive,
//!   non-extractable, non-modifiable, non-copyable, and usable for one thing only,
//!   `CKM_AES_KEY_WRAP` unwrapping (no wrap, encrypt, decrypt, sign or derive);
//! - its `CKA_UNWRAP_TEMPLATE` forces every key it unwraps to be a private, sensitive,
//!   non-extractable, non-modifiable, non-copyable, sign-only generic-secret **session** object;
//! - the stored secret wrapped under it (RFC 3394) sits in the key's metadata.
//!
//! When the cache loads a version and the module refused a plain copy, the blob is unwrapped
//! into a session object of the reserved session, which must MAC a fresh challenge exactly as
//! the token object does before anything signs with it (else it is destroyed and the token
//! object is used). Someone holding the PIN can do with these only what they can do with the
//! key itself: unwrap the blob into another sign-only copy. Retiring or revoking a version
//! destroys its KEK, so a blob read earlier cannot bring the version back.
//!
//! All of this holds only where the module enforces `CKA_UNWRAP_TEMPLATE` and `CKA_COPYABLE`.
//! [`supported`] proves it on throwaway session objects (once per module and token in a
//! process); where it does not hold, no seal is made and none is opened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use aes_kw::KekAes256;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::version_id;
use crate::alg::HmacAlg;
use crate::error::{Error, Result};
use crate::token::Token;

/// The label suffix of a version's KEK (`#` cannot occur in a key name).
pub(crate) const LABEL_SUFFIX: &str = "#seal";

/// `CKA_UNWRAP_TEMPLATE` (`CKF_ARRAY_ATTRIBUTE | 0x212`); cryptoki 0.12 has no variant for it.
const CKA_UNWRAP_TEMPLATE: u64 = 0x4000_0212;

/// The KEK's label for key `name`.
pub(crate) fn label(name: &str) -> String {
    format!("{name}{LABEL_SUFFIX}")
}

/// The attributes a KEK forces on every key it unwraps (its `CKA_UNWRAP_TEMPLATE`), in the order
/// the cache asks for them: `CKA_MODIFIABLE=false` last, because SoftHSM2 applies a template in
/// order and refuses any attribute after it.
fn forced() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Copyable(false),
        Attribute::Sign(true),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Modifiable(false),
    ]
}

/// What the cache asks to unwrap: the forced attributes plus the version's HMAC mechanisms.
fn copy_template(algorithms: &[HmacAlg]) -> Vec<Attribute> {
    let mut t = forced();
    let mechanisms = algorithms.iter().map(|a| a.mechanism_type()).collect();
    t.insert(t.len() - 1, Attribute::AllowedMechanisms(mechanisms));
    t
}

/// The value of `CKA_UNWRAP_TEMPLATE` for `attributes`: a `CK_ATTRIBUTE` array that names each
/// value by address, and the value buffers it points into. Keep the buffers (moving their `Vec`
/// does not move them) until the PKCS#11 call that reads the array has returned. 64-bit Unix
/// layout: `CK_ULONG` type, pointer, `CK_ULONG` length, 24 bytes per entry; classes, key types and
/// flags only (`None` for anything else).
#[cfg(all(unix, target_pointer_width = "64"))]
fn unwrap_template(attributes: &[Attribute]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut values = Vec::with_capacity(attributes.len());
    let mut array = Vec::with_capacity(attributes.len() * 24);
    for attribute in attributes {
        // Native layout: `CK_ULONG` values native-endian, `CK_BBOOL` one byte.
        let value = match attribute {
            Attribute::Class(c) => (**c).to_ne_bytes().to_vec(),
            Attribute::KeyType(k) => (**k).to_ne_bytes().to_vec(),
            other => vec![u8::from(super::template::flag(other)?)],
        };
        let kind: u64 = attribute.attribute_type().into();
        array.extend_from_slice(&kind.to_ne_bytes());
        array.extend_from_slice(&(value.as_ptr() as usize as u64).to_ne_bytes());
        array.extend_from_slice(&(value.len() as u64).to_ne_bytes());
        values.push(value);
    }
    Some((array, values))
}

/// Elsewhere the layout differs (`CK_ULONG` is 32 bits on 64-bit Windows): no template, so the
/// probe fails and nothing is sealed.
#[cfg(not(all(unix, target_pointer_width = "64")))]
fn unwrap_template(_attributes: &[Attribute]) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    None
}

/// The KEK template; `location` is `(label, id)` for a token object, `None` for the probe's
/// session object. `array` is [`unwrap_template`] of [`forced`]; `value` is moved in and wiped
/// by the caller with [`super::template::wipe`].
fn kek_template(location: Option<(&str, u32)>, array: Vec<u8>, value: Vec<u8>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(location.is_some()),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(true),
        Attribute::Derive(false),
        Attribute::AllowedMechanisms(vec![MechanismType::AES_KEY_WRAP]),
        Attribute::VendorDefined((AttributeType::VendorDefined(CKA_UNWRAP_TEMPLATE), array)),
    ];
    if let Some((name, version)) = location {
        t.push(Attribute::Label(label(name).into_bytes()));
        t.push(Attribute::Id(version_id(version)));
    }
    t.push(Attribute::Value(value));
    t
}

/// Makes a KEK object from fresh random bytes and returns it with `stored` wrapped under it.
fn make_kek(
    session: &Session,
    location: Option<(&str, u32)>,
    stored: &[u8],
) -> Result<(ObjectHandle, Vec<u8>)> {
    let kek = Zeroizing::new(
        session
            .generate_random_vec(32)
            .map_err(|e| Error::from_ck(&e))?,
    );
    let mut blob = vec![0u8; stored.len() + 8];
    KekAes256::new(kek.as_slice().into())
        .wrap(stored, &mut blob)
        .map_err(|e| Error::invalid(format!("cannot seal the key: {e}")))?;
    let (array, values) = unwrap_template(&forced())
        .ok_or_else(|| Error::invalid("CKA_UNWRAP_TEMPLATE cannot be built on this platform"))?;
    let mut template = kek_template(location, array, kek.to_vec());
    let created = session.create_object(&template);
    super::template::wipe(&mut template);
    drop(values);
    let handle = created.map_err(|e| Error::from_ck(&e))?;
    Ok((handle, blob))
}

/// Seals version `version` of `name` (its stored secret `stored`): creates its KEK and returns
/// the blob (hex) for the metadata. Nothing is left behind on failure.
pub(crate) fn seal(session: &Session, name: &str, version: u32, stored: &[u8]) -> Result<String> {
    let (_kek, blob) = make_kek(session, Some((name, version)), stored)?;
    Ok(hex::encode(blob))
}

/// A sign-only session copy of `token_key` unwrapped from the version's seal, proven to MAC as
/// the token object does; `None` when there is no seal, the module is not proven, or anything
/// fails (the token object is then used; the reason is logged).
pub(crate) fn open(
    token: &Token,
    name: &str,
    version: u32,
    blob_hex: &str,
    algorithms: &[HmacAlg],
    token_key: ObjectHandle,
) -> Option<ObjectHandle> {
    let alg = algorithms.first()?;
    let blob = hex::decode(blob_hex).ok()?;
    let opened = token.with_reserved(|session| {
        if !supported(token, session) {
            return Ok(None);
        }
        let Some(kek) = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(label(name).into_bytes()),
                Attribute::Id(version_id(version)),
            ])
            .map_err(|e| Error::from_ck(&e))?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        // Labelled like the key (no CKA_ID: lookups by version find the token object only), so
        // that audits and the attack suite see the copy for what it is.
        let mut template = copy_template(algorithms);
        template.insert(0, Attribute::Label(name.as_bytes().to_vec()));
        let copy = session
            .unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &template)
            .map_err(|e| Error::from_ck(&e))?;
        let challenge = session
            .generate_random_vec(32)
            .map_err(|e| Error::from_ck(&e))?;
        let same = session
            .sign(&alg.mechanism(), token_key, &challenge)
            .and_then(|a| Ok(a == session.sign(&alg.mechanism(), copy, &challenge)?));
        match same {
            Ok(true) => Ok(Some(copy)),
            other => {
                let _ = session.destroy_object(copy);
                match other {
                    Ok(_) => Err(Error::invalid(format!(
                        "the sealed copy of `{name}` v{version} does not MAC like the key: not used"
                    ))),
                    Err(e) => Err(Error::from_ck(&e)),
                }
            }
        }
    });
    match opened {
        Ok(copy) => copy,
        Err(e) => {
            tracing::warn!(key = name, version, error = %e, "sealed copy not opened; signing with the token object");
            None
        }
    }
}

/// Whether this module and token enforce what sealing relies on, proven once per process on
/// throwaway session objects: a KEK with an unwrap template is accepted; unwrapping under it
/// with an extractable, a non-sensitive or an incomplete template is refused; the KEK cannot
/// be copied or used to decrypt; unwrapping with the forced template gives a key that MACs like
/// the sealed value.
pub(crate) fn supported(token: &Token, session: &Session) -> bool {
    static PROVEN: OnceLock<Mutex<HashMap<(PathBuf, String), bool>>> = OnceLock::new();
    let key = (token.module_path().to_path_buf(), token.label().to_owned());
    let mut proven = PROVEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&ok) = proven.get(&key) {
        return ok;
    }
    let verdict = probe(session);
    if let Err(why) = &verdict {
        tracing::info!(token = token.label(), why = %why, "sealed session copies are off for this module");
    }
    let ok = verdict.is_ok();
    proven.insert(key, ok);
    ok
}

/// The probe behind [`supported`]: `Err` names the first check that did not hold.
fn probe(session: &Session) -> std::result::Result<(), String> {
    let value = Zeroizing::new(
        session
            .generate_random_vec(64)
            .map_err(|e| format!("no random bytes: {e}"))?,
    );
    let (kek, blob) = make_kek(session, None, &value)
        .map_err(|e| format!("KEK with an unwrap template refused: {e}"))?;
    let mut made = vec![kek];
    let result = (|| {
        let algs = [HmacAlg::HmacSha256];
        // The forced template with one attribute replaced (or left out), in place.
        let weakened = |replace: Option<Attribute>, drop: AttributeType| -> Vec<Attribute> {
            copy_template(&algs)
                .into_iter()
                .filter_map(|a| {
                    if a.attribute_type() == drop {
                        replace.clone()
                    } else {
                        Some(a)
                    }
                })
                .collect()
        };
        let attempts = [
            (
                "unwrap as extractable",
                weakened(
                    Some(Attribute::Extractable(true)),
                    AttributeType::Extractable,
                ),
            ),
            (
                "unwrap as non-sensitive",
                weakened(Some(Attribute::Sensitive(false)), AttributeType::Sensitive),
            ),
            (
                "unwrap as a token object",
                weakened(Some(Attribute::Token(true)), AttributeType::Token),
            ),
            (
                "unwrap as derive-capable",
                weakened(Some(Attribute::Derive(true)), AttributeType::Derive),
            ),
            (
                "unwrap without CKA_SENSITIVE",
                weakened(None, AttributeType::Sensitive),
            ),
        ];
        for (what, template) in attempts {
            if let Ok(h) = session.unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &template) {
                made.push(h);
                return Err(format!("{what} was accepted"));
            }
        }
        if let Ok(h) = session.copy_object(kek, &[Attribute::Token(false)]) {
            made.push(h);
            return Err("the KEK could be copied".into());
        }
        if session
            .decrypt(&Mechanism::AesEcb, kek, &blob[..16])
            .is_ok()
        {
            return Err("the KEK could decrypt".into());
        }
        let copy = session
            .unwrap_key(&Mechanism::AesKeyWrap, kek, &blob, &copy_template(&algs))
            .map_err(|e| format!("unwrap with the forced template refused: {e}"))?;
        made.push(copy);
        let challenge = b"hsm-custody seal probe";
        let mac = session
            .sign(&HmacAlg::HmacSha256.mechanism(), copy, challenge)
            .map_err(|e| format!("the unwrapped copy cannot MAC: {e}"))?;
        if mac != HmacAlg::HmacSha256.software(&value, challenge) {
            return Err("the unwrapped copy MACs differently".into());
        }
        Ok(())
    })();
    for h in made {
        let _ = session.destroy_object(h);
    }
    result
}
