//! The exchange facade of [`Custody`]: a signer for a key with its exchange's scheme. The
//! exchange layer below knows keys only through the [`crate::Mac`] trait; this is where the two
//! meet.

use super::Custody;
use crate::error::{Error, Result};
use crate::exchanges::{by_id, unknown_exchange, ExchangeSigner};

impl Custody {
    /// A signer for key `name` with the exchange scheme the key is bound to.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::InvalidInput`] when the key is bound to no exchange or to
    /// one this crate does not know (use [`ExchangeSigner::new`] with your own [`crate::exchanges::Exchange`]).
    pub fn exchange_signer(&self, name: &str) -> Result<ExchangeSigner> {
        let key = self.key(name)?;
        let id = key.bound_exchange().map(str::to_owned).ok_or_else(|| {
            Error::invalid(format!(
                "key `{name}` is bound to no exchange; import it with an exchange id"
            ))
        })?;
        let exchange = by_id(&id).ok_or_else(|| unknown_exchange(&id))?;
        Ok(ExchangeSigner::new(exchange, key)?.with_shared_limits(self.shared_signing_limits()))
    }

    /// A signer for key `name` with exchange `id`'s scheme; the key must be bound to `id` (or to
    /// an exchange that `id` accepts).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::WrongExchange`], [`Error::InvalidInput`] for an unknown id.
    pub fn exchange_signer_for(&self, name: &str, id: &str) -> Result<ExchangeSigner> {
        let exchange = by_id(id).ok_or_else(|| unknown_exchange(id))?;
        Ok(ExchangeSigner::new(exchange, self.key(name)?)?
            .with_shared_limits(self.shared_signing_limits()))
    }

    /// [`Custody::exchange_signer_for`] pinned to version `version` of the key: a pending
    /// version to test against the exchange before `rotate promote`, or a previous one during
    /// the overlap. The guard rails judge its requests as any other (the version is in the
    /// [`SignContext`](crate::SignContext)), and it signs with the credentials (API key,
    /// passphrase) recorded with that version.
    ///
    /// # Errors
    /// As [`Custody::exchange_signer_for`], plus, checked now rather than at the first
    /// signature: [`Error::VersionNotFound`] for a version the key never had, and
    /// [`Error::KeyRevoked`] for a revoked or retired one (its key object is gone).
    pub fn exchange_signer_for_version(
        &self,
        name: &str,
        id: &str,
        version: u32,
    ) -> Result<ExchangeSigner> {
        let exchange = by_id(id).ok_or_else(|| unknown_exchange(id))?;
        let entry = self.inner.vault.keys.get(&self.inner.vault.token, name)?;
        let v = entry
            .meta
            .version(version)
            .ok_or_else(|| Error::VersionNotFound {
                name: name.to_owned(),
                version,
            })?;
        if !v.state.is_usable() {
            return Err(Error::KeyRevoked {
                name: name.to_owned(),
                version,
                state: v.state.name(),
            });
        }
        Ok(
            ExchangeSigner::new(exchange, self.key(name)?.version(version))?
                .with_shared_limits(self.shared_signing_limits()),
        )
    }
}
