//! Key lifecycle: first import or generation, staged rotation (begin, promote, retire) and
//! revocation.
//!
//! Every change follows one order: key objects are created first, then the metadata is
//! rewritten in a single `C_CreateObject` (the commit point), then objects that the new
//! metadata no longer lists are destroyed. So an interruption at any point leaves either the old
//! state or the new one, plus perhaps key objects the metadata does not list; those are removed
//! by the next lifecycle operation on the name ([`store::reconcile`]). Never two active
//! versions (checked before every metadata write), and no step removes the last usable version
//! except an explicit revocation.
//!
//! Every change runs whole under the token's lifecycle lock ([`lock`]: threads of this process,
//! and other processes that share its temp directory): the key's metadata is read, its objects
//! made and the metadata committed by one writer at a time, so a clean-up never meets another
//! writer's version between creation and commit. Clean-ups re-read the committed metadata right
//! before destroying anything and keep every object a usable committed version lists.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::session::Session;
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::adopt;
use super::cache::KeyCache;
use super::import::{
    create_hmac_version, decode_secret, generate_hmac_version, now_whole_seconds, ScrubOnDrop,
};
use super::lock::{self, LifecycleLock};
use super::seal;
use super::template::{Validity, MIN_STORED_LEN};
use super::{
    asym, store, KeyInfo, KeyKind, KeyMeta, KeyPurpose, KeySpec, SecretEncoding, VersionInfo,
    VersionOrigin, VersionState,
};
use crate::error::{Error, Result};
use crate::token::Token;

mod rotate;

/// SoftHSM2 can corrupt a token when objects are created concurrently: every write to keys is
/// serialised within the process (and across processes by the token's lifecycle lock), and so
/// is the audit log's write of its chain head (see [`write_turn`]).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// This process's turn to write objects to a token, outside a lifecycle change (the audit log's
/// chain head): the lock every lifecycle change takes first (`WRITE_LOCK`).
pub(crate) fn write_turn() -> MutexGuard<'static, ()> {
    WRITE_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held for the whole of one lifecycle change: this process's turn, then the token's
/// lifecycle lock file (released in the reverse order when dropped).
struct Serialised {
    _across_processes: LifecycleLock,
    _in_process: MutexGuard<'static, ()>,
}

/// Test hook: make the n-th step of the next lifecycle operations fail as if the process died
/// there (no clean-up runs). 0 = off.
#[derive(Default)]
pub(crate) struct Faults {
    fail_at: AtomicU32,
}

impl Faults {
    #[cfg(feature = "test-util")]
    pub(crate) fn set(&self, step: Option<u32>) {
        self.fail_at.store(step.unwrap_or(0), Ordering::SeqCst);
    }

    fn steps(&self) -> impl FnMut() -> Result<()> + '_ {
        let mut n = 0u32;
        move || {
            n += 1;
            if self.fail_at.load(Ordering::SeqCst) == n {
                Err(Error::InjectedFault { step: n })
            } else {
                Ok(())
            }
        }
    }
}

pub(crate) struct Lifecycle<'a> {
    pub token: &'a Token,
    pub cache: &'a KeyCache,
    pub faults: &'a Faults,
}

/// What the secret becomes for a version.
pub(crate) enum Material {
    /// An exchange's HMAC secret, as shown to the user.
    Hmac(SecretString),
    /// A key pair generated in the token.
    Generate(KeyKind),
    /// An Ed25519 seed (32 bytes, or Coinbase's 64 bytes seed||public), base64.
    Ed25519Seed(SecretString),
    /// An HMAC key generated inside the token.
    GenerateHmac,
    /// An HMAC key already in the token, put there by another tool (see `keys::adopt`).
    Adopt,
    /// The audit log's MAC key: an HMAC-SHA256 key generated inside the token, marked with
    /// [`KeyPurpose::Audit`]. The only way a key gets that mark.
    GenerateAudit,
}

impl Material {
    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Material::Hmac(_)
            | Material::GenerateHmac
            | Material::Adopt
            | Material::GenerateAudit => KeyKind::Hmac,
            Material::Generate(kind) => *kind,
            Material::Ed25519Seed(_) => KeyKind::Ed25519,
        }
    }
}

impl Lifecycle<'_> {
    fn ck(e: cryptoki::error::Error) -> Error {
        Error::from_ck(&e)
    }

    fn not_found(&self, name: &str) -> Error {
        Error::KeyNotFound {
            name: name.to_owned(),
            token: self.token.label().to_owned(),
        }
    }

    /// Takes this process's turn, then the token's lifecycle lock (waiting up to
    /// [`lock::WAIT`] for another process's change): before the key is first read, so that
    /// what the change decides from is what it commits over.
    fn serialise(&self) -> Result<Serialised> {
        let in_process = write_turn();
        let info = self.token.info()?;
        let path = lock::path_for(&info.manufacturer, &info.model, &info.serial, &info.label);
        let across = LifecycleLock::acquire(&path, self.token.label(), lock::WAIT)?;
        Ok(Serialised {
            _across_processes: across,
            _in_process: in_process,
        })
    }

    fn find(&self, session: &Session, name: &str) -> Result<store::Found> {
        store::find_meta(session, name)
            .map_err(Self::ck)?
            .ok_or_else(|| self.not_found(name))
    }

    /// Creates a new name with version 1 active.
    pub(crate) fn create(&self, spec: &KeySpec, material: Material) -> Result<KeyInfo> {
        let kind = material.kind();
        spec.validate(kind)?;
        let audit = matches!(material, Material::GenerateAudit);
        if !audit && spec.name == super::DEFAULT_AUDIT_KEY {
            return Err(Error::invalid(format!(
                "the name `{}` is reserved for the audit log's key, which the log generates in \
                 the token itself: choose another name",
                spec.name
            )));
        }
        let _serial = self.serialise()?;
        let lease = self.token.lease()?;
        let session = lease.session();
        // Adoption takes over exactly the foreign key that would block any other creation.
        let adopting = matches!(material, Material::Adopt);
        let exists = || Error::KeyExists {
            name: spec.name.clone(),
            token: self.token.label().to_owned(),
        };
        if let Some(found) = store::find_meta(session, &spec.name).map_err(Self::ck)? {
            // A name whose every version was revoked (or retired) holds no key: a new secret
            // under it is its next version (see `recreate`). Adoption and the audit key only
            // ever make version 1 of a new name.
            let spent = !found.meta.versions.iter().any(|v| v.state.is_usable());
            if spent && !adopting && !audit && found.meta.purpose.is_none() {
                return self.recreate(session, &found, spec, material);
            }
            return Err(exists());
        }
        if !adopting && store::foreign_key_named(session, &spec.name).map_err(Self::ck)? {
            return Err(exists());
        }
        // Objects of ours under this name without metadata: an interrupted first import.
        store::reconcile(session, &spec.name).map_err(Self::ck)?;
        let mut meta = KeyMeta {
            format: 1,
            name: spec.name.clone(),
            kind,
            exchange: spec.exchange.clone(),
            encoding: spec.encoding,
            algorithms: if kind == KeyKind::Hmac {
                spec.algorithms.clone()
            } else {
                Vec::new()
            },
            revision: 1,
            versions: Vec::new(),
            seals: BTreeMap::new(),
            credentials: BTreeMap::new(),
            purpose: audit.then_some(KeyPurpose::Audit),
        };
        let credentials = spec.credentials();
        if !credentials.is_empty() {
            meta.credentials.insert(1, credentials);
        }
        let mut step = self.faults.steps();
        let (version, seal) = self.make_version(session, &meta, 1, spec, material, &mut step)?;
        meta.seals.extend(seal.map(|blob| (1, blob)));
        meta.versions.push(VersionInfo {
            state: VersionState::Active,
            ..version
        });
        let written = step().and_then(|()| store::create_meta(session, &meta));
        if let Err(e) = written {
            if !matches!(e, Error::InjectedFault { .. }) {
                let _ = store::reconcile(session, &spec.name);
            }
            return Err(e);
        }
        self.cache.forget(self.token, &spec.name);
        tracing::info!(key = %spec.name, kind = %kind, "key created");
        store::info(session, &meta).map_err(Self::ck)
    }

    /// A first import or generation under a name whose every version was revoked or retired:
    /// the name's next version (numbers are never reused), active at once, with the spec's
    /// kind, exchange, encoding, algorithms and credentials (none of the old versions' remain:
    /// they went with their objects). The revoked versions stay in the name's history, so
    /// `key versions` and the audit log's signatures by version stay readable. Committed as
    /// any change: the new objects first, then the metadata.
    fn recreate(
        &self,
        session: &Session,
        found: &store::Found,
        spec: &KeySpec,
        material: Material,
    ) -> Result<KeyInfo> {
        let name = &spec.name;
        let kind = material.kind();
        store::reconcile(session, name).map_err(Self::ck)?;
        let version = found.meta.next_version();
        let mut meta = found.meta.clone();
        meta.revision += 1;
        meta.kind = kind;
        meta.exchange = spec.exchange.clone();
        meta.encoding = spec.encoding;
        meta.algorithms = if kind == KeyKind::Hmac {
            spec.algorithms.clone()
        } else {
            Vec::new()
        };
        meta.seals.clear();
        meta.credentials.clear();
        let credentials = spec.credentials();
        if !credentials.is_empty() {
            meta.credentials.insert(version, credentials);
        }
        let mut step = self.faults.steps();
        let (record, seal) =
            self.make_version(session, &meta, version, spec, material, &mut step)?;
        meta.seals.extend(seal.map(|blob| (version, blob)));
        meta.versions.push(VersionInfo {
            state: VersionState::Active,
            ..record
        });
        store::update_meta(session, found, &meta, &mut step).inspect_err(|e| {
            if !matches!(e, Error::InjectedFault { .. }) {
                let _ = store::reconcile(session, name);
            }
        })?;
        self.cache.forget(self.token, name);
        tracing::info!(key = %name, kind = %kind, version, "key re-created under a revoked name");
        store::info(session, &meta).map_err(Self::ck)
    }

    /// Creates the objects of one version; returns its record (state to be set by the caller)
    /// and, for an imported HMAC secret on a module that passes the seal probe, its seal.
    fn make_version(
        &self,
        session: &Session,
        meta: &KeyMeta,
        version: u32,
        spec: &KeySpec,
        material: Material,
        step: &mut impl FnMut() -> Result<()>,
    ) -> Result<(VersionInfo, Option<String>)> {
        let _scrub = ScrubOnDrop;
        let validity = Validity {
            not_before: spec.not_before,
            not_after: spec.not_after,
        };
        let mut object_id = None;
        let mut seal = None;
        let (secret_len, origin) = match material {
            Material::Adopt => {
                for alg in &meta.algorithms {
                    self.require(alg.mechanism_type(), "HMAC keys")?;
                }
                if version != 1 {
                    return Err(Error::invalid(
                        "only a new key can be adopted; rotate an adopted key by adopting a new name",
                    ));
                }
                let adopted = adopt::adopt_hmac(session, &meta.name, &meta.algorithms, &mut *step)?;
                object_id = Some(adopted.object_id);
                (None, VersionOrigin::Adopted)
            }
            Material::Hmac(secret) => {
                for alg in &meta.algorithms {
                    self.require(alg.mechanism_type(), "HMAC keys")?;
                }
                let key_bytes = decode_secret(&secret, meta.encoding)?;
                drop(secret);
                let sealing = self.token.fast_path && seal::supported(self.token, session);
                (_, seal) = create_hmac_version(
                    session,
                    &meta.name,
                    version,
                    &key_bytes,
                    &meta.algorithms,
                    validity,
                    sealing,
                    &mut *step,
                )?;
                (Some(key_bytes.len()), VersionOrigin::Imported)
            }
            Material::GenerateHmac | Material::GenerateAudit => {
                generate_hmac_version(
                    session,
                    &meta.name,
                    version,
                    &meta.algorithms,
                    validity,
                    &mut *step,
                )?;
                (Some(MIN_STORED_LEN), VersionOrigin::Generated)
            }
            Material::Generate(kind) => {
                self.require_mechanism(kind)?;
                asym::generate(
                    session,
                    kind,
                    &meta.name,
                    version,
                    validity,
                    self.token
                        .has_mechanism(cryptoki::mechanism::MechanismType::ECDSA_SHA256),
                    &mut *step,
                )?;
                (None, VersionOrigin::Generated)
            }
            Material::Ed25519Seed(text) => {
                self.require_mechanism(KeyKind::Ed25519)?;
                let seed = ed25519_seed(&text)?;
                drop(text);
                asym::import_ed25519(session, &meta.name, version, &seed, validity, &mut *step)?;
                (None, VersionOrigin::Imported)
            }
        };
        let record = VersionInfo {
            version,
            state: VersionState::Pending,
            created: now_whole_seconds(),
            not_before: spec.not_before,
            not_after: spec.not_after,
            secret_len,
            origin,
            object_id,
        };
        Ok((record, seal))
    }

    fn require_mechanism(&self, kind: KeyKind) -> Result<()> {
        self.require(asym::signing_mechanism_type(kind), &format!("{kind} keys"))?;
        self.require(
            asym::generation_mechanism(kind).mechanism_type(),
            &format!("{kind} keys"),
        )
    }

    /// A clear error naming the mechanism when the token did not list it at connect time.
    fn require(&self, needed: cryptoki::mechanism::MechanismType, purpose: &str) -> Result<()> {
        if self.token.has_mechanism(needed) {
            Ok(())
        } else {
            Err(Error::MechanismUnsupported {
                token: self.token.label().to_owned(),
                mechanism: format!("{needed} (needed for {purpose})"),
            })
        }
    }

    /// Marks a key made by an earlier release for the audit log (generated in the token, one
    /// version, never extractable: `store::audit_key_problem` finds nothing) as the audit key.
    /// Nobody ever knew its value, so marking it hands nobody a MAC key.
    pub(crate) fn mark_audit_key(&self, name: &str) -> Result<()> {
        let _serial = self.serialise()?;
        let lease = self.token.lease()?;
        let session = lease.session();
        let found = self.find(session, name)?;
        if found.meta.purpose == Some(KeyPurpose::Audit) {
            return Ok(());
        }
        let generated = found.meta.kind == KeyKind::Hmac
            && found.meta.versions.len() == 1
            && found.meta.versions[0].origin == VersionOrigin::Generated
            && found.meta.versions[0].state == VersionState::Active;
        let object = store::find_version_object(session, &found.meta, 1).map_err(Self::ck)?;
        let problem = match (generated, object) {
            (true, Some(handle)) => store::audit_key_problem(session, handle).map_err(Self::ck)?,
            _ => Some("it was not generated in the token as a single version".to_owned()),
        };
        if let Some(problem) = problem {
            return Err(not_an_audit_key(name, &problem));
        }
        let mut meta = found.meta.clone();
        meta.revision += 1;
        meta.purpose = Some(KeyPurpose::Audit);
        store::update_meta(session, &found, &meta, || Ok(()))?;
        self.cache.forget(self.token, name);
        tracing::warn!(
            key = name,
            "key of an earlier release marked as the audit key"
        );
        Ok(())
    }

    /// Key information, after removing leftovers of interrupted steps.
    pub(crate) fn info(&self, name: &str) -> Result<KeyInfo> {
        let lease = self.token.lease()?;
        let session = lease.session();
        let found = self.find(session, name)?;
        store::info(session, &found.meta).map_err(Self::ck)
    }

    /// The kind of the managed key `name`.
    pub(crate) fn kind(&self, name: &str) -> Result<KeyKind> {
        let lease = self.token.lease()?;
        Ok(self.find(lease.session(), name)?.meta.kind)
    }
}

/// The audit key is never rotated, retired or revoked through the crate: a new version would
/// be a key whose value someone may know, and destroying it destroys the log's evidence.
fn refuse_audit_key(meta: &KeyMeta, what: &str) -> Result<()> {
    if meta.purpose == Some(KeyPurpose::Audit) {
        return Err(Error::Lifecycle(format!(
            "key `{}` is the audit log's key: it is not {what} through hsm-custody (a new \
             version would be a key someone may know; destroying it leaves the log \
             unverifiable). Use your token's own tools if you really mean to remove it",
            meta.name
        )));
    }
    Ok(())
}

/// Why a key is refused as the audit key.
pub(crate) fn not_an_audit_key(name: &str, why: &str) -> Error {
    Error::AuditFailed(format!(
        "key `{name}` is not an audit key: {why}. The audit key must be generated in the \
         token by the audit log itself; a key imported or adopted under its name could have \
         a value someone knows. Remove that key, or set another `[audit] key` name"
    ))
}

/// An Ed25519 seed from base64: 32 bytes, or 64 bytes seed||public (Coinbase CDP's format, the
/// public half checked against the seed).
fn ed25519_seed(text: &SecretString) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = decode_secret(text, SecretEncoding::Base64)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    match bytes.len() {
        32 => seed.copy_from_slice(&bytes),
        64 => {
            seed.copy_from_slice(&bytes[..32]);
            let derived = ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .to_bytes();
            if derived[..] != bytes[32..] {
                return Err(Error::invalid(
                    "the 64-byte Ed25519 key's public half does not match its seed",
                ));
            }
        }
        n => {
            return Err(Error::invalid(format!(
                "an Ed25519 private key is 32 bytes (or 64 with its public key), not {n}"
            )))
        }
    }
    Ok(seed)
}
