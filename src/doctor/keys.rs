//! The key audit: every secret and private key object the application can see, checked for the
//! hardened attributes (values are never read: a readable `CKA_VALUE` shows in its length).

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::KeyAudit;
use crate::keys::{KeyFlags, APPLICATION};

/// Audits every secret and private key object visible to the application.
pub(super) fn audit_keys(session: &Session) -> cryptoki::error::Result<Vec<KeyAudit>> {
    let mut managed_labels = Vec::new();
    for h in session.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
    ])? {
        for a in session.get_attributes(h, &[AttributeType::Label])? {
            if let Attribute::Label(l) = a {
                managed_labels.push(l);
            }
        }
    }
    let mut out = Vec::new();
    for (class, class_name) in [
        (ObjectClass::SECRET_KEY, "secret"),
        (ObjectClass::PRIVATE_KEY, "private"),
    ] {
        for h in session.find_objects(&[Attribute::Class(class)])? {
            let mut label = Vec::new();
            let mut id = Vec::new();
            let mut key_type = String::from("?");
            for t in [
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
            ] {
                for a in session.get_attributes(h, &[t])? {
                    match a {
                        Attribute::Label(l) => label = l,
                        Attribute::Id(i) => id = i,
                        Attribute::KeyType(k) => key_type = k.to_string(),
                        _ => {}
                    }
                }
            }
            // A managed key's seal KEK (see `keys::seal`): unwrapping is its one use.
            let seal_of_managed = label
                .strip_suffix(crate::keys::seal::LABEL_SUFFIX.as_bytes())
                .is_some_and(|key| managed_labels.iter().any(|l| l == key));
            out.push(KeyAudit {
                label: String::from_utf8_lossy(&label).into_owned(),
                id: if id.is_empty() {
                    String::new()
                } else {
                    String::from_utf8(id.clone()).unwrap_or_else(|_| hex::encode(&id))
                },
                class: class_name.to_owned(),
                key_type,
                token_object: crate::token::attr::read_bool(session, h, AttributeType::Token)?
                    .unwrap_or(true),
                managed: seal_of_managed || managed_labels.contains(&label),
                problems: key_problems(session, h, seal_of_managed)?,
            });
        }
    }
    Ok(out)
}

/// What is wrong with one key's protection. A seal KEK may unwrap (that is what it is for) but
/// must be neither modifiable nor copyable.
fn key_problems(
    session: &Session,
    h: ObjectHandle,
    seal_kek: bool,
) -> cryptoki::error::Result<Vec<String>> {
    let flag = |t| crate::token::attr::read_bool(session, h, t);
    let flags = KeyFlags {
        extractable: flag(AttributeType::Extractable)?,
        sensitive: flag(AttributeType::Sensitive)?,
        derive: flag(AttributeType::Derive)?,
        wrap: flag(AttributeType::Wrap)?,
        unwrap: flag(AttributeType::Unwrap)?,
        encrypt: flag(AttributeType::Encrypt)?,
        decrypt: flag(AttributeType::Decrypt)?,
        ..KeyFlags::default()
    };
    let mut problems: Vec<String> = flags
        .weaknesses()
        .into_iter()
        .filter(|(attribute, _)| !(seal_kek && *attribute == "CKA_UNWRAP"))
        .map(|(_, what)| what.to_owned())
        .collect();
    if seal_kek {
        for (t, what) in [
            (AttributeType::Modifiable, "seal KEK modifiable"),
            (AttributeType::Copyable, "seal KEK copyable"),
        ] {
            if flag(t)? != Some(false) {
                problems.push(what.to_owned());
            }
        }
    }
    if let Some(problem) = long_hmac_key(session, h) {
        problems.push(problem);
    }
    for t in [AttributeType::Value, AttributeType::PrivateExponent] {
        if let Ok(info) = session.get_attribute_info(h, &[t]) {
            if let Some(AttributeInfo::Available(n)) = info.first() {
                if *n > 0 {
                    problems.push(format!("{t} readable"));
                }
            }
        }
    }
    Ok(problems)
}

/// An HMAC key stored longer than its hash's block: HMAC keys with the hash of such a value, so
/// on a module that digests sensitive keys (`C_DigestKey`, SoftHSM2) that digest *is* the
/// effective key. The crate stores the hash itself since issue 26; older imports need a
/// rotation.
fn long_hmac_key(session: &Session, h: ObjectHandle) -> Option<String> {
    let attrs = session
        .get_attributes(
            h,
            &[AttributeType::ValueLen, AttributeType::AllowedMechanisms],
        )
        .ok()?;
    let mut len = None;
    let mut mechanisms = Vec::new();
    for a in attrs {
        match a {
            Attribute::ValueLen(n) => len = Some(u64::from(n)),
            Attribute::AllowedMechanisms(m) => mechanisms = m,
            _ => {}
        }
    }
    let len = len?;
    let block = |m: &MechanismType| {
        if *m == MechanismType::SHA256_HMAC {
            Some(64)
        } else if *m == MechanismType::SHA384_HMAC || *m == MechanismType::SHA512_HMAC {
            Some(128)
        } else {
            None
        }
    };
    let smallest = mechanisms.iter().filter_map(block).min()?;
    (len > smallest).then(|| {
        format!(
            "HMAC key stored as {len} bytes, longer than its hash's {smallest}-byte block: a module \
             that digests sensitive keys (C_DigestKey) hands out its effective HMAC key; rotate it \
             (`hsm-custody key rotate begin`: new versions store the hash)"
        )
    })
}
