//! The keys of one token without a guard: the token connection, the key handle cache and the
//! lifecycle fault hook, and the signing loop with recovery.
//!
//! [`Vault`] is crate-private and unguarded. Two callers hold it: [`crate::Custody`], which puts
//! the guard in front of every signature (`custody/sign.rs`), and the audit log, which MACs its
//! own lines with the audit key through a weak handle (`audit::TokenMac`). That handle is the
//! only way to sign with the audit key: [`Vault::sign`] refuses it to every other caller.

use std::sync::Arc;

use cryptoki::object::ObjectHandle;

use super::asym;
use super::cache::{CachedKey, KeyCache};
use super::lifecycle::{Faults, Lifecycle, Material};
use super::{KeySpec, DEFAULT_AUDIT_KEY};
use crate::alg::{HmacAlg, KeyKind, Signature};
use crate::config::Config;
use crate::error::{Class, Error, Result};
use crate::token::Token;

/// How many recoveries one operation may go through (dead session, lost login, stale handle
/// can each happen once in a row after `C_CloseAllSessions`); signing is idempotent.
const MAX_RECOVERIES: usize = 4;

/// What a signature asks of a key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// An HMAC with this algorithm.
    Hmac(HmacAlg),
    /// A signature with the key pair (the scheme follows from the key's kind).
    Asym,
}

/// Who asks for a signature: the audit log alone may use the audit key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The public signing path (behind the guard, when one is installed).
    Public,
    /// The audit log's own MAC.
    AuditLog,
}

/// A connected token and its keys; see the module docs.
///
/// `pub` only inside this private module: [`crate::audit::Connection`] hands it out, sealed.
pub struct Vault {
    pub(crate) token: Token,
    pub(crate) keys: KeyCache,
    pub(crate) faults: Faults,
}

impl Vault {
    /// Connects to the token (module, slot, login) with an empty key cache.
    pub(crate) fn connect(config: &Config) -> Result<Vault> {
        Ok(Vault {
            token: Token::connect(config)?,
            keys: KeyCache::new(config.revalidate),
            faults: Faults::default(),
        })
    }

    /// Key creation, rotation and revocation on this token.
    pub(crate) fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle {
            token: &self.token,
            cache: &self.keys,
            faults: &self.faults,
        }
    }

    /// Signs with version `version` of key `name` (its active version for `None`); `check`
    /// (the guard) runs once the version is known, before the token is asked.
    pub(crate) fn sign(
        &self,
        name: &str,
        version: Option<u32>,
        op: Op,
        data: &[u8],
        caller: Caller,
        mut check: Option<&mut dyn FnMut(u32) -> Result<()>>,
    ) -> Result<Signature> {
        let (token, keys) = (&self.token, &self.keys);
        let mut recoveries = 0;
        loop {
            let key = keys.get(token, name)?;
            if key.meta.purpose.is_some() != (caller == Caller::AuditLog) {
                return Err(refused_for(name, caller));
            }
            let v = key.meta.select(version, op)?.version;
            if let Some(check) = check.take() {
                check(v)?;
            }
            let Some(c) = key.version(v) else {
                // The metadata lists the version but its object was not found: another process
                // changed the key between our reads. Look again once.
                keys.invalidate(token, &key);
                recoveries += 1;
                if recoveries > MAX_RECOVERIES {
                    return Err(Error::KeyNotFound {
                        name: name.to_owned(),
                        token: token.label().to_owned(),
                    });
                }
                continue;
            };
            let (handle, copied): (ObjectHandle, bool) = (c.sign_handle, c.copied);
            let lease = token.lease()?;
            let result = {
                let _shared = token.sign_guard();
                match op {
                    Op::Hmac(alg) => token.sign_hmac(lease.session(), alg, handle, data),
                    Op::Asym => asym::sign(
                        lease.session(),
                        key.meta.kind,
                        handle,
                        data,
                        token.has_mechanism(cryptoki::mechanism::MechanismType::ECDSA_SHA256),
                    ),
                }
            };
            match result {
                Ok(sig) => return Ok(Signature(sig)),
                Err(err) => {
                    self.after_failed_sign(name, &err, lease, &key, copied, &mut recoveries)?
                }
            }
        }
    }

    /// A sign failed: recovers what can be recovered and returns `Ok` to sign again, or the
    /// error to give up with. Out of line and cold, so that the signing loop stays compact
    /// (its cache lines are what a sign pays for between two token calls; docs/fast-path.md).
    #[cold]
    #[inline(never)]
    fn after_failed_sign(
        &self,
        name: &str,
        err: &cryptoki::error::Error,
        lease: crate::token::pool::Lease<'_>,
        key: &Arc<CachedKey>,
        copied: bool,
        recoveries: &mut usize,
    ) -> Result<()> {
        let (token, keys) = (&self.token, &self.keys);
        if copied && crate::token::recover::copy_lost(err) {
            // Our own session copy no longer answers as the key: a login was lost and
            // regained meanwhile (SoftHSM2 then leaves the old handle pointing at an
            // emptied object). Load the key again; the session itself is fine.
            drop(lease);
            keys.invalidate(token, key);
            *recoveries += 1;
            if *recoveries > MAX_RECOVERIES {
                return Err(Error::from_ck(err));
            }
            return Ok(());
        }
        let class = token.recover(err, lease, key.epoch)?;
        if class == Class::HandleStale {
            keys.invalidate(token, key);
        }
        *recoveries += 1;
        if matches!(class, Class::Caller | Class::PinFatal) || *recoveries > MAX_RECOVERIES {
            return Err(Error::from_ck(err));
        }
        tracing::debug!(key = name, ?class, "retrying after recovery");
        Ok(())
    }

    /// Opens the audit log's key `name`: `Ok(false)` when it exists and is an audit key (made
    /// by [`Material::GenerateAudit`], its object checked on load by the key cache), `Ok(true)`
    /// when `create` and it was just generated. A key of an earlier release that was generated
    /// in the token and never extractable is marked as the audit key; any other key of that
    /// name is refused ([`Error::AuditFailed`]).
    pub(crate) fn open_audit_key(&self, name: &str, create: bool) -> Result<bool> {
        match self.keys.get(&self.token, name) {
            Ok(entry) if entry.meta.purpose.is_some() => Ok(false),
            Ok(_) => self.lifecycle().mark_audit_key(name).map(|()| false),
            Err(Error::KeyNotFound { .. }) if create => {
                let spec = KeySpec::hmac(name).algorithms(&[HmacAlg::HmacSha256]);
                self.lifecycle().create(&spec, Material::GenerateAudit)?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// The audit log's MAC: HMAC-SHA256 with its audit key, unguarded (the guard is what
    /// writes the log).
    pub(crate) fn audit_mac(&self, key: &str, data: &[u8]) -> Result<Signature> {
        let op = Op::Hmac(HmacAlg::HmacSha256);
        self.sign(key, None, op, data, Caller::AuditLog, None)
    }

    /// Runs `f` on a session of the token, for the audit log's own objects (its chain head);
    /// `write` takes this process's turn to write to the token, as key changes do (see
    /// `keys::lifecycle::write_turn`).
    pub(crate) fn audit_session<R>(
        &self,
        write: bool,
        f: impl FnOnce(&cryptoki::session::Session) -> std::result::Result<R, cryptoki::error::Error>,
    ) -> Result<R> {
        let _turn = write.then(super::lifecycle::write_turn);
        let token = &self.token;
        let epoch = token.epoch();
        let lease = token.lease()?;
        match f(lease.session()) {
            Ok(r) => Ok(r),
            Err(e) => {
                // A dead session must not go back to the pool.
                let _ = token.recover(&e, lease, epoch);
                Err(Error::from_ck(&e))
            }
        }
    }
}

/// The refusal of an audit key on the public path (it MACs the log's own lines and nothing
/// else, guard or not), or of any other key on the audit log's.
#[cold]
fn refused_for(name: &str, caller: Caller) -> Error {
    match caller {
        Caller::Public => {
            tracing::warn!(key = %name, "use of the audit key refused (rule audit-key)");
            Error::PolicyDenied {
                key: name.to_owned(),
                rule: "audit-key".into(),
                request: "outside the audit log".into(),
            }
        }
        Caller::AuditLog => super::lifecycle::not_an_audit_key(
            name,
            if name == DEFAULT_AUDIT_KEY {
                "it is not marked as the audit key"
            } else {
                "it is not an audit key"
            },
        ),
    }
}

/// Whether a key of this kind can do `op` (the rest of [`super::KeyMeta::select`]).
pub(crate) fn kind_fits(kind: KeyKind, op: Op) -> bool {
    match op {
        Op::Hmac(_) => kind == KeyKind::Hmac,
        Op::Asym => kind.is_asymmetric(),
    }
}
