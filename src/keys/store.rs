//! Finding keys and their metadata in the token, and listing them.

use std::collections::BTreeMap;

use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::template::{find_metadata, find_secret_key};
use super::{KeyFlags, KeyInfo, KeyMeta};
use crate::error::{Error, Result};

/// A key's metadata as found in the token.
pub(crate) struct Found {
    pub meta: KeyMeta,
}

pub(crate) fn find_meta(
    session: &Session,
    name: &str,
) -> Result<Option<Found>, cryptoki::error::Error> {
    let handles = session.find_objects(&find_metadata(Some(name)))?;
    for handle in handles {
        if let Some(meta) = read_meta(session, handle)? {
            if meta.name == name {
                return Ok(Some(Found { meta }));
            }
        }
    }
    Ok(None)
}

fn read_meta(
    session: &Session,
    handle: ObjectHandle,
) -> Result<Option<KeyMeta>, cryptoki::error::Error> {
    let attrs = session.get_attributes(handle, &[AttributeType::Value])?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Value(v) => serde_json::from_slice::<KeyMeta>(&v).ok(),
        _ => None,
    }))
}

pub(crate) fn find_key(
    session: &Session,
    meta: &KeyMeta,
) -> Result<Option<ObjectHandle>, cryptoki::error::Error> {
    Ok(session
        .find_objects(&find_secret_key(&meta.name, Some(meta.key_id())))?
        .into_iter()
        .next())
}

/// Whether any object (key or metadata) already uses this name.
pub(crate) fn name_taken(session: &Session, name: &str) -> Result<bool, cryptoki::error::Error> {
    Ok(
        !session.find_objects(&find_metadata(Some(name)))?.is_empty()
            || !session
                .find_objects(&find_secret_key(name, None))?
                .is_empty(),
    )
}

/// Reads the protection flags one attribute at a time (cryptoki's `get_attributes` drops what
/// it cannot read, which must never pass for "false").
pub(crate) fn flags(
    session: &Session,
    key: ObjectHandle,
) -> Result<KeyFlags, cryptoki::error::Error> {
    let read = |t: AttributeType| -> Result<Option<bool>, cryptoki::error::Error> {
        let attrs = session.get_attributes(key, &[t])?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::AlwaysSensitive(b)
            | Attribute::NeverExtractable(b)
            | Attribute::Sign(b)
            | Attribute::Verify(b)
            | Attribute::Encrypt(b)
            | Attribute::Decrypt(b)
            | Attribute::Wrap(b)
            | Attribute::Unwrap(b)
            | Attribute::Derive(b)
            | Attribute::Modifiable(b) => Some(b),
            _ => None,
        }))
    };
    Ok(KeyFlags {
        sensitive: read(AttributeType::Sensitive)?,
        extractable: read(AttributeType::Extractable)?,
        always_sensitive: read(AttributeType::AlwaysSensitive)?,
        never_extractable: read(AttributeType::NeverExtractable)?,
        sign: read(AttributeType::Sign)?,
        verify: read(AttributeType::Verify)?,
        encrypt: read(AttributeType::Encrypt)?,
        decrypt: read(AttributeType::Decrypt)?,
        wrap: read(AttributeType::Wrap)?,
        unwrap: read(AttributeType::Unwrap)?,
        derive: read(AttributeType::Derive)?,
        modifiable: read(AttributeType::Modifiable)?,
    })
}

/// Asks the token for `CKA_VALUE` of a key with one `C_GetAttributeValue` and returns the
/// outcome. Never returns the bytes: a readable value is reported as an error.
pub(crate) fn value_read_refusal(
    session: &Session,
    key: ObjectHandle,
    name: &str,
) -> Result<String> {
    match session.get_attribute_info(key, &[AttributeType::Value]) {
        Ok(info) => match info.first() {
            Some(AttributeInfo::Sensitive) => Ok("CKR_ATTRIBUTE_SENSITIVE".into()),
            Some(AttributeInfo::Unavailable) => Ok("CK_UNAVAILABLE_INFORMATION".into()),
            Some(AttributeInfo::TypeInvalid) => Ok("CKR_ATTRIBUTE_TYPE_INVALID".into()),
            Some(AttributeInfo::Available(0)) => Ok("empty value returned".into()),
            _ => Err(Error::SelfCheckFailed {
                name: name.to_owned(),
                detail: "the token revealed the key value: this module is not custody-grade".into(),
            }),
        },
        Err(e) => Ok(format!("refused: {e}")),
    }
}

/// Lists managed keys (by metadata) and secret keys without metadata (foreign or interrupted).
pub(crate) fn list(session: &Session) -> Result<Vec<KeyInfo>, cryptoki::error::Error> {
    let mut by_name: BTreeMap<String, KeyInfo> = BTreeMap::new();
    for handle in session.find_objects(&find_metadata(None))? {
        let Some(meta) = read_meta(session, handle)? else {
            continue;
        };
        let flags = match find_key(session, &meta)? {
            Some(key) => flags(session, key)?,
            None => KeyFlags::default(),
        };
        by_name.insert(
            meta.name.clone(),
            KeyInfo {
                name: meta.name.clone(),
                kind: meta.kind.clone(),
                version: Some(meta.version),
                exchange: meta.exchange.clone(),
                encoding: Some(meta.encoding),
                algorithms: meta.algorithms.clone(),
                created: Some(meta.created.clone()),
                managed: true,
                flags,
            },
        );
    }
    for handle in session.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])? {
        let label = session
            .get_attributes(handle, &[AttributeType::Label])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        if by_name.contains_key(&label) {
            continue;
        }
        // Session objects (our fast-path copies) are not keys of their own.
        let is_token = session
            .get_attributes(handle, &[AttributeType::Token])?
            .into_iter()
            .any(|a| matches!(a, Attribute::Token(true)));
        if !is_token {
            continue;
        }
        let flags = flags(session, handle)?;
        by_name.insert(
            label.clone(),
            KeyInfo {
                name: label,
                kind: "foreign".into(),
                version: None,
                exchange: None,
                encoding: None,
                algorithms: Vec::new(),
                created: None,
                managed: false,
                flags,
            },
        );
    }
    Ok(by_name.into_values().collect())
}
