//! Name -> handle cache, so that signing never searches the token.
//!
//! An entry is valid for one login epoch of the token. On the fast path it also holds a
//! session-object copy of the key, made in the token's reserved session (sensitive and
//! non-extractable carry over: a copy can only be stricter). Entries are replaced only by the
//! thread that saw the failing entry, so concurrent signers never throw out each other's fresh
//! entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cryptoki::object::{Attribute, ObjectHandle};

use super::{store, KeyMeta};
use crate::error::{classify, Class, Error, Result};
use crate::token::Token;

pub(crate) struct CachedKey {
    pub meta: KeyMeta,
    /// The token object: the source of truth.
    pub token_handle: ObjectHandle,
    /// What signing uses: the session copy on the fast path, else the token object.
    pub sign_handle: ObjectHandle,
    pub epoch: u64,
}

#[derive(Default)]
pub(crate) struct KeyCache {
    map: RwLock<HashMap<String, Arc<CachedKey>>>,
    loading: Mutex<()>,
}

impl KeyCache {
    pub(crate) fn get(&self, token: &Token, name: &str) -> Result<Arc<CachedKey>> {
        if let Some(entry) = self.lookup(token, name) {
            return Ok(entry);
        }
        let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = self.lookup(token, name) {
            return Ok(entry);
        }
        let entry = Arc::new(self.load(token, name)?);
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), entry.clone());
        Ok(entry)
    }

    fn lookup(&self, token: &Token, name: &str) -> Option<Arc<CachedKey>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(name).filter(|e| e.epoch == token.epoch()).cloned()
    }

    /// Drops `entry` if it is still the cached one for its name.
    pub(crate) fn invalidate(&self, entry: &Arc<CachedKey>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&entry.meta.name)
            .is_some_and(|current| Arc::ptr_eq(current, entry))
        {
            map.remove(&entry.meta.name);
        }
    }

    /// Forgets a name entirely (after it was destroyed).
    pub(crate) fn forget(&self, name: &str) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    fn load(&self, token: &Token, name: &str) -> Result<CachedKey> {
        let not_found = || Error::KeyNotFound {
            name: name.to_owned(),
            token: token.label().to_owned(),
        };
        // One recovery round for a dead session or a lost login, then give up.
        for attempt in 0..2 {
            let epoch = token.epoch();
            let lease = token.lease()?;
            let session = lease.session();
            let found = store::find_meta(session, name).and_then(|found| match found {
                Some(f) => Ok(store::find_key(session, &f.meta)?.map(|h| (f.meta, h))),
                None => Ok(None),
            });
            match found {
                Ok(Some((meta, token_handle))) => {
                    drop(lease);
                    let sign_handle = if token.fast_path {
                        session_copy(token, token_handle).unwrap_or(token_handle)
                    } else {
                        token_handle
                    };
                    return Ok(CachedKey {
                        meta,
                        token_handle,
                        sign_handle,
                        epoch,
                    });
                }
                Ok(None) => {
                    // A logout makes private objects invisible: make sure that is not why.
                    drop(lease);
                    token.ensure_login()?;
                    if attempt == 0 && token.epoch() != epoch {
                        continue;
                    }
                    return Err(not_found());
                }
                Err(e) => {
                    let class = token.recover(&e, lease, epoch)?;
                    if attempt == 1 || matches!(class, Class::Caller | Class::PinFatal) {
                        return Err(Error::from_ck(&e));
                    }
                }
            }
        }
        Err(not_found())
    }
}

/// A session-object copy of `key` owned by the reserved session; `None` where the module
/// refuses (the token object is then used directly).
fn session_copy(token: &Token, key: ObjectHandle) -> Option<ObjectHandle> {
    let copied = token.with_reserved(|reserved| {
        reserved
            .copy_object(key, &[Attribute::Token(false)])
            .map_err(|e| {
                if classify(&e) == Class::Caller {
                    tracing::debug!(error = %e, "module refused a session copy; using the token object");
                }
                Error::from_ck(&e)
            })
    });
    copied.ok()
}
