//! The custody-grade probe: does the module *enforce* non-extractability? On a throwaway session
//! key it tries to read the value, to flip `CKA_EXTRACTABLE` / `CKA_SENSITIVE`, to wrap the key
//! with an AES key of its own and to copy it as extractable; the throwaway objects are destroyed.
//! `doctor` reports the result; [`custody_grade_check`] runs it once per process per module and
//! token at connect.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use serde::Serialize;
use zeroize::Zeroize;

use super::Token;
use crate::config::Config;
use crate::error::{function_name, rv_name, Error, Result};

/// One attempt of the non-extractability probe.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ProbeStep {
    /// What was tried.
    pub attempt: String,
    /// What the module answered.
    pub outcome: String,
    /// Whether the module refused (what a custody-grade module must do).
    pub refused: bool,
}

/// The non-extractability probe on a throwaway session key.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Probe {
    /// The throwaway key could be made, so the attempts ran. When it could not (tpm2-pkcs11
    /// creates no secret key through PKCS#11), nothing is proven either way.
    pub key_made: bool,
    /// Every extraction attempt was refused.
    pub enforces_non_extractability: bool,
    /// The attempts.
    pub steps: Vec<ProbeStep>,
    /// `C_DigestKey` on the sensitive key was accepted: a hash of the stored value, a
    /// guess-confirmation oracle (and the effective key of an HMAC key stored longer than its
    /// hash's block, which the crate no longer makes).
    pub digests_sensitive_keys: bool,
}

const PROBE_LABEL: &[u8] = b"hsm-custody-doctor-probe";

/// Tries to get a throwaway sensitive, non-extractable (but modifiable) key out of the module.
pub(crate) fn probe(session: &Session) -> Probe {
    let mut steps = Vec::new();
    let mut step = |attempt: &str, outcome: String, refused: bool| {
        steps.push(ProbeStep {
            attempt: attempt.to_owned(),
            outcome,
            refused,
        })
    };
    let key = match probe_key(session) {
        Ok(key) => key,
        Err(e) => {
            step(
                "create a sensitive, non-extractable session key",
                ck_outcome(&e),
                false,
            );
            return Probe {
                key_made: false,
                enforces_non_extractability: false,
                steps,
                digests_sensitive_keys: false,
            };
        }
    };
    match session.get_attribute_info(key, &[AttributeType::Value]) {
        Ok(info) => match info.first() {
            Some(AttributeInfo::Available(n)) if *n > 0 => {
                step("read CKA_VALUE", format!("{n} bytes available"), false)
            }
            Some(AttributeInfo::Sensitive) => {
                step("read CKA_VALUE", "CKR_ATTRIBUTE_SENSITIVE".into(), true)
            }
            other => step("read CKA_VALUE", format!("{other:?}"), true),
        },
        Err(e) => step("read CKA_VALUE", ck_outcome(&e), true),
    }
    for (attempt, attr, kind) in [
        (
            "set CKA_EXTRACTABLE=true",
            Attribute::Extractable(true),
            AttributeType::Extractable,
        ),
        (
            "set CKA_SENSITIVE=false",
            Attribute::Sensitive(false),
            AttributeType::Sensitive,
        ),
    ] {
        match session.update_attributes(key, &[attr]) {
            Err(e) => step(attempt, ck_outcome(&e), true),
            Ok(()) => {
                let now = super::attr::read_bool(session, key, kind).ok().flatten();
                step(attempt, format!("accepted (now {now:?})"), false);
            }
        }
    }
    match own_wrapping_key(session) {
        Ok(wrapping) => {
            for (name, mechanism) in [
                (
                    "wrap with an own AES key (AES_KEY_WRAP)",
                    Mechanism::AesKeyWrap,
                ),
                (
                    "wrap with an own AES key (AES_KEY_WRAP_PAD)",
                    Mechanism::AesKeyWrapPad,
                ),
            ] {
                match session.wrap_key(&mechanism, wrapping, key) {
                    Ok(blob) => step(name, format!("accepted: {}-byte blob", blob.len()), false),
                    Err(e) => step(name, ck_outcome(&e), true),
                }
            }
            let _ = session.destroy_object(wrapping);
        }
        Err(e) => step(
            "make an own AES wrapping key",
            format!("{} (wrapping not tried)", ck_outcome(&e)),
            true,
        ),
    }
    match session.copy_object(key, &[Attribute::Extractable(true)]) {
        Err(e) => step("copy with CKA_EXTRACTABLE=true", ck_outcome(&e), true),
        Ok(copy) => {
            let extractable = super::attr::read_bool(session, copy, AttributeType::Extractable)
                .ok()
                .flatten();
            let _ = session.destroy_object(copy);
            step(
                "copy with CKA_EXTRACTABLE=true",
                format!("copy made (extractable: {extractable:?})"),
                extractable == Some(false),
            );
        }
    }
    let digests = session.digest_init(&Mechanism::Sha256).is_ok() && {
        let accepted = session.digest_key(key).is_ok();
        let _ = session.digest_final();
        accepted
    };
    let _ = session.destroy_object(key);
    Probe {
        key_made: true,
        enforces_non_extractability: steps.iter().all(|s| s.refused),
        steps,
        digests_sensitive_keys: digests,
    }
}

fn probe_key(session: &Session) -> cryptoki::error::Result<ObjectHandle> {
    let mut value = session.generate_random_vec(32)?;
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Modifiable(true),
        Attribute::Sign(true),
        Attribute::Label(PROBE_LABEL.to_vec()),
        Attribute::Value(value.clone()),
    ];
    let created = session.create_object(&template);
    value.zeroize();
    let mut template = template;
    for a in template.iter_mut() {
        if let Attribute::Value(v) = a {
            v.zeroize();
        }
    }
    created
}

fn own_wrapping_key(session: &Session) -> cryptoki::error::Result<ObjectHandle> {
    session.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(false),
            Attribute::ValueLen(32.into()),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Label(PROBE_LABEL.to_vec()),
        ],
    )
}

fn ck_outcome(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{} -> {}", function_name(*f), rv_name(*rv)),
        other => other.to_string(),
    }
}

/// What the custody probe found for one module and token.
#[derive(Clone)]
enum Grade {
    /// Every extraction attempt on the throwaway key was refused.
    Enforced,
    /// These steps were not refused (attempt: what the module answered).
    Fails(String),
    /// No throwaway key could be made: nothing proven either way.
    Undetermined,
}

/// The connect-time custody probe: on the first connect in this process to a module and token,
/// `doctor`'s non-extractability probe runs on throwaway session keys (destroyed after): read
/// the value, set EXTRACTABLE / un-set SENSITIVE, wrap with an own AES key, copy with
/// EXTRACTABLE=true. A module that does not refuse them all is refused
/// ([`Error::NotCustodyGrade`]) unless the configuration opts in
/// (`danger_accept_non_custody_module`), and then every connect warns. The verdict is cached
/// per process per module and token. If no throwaway key can be made (tpm2-pkcs11 creates no
/// secret key through PKCS#11), nothing is proven either way: connect warns once and goes on.
pub(crate) fn custody_grade_check(token: &Token, config: &Config) -> Result<()> {
    static GRADES: OnceLock<Mutex<HashMap<(PathBuf, String), Grade>>> = OnceLock::new();
    let module = std::fs::canonicalize(&config.module).unwrap_or_else(|_| config.module.clone());
    let key = (module, config.token.clone());
    // Held while probing: one probe per module and token, and none in parallel.
    let mut grades = GRADES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let grade = match grades.get(&key) {
        Some(grade) => grade.clone(),
        None => {
            let probe = token.with_reserved(|session| Ok(probe(session)))?;
            let grade = if !probe.key_made {
                tracing::warn!(
                    module = %config.module.display(),
                    token = %config.token,
                    "custody probe not run: the module made no throwaway secret key; run `hsm-custody doctor`"
                );
                Grade::Undetermined
            } else if probe.enforces_non_extractability {
                Grade::Enforced
            } else {
                Grade::Fails(
                    probe
                        .steps
                        .iter()
                        .filter(|s| !s.refused)
                        .map(|s| format!("{}: {}", s.attempt, s.outcome))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            };
            grades.insert(key, grade.clone());
            grade
        }
    };
    match grade {
        Grade::Enforced | Grade::Undetermined => Ok(()),
        Grade::Fails(failed) if config.danger_accept_non_custody_module => {
            tracing::warn!(
                module = %config.module.display(),
                token = %config.token,
                failed = %failed,
                "DANGER: connected to a module that is NOT custody-grade (danger_accept_non_custody_module): a non-extractable key got out at the custody probe; any code that can log in can take every key"
            );
            Ok(())
        }
        Grade::Fails(failed) => Err(Error::NotCustodyGrade {
            path: config.module.clone(),
            token: config.token.clone(),
            failed,
        }),
    }
}
