//! Importing an exchange's HMAC secret as a hardened token key that proves itself.
//!
//! Order: refuse a taken name; create the key object from the hardened template; MAC a random
//! probe in the token with every allowed algorithm and compare with the same MAC in software;
//! write the metadata object. Any failure after the key object exists destroys it, so a failed
//! import leaves nothing behind. The secret's bytes live in `Zeroizing` buffers (never in a
//! `Debug` position) and the template's copy is wiped right after `C_CreateObject`.

use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::template::{self, MIN_STORED_LEN};
use super::{store, KeyInfo, KeyMeta, KeySpec, SecretEncoding};
use crate::error::{Error, Result};
use crate::token::Token;

/// SoftHSM2 can corrupt a token when objects are created concurrently: imports are serialised
/// within the process.
static IMPORT_LOCK: Mutex<()> = Mutex::new(());

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

pub(crate) fn import_hmac(token: &Token, spec: &KeySpec, secret: SecretString) -> Result<KeyInfo> {
    spec.validate()?;
    let key_bytes = decode_secret(&secret, spec.encoding)?;
    drop(secret); // wiped by secrecy; only `key_bytes` remains
    let _serial = IMPORT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);

    let lease = token.lease()?;
    let session = lease.session();
    let ck = |e: cryptoki::error::Error| Error::from_ck(&e);
    if store::name_taken(session, &spec.name).map_err(ck)? {
        return Err(Error::KeyExists {
            name: spec.name.clone(),
            token: token.label().to_owned(),
        });
    }

    let meta = KeyMeta {
        format: 1,
        name: spec.name.clone(),
        kind: "hmac".into(),
        version: 1,
        exchange: spec.exchange.clone(),
        encoding: spec.encoding,
        secret_len: key_bytes.len(),
        stored_len: key_bytes.len().max(MIN_STORED_LEN),
        algorithms: spec.algorithms.clone(),
        created: now_rfc3339(),
    };

    let mut stored = Zeroizing::new(Vec::with_capacity(meta.stored_len));
    stored.extend_from_slice(&key_bytes);
    stored.resize(meta.stored_len, 0);
    let mut attrs =
        template::hmac_secret_key(&spec.name, meta.key_id(), stored.to_vec(), &spec.algorithms);
    let created = session.create_object(&attrs);
    template::wipe(&mut attrs);
    drop(stored);
    let key = created.map_err(ck)?;

    let finish = self_check(session, key, &key_bytes, &meta).and_then(|()| {
        let json = serde_json::to_vec(&meta)
            .map_err(|e| Error::invalid(format!("cannot encode metadata: {e}")))?;
        session
            .create_object(&template::metadata_object(&meta, json))
            .map_err(ck)
    });
    drop(key_bytes);
    if let Err(e) = finish {
        // Leave nothing behind. If even the destroy fails, say so: the name stays taken.
        if let Err(d) = session.destroy_object(key) {
            tracing::error!(key = %spec.name, error = %d, "could not remove a failed import");
        }
        return Err(e);
    }
    let flags = store::flags(session, key).map_err(ck)?;
    tracing::info!(key = %spec.name, exchange = ?meta.exchange, "key imported");
    Ok(KeyInfo {
        name: meta.name.clone(),
        kind: meta.kind.clone(),
        version: Some(meta.version),
        exchange: meta.exchange.clone(),
        encoding: Some(meta.encoding),
        algorithms: meta.algorithms.clone(),
        created: Some(meta.created.clone()),
        managed: true,
        flags,
    })
}

/// MACs a fresh random probe in the token and in software, per allowed algorithm.
fn self_check(
    session: &Session,
    key: ObjectHandle,
    key_bytes: &[u8],
    meta: &KeyMeta,
) -> Result<()> {
    let mut probe = b"hsm-custody import self-check ".to_vec();
    let random = session
        .generate_random_vec(16)
        .map_err(|e| Error::from_ck(&e))?;
    probe.extend_from_slice(&random);
    for alg in &meta.algorithms {
        let in_token =
            session
                .sign(&alg.mechanism(), key, &probe)
                .map_err(|e| Error::SelfCheckFailed {
                    name: meta.name.clone(),
                    detail: format!("the token could not MAC with {alg}: {}", Error::from_ck(&e)),
                })?;
        let in_software = Zeroizing::new(alg.software(key_bytes, &probe));
        if in_token.as_slice() != in_software.as_slice() {
            return Err(Error::SelfCheckFailed {
                name: meta.name.clone(),
                detail: format!("{alg} in the token differs from software"),
            });
        }
    }
    Ok(())
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
