//! Creating, rotating and revoking keys: every change goes to the vault's lifecycle and is then
//! reported to the guard through one helper ([`Custody::create`] for every creator,
//! [`Custody::report`] for the rest).

use std::fmt;

use secrecy::SecretString;

use super::Custody;
use crate::alg::{HmacAlg, KeyKind};
use crate::error::{Error, Result};
use crate::guard::LifecycleEvent;
use crate::keys::lifecycle::Material;
use crate::keys::{KeyInfo, KeySpec, VersionInfo};

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

impl Custody {
    /// Creates a key (version 1; or, under a name whose every version was revoked or retired,
    /// its next version, active at once) and reports it to the guard: `Created`, followed for
    /// a revoked name by `Promoted` with the new version, so that the audit log says which
    /// version the name's signatures use from then on.
    fn create(&self, spec: &KeySpec, material: Material) -> Result<KeyInfo> {
        let kind = material.kind();
        let info = self.inner.vault.lifecycle().create(spec, material)?;
        self.report(LifecycleEvent::Created {
            key: info.name.clone(),
            kind,
        });
        if let Some(version) = info.active_version.filter(|v| *v > 1) {
            self.report(LifecycleEvent::Promoted {
                key: info.name.clone(),
                version,
            });
        }
        Ok(info)
    }

    /// Imports an exchange's HMAC secret as version 1 of a new hardened token key and proves it
    /// (see [`KeySpec`]). The secret is wiped when this returns, whatever the outcome.
    ///
    /// A name whose every version was revoked (or retired) is no longer taken: the import is
    /// that name's next version (`v3` after `v1` and `v2` were revoked; numbers are never
    /// reused), active at once, bound to the spec's exchange and credentials; the revoked
    /// versions stay in its history. The same holds for [`Custody::generate_key`],
    /// [`Custody::generate_hmac_key`] and [`Custody::import_ed25519_key`].
    ///
    /// # Errors
    /// [`Error::KeyExists`] if the name has a usable version (nothing is overwritten),
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
    /// read out ([`KeyRef::public_key_pem`](super::KeyRef::public_key_pem)).
    ///
    /// # Errors
    /// [`Error::KeyExists`], [`Error::MechanismUnsupported`] when the module cannot make or use
    /// such keys, [`Error::SelfCheckFailed`]; [`Error::Misuse`] for [`KeyKind::Hmac`] (HMAC
    /// keys are imported from the exchange: [`Custody::import_hmac_secret`]).
    pub fn generate_key(&self, spec: KeySpec, kind: KeyKind) -> Result<KeyInfo> {
        if kind == KeyKind::Hmac {
            return Err(Error::Misuse(
                "generate_key makes key pairs; HMAC keys are imported from the exchange \
                 (import_hmac_secret)"
                    .into(),
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
    /// only when named ([`KeyRef::version`](super::KeyRef::version)) until promoted.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::Lifecycle`] when a pending version exists already,
    /// [`Error::WrongKeyKind`], and the import/generation errors.
    pub fn rotate_begin(&self, spec: KeySpec, new: NewVersion) -> Result<VersionInfo> {
        let name = spec.name.clone();
        let kind = self.inner.vault.lifecycle().kind(&name)?;
        let material = match new {
            NewVersion::Hmac(secret) => Material::Hmac(secret),
            NewVersion::Generate => Material::Generate(kind),
            NewVersion::Ed25519Seed(seed) => Material::Ed25519Seed(seed),
        };
        let v = self.inner.vault.lifecycle().begin(&name, &spec, material)?;
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
        let v = self.inner.vault.lifecycle().promote(name)?;
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
        let versions = self.inner.vault.lifecycle().retire(name, version)?;
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
        let versions = self.inner.vault.lifecycle().revoke(name, version)?;
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
        self.inner.vault.lifecycle().info(name)
    }

    /// Test hook: the `step`-th PKCS#11 write of each following lifecycle operation fails as if
    /// the process died right there (no clean-up runs). `None` turns it off. For crash-safety
    /// tests only.
    #[cfg(feature = "test-util")]
    pub fn danger_fail_lifecycle_after(&self, step: Option<u32>) {
        self.inner.vault.faults.set(step);
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
