//! Version selection: which version of a key signs, and whether it may.

use super::vault::{kind_fits, Op};
use super::{KeyMeta, VersionInfo, VersionState};
use crate::error::{Error, Result};

impl KeyMeta {
    /// The version to sign with (the active one for `None`), checked for state, validity
    /// dates, kind and algorithm.
    ///
    /// # Errors
    /// [`Error::NoActiveVersion`], [`Error::VersionNotFound`], [`Error::KeyRevoked`] (revoked
    /// or retired), [`Error::KeyNotYetValid`], [`Error::KeyExpired`], [`Error::WrongKeyKind`],
    /// [`Error::AlgorithmNotAllowed`].
    pub(crate) fn select(&self, version: Option<u32>, op: Op) -> Result<&VersionInfo> {
        let name = &self.name;
        let v = match version {
            None => self
                .active()
                .ok_or_else(|| Error::NoActiveVersion { name: name.clone() })?,
            Some(n) => self.version(n).ok_or_else(|| Error::VersionNotFound {
                name: name.clone(),
                version: n,
            })?,
        };
        if let VersionState::Revoked | VersionState::Retired = v.state {
            return Err(Error::KeyRevoked {
                name: name.clone(),
                version: v.version,
                state: v.state.name(),
            });
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
        if !kind_fits(self.kind, op) {
            return Err(Error::WrongKeyKind {
                name: name.clone(),
                kind: self.kind.name().into(),
                wanted: match op {
                    Op::Hmac(_) => "an HMAC key",
                    Op::Asym => "an asymmetric key",
                }
                .into(),
            });
        }
        if let Op::Hmac(alg) = op {
            if !self.algorithms.contains(&alg) {
                return Err(Error::AlgorithmNotAllowed {
                    key: name.clone(),
                    alg: alg.name().into(),
                    reason: "the key was imported for other algorithms".into(),
                });
            }
        }
        Ok(v)
    }
}
