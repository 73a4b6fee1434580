//! The guarded signing path: the guard (or, with none installed, the built-in withdrawal
//! guard) judges each signature once the version is known, then the vault signs.

use super::Custody;
use crate::alg::{HmacAlg, Signature};
use crate::error::{Error, Result};
use crate::guard::{LifecycleEvent, SignContext};
use crate::keys::vault::{Caller, Op};
use crate::keys::{asym, store};
use crate::sign::RequestContext;

impl Custody {
    /// Computes an HMAC with the active version of key `name` in the token.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::AlgorithmNotAllowed`], [`Error::KeyExpired`],
    /// [`Error::NoActiveVersion`], [`Error::PoolTimeout`], or a token failure that survived
    /// recovery.
    pub fn sign_hmac(&self, name: &str, alg: HmacAlg, data: &[u8]) -> Result<Signature> {
        self.sign_with(name, None, Op::Hmac(alg), data, &RequestContext::default())
    }

    pub(crate) fn sign_with(
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
        let vault = &self.inner.vault;
        let Some(guard) = self.guard() else {
            if exchange.is_none() {
                return vault.sign(name, version, op, data, Caller::Public, None);
            }
            // Secure by default: with no guard rails the withdrawal guard still applies.
            let mut check = |v: u32| -> Result<()> {
                let ctx = context(v);
                crate::policy::default_judge(&ctx).map_err(|refusal| refusal.into_error(&ctx))
            };
            return vault.sign(name, version, op, data, Caller::Public, Some(&mut check));
        };
        let builtin = exchange.is_some() && !guard.judges_withdrawals();
        let mut checked = None;
        let mut check = |v: u32| -> Result<()> {
            if builtin {
                let ctx = context(v);
                crate::policy::default_judge(&ctx).map_err(|refusal| refusal.into_error(&ctx))?;
            }
            guard.check(&context(v))?;
            checked = Some(v);
            Ok(())
        };
        let result = vault.sign(name, version, op, data, Caller::Public, Some(&mut check));
        if let Some(v) = checked {
            guard.signed(&context(v), result.as_ref().map(|_| ()));
        }
        if let Err(e @ (Error::PinIncorrect { .. } | Error::PinLocked { .. })) = &result {
            self.report(LifecycleEvent::LoginFailed {
                token: self.token_label().to_owned(),
                reason: e.to_string(),
            });
        }
        result
    }

    /// Whether signing with the active version of key `name` takes the fast path: a session
    /// object in the token (a copy of the key, or its sealed copy where the module refuses to
    /// copy a non-modifiable key) rather than the token object itself. `false` also when the
    /// fast path is turned off ([`crate::Config::fast_path`]) or the module allows neither.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::NoActiveVersion`], token failures.
    #[cfg(feature = "test-util")]
    pub fn fast_path_active(&self, name: &str) -> Result<bool> {
        let entry = self.inner.vault.keys.get(&self.inner.vault.token, name)?;
        let active = entry
            .meta
            .active()
            .ok_or_else(|| Error::NoActiveVersion {
                name: name.to_owned(),
            })?
            .version;
        Ok(entry.version(active).is_some_and(|v| v.copied))
    }

    /// Asks the token for the active version's `CKA_VALUE` and returns the token's refusal
    /// (for example `CKR_ATTRIBUTE_SENSITIVE`). The bytes are never returned.
    ///
    /// # Errors
    /// [`Error::SelfCheckFailed`] if the token *did* reveal the value (the module is not fit
    /// for custody), [`Error::KeyNotFound`], [`Error::NoActiveVersion`].
    pub fn value_read_refusal(&self, name: &str) -> Result<String> {
        let key = self.inner.vault.keys.get(&self.inner.vault.token, name)?;
        let active = key
            .meta
            .active()
            .and_then(|v| key.version(v.version))
            .ok_or_else(|| Error::NoActiveVersion {
                name: name.to_owned(),
            })?;
        let lease = self.inner.vault.token.lease()?;
        store::value_read_refusal(lease.session(), active.token_handle, name)
    }

    pub(crate) fn public_key_pem(&self, name: &str, version: Option<u32>) -> Result<String> {
        let key = self.inner.vault.keys.get(&self.inner.vault.token, name)?;
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
        let lease = self.inner.vault.token.lease()?;
        let public = store::find_public_object(lease.session(), name, v)
            .map_err(|e| Error::from_ck(&e))?
            .ok_or(Error::VersionNotFound {
                name: name.to_owned(),
                version: v,
            })?;
        asym::read_public(lease.session(), key.meta.kind, public)?.to_pem()
    }
}
