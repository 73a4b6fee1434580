//! Turning an exchange's HMAC secret into a hardened token key that proves itself.
//!
//! The secret's bytes live in `Zeroizing` buffers (never in a `Debug` position); the
//! template's copy is wiped right after `C_CreateObject`. The new object MACs a random probe
//! with every allowed algorithm and must match the same MAC computed in software, or it is
//! destroyed.

use base64::Engine as _;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::template::{self, Validity, MIN_STORED_LEN};
use super::SecretEncoding;
use crate::alg::HmacAlg;
use crate::error::{Error, Result};

/// Turns the secret as the exchange shows it into HMAC key bytes.
pub(crate) fn decode_secret(
    secret: &SecretString,
    encoding: SecretEncoding,
) -> Result<Zeroizing<Vec<u8>>> {
    let text = secret.expose_secret().trim();
    if text.is_empty() {
        return Err(Error::invalid("the secret is empty"));
    }
    match encoding {
        SecretEncoding::Raw => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        SecretEncoding::Base64 => {
            let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
            base64::engine::general_purpose::STANDARD
                .decode_vec(text, &mut out)
                .map_err(|_| {
                    Error::invalid(
                        "the secret is not valid base64 (this exchange shows base64 secrets; check the copy)",
                    )
                })?;
            if out.is_empty() {
                return Err(Error::invalid("the secret decodes to nothing"));
            }
            Ok(out)
        }
    }
}

/// Creates one HMAC key version and proves it; with `sealing`, also seals it (see `seal`) and
/// returns the seal, or `None` when sealing failed (logged: the key is still good). On any
/// failure after the key object exists it is destroyed, unless the failure stands for a crash
/// (test hook).
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_hmac_version(
    session: &Session,
    name: &str,
    version: u32,
    key_bytes: &[u8],
    algorithms: &[HmacAlg],
    validity: Validity,
    sealing: bool,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(ObjectHandle, Option<String>)> {
    let mut stored = Zeroizing::new(Vec::with_capacity(key_bytes.len().max(MIN_STORED_LEN)));
    stored.extend_from_slice(&effective_key(key_bytes, algorithms)?);
    if stored.len() < MIN_STORED_LEN {
        stored.resize(MIN_STORED_LEN, 0);
    }
    step()?;
    let mut attrs = template::hmac_secret_key(name, version, stored.to_vec(), algorithms, validity);
    let created = session.create_object(&attrs);
    template::wipe(&mut attrs);
    let key = created.map_err(|e| import_refused(&e))?;
    let checked = step().and_then(|()| self_check(session, key, key_bytes, name, algorithms));
    match checked {
        Ok(()) if sealing => {
            let sealed = super::seal::seal(session, name, version, &stored)
                .inspect_err(|e| {
                    tracing::warn!(key = name, version, error = %e, "not sealed: this version signs with its token object")
                })
                .ok();
            Ok((key, sealed))
        }
        Ok(()) => Ok((key, None)),
        Err(e @ Error::InjectedFault { .. }) => Err(e),
        Err(e) => {
            if let Err(d) = session.destroy_object(key) {
                tracing::error!(key = name, error = %d, "could not remove a failed import");
            }
            Err(e)
        }
    }
}

/// The HMAC block size of an algorithm's hash, in bytes.
fn block_len(alg: HmacAlg) -> usize {
    match alg {
        HmacAlg::HmacSha256 => 64,
        _ => 128,
    }
}

/// The key the token stores for `secret`: the secret itself, or, when it is longer than the
/// hash's block, the hash of it (HMAC replaces such a key by its hash before use, so the MACs
/// are identical). Storing the secret itself would make `C_DigestKey` (which SoftHSM2 allows on
/// sensitive keys) hand out exactly that hash: the effective HMAC key, a clone of the secret.
/// A long secret with algorithms of different hashes has no one such form: refused.
fn effective_key(secret: &[u8], algorithms: &[HmacAlg]) -> Result<Zeroizing<Vec<u8>>> {
    use sha2::Digest as _;
    let long: Vec<HmacAlg> = algorithms
        .iter()
        .copied()
        .filter(|a| secret.len() > block_len(*a))
        .collect();
    let Some(&first) = long.first() else {
        return Ok(Zeroizing::new(secret.to_vec()));
    };
    if algorithms.iter().any(|a| *a != first) {
        return Err(Error::invalid(format!(
            "a secret of {} bytes is longer than the {} hash's block, so HMAC keys with its hash; \
             the token can store that form for one hash only: import it for {} alone \
             (an exchange binding chooses the algorithm)",
            secret.len(),
            first.name(),
            first.name()
        )));
    }
    Ok(Zeroizing::new(match first {
        HmacAlg::HmacSha256 => sha2::Sha256::digest(secret).to_vec(),
        HmacAlg::HmacSha384 => sha2::Sha384::digest(secret).to_vec(),
        _ => sha2::Sha512::digest(secret).to_vec(),
    }))
}

/// The error for a refused `C_CreateObject` of the secret key. Some modules accept no secret
/// key through `C_CreateObject` at all (tpm2-pkcs11 answers `CKR_ATTRIBUTE_VALUE_INVALID` to
/// any): say what to do instead.
fn import_refused(e: &cryptoki::error::Error) -> Error {
    use cryptoki::error::{Error as CkError, RvError};
    let err = Error::from_ck(e);
    match (e, err) {
        (
            CkError::Pkcs11(
                RvError::AttributeValueInvalid
                | RvError::TemplateInconsistent
                | RvError::AttributeTypeInvalid,
                _,
            ),
            Error::Pkcs11 { function, rv, .. },
        ) => Error::Pkcs11 {
            function,
            rv,
            advice: Some(
                "the module refused the hardened HMAC key template; some modules accept no \
                 secret key through C_CreateObject at all (TPM 2.0 via tpm2-pkcs11): provision \
                 the key with the module's own tool and take it over with `hsm-custody key adopt`",
            ),
        },
        (_, err) => err,
    }
}

/// Generates one HMAC key version inside the token (`CKM_GENERIC_SECRET_KEY_GEN`, 64 bytes) with
/// the hardened template; proves it signs and verifies its own MAC in the token.
pub(crate) fn generate_hmac_version(
    session: &Session,
    name: &str,
    version: u32,
    algorithms: &[HmacAlg],
    validity: Validity,
    mut step: impl FnMut() -> Result<()>,
) -> Result<ObjectHandle> {
    let mut attrs = template::hmac_secret_key(name, version, Vec::new(), algorithms, validity);
    // No value: the token makes one of CKA_VALUE_LEN bytes.
    attrs.retain(|a| !matches!(a, cryptoki::object::Attribute::Value(_)));
    attrs.push(cryptoki::object::Attribute::ValueLen(
        (MIN_STORED_LEN as u64).into(),
    ));
    step()?;
    let key = session
        .generate_key(&cryptoki::mechanism::Mechanism::GenericSecretKeyGen, &attrs)
        .map_err(|e| Error::from_ck(&e))?;
    let checked = step().and_then(|()| prove_in_token(session, key, name, algorithms));
    match checked {
        Ok(()) => Ok(key),
        Err(e @ Error::InjectedFault { .. }) => Err(e),
        Err(e) => {
            let _ = session.destroy_object(key);
            Err(e)
        }
    }
}

/// Proves, for a key whose value the crate never held (generated in the token, or adopted),
/// that it MACs a fresh random probe with every allowed algorithm, with the algorithm's output
/// length, and verifies its own MAC.
pub(crate) fn prove_in_token(
    session: &Session,
    key: ObjectHandle,
    name: &str,
    algorithms: &[HmacAlg],
) -> Result<()> {
    let probe = session
        .generate_random_vec(32)
        .map_err(|e| Error::from_ck(&e))?;
    let failed = |detail: String| Error::SelfCheckFailed {
        name: name.to_owned(),
        detail,
    };
    for alg in algorithms {
        let mac = session
            .sign(&alg.mechanism(), key, &probe)
            .map_err(|e| failed(format!("{alg} failed: {}", Error::from_ck(&e))))?;
        if mac.len() != alg.output_len() {
            return Err(failed(format!(
                "{alg} gave {} bytes, not {}: the module does not compute {alg} with this key",
                mac.len(),
                alg.output_len()
            )));
        }
        session
            .verify(&alg.mechanism(), key, &probe, &mac)
            .map_err(|e| {
                failed(format!(
                    "{alg} does not verify its own MAC: {}",
                    Error::from_ck(&e)
                ))
            })?;
    }
    Ok(())
}

/// MACs a fresh random probe in the token and in software, per allowed algorithm.
fn self_check(
    session: &Session,
    key: ObjectHandle,
    key_bytes: &[u8],
    name: &str,
    algorithms: &[HmacAlg],
) -> Result<()> {
    let mut probe = b"hsm-custody import self-check ".to_vec();
    let random = session
        .generate_random_vec(16)
        .map_err(|e| Error::from_ck(&e))?;
    probe.extend_from_slice(&random);
    for alg in algorithms {
        let in_token =
            session
                .sign(&alg.mechanism(), key, &probe)
                .map_err(|e| Error::SelfCheckFailed {
                    name: name.to_owned(),
                    detail: format!("the token could not MAC with {alg}: {}", Error::from_ck(&e)),
                })?;
        let in_software = Zeroizing::new(alg.software(key_bytes, &probe));
        if in_token.as_slice() != in_software.as_slice() {
            return Err(Error::SelfCheckFailed {
                name: name.to_owned(),
                detail: format!("{alg} in the token differs from software"),
            });
        }
    }
    Ok(())
}

/// Overwrites the stack below the caller's frame. The software HMAC of the self-check (sha2
/// hashing a long key) and the module's own code leave pieces of the key in stack frames that
/// are dead but not cleared; the memory-scan test found them there. Called once the secret's
/// work is done, at a frame above all of that work.
#[inline(never)]
pub(crate) fn scrub_stack() {
    let mut scratch = [0u8; 64 * 1024];
    std::hint::black_box(&mut scratch);
}

/// Runs [`scrub_stack`] when dropped, so that early returns scrub too.
pub(crate) struct ScrubOnDrop;

impl Drop for ScrubOnDrop {
    fn drop(&mut self) {
        scrub_stack();
    }
}

/// Now (UTC) in whole seconds, as a version's creation time is recorded.
pub(crate) fn now_whole_seconds() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_secrets_decode_and_bad_ones_say_so_without_echo() {
        let s = SecretString::from("aGVsbG8=");
        assert_eq!(
            decode_secret(&s, SecretEncoding::Base64)
                .unwrap()
                .as_slice(),
            b"hello"
        );
        let bad = SecretString::from("not*base64");
        let msg = decode_secret(&bad, SecretEncoding::Base64)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not valid base64"), "{msg}");
        assert!(!msg.contains("not*base64"), "{msg}");
        assert!(decode_secret(&SecretString::from("  "), SecretEncoding::Raw).is_err());
    }
}
