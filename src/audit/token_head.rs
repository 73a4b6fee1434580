//! The chain head kept in the token: a private `CKO_DATA` object per chain (`CKA_APPLICATION`
//! `hsm-custody-audit-head`, `CKA_LABEL` the chain id) holding the `seq` and MAC of the last
//! durable line. Only a process logged in to the token can read or write it, so rolling back
//! the log and its head file together is caught by comparing them with it (see
//! `docs/guardrails.md` for the rollbacks that remain possible).
//!
//! Written at most once per second by the writer (and at open, rotation, sync and shutdown),
//! as a new object followed by the removal of the old one (SoftHSM2 keeps a data object's
//! `CKA_VALUE` read-only); a reader takes the highest `seq` among the objects of a chain.

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use serde::{Deserialize, Serialize};

use super::{decode_mac, MAC_LEN};
use crate::error::Result;
use crate::keys::Vault;

const APPLICATION: &[u8] = b"hsm-custody-audit-head";

/// A chain head as the token keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenHead {
    /// The chain's id (see `super::chain_id`).
    pub chain: String,
    /// The active log file's path when it was written (to find the chain of a log whose files
    /// are gone).
    pub path: String,
    pub seq: u64,
    pub mac: [u8; MAC_LEN],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: u32,
    chain: String,
    path: String,
    seq: u64,
    mac: String,
}

fn search(label: Option<&str>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Application(APPLICATION.to_vec()),
    ];
    if let Some(label) = label {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    t
}

fn read_one(
    session: &Session,
    handle: ObjectHandle,
) -> std::result::Result<Option<TokenHead>, cryptoki::error::Error> {
    let attrs = session.get_attributes(handle, &[AttributeType::Value])?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Value(v) => {
            let raw: Raw = serde_json::from_slice(&v).ok()?;
            (raw.version == 1).then_some(())?;
            Some(TokenHead {
                chain: raw.chain,
                path: raw.path,
                seq: raw.seq,
                mac: decode_mac(&raw.mac)?,
            })
        }
        _ => None,
    }))
}

/// Every chain head object, with its handle.
fn all(
    session: &Session,
    chain: Option<&str>,
) -> std::result::Result<Vec<(ObjectHandle, TokenHead)>, cryptoki::error::Error> {
    let mut out = Vec::new();
    for handle in session.find_objects(&search(chain))? {
        if let Some(head) = read_one(session, handle)? {
            if chain.is_none_or(|c| c == head.chain) {
                out.push((handle, head));
            }
        }
    }
    Ok(out)
}

/// The token's head of chain `chain`, if it has one.
pub(crate) fn read(vault: &Vault, chain: &str) -> Result<Option<TokenHead>> {
    vault.audit_session(false, |session| {
        Ok(all(session, Some(chain))?
            .into_iter()
            .map(|(_, h)| h)
            .max_by_key(|h| h.seq))
    })
}

/// The newest head the token keeps for a log at `path` (any chain).
pub(crate) fn for_path(vault: &Vault, path: &str) -> Result<Option<TokenHead>> {
    vault.audit_session(false, |session| {
        Ok(all(session, None)?
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| h.path == path)
            .max_by_key(|h| h.seq))
    })
}

/// Saves `head`: a new object, then the chain's older ones go. Never moves a chain back: an
/// object with a higher `seq` already there stays, and this one is not written. Returns the
/// new object's handle, for [`write_after`].
pub(crate) fn write(vault: &Vault, head: &TokenHead) -> Result<Option<ObjectHandle>> {
    let value = encode(head)?;
    vault.audit_session(true, |session| {
        let old = all(session, Some(&head.chain))?;
        if old.iter().any(|(_, h)| h.seq >= head.seq) {
            return Ok(None);
        }
        let new = session.create_object(&template(head, value))?;
        for (handle, _) in old {
            session.destroy_object(handle)?;
        }
        Ok(Some(new))
    })
}

/// [`write`] by the chain's one writer, which wrote the chain's head object `last` itself
/// (and holds the log's lock, so no other process writes this chain): a new object, then
/// `last` goes, without searching the token. A search reads every object of the token, which
/// on SoftHSM2's file store opens and locks each object's file: with 1,000 keys that held
/// up the signatures of the whole process for milliseconds every second (BENCHMARKS.md,
/// issue 29, session 16). `None` when `last` could not be destroyed (gone, or not ours any
/// more): the new object is written all the same, and the next write goes through [`write`],
/// whose search removes whatever is left.
pub(crate) fn write_after(
    vault: &Vault,
    head: &TokenHead,
    last: ObjectHandle,
) -> Result<Option<ObjectHandle>> {
    let value = encode(head)?;
    vault.audit_session(true, |session| {
        let new = session.create_object(&template(head, value))?;
        Ok(session.destroy_object(last).ok().map(|()| new))
    })
}

fn encode(head: &TokenHead) -> Result<Vec<u8>> {
    serde_json::to_vec(&Raw {
        version: 1,
        chain: head.chain.clone(),
        path: head.path.clone(),
        seq: head.seq,
        mac: hex::encode(head.mac),
    })
    .map_err(|e| crate::error::Error::AuditFailed(format!("cannot encode the chain head: {e}")))
}

fn template(head: &TokenHead, value: Vec<u8>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Modifiable(false),
        Attribute::Label(head.chain.as_bytes().to_vec()),
        Attribute::Application(APPLICATION.to_vec()),
        Attribute::Value(value),
    ]
}
