//! Reading and writing keys' metadata and key objects in the token, and listing them.

use std::collections::BTreeMap;

use cryptoki::error::Error as CkError;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::template::{
    find_key_objects, find_metadata, find_public, find_version, metadata_object,
};
use super::{parse_version_id, KeyFlags, KeyInfo, KeyMeta};
use crate::error::{Error, Result};

/// A key's metadata and the handle of the data object holding it.
pub(crate) struct Found {
    pub meta: KeyMeta,
    pub handle: ObjectHandle,
}

/// The key's current metadata: the highest revision among the data objects with its label
/// (a crash between writing a new revision and destroying the old one leaves two).
pub(crate) fn find_meta(session: &Session, name: &str) -> Result<Option<Found>, CkError> {
    let mut best: Option<Found> = None;
    for handle in session.find_objects(&find_metadata(Some(name)))? {
        if let Some(meta) = read_meta(session, handle)? {
            if meta.name == name
                && best
                    .as_ref()
                    .is_none_or(|b| meta.revision > b.meta.revision)
            {
                best = Some(Found { meta, handle });
            }
        }
    }
    Ok(best)
}

/// Reads the metadata JSON of one data object (`None` if it is not ours or not parseable).
pub(crate) fn read_meta(
    session: &Session,
    handle: ObjectHandle,
) -> Result<Option<KeyMeta>, CkError> {
    let attrs = session.get_attributes(handle, &[AttributeType::Value])?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Value(v) => serde_json::from_slice::<KeyMeta>(&v).ok(),
        _ => None,
    }))
}

fn encode(meta: &KeyMeta) -> Result<Vec<u8>> {
    meta.check()?;
    serde_json::to_vec(meta).map_err(|e| Error::Internal(format!("cannot encode metadata: {e}")))
}

/// Writes a new metadata object.
pub(crate) fn create_meta(session: &Session, meta: &KeyMeta) -> Result<ObjectHandle> {
    let json = encode(meta)?;
    session
        .create_object(&metadata_object(meta, json))
        .map_err(|e| Error::from_ck(&e))
}

/// Commits new metadata: writes it as a new data object (one `C_CreateObject`, the commit
/// point; PKCS#11 data objects' `CKA_VALUE` is read-only on SoftHSM2), then destroys the old
/// one. Refuses when someone else changed the key since `found` was read.
pub(crate) fn update_meta(
    session: &Session,
    found: &Found,
    new: &KeyMeta,
    mut step: impl FnMut() -> Result<()>,
) -> Result<()> {
    let current = find_meta(session, &found.meta.name).map_err(|e| Error::from_ck(&e))?;
    if current.as_ref().map(|c| c.meta.revision) != Some(found.meta.revision) {
        return Err(Error::Lifecycle(format!(
            "key `{}` was changed by another process meanwhile; nothing written, try again",
            found.meta.name
        )));
    }
    step()?;
    create_meta(session, new)?;
    step()?;
    session
        .destroy_object(found.handle)
        .map_err(|e| Error::from_ck(&e))
}

/// Destroys metadata objects of `name` older than the committed revision (left by a crash
/// between writing a new revision and destroying the old one). An object of the committed
/// revision, or one that is not metadata this release can read, is never destroyed.
fn reconcile_meta(session: &Session, current: &Found) -> Result<(), CkError> {
    for handle in session.find_objects(&find_metadata(Some(&current.meta.name)))? {
        if handle == current.handle {
            continue;
        }
        let older = read_meta(session, handle)?
            .is_some_and(|m| m.name == current.meta.name && m.revision < current.meta.revision);
        if older {
            session.destroy_object(handle)?;
        }
    }
    Ok(())
}

/// The signing object (secret or private key) of one version.
pub(crate) fn find_version_object(
    session: &Session,
    meta: &KeyMeta,
    version: u32,
) -> Result<Option<ObjectHandle>, CkError> {
    let adopted_id = meta
        .version(version)
        .and_then(|v| v.object_id.as_deref())
        .and_then(|hex_id| hex::decode(hex_id).ok());
    let template = match adopted_id {
        Some(id) => vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(meta.name.as_bytes().to_vec()),
            Attribute::Id(id),
        ],
        None => find_version(&meta.name, meta.kind, version),
    };
    Ok(session.find_objects(&template)?.into_iter().next())
}

/// The public key object of one version.
pub(crate) fn find_public_object(
    session: &Session,
    name: &str,
    version: u32,
) -> Result<Option<ObjectHandle>, CkError> {
    Ok(session
        .find_objects(&find_public(name, version))?
        .into_iter()
        .next())
}

/// Every object of ours labelled `name`, and the versions' KEKs (labelled `name#seal`), with
/// the version its `CKA_ID` names (objects without a version id of ours are foreign and left
/// out).
pub(crate) fn version_objects(
    session: &Session,
    name: &str,
) -> Result<Vec<(u32, ObjectHandle)>, CkError> {
    let mut out = Vec::new();
    for label in [name.to_owned(), super::seal::label(name)] {
        for handle in session.find_objects(&find_key_objects(&label))? {
            if let Some(version) = read_id(session, handle)?
                .as_deref()
                .and_then(parse_version_id)
            {
                out.push((version, handle));
            }
        }
    }
    Ok(out)
}

fn read_id(session: &Session, handle: ObjectHandle) -> Result<Option<Vec<u8>>, CkError> {
    Ok(session
        .get_attributes(handle, &[AttributeType::Id])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        }))
}

/// Whether a foreign object (no version id of ours) already uses this label.
pub(crate) fn foreign_key_named(session: &Session, name: &str) -> Result<bool, CkError> {
    for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
        if !foreign_objects(session, class, name)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The objects of `class` labelled `name` whose `CKA_ID` is not a version id of ours, with
/// that id (empty when the object has none).
pub(crate) fn foreign_objects(
    session: &Session,
    class: ObjectClass,
    name: &str,
) -> Result<Vec<(ObjectHandle, Vec<u8>)>, CkError> {
    let mut out = Vec::new();
    for handle in session.find_objects(&[
        Attribute::Class(class),
        Attribute::Label(name.as_bytes().to_vec()),
    ])? {
        let id = read_id(session, handle)?.unwrap_or_default();
        if parse_version_id(&id).is_none() {
            out.push((handle, id));
        }
    }
    Ok(out)
}

/// Reads the protection flags one attribute at a time (cryptoki's `get_attributes` drops what
/// it cannot read, which must never pass for "false").
pub(crate) fn flags(session: &Session, key: ObjectHandle) -> Result<KeyFlags, CkError> {
    let read = |t: AttributeType| -> Result<Option<bool>, CkError> {
        let attrs = session.get_attributes(key, &[t])?;
        Ok(attrs.iter().find_map(super::template::flag))
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

/// Why the key object `key` cannot be the audit key, or `None` when it can: the token must say
/// it was generated there (`CKA_LOCAL`), has always been sensitive and never extractable. An
/// imported key is never `CKA_LOCAL`; a key generated extractable (whose value was read out,
/// then locked) is neither always sensitive nor never extractable. So no one outside the token
/// ever held the value of a key that passes. Each attribute is read on its own (cryptoki drops
/// what it cannot read, which must never pass for "true").
pub(crate) fn audit_key_problem(
    session: &Session,
    key: ObjectHandle,
) -> Result<Option<String>, CkError> {
    let read = |t: AttributeType| -> Result<Option<bool>, CkError> {
        let attrs = session.get_attributes(key, &[t])?;
        Ok(attrs.iter().find_map(|a| match a {
            Attribute::Local(b) => Some(*b),
            other => super::template::flag(other),
        }))
    };
    for (attribute, wanted, name) in [
        (AttributeType::Local, true, "CKA_LOCAL"),
        (AttributeType::AlwaysSensitive, true, "CKA_ALWAYS_SENSITIVE"),
        (
            AttributeType::NeverExtractable,
            true,
            "CKA_NEVER_EXTRACTABLE",
        ),
        (AttributeType::Sensitive, true, "CKA_SENSITIVE"),
        (AttributeType::Extractable, false, "CKA_EXTRACTABLE"),
    ] {
        let found = read(attribute)?;
        if found != Some(wanted) {
            return Ok(Some(format!(
                "its token object has {name} = {} (an audit key needs {wanted})",
                found.map_or("unknown".to_owned(), |b| b.to_string())
            )));
        }
    }
    Ok(None)
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

pub(crate) fn info(session: &Session, meta: &KeyMeta) -> Result<KeyInfo, CkError> {
    let active = meta.active().map(|v| v.version);
    let flags = match active {
        Some(v) => match find_version_object(session, meta, v)? {
            Some(key) => flags(session, key)?,
            None => KeyFlags::default(),
        },
        None => KeyFlags::default(),
    };
    Ok(KeyInfo {
        name: meta.name.clone(),
        kind: Some(meta.kind),
        active_version: active,
        versions: meta.versions.clone(),
        exchange: meta.exchange.clone(),
        encoding: (!meta.kind.is_asymmetric()).then_some(meta.encoding),
        algorithms: meta.algorithms.clone(),
        managed: true,
        flags,
    })
}

/// Lists managed keys (by metadata) and keys without metadata (foreign, or an interrupted
/// first import).
pub(crate) fn list(session: &Session) -> Result<Vec<KeyInfo>, CkError> {
    let mut by_name: BTreeMap<String, KeyInfo> = BTreeMap::new();
    // The highest revision of each key's metadata, as `current` reads it (a crash between
    // writing a new revision and destroying the old one leaves two objects).
    let mut revisions: BTreeMap<String, u64> = BTreeMap::new();
    for handle in session.find_objects(&find_metadata(None))? {
        if let Some(meta) = read_meta(session, handle)? {
            if revisions
                .get(&meta.name)
                .is_some_and(|r| *r >= meta.revision)
            {
                continue;
            }
            revisions.insert(meta.name.clone(), meta.revision);
            by_name.insert(meta.name.clone(), info(session, &meta)?);
        }
    }
    for class in [ObjectClass::SECRET_KEY, ObjectClass::PRIVATE_KEY] {
        for handle in session.find_objects(&[Attribute::Class(class), Attribute::Token(true)])? {
            let label = session
                .get_attributes(handle, &[AttributeType::Label])?
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Label(l) => Some(String::from_utf8_lossy(&l).into_owned()),
                    _ => None,
                })
                .unwrap_or_default();
            if by_name.contains_key(&label)
                || label
                    .strip_suffix(super::seal::LABEL_SUFFIX)
                    .is_some_and(|key| by_name.contains_key(key))
            {
                continue;
            }
            let flags = flags(session, handle)?;
            by_name.insert(
                label.clone(),
                KeyInfo {
                    name: label,
                    kind: None,
                    active_version: None,
                    versions: Vec::new(),
                    exchange: None,
                    encoding: None,
                    algorithms: Vec::new(),
                    managed: false,
                    flags,
                },
            );
        }
    }
    Ok(by_name.into_values().collect())
}

/// Destroys key objects of `name` that the committed metadata does not list as usable:
/// leftovers of an interrupted step, or versions retired/revoked whose destroy did not
/// complete. Returns how many were removed.
///
/// Run with the token's lifecycle lock held (`keys::lock`), so no other process of ours is
/// between creating a version's objects and committing the metadata that lists them. The
/// committed metadata is read here, right before anything is destroyed, never taken from the
/// caller: metadata read earlier may be older than what another writer committed since, and
/// its clean-up would destroy that writer's new version (issue 26).
pub(crate) fn reconcile(session: &Session, name: &str) -> Result<usize, CkError> {
    let committed = find_meta(session, name)?;
    if let Some(current) = &committed {
        reconcile_meta(session, current)?;
    }
    let mut removed = 0;
    for (version, handle) in version_objects(session, name)? {
        let usable = committed
            .as_ref()
            .and_then(|c| c.meta.version(version))
            .is_some_and(|v| v.state.is_usable());
        if !usable {
            session.destroy_object(handle)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(
            key = name,
            removed,
            "removed leftover key objects of an interrupted step"
        );
    }
    Ok(removed)
}
