//! Name -> handles cache, so that signing never searches the token.
//!
//! An entry holds a key's metadata and, for each usable version, the token object and the
//! handle signing uses. On the fast path that is a session-object copy made in the token's
//! reserved session (sensitive and non-extractable carry over: a copy can only be stricter), or,
//! where the module refuses to copy a non-modifiable key, the version's sealed copy unwrapped
//! there (see `seal`).
//! An entry is valid for one login epoch; it is also re-checked against the metadata's revision
//! at most every `revalidate` interval, so a rotation or revocation made by another process is
//! seen within that interval. Entries are replaced only by the thread that saw the failing
//! entry, so concurrent signers never throw out each other's fresh entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, ObjectHandle};

use super::{seal, store, KeyMeta, KeyPurpose};
use crate::error::{Class, Error, Result};
use crate::token::Token;

pub(crate) struct CachedVersion {
    pub version: u32,
    /// The token object: the source of truth.
    pub token_handle: ObjectHandle,
    /// What signing uses: the session copy on the fast path, else the token object.
    pub sign_handle: ObjectHandle,
    /// Whether `sign_handle` is a session copy we own.
    pub copied: bool,
}

pub(crate) struct CachedKey {
    pub meta: KeyMeta,
    pub meta_handle: ObjectHandle,
    pub versions: Vec<CachedVersion>,
    pub epoch: u64,
    checked_at: AtomicU64,
}

impl CachedKey {
    pub(crate) fn version(&self, n: u32) -> Option<&CachedVersion> {
        self.versions.iter().find(|v| v.version == n)
    }
}

pub(crate) struct KeyCache {
    /// Keyed by name with foldhash: the names are the operator's own (no flooding to fear), and
    /// a lookup runs on every sign, between two token calls.
    map: RwLock<HashMap<String, Arc<CachedKey>, foldhash::fast::RandomState>>,
    loading: Mutex<()>,
    base: Instant,
    revalidate: Duration,
}

impl KeyCache {
    pub(crate) fn new(revalidate: Duration) -> Self {
        KeyCache {
            map: RwLock::default(),
            loading: Mutex::new(()),
            base: Instant::now(),
            revalidate,
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    pub(crate) fn get(&self, token: &Token, name: &str) -> Result<Arc<CachedKey>> {
        match self.lookup(token, name) {
            Some(entry)
                if self
                    .now_ms()
                    .saturating_sub(entry.checked_at.load(Ordering::Relaxed))
                    < self.revalidate.as_millis() as u64 =>
            {
                Ok(entry)
            }
            cached => self.get_slow(token, name, cached),
        }
    }

    /// `get` when the entry is missing or due for its revision check: out of line and cold, so
    /// that the lookup every sign makes stays a few cache lines (docs/fast-path.md).
    #[cold]
    #[inline(never)]
    fn get_slow(
        &self,
        token: &Token,
        name: &str,
        cached: Option<Arc<CachedKey>>,
    ) -> Result<Arc<CachedKey>> {
        if let Some(entry) = cached {
            if self.still_current(token, &entry) {
                return Ok(entry);
            }
            self.invalidate(token, &entry);
        }
        let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = self.lookup(token, name) {
            return Ok(entry);
        }
        let entry = Arc::new(self.load(token, name)?);
        let old = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), entry.clone());
        if let Some(old) = old {
            destroy_copies(token, &old);
        }
        Ok(entry)
    }

    fn lookup(&self, token: &Token, name: &str) -> Option<Arc<CachedKey>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(name).filter(|e| e.epoch == token.epoch()).cloned()
    }

    /// Re-reads the metadata's revision (one `C_GetAttributeValue` on a known handle).
    fn still_current(&self, token: &Token, entry: &CachedKey) -> bool {
        let Ok(lease) = token.lease() else {
            return false;
        };
        match store::read_meta(lease.session(), entry.meta_handle) {
            Ok(Some(m)) if m.revision == entry.meta.revision => {
                entry.checked_at.store(self.now_ms(), Ordering::Relaxed);
                true
            }
            Ok(_) => false,
            Err(e) => {
                // A dead session must not go back to the pool.
                let _ = token.recover(&e, lease, entry.epoch);
                false
            }
        }
    }

    /// Drops `entry` if it is still the cached one for its name, destroying its session copies.
    pub(crate) fn invalidate(&self, token: &Token, entry: &Arc<CachedKey>) {
        let removed = {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            if map
                .get(&entry.meta.name)
                .is_some_and(|current| Arc::ptr_eq(current, entry))
            {
                map.remove(&entry.meta.name)
            } else {
                None
            }
        };
        if let Some(old) = removed {
            destroy_copies(token, &old);
        }
    }

    /// Forgets a name entirely (after a lifecycle change), destroying its session copies at
    /// once so that a revoked version cannot sign from this process either.
    pub(crate) fn forget(&self, token: &Token, name: &str) {
        let removed = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Some(old) = removed {
            destroy_copies(token, &old);
        }
    }

    fn load(&self, token: &Token, name: &str) -> Result<CachedKey> {
        let not_found = || Error::KeyNotFound {
            name: name.to_owned(),
            token: token.label().to_owned(),
        };
        // Recovery rounds for a dead session or a lost login, then give up.
        const ATTEMPTS: usize = 3;
        for attempt in 0..ATTEMPTS {
            let epoch = token.epoch();
            let lease = token.lease()?;
            let session = lease.session();
            let found = store::find_meta(session, name).and_then(|found| match found {
                Some(f) => {
                    let mut handles = Vec::new();
                    let mut problem = None;
                    for v in f.meta.versions.iter().filter(|v| v.state.is_usable()) {
                        if let Some(h) = store::find_version_object(session, &f.meta, v.version)? {
                            // The audit key is checked on the very object that will sign.
                            if f.meta.purpose == Some(KeyPurpose::Audit) && problem.is_none() {
                                problem = store::audit_key_problem(session, h)?;
                            }
                            handles.push((v.version, h));
                        }
                    }
                    Ok(Some((f, handles, problem)))
                }
                None => Ok(None),
            });
            match found {
                Ok(Some((_, _, Some(problem)))) => {
                    return Err(super::lifecycle::not_an_audit_key(name, &problem));
                }
                Ok(Some((found, handles, None))) => {
                    drop(lease);
                    let versions = handles
                        .into_iter()
                        .map(|(version, token_handle)| {
                            // A plain copy where the module allows one, else the sealed copy.
                            let sealed = || {
                                let blob = found.meta.seals.get(&version)?;
                                seal::open(
                                    token,
                                    name,
                                    version,
                                    blob,
                                    &found.meta.algorithms,
                                    token_handle,
                                )
                            };
                            let copy = token
                                .fast_path
                                .then(|| session_copy(token, token_handle).or_else(sealed))
                                .flatten();
                            CachedVersion {
                                version,
                                token_handle,
                                sign_handle: copy.unwrap_or(token_handle),
                                copied: copy.is_some(),
                            }
                        })
                        .collect();
                    return Ok(CachedKey {
                        meta: found.meta,
                        meta_handle: found.handle,
                        versions,
                        epoch,
                        checked_at: AtomicU64::new(self.now_ms()),
                    });
                }
                Ok(None) => {
                    // A logout makes private objects invisible: make sure that is not why.
                    drop(lease);
                    token.ensure_login()?;
                    // Logged in again since this attempt began (by us or another thread): the
                    // find may have run logged out, so look again while attempts remain. (Only
                    // the first attempt used to: a logout landing in the second, after a failed
                    // first, reported the key missing.)
                    if attempt + 1 < ATTEMPTS && token.epoch() != epoch {
                        continue;
                    }
                    return Err(not_found());
                }
                Err(e) => {
                    let class = token.recover(&e, lease, epoch)?;
                    if attempt + 1 == ATTEMPTS || matches!(class, Class::Caller | Class::PinFatal) {
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
    token
        .with_reserved(|reserved| {
            reserved
                .copy_object(key, &[Attribute::Token(false)])
                .map_err(|e| Error::from_ck(&e))
        })
        .map_err(|e| tracing::debug!(error = %e, "no session copy; signing with the token object"))
        .ok()
}

/// Destroys an entry's session copies if they belong to the current reserved session (after a
/// new login epoch they died with the old session; their handles are not ours any more).
fn destroy_copies(token: &Token, entry: &CachedKey) {
    if entry.epoch != token.epoch() || !entry.versions.iter().any(|v| v.copied) {
        return;
    }
    let _exclusive = token.destroy_guard();
    for v in entry.versions.iter().filter(|v| v.copied) {
        let _ = token.with_reserved(|reserved| {
            reserved
                .destroy_object(v.sign_handle)
                .map_err(|e| Error::from_ck(&e))
        });
    }
}
