//! The public handle: [`Custody`] and [`KeyRef`].

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use secrecy::SecretString;

use crate::config::Config;
use crate::error::{Class, Error, Result};
use crate::guard::{Guard, LifecycleEvent, RequestContext, SignContext};
use crate::keys::cache::{CachedKey, KeyCache};
use crate::keys::lifecycle::{Faults, Lifecycle, Material};
use crate::keys::{asym, store, KeyInfo, KeyKind, KeySpec, VersionInfo, VersionState};
use crate::sign::{HmacAlg, Mac, Signature};
use crate::token::pool::PoolStats;
use crate::token::{Token, TokenInfo};

mod exchange;

/// How many recoveries one operation may go through (dead session, lost login, stale handle
/// can each happen once in a row after `C_CloseAllSessions`); signing is idempotent.
const MAX_RECOVERIES: usize = 4;

/// A connection to one token: module, login, session pool and key cache.
///
/// Cheap to clone (an `Arc`), `Send + Sync`: share one per process among all threads.
///
/// ```no_run
/// use hsm_custody::{Config, Custody, HmacAlg, KeySpec};
/// use secrecy::SecretString;
///
/// # fn main() -> Result<(), hsm_custody::Error> {
/// let custody = Custody::connect(Config::from_env()?)?;
/// let secret = SecretString::from("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j");
/// custody.import_hmac_secret(KeySpec::hmac("binance-main").exchange("binance"), secret)?;
/// let mac = custody.key("binance-main")?.hmac(HmacAlg::HmacSha256, b"symbol=LTCBTC")?;
/// println!("{}", mac.to_hex());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Custody {
    inner: Arc<Inner>,
}

struct Inner {
    token: Token,
    keys: KeyCache,
    faults: Faults,
    rotation_age_days: u32,
    /// Shared with every exchange signer this `Custody` makes (no copy per signer: the agent
    /// makes one per request).
    limits: Arc<crate::exchanges::Limits>,
    guard: OnceLock<Arc<dyn Guard>>,
}

impl fmt::Debug for Custody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custody")
            .field("token", &self.inner.token.label())
            .finish_non_exhaustive()
    }
}

/// What a new version of a key is made of (see [`Custody::rotate_begin`]).
pub enum NewVersion {
    /// A new HMAC secret from the exchange, as shown to the user.
    Hmac(SecretString),
    /// A new key pair generated in the token, of the key's kind.
    Generate,
    /// A new Ed25519 private key, base64 of its 32-byte seed (or 64 bytes seed||public).
    Ed25519Seed(SecretString),
}

impl fmt::Debug for NewVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NewVersion::Hmac(_) => "NewVersion::Hmac([REDACTED])",
            NewVersion::Generate => "NewVersion::Generate",
            NewVersion::Ed25519Seed(_) => "NewVersion::Ed25519Seed([REDACTED])",
        })
    }
}

#[derive(Clone, Copy)]
enum Op {
    Hmac(HmacAlg),
    Asym,
}

impl Custody {
    /// Loads the module (once per process), finds the token by label and logs in.
    ///
    /// # Errors
    /// [`Error::ModuleLoad`], [`Error::TokenNotFound`], [`Error::PinIncorrect`] (after exactly
    /// one `C_Login`; never retried), [`Error::PinLocked`], [`Error::Config`] without a PIN,
    /// [`Error::NotCustodyGrade`] when the module lets a non-extractable key out and the
    /// configuration does not opt in to that: the first connect in a process to a module and
    /// token runs `doctor`'s non-extractability probe on throwaway session keys (destroyed
    /// after) and caches the verdict.
    pub fn connect(config: Config) -> Result<Custody> {
        let token = Token::connect(&config)?;
        crate::token::probe::custody_grade_check(&token, &config)?;
        Ok(Custody {
            inner: Arc::new(Inner {
                token,
                keys: KeyCache::new(config.revalidate),
                faults: Faults::default(),
                rotation_age_days: config.rotation_age_days,
                limits: Arc::new(config.limits.clone()),
                guard: OnceLock::new(),
            }),
        })
    }

    /// Connects with guard rails installed from the start, so that a refused login is reported
    /// to the guard too.
    ///
    /// # Errors
    /// As [`Custody::connect`].
    pub fn connect_guarded(config: Config, guard: Arc<dyn Guard>) -> Result<Custody> {
        let label = config.token.clone();
        match Custody::connect(config) {
            Ok(custody) => {
                custody.set_guard(guard)?;
                Ok(custody)
            }
            Err(e) => {
                if matches!(e, Error::PinIncorrect { .. } | Error::PinLocked { .. }) {
                    guard.lifecycle(&LifecycleEvent::LoginFailed {
                        token: label,
                        reason: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    /// The limits exchange signers made by this `Custody` apply to caller-given time inputs and
    /// hosts ([`Config::signing_limits`]).
    pub fn signing_limits(&self) -> &crate::exchanges::Limits {
        &self.inner.limits
    }

    /// The limits, shared (see [`Custody::signing_limits`]).
    pub(crate) fn shared_signing_limits(&self) -> Arc<crate::exchanges::Limits> {
        Arc::clone(&self.inner.limits)
    }

    /// Installs guard rails (policy, rate limits, audit) for every signature and lifecycle
    /// change made through this `Custody` and its clones. Once only.
    ///
    /// # Errors
    /// [`Error::Misuse`] when a guard is installed already.
    pub fn set_guard(&self, guard: Arc<dyn Guard>) -> Result<()> {
        self.inner
            .guard
            .set(guard)
            .map_err(|_| Error::Misuse("a guard is installed already".into()))
    }

    /// Creates a key (version 1) and reports it to the guard.
    fn create(&self, spec: &KeySpec, material: Material) -> Result<KeyInfo> {
        let info = self.lifecycle().create(spec, material)?;
        self.report(LifecycleEvent::Created {
            key: info.name.clone(),
            kind: info.kind.clone(),
        });
        Ok(info)
    }

    /// A handle that does not keep this `Custody` alive (the audit log's: the guard it serves is
    /// held by the `Custody`, so a strong handle would keep both forever).
    pub(crate) fn downgrade(&self) -> WeakCustody {
        WeakCustody(Arc::downgrade(&self.inner))
    }

    /// Opens the audit log's key `name`: `Ok(false)` when it exists and is an audit key (made
    /// by [`Material::GenerateAudit`], its object checked on load by the key cache), `Ok(true)`
    /// when `create` and it was just generated. A key of an earlier release that was generated
    /// in the token and never extractable is marked as the audit key; any other key of that
    /// name is refused ([`Error::AuditFailed`]).
    pub(crate) fn open_audit_key(&self, name: &str, create: bool) -> Result<bool> {
        match self.inner.keys.get(&self.inner.token, name) {
            Ok(entry) if entry.meta.purpose.is_some() => Ok(false),
            Ok(_) => self.lifecycle().mark_audit_key(name).map(|()| false),
            Err(Error::KeyNotFound { .. }) if create => {
                let spec = KeySpec::hmac(name).algorithms(&[HmacAlg::HmacSha256]);
                self.create(&spec, Material::GenerateAudit)?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `f` on a session of the token, for the audit log's own objects (its chain head);
    /// `write` takes this process's turn to write to the token, as key changes do (see
    /// `keys::lifecycle::write_turn`).
    pub(crate) fn audit_session<R>(
        &self,
        write: bool,
        f: impl FnOnce(&cryptoki::session::Session) -> std::result::Result<R, cryptoki::error::Error>,
    ) -> Result<R> {
        let _turn = write.then(crate::keys::lifecycle::write_turn);
        let token = &self.inner.token;
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

    fn report(&self, event: LifecycleEvent) {
        if let Some(guard) = self.inner.guard.get() {
            guard.lifecycle(&event);
        }
    }

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle {
            token: &self.inner.token,
            cache: &self.inner.keys,
            faults: &self.inner.faults,
        }
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        self.inner.token.label()
    }

    /// Facts about the token (model, serial, PIN counters).
    ///
    /// # Errors
    /// The token cannot be queried.
    pub fn token_info(&self) -> Result<TokenInfo> {
        self.inner.token.info()
    }

    /// Pool counters, for monitoring.
    pub fn stats(&self) -> PoolStats {
        self.inner.token.stats()
    }

    /// The age in days after which `key list` flags an active version for rotation.
    pub fn rotation_age_days(&self) -> u32 {
        self.inner.rotation_age_days
    }

    /// Imports an exchange's HMAC secret as version 1 of a new hardened token key and proves it
    /// (see [`KeySpec`]). The secret is wiped when this returns, whatever the outcome.
    ///
    /// # Errors
    /// [`Error::KeyExists`] if the name is taken (nothing is overwritten),
    /// [`Error::InvalidInput`] for a bad name or secret, [`Error::SelfCheckFailed`] if the
    /// token's MAC differs from software (the object is destroyed).
    ///
    /// # Security
    /// The secret goes into one `C_CreateObject` template, which is wiped after the call.
    pub fn import_hmac_secret(&self, spec: KeySpec, secret: SecretString) -> Result<KeyInfo> {
        self.create(&narrowed(spec), Material::Hmac(secret))
    }

    /// Takes into custody an HMAC key that another tool provisioned in the token (a TPM's
    /// `tpm2_ptool import`, an HSM vendor's key ceremony): version 1 of a new managed key
    /// named `spec.name`, bound to `spec.exchange` with `spec.algorithms`. The token must hold
    /// exactly one secret key labelled `spec.name` (with an id of its own) and no managed key of
    /// that name. The crate never sees the value: it checks the key is sensitive,
    /// non-extractable and not usable to encrypt, decrypt, wrap, unwrap or derive, and proves
    /// in the token that it MACs and verifies with every algorithm, before writing metadata.
    /// The object itself is not changed. Validity dates in `spec` are enforced by the crate.
    ///
    /// # Errors
    /// [`Error::KeyExists`] for a managed key of that name; [`Error::InvalidInput`] when no
    /// such key, several, or one that is not hardened (the message names the attributes);
    /// [`Error::SelfCheckFailed`] when it does not MAC as asked; token failures.
    pub fn adopt_hmac_key(&self, spec: KeySpec) -> Result<KeyInfo> {
        self.create(&spec, Material::Adopt)
    }

    /// Generates an HMAC key inside the token (its value never exists outside), as version 1 of
    /// a new key: for keys the crate itself needs, such as the audit chain's MAC key.
    ///
    /// # Errors
    /// [`Error::KeyExists`], token failures.
    pub fn generate_hmac_key(&self, spec: KeySpec) -> Result<KeyInfo> {
        self.create(&spec, Material::GenerateHmac)
    }

    /// Generates a key pair in the token as version 1 of a new key; only the public key can be
    /// read out ([`KeyRef::public_key_pem`]).
    ///
    /// # Errors
    /// [`Error::KeyExists`], [`Error::MechanismUnsupported`] when the module cannot make or use
    /// such keys, [`Error::SelfCheckFailed`].
    pub fn generate_key(&self, spec: KeySpec, kind: KeyKind) -> Result<KeyInfo> {
        if kind == KeyKind::Hmac {
            return Err(Error::invalid(
                "HMAC keys are imported from the exchange, not generated",
            ));
        }
        self.create(&spec, Material::Generate(kind))
    }

    /// Imports an Ed25519 private key that an exchange issued (Coinbase CDP EdDSA keys: base64
    /// of 64 bytes seed||public; or base64 of the 32-byte seed) as version 1 of a new key.
    ///
    /// # Errors
    /// As [`Custody::generate_key`], plus [`Error::InvalidInput`] for a malformed key.
    ///
    /// # Security
    /// The seed is wiped after the one `C_CreateObject` that stores it.
    pub fn import_ed25519_key(&self, spec: KeySpec, seed_base64: SecretString) -> Result<KeyInfo> {
        self.create(&spec, Material::Ed25519Seed(seed_base64))
    }

    /// `rotate begin`: adds a new *pending* version to the key named in `spec` (whose validity
    /// dates apply to the new version). The active version keeps signing; the pending one signs
    /// only when named ([`KeyRef::version`]) until promoted.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::Lifecycle`] when a pending version exists already,
    /// [`Error::WrongKeyKind`], and the import/generation errors.
    pub fn rotate_begin(&self, spec: KeySpec, new: NewVersion) -> Result<VersionInfo> {
        let name = spec.name.clone();
        let kind = self.key_info(&name)?.kind.parse::<KeyKind>()?;
        let material = match new {
            NewVersion::Hmac(secret) => Material::Hmac(secret),
            NewVersion::Generate => Material::Generate(kind),
            NewVersion::Ed25519Seed(seed) => Material::Ed25519Seed(seed),
        };
        let v = self.lifecycle().begin(&name, &spec, material)?;
        self.report(LifecycleEvent::RotationBegun {
            key: name,
            version: v.version,
        });
        Ok(v)
    }

    /// `rotate promote`: the pending version becomes active; the active one stays usable as
    /// *previous* until retired.
    ///
    /// # Errors
    /// [`Error::Lifecycle`] when there is no pending version.
    pub fn rotate_promote(&self, name: &str) -> Result<VersionInfo> {
        let v = self.lifecycle().promote(name)?;
        self.report(LifecycleEvent::Promoted {
            key: name.to_owned(),
            version: v.version,
        });
        Ok(v)
    }

    /// `rotate retire`: destroys the previous version(s) (all, or the one given).
    ///
    /// # Errors
    /// [`Error::Lifecycle`] when there is nothing to retire or the version is not previous.
    pub fn rotate_retire(&self, name: &str, version: Option<u32>) -> Result<Vec<u32>> {
        let versions = self.lifecycle().retire(name, version)?;
        self.report(LifecycleEvent::Retired {
            key: name.to_owned(),
            versions: versions.clone(),
        });
        Ok(versions)
    }

    /// Revokes a version (or, with `None`, every usable version) at once: the token objects are
    /// destroyed and signing with them fails with [`Error::KeyRevoked`]. Version numbers are
    /// never reused.
    ///
    /// # Errors
    /// [`Error::VersionNotFound`], [`Error::Lifecycle`] when already revoked.
    pub fn revoke(&self, name: &str, version: Option<u32>) -> Result<Vec<u32>> {
        let versions = self.lifecycle().revoke(name, version)?;
        self.report(LifecycleEvent::Revoked {
            key: name.to_owned(),
            versions: versions.clone(),
        });
        Ok(versions)
    }

    /// A key's metadata, versions and flags.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], token failures.
    pub fn key_info(&self, name: &str) -> Result<KeyInfo> {
        self.lifecycle().info(name)
    }

    /// Test hook: the `step`-th PKCS#11 write of each following lifecycle operation fails as if
    /// the process died right there (no clean-up runs). `None` turns it off. For crash-safety
    /// tests only.
    #[doc(hidden)]
    pub fn danger_fail_lifecycle_after(&self, step: Option<u32>) {
        self.inner.faults.set(step);
    }

    /// A handle to the key `name` (its active version), with its token handles cached.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], or token failures.
    pub fn key(&self, name: &str) -> Result<KeyRef> {
        let entry = self.inner.keys.get(&self.inner.token, name)?;
        Ok(KeyRef {
            custody: self.clone(),
            name: Arc::from(name),
            version: None,
            exchange: entry.meta.exchange.as_deref().map(Arc::from),
            kind: entry.meta.kind,
            credentials: credentials_of(&entry.meta, None),
        })
    }

    /// Whether HMAC signs go into the token one at a time while no more threads sign than there
    /// are cores ([`Config::serialize_hmac`]; by default on SoftHSM2 only).
    pub fn serializes_hmac(&self) -> bool {
        self.inner.token.hmac_serial.is_some()
    }

    /// Whether signing with the active version of key `name` takes the fast path: a session
    /// object in the token (a copy of the key, or its sealed copy where the module refuses to
    /// copy a non-modifiable key) rather than the token object itself. `false` also when the
    /// fast path is turned off ([`Config::fast_path`]) or the module allows neither.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::NoActiveVersion`], token failures.
    pub fn fast_path_active(&self, name: &str) -> Result<bool> {
        let entry = self.inner.keys.get(&self.inner.token, name)?;
        let active = entry
            .meta
            .active()
            .ok_or_else(|| Error::NoActiveVersion {
                name: name.to_owned(),
            })?
            .version;
        Ok(entry.version(active).is_some_and(|v| v.copied))
    }

    /// Computes an HMAC with the active version of key `name` in the token.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AlgorithmNotAllowed`], [`Error::KeyExpired`],
    /// [`Error::NoActiveVersion`], [`Error::PoolTimeout`], or a token failure that survived
    /// recovery.
    pub fn sign_hmac(&self, name: &str, alg: HmacAlg, data: &[u8]) -> Result<Signature> {
        self.sign_with(name, None, Op::Hmac(alg), data, &RequestContext::default())
    }

    fn sign_with(
        &self,
        name: &str,
        version: Option<u32>,
        op: Op,
        data: &[u8],
        request: &RequestContext<'_>,
    ) -> Result<Signature> {
        // Only a validated exchange request (the crate's signers attach its reach) is judged as
        // one; any other context is a raw signature.
        let exchange = request.reach.and(request.exchange);
        let context = |version: u32| SignContext {
            key: name,
            version,
            exchange,
            method: request.method,
            path: request.path,
            client: request.client,
            reach: request.reach,
            message: data,
        };
        let Some(guard) = self.inner.guard.get() else {
            if exchange.is_none() {
                return self.sign_unguarded(name, version, op, data, None);
            }
            // Secure by default: with no guard rails the withdrawal guard still applies.
            let mut check = |v: u32| -> Result<()> {
                crate::policy::default_judge(&context(v))
                    .map_err(|refusal| refusal.into_error(name))
            };
            return self.sign_unguarded(name, version, op, data, Some(&mut check));
        };
        let builtin = exchange.is_some() && !guard.judges_withdrawals();
        let mut checked = None;
        let mut check = |v: u32| -> Result<()> {
            if builtin {
                crate::policy::default_judge(&context(v))
                    .map_err(|refusal| refusal.into_error(name))?;
            }
            guard.check(&context(v))?;
            checked = Some(v);
            Ok(())
        };
        let result = self.sign_unguarded(name, version, op, data, Some(&mut check));
        if let Some(v) = checked {
            guard.signed(&context(v), result.as_ref().map(|_| ()));
        }
        if let Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) = &result {
            guard.lifecycle(&LifecycleEvent::LoginFailed {
                token: self.token_label().to_owned(),
                reason: e.to_string(),
            });
        }
        result
    }

    /// Signs; `check` (the guard) runs once the version is known, before the token is asked.
    fn sign_unguarded(
        &self,
        name: &str,
        version: Option<u32>,
        op: Op,
        data: &[u8],
        mut check: Option<&mut dyn FnMut(u32) -> Result<()>>,
    ) -> Result<Signature> {
        let (token, keys) = (&self.inner.token, &self.inner.keys);
        let mut recoveries = 0;
        loop {
            let key = keys.get(token, name)?;
            let (v, handle) = self.select(&key, version, op)?;
            if let Some(check) = check.take() {
                check(v)?;
            }
            let Some((handle, copied)) = handle else {
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
        let (token, keys) = (&self.inner.token, &self.inner.keys);
        if copied && copy_lost(err) {
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

    /// Picks the version to sign with and checks state, validity, kind and algorithm; the
    /// handle comes with whether it is a session copy of ours.
    fn select(
        &self,
        key: &CachedKey,
        version: Option<u32>,
        op: Op,
    ) -> Result<(u32, Option<(cryptoki::object::ObjectHandle, bool)>)> {
        let name = &key.meta.name;
        if key.meta.purpose.is_some() && !crate::audit::in_audit_mac() {
            // The audit key MACs the log's own lines and nothing else, guard or not.
            tracing::warn!(key = %name, "use of the audit key refused (rule audit-key)");
            return Err(Error::PolicyDenied {
                key: name.clone(),
                rule: "audit-key".into(),
            });
        }
        let v = match version {
            None => key
                .meta
                .active()
                .ok_or_else(|| Error::NoActiveVersion { name: name.clone() })?,
            Some(n) => key.meta.version(n).ok_or_else(|| Error::VersionNotFound {
                name: name.clone(),
                version: n,
            })?,
        };
        match v.state {
            VersionState::Revoked | VersionState::Retired => {
                return Err(Error::KeyRevoked {
                    name: name.clone(),
                    version: v.version,
                    state: v.state.name(),
                })
            }
            _ => {}
        }
        if v.not_before.is_some() || v.not_after.is_some() {
            let today = time::OffsetDateTime::now_utc().date();
            if let Some(nb) = v.not_before.filter(|nb| today < *nb) {
                return Err(Error::KeyNotYetValid {
                    name: name.clone(),
                    version: v.version,
                    not_before: nb,
                });
            }
            if let Some(na) = v.not_after.filter(|na| today > *na) {
                return Err(Error::KeyExpired {
                    name: name.clone(),
                    version: v.version,
                    not_after: na,
                });
            }
        }
        match op {
            Op::Hmac(alg) => {
                if key.meta.kind != KeyKind::Hmac {
                    return Err(Error::WrongKeyKind {
                        name: name.clone(),
                        kind: key.meta.kind.name().into(),
                        wanted: "an HMAC key".into(),
                    });
                }
                if !key.meta.algorithms.contains(&alg) {
                    return Err(Error::AlgorithmNotAllowed {
                        key: name.clone(),
                        alg: alg.name().into(),
                        reason: "the key was imported for other algorithms".into(),
                    });
                }
            }
            Op::Asym => {
                if !key.meta.kind.is_asymmetric() {
                    return Err(Error::WrongKeyKind {
                        name: name.clone(),
                        kind: key.meta.kind.name().into(),
                        wanted: "an asymmetric key".into(),
                    });
                }
            }
        }
        Ok((
            v.version,
            key.version(v.version).map(|c| (c.sign_handle, c.copied)),
        ))
    }

    /// Every key in the token: managed keys with their versions, and keys this crate did not
    /// create (kind `foreign`). Values are never read.
    ///
    /// # Errors
    /// Token failures.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let lease = self.inner.token.lease()?;
        store::list(lease.session()).map_err(|e| Error::from_ck(&e))
    }

    /// Asks the token for the active version's `CKA_VALUE` and returns the token's refusal
    /// (for example `CKR_ATTRIBUTE_SENSITIVE`). The bytes are never returned.
    ///
    /// # Errors
    /// [`Error::SelfCheckFailed`] if the token *did* reveal the value (the module is not fit
    /// for custody), [`Error::KeyNotFound`], [`Error::NoActiveVersion`].
    pub fn value_read_refusal(&self, name: &str) -> Result<String> {
        let key = self.inner.keys.get(&self.inner.token, name)?;
        let active = key
            .meta
            .active()
            .and_then(|v| key.version(v.version))
            .ok_or_else(|| Error::NoActiveVersion {
                name: name.to_owned(),
            })?;
        let lease = self.inner.token.lease()?;
        store::value_read_refusal(lease.session(), active.token_handle, name)
    }

    fn public_key_pem(&self, name: &str, version: Option<u32>) -> Result<String> {
        let key = self.inner.keys.get(&self.inner.token, name)?;
        if !key.meta.kind.is_asymmetric() {
            return Err(Error::WrongKeyKind {
                name: name.to_owned(),
                kind: key.meta.kind.name().into(),
                wanted: "an asymmetric key (HMAC keys have no public part)".into(),
            });
        }
        let v = match version {
            Some(n) => n,
            None => key
                .meta
                .active()
                .map(|v| v.version)
                .ok_or_else(|| Error::NoActiveVersion {
                    name: name.to_owned(),
                })?,
        };
        let lease = self.inner.token.lease()?;
        let public = store::find_public_object(lease.session(), name, v)
            .map_err(|e| Error::from_ck(&e))?
            .ok_or(Error::VersionNotFound {
                name: name.to_owned(),
                version: v,
            })?;
        asym::read_public(lease.session(), key.meta.kind, public)?.to_pem()
    }
}

/// A [`Custody`] that may have been dropped (see [`Custody::downgrade`]).
#[derive(Clone)]
pub(crate) struct WeakCustody(Weak<Inner>);

impl WeakCustody {
    /// The `Custody`, while any handle to it lives.
    pub(crate) fn upgrade(&self) -> Option<Custody> {
        self.0.upgrade().map(|inner| Custody { inner })
    }
}

/// A spec bound to an exchange whose algorithms were left at the default (all three) gets the
/// exchange's own: a key signs only what its exchange's scheme needs, and a secret longer than
/// a hash's block has one stored form.
fn narrowed(spec: KeySpec) -> KeySpec {
    let profile = spec
        .exchange
        .as_deref()
        .and_then(crate::exchanges::profile)
        .filter(|p| !p.algorithms.is_empty());
    match profile {
        Some(p) if spec.algorithms == HmacAlg::ALL => spec.algorithms(p.algorithms),
        _ => spec,
    }
}

/// The credentials recorded with version `version` of a key (its active version for `None`).
fn credentials_of(
    meta: &crate::keys::KeyMeta,
    version: Option<u32>,
) -> Option<Arc<crate::keys::Credentials>> {
    let v = version.or_else(|| meta.active().map(|a| a.version))?;
    meta.credentials.get(&v).cloned().map(Arc::new)
}

/// A named key in a [`Custody`] (its active version, or one pinned with [`KeyRef::version`]);
/// implements [`Mac`] for the exchange signers.
///
/// The exchange credentials recorded with the version (API key, passphrase) are read when the
/// handle is made: after `rotate promote` to a version with a new API key, take a new handle.
#[derive(Clone)]
pub struct KeyRef {
    custody: Custody,
    name: Arc<str>,
    version: Option<u32>,
    exchange: Option<Arc<str>>,
    kind: KeyKind,
    credentials: Option<Arc<crate::keys::Credentials>>,
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRef")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .finish()
    }
}

impl KeyRef {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The same key pinned to version `n` (a pending version to test before promoting, or a
    /// previous one during overlap).
    pub fn version(&self, n: u32) -> KeyRef {
        let credentials = self
            .custody
            .inner
            .keys
            .get(&self.custody.inner.token, &self.name)
            .ok()
            .and_then(|entry| credentials_of(&entry.meta, Some(n)));
        KeyRef {
            version: Some(n),
            credentials,
            ..self.clone()
        }
    }

    /// Computes an HMAC in the token.
    ///
    /// # Errors
    /// As [`Custody::sign_hmac`].
    pub fn hmac(&self, alg: HmacAlg, data: &[u8]) -> Result<Signature> {
        self.custody.sign_with(
            &self.name,
            self.version,
            Op::Hmac(alg),
            data,
            &RequestContext::default(),
        )
    }

    /// Computes an HMAC for an exchange request (guard rails see exchange, method and path).
    ///
    /// # Errors
    /// As [`Custody::sign_hmac`], plus the guard's refusal.
    pub fn hmac_for(
        &self,
        alg: HmacAlg,
        data: &[u8],
        request: &RequestContext<'_>,
    ) -> Result<Signature> {
        self.custody
            .sign_with(&self.name, self.version, Op::Hmac(alg), data, request)
    }

    /// Signs with an asymmetric key in the token: pure Ed25519; ECDSA P-256 with SHA-256, as
    /// raw `r || s` (64 bytes, what JWT ES256 wants); RSA PKCS#1 v1.5 with SHA-256.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] for an HMAC key, and as [`Custody::sign_hmac`].
    pub fn sign(&self, data: &[u8]) -> Result<Signature> {
        self.custody.sign_with(
            &self.name,
            self.version,
            Op::Asym,
            data,
            &RequestContext::default(),
        )
    }

    /// Signs an exchange request with an asymmetric key (guard rails see the request).
    ///
    /// # Errors
    /// As [`KeyRef::sign`], plus the guard's refusal.
    pub fn sign_for(&self, data: &[u8], request: &RequestContext<'_>) -> Result<Signature> {
        self.custody
            .sign_with(&self.name, self.version, Op::Asym, data, request)
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for registering with the exchange.
    ///
    /// # Errors
    /// [`Error::WrongKeyKind`] for an HMAC key.
    pub fn public_key_pem(&self) -> Result<String> {
        self.custody.public_key_pem(&self.name, self.version)
    }

    /// The exchange this key is bound to, from its metadata.
    pub fn bound_exchange(&self) -> Option<&str> {
        self.exchange.as_deref()
    }
}

impl Mac for KeyRef {
    fn key_name(&self) -> &str {
        &self.name
    }

    fn exchange(&self) -> Option<&str> {
        self.bound_exchange()
    }

    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> Result<Signature> {
        self.hmac(alg, msg)
    }

    fn mac_for(&self, alg: HmacAlg, msg: &[u8], request: &RequestContext<'_>) -> Result<Signature> {
        self.hmac_for(alg, msg, request)
    }

    fn kind(&self) -> KeyKind {
        KeyRef::kind(self)
    }

    fn api_key(&self) -> Option<&str> {
        self.credentials.as_ref()?.api_key.as_deref()
    }

    fn passphrase(&self) -> Option<&str> {
        self.credentials
            .as_ref()?
            .passphrase
            .as_ref()
            .map(|p| p.0.as_str())
    }

    fn sign_for(&self, msg: &[u8], request: &RequestContext<'_>) -> Result<Signature> {
        KeyRef::sign_for(self, msg, request)
    }
}

/// Whether a failed sign on one of our session copies means the copy is gone rather than that
/// the caller asked for something the key forbids (the token object would answer otherwise).
/// `KeySizeRange`: a logout racing a `C_SignInit` on SoftHSM2 can leave the copy with an empty
/// value for that call (seen in `core::logout_behind_the_pools_back_loses_no_sign` under load).
/// A key whose real size is wrong fails again on the reloaded entry and is reported after
/// `MAX_RECOVERIES`.
fn copy_lost(err: &cryptoki::error::Error) -> bool {
    use cryptoki::error::{Error as CkError, RvError};
    matches!(
        err,
        CkError::Pkcs11(
            RvError::KeyFunctionNotPermitted
                | RvError::KeyTypeInconsistent
                | RvError::KeySizeRange
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use cryptoki::context::Function;
    use cryptoki::error::{Error as CkError, RvError};

    #[test]
    fn a_session_copy_gone_or_emptied_is_reloaded_other_failures_are_not() {
        let failed = |rv| CkError::Pkcs11(rv, Function::SignInit);
        for rv in [
            RvError::KeySizeRange,
            RvError::KeyHandleInvalid,
            RvError::ObjectHandleInvalid,
            RvError::KeyFunctionNotPermitted,
            RvError::KeyTypeInconsistent,
        ] {
            assert!(super::copy_lost(&failed(rv)), "{rv:?}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::UserNotLoggedIn,
            RvError::MechanismInvalid,
            RvError::DeviceError,
            RvError::GeneralError,
            RvError::SessionHandleInvalid,
        ] {
            assert!(!super::copy_lost(&failed(rv)), "{rv:?}");
        }
    }
}
