//! Asymmetric exchange keys: generated in the token (or, for Ed25519, imported from the seed an
//! exchange hands out), public keys exported as SPKI PEM, and signing with module fallbacks.
//!
//! Every new key pair proves itself before it is recorded: a random probe is signed in the
//! token and verified in software with the exported public key.

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use sha2::Digest as _;

use super::template::{self, Validity};
use super::KeyKind;
use crate::error::{Error, Result};

/// A public key read from the token, ready for export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PublicKey {
    Ed25519([u8; 32]),
    /// SEC1 uncompressed point, 65 bytes.
    P256(Vec<u8>),
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
}

impl PublicKey {
    /// SubjectPublicKeyInfo, PEM encoded.
    pub(crate) fn to_pem(&self) -> Result<String> {
        use p256::pkcs8::EncodePublicKey as _;
        let bad = |e: &dyn std::fmt::Display| {
            Error::invalid(format!("public key cannot be encoded: {e}"))
        };
        match self {
            PublicKey::Ed25519(point) => ed25519_dalek::VerifyingKey::from_bytes(point)
                .map_err(|e| bad(&e))?
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|e| bad(&e)),
            PublicKey::P256(sec1) => p256::PublicKey::from_sec1_bytes(sec1)
                .map_err(|e| bad(&e))?
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|e| bad(&e)),
            PublicKey::Rsa { modulus, exponent } => rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(modulus),
                rsa::BigUint::from_bytes_be(exponent),
            )
            .map_err(|e| bad(&e))?
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| bad(&e)),
        }
    }

    /// Verifies a signature in software (self-checks; tests use independent verifiers).
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(point) => {
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(point) else {
                    return false;
                };
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                key.verify_strict(msg, &sig).is_ok()
            }
            PublicKey::P256(sec1) => {
                use p256::ecdsa::signature::Verifier as _;
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::Signature::from_slice(sig) else {
                    return false;
                };
                key.verify(msg, &sig).is_ok()
            }
            PublicKey::Rsa { modulus, exponent } => {
                let Ok(key) = rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(modulus),
                    rsa::BigUint::from_bytes_be(exponent),
                ) else {
                    return false;
                };
                let digest = sha2::Sha256::digest(msg);
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, sig)
                    .is_ok()
            }
        }
    }
}

/// Reads the public key of a pair.
pub(crate) fn read_public(
    session: &Session,
    kind: KeyKind,
    handle: ObjectHandle,
) -> Result<PublicKey> {
    let ck = |e: cryptoki::error::Error| Error::from_ck(&e);
    match kind {
        KeyKind::Ed25519 | KeyKind::P256 => {
            let point = session
                .get_attributes(handle, &[AttributeType::EcPoint])
                .map_err(ck)?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcPoint(p) => Some(p),
                    _ => None,
                })
                .ok_or_else(|| Error::invalid("the token returned no CKA_EC_POINT"))?;
            let expected = if kind == KeyKind::Ed25519 { 32 } else { 65 };
            let raw = unwrap_point(&point, expected)
                .ok_or_else(|| Error::invalid("unexpected CKA_EC_POINT encoding"))?;
            if kind == KeyKind::Ed25519 {
                let bytes: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| Error::invalid("unexpected Ed25519 point length"))?;
                Ok(PublicKey::Ed25519(bytes))
            } else {
                Ok(PublicKey::P256(raw.to_vec()))
            }
        }
        KeyKind::Rsa2048 => {
            let attrs = session
                .get_attributes(
                    handle,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(ck)?;
            let mut modulus = None;
            let mut exponent = None;
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => modulus = Some(m),
                    Attribute::PublicExponent(e) => exponent = Some(e),
                    _ => {}
                }
            }
            match (modulus, exponent) {
                (Some(modulus), Some(exponent)) => Ok(PublicKey::Rsa { modulus, exponent }),
                _ => Err(Error::invalid("the token returned no RSA modulus/exponent")),
            }
        }
        KeyKind::Hmac => Err(Error::WrongKeyKind {
            name: String::new(),
            kind: "hmac".into(),
            wanted: "an asymmetric key".into(),
        }),
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING on SoftHSM2 and raw on some modules (Kryoptic's
/// Ed25519): tell them apart by length, since a raw point may itself start with 0x04.
fn unwrap_point(point: &[u8], expected: usize) -> Option<&[u8]> {
    if point.len() == expected {
        return Some(point);
    }
    match point {
        [0x04, len, rest @ ..] if usize::from(*len) == expected && rest.len() == expected => {
            Some(rest)
        }
        _ => None,
    }
}

/// Signs `data` with a private key: pure Ed25519, ECDSA P-256 over SHA-256 (raw r||s; hashed on
/// the host with `CKM_ECDSA` where the module lacks `CKM_ECDSA_SHA256`), RSA PKCS#1 v1.5 with
/// SHA-256.
pub(crate) fn sign(
    session: &Session,
    kind: KeyKind,
    handle: ObjectHandle,
    data: &[u8],
    ecdsa_sha256: bool,
) -> Result<Vec<u8>, cryptoki::error::Error> {
    match kind {
        KeyKind::Ed25519 => session.sign(
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            handle,
            data,
        ),
        KeyKind::P256 if ecdsa_sha256 => session.sign(&Mechanism::EcdsaSha256, handle, data),
        KeyKind::P256 => session.sign(&Mechanism::Ecdsa, handle, &sha2::Sha256::digest(data)),
        KeyKind::Rsa2048 | KeyKind::Hmac => session.sign(&Mechanism::Sha256RsaPkcs, handle, data),
    }
}

/// The generation mechanism of a kind.
pub(crate) fn generation_mechanism(kind: KeyKind) -> Mechanism<'static> {
    match kind {
        KeyKind::Ed25519 => Mechanism::EccEdwardsKeyPairGen,
        KeyKind::P256 => Mechanism::EccKeyPairGen,
        KeyKind::Rsa2048 | KeyKind::Hmac => Mechanism::RsaPkcsKeyPairGen,
    }
}

/// The mechanism the module must offer to sign with a kind (for clear errors).
pub(crate) fn signing_mechanism_type(kind: KeyKind) -> MechanismType {
    match kind {
        KeyKind::Ed25519 => MechanismType::EDDSA,
        KeyKind::P256 => MechanismType::ECDSA,
        KeyKind::Rsa2048 | KeyKind::Hmac => MechanismType::SHA256_RSA_PKCS,
    }
}

/// Generates a key pair in the token and proves it. Returns (public, private) handles.
pub(crate) fn generate(
    session: &Session,
    kind: KeyKind,
    name: &str,
    version: u32,
    validity: Validity,
    ecdsa_sha256: bool,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(ObjectHandle, ObjectHandle)> {
    let (public_t, private_t) = template::key_pair(kind, name, version, validity);
    step()?;
    let (public, private) = session
        .generate_key_pair(&generation_mechanism(kind), &public_t, &private_t)
        .map_err(|e| Error::from_ck(&e))?;
    let checked =
        step().and_then(|()| self_check(session, kind, public, private, name, ecdsa_sha256));
    finish(session, checked, public, private, name)
}

/// Imports an Ed25519 private key from its 32-byte seed, with its public key, and proves it.
pub(crate) fn import_ed25519(
    session: &Session,
    name: &str,
    version: u32,
    seed: &[u8; 32],
    validity: Validity,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(ObjectHandle, ObjectHandle)> {
    let signing = ed25519_dalek::SigningKey::from_bytes(seed);
    let point = signing.verifying_key().to_bytes();
    drop(signing); // ed25519-dalek wipes its secret on drop
    step()?;
    let mut private_t = template::ed25519_private(name, version, seed.to_vec(), validity);
    let private = session.create_object(&private_t);
    template::wipe(&mut private_t);
    let private = private.map_err(|e| Error::from_ck(&e))?;
    let public = match step().and_then(|()| {
        session
            .create_object(&template::ed25519_public(name, version, &point))
            .map_err(|e| Error::from_ck(&e))
    }) {
        Ok(h) => h,
        Err(e) => {
            if !matches!(e, Error::InjectedFault { .. }) {
                let _ = session.destroy_object(private);
            }
            return Err(e);
        }
    };
    let checked = self_check(session, KeyKind::Ed25519, public, private, name, false);
    finish(session, checked, public, private, name)
}

fn finish(
    session: &Session,
    checked: Result<()>,
    public: ObjectHandle,
    private: ObjectHandle,
    name: &str,
) -> Result<(ObjectHandle, ObjectHandle)> {
    match checked {
        Ok(()) => Ok((public, private)),
        Err(e @ Error::InjectedFault { .. }) => Err(e),
        Err(e) => {
            for h in [private, public] {
                if let Err(d) = session.destroy_object(h) {
                    tracing::error!(key = name, error = %d, "could not remove a failed key pair");
                }
            }
            Err(e)
        }
    }
}

fn self_check(
    session: &Session,
    kind: KeyKind,
    public: ObjectHandle,
    private: ObjectHandle,
    name: &str,
    ecdsa_sha256: bool,
) -> Result<()> {
    let mut probe = b"hsm-custody key pair self-check ".to_vec();
    probe.extend(
        session
            .generate_random_vec(16)
            .map_err(|e| Error::from_ck(&e))?,
    );
    let sig =
        sign(session, kind, private, &probe, ecdsa_sha256).map_err(|e| Error::SelfCheckFailed {
            name: name.to_owned(),
            detail: format!(
                "the token could not sign with the new {kind} key: {}",
                Error::from_ck(&e)
            ),
        })?;
    let public_key = read_public(session, kind, public)?;
    if !public_key.verify(&probe, &sig) {
        return Err(Error::SelfCheckFailed {
            name: name.to_owned(),
            detail: format!("the new {kind} key's signature does not verify with its public key"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_are_accepted_wrapped_or_raw() {
        let mut raw = [7u8; 32];
        raw[0] = 0x04;
        raw[1] = 30; // looks like a DER header, but the length says raw
        let mut der = vec![0x04, 32];
        der.extend_from_slice(&raw);
        assert_eq!(unwrap_point(&der, 32), Some(&raw[..]));
        assert_eq!(unwrap_point(&raw, 32), Some(&raw[..]));
        assert_eq!(unwrap_point(&raw[..31], 32), None);
    }
}
