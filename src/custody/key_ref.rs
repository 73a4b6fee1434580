//! [`KeyRef`]: a named key of a [`Custody`], pinned to a version or following the active one;
//! the [`Mac`] the exchange signers sign through.

use std::fmt;
use std::sync::Arc;

use super::Custody;
use crate::alg::{HmacAlg, KeyKind, Signature};
use crate::error::Result;
use crate::keys::vault::Op;
use crate::sign::{Mac, RequestContext};

impl Custody {
    /// A handle to the key `name` (its active version), with its token handles cached.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound), or token failures.
    pub fn key(&self, name: &str) -> Result<KeyRef> {
        let entry = self.inner.vault.keys.get(&self.inner.vault.token, name)?;
        Ok(KeyRef {
            custody: self.clone(),
            name: Arc::from(name),
            version: None,
            exchange: entry.meta.exchange.as_deref().map(Arc::from),
            kind: entry.meta.kind,
            credentials: credentials_of(&entry.meta, None),
        })
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
        let vault = &self.custody.inner.vault;
        let credentials = vault
            .keys
            .get(&vault.token, &self.name)
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
    /// [`Error::WrongKeyKind`](crate::Error::WrongKeyKind) for an HMAC key, and as [`Custody::sign_hmac`].
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
    /// [`Error::WrongKeyKind`](crate::Error::WrongKeyKind) for an HMAC key.
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
