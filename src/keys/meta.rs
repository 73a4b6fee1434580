//! The metadata kept in the token next to each key (JSON in a private `CKO_DATA` object), the
//! exchange credentials recorded per version, and the `CKA_ID` of a version's objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KeyKind, SecretEncoding, VersionInfo, VersionState};
use crate::alg::HmacAlg;
use crate::error::{Error, Result};

/// The metadata stored in the token next to each key (JSON in a private data object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyMeta {
    pub format: u32,
    pub name: String,
    pub kind: KeyKind,
    pub exchange: Option<String>,
    pub encoding: SecretEncoding,
    pub algorithms: Vec<HmacAlg>,
    /// Bumped on every write, so other processes notice changes.
    pub revision: u64,
    pub versions: Vec<VersionInfo>,
    /// Sealed copies of usable imported HMAC versions (version -> hex of the secret wrapped
    /// under the version's KEK, see `seal`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seals: BTreeMap<u32, String>,
    /// The exchange credentials that go with each version (version -> API key, passphrase):
    /// exchange signers send them and refuse requests naming others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<u32, Credentials>,
    /// What the crate itself made the key for; `None` for every key an operator creates. Only
    /// the audit log's key generation writes [`KeyPurpose::Audit`], and only together with a
    /// key generated in the token (see `store::audit_key_problem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<KeyPurpose>,
}

/// Keys the crate makes for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyPurpose {
    /// The audit log's MAC key: signs the log's own lines and nothing else.
    Audit,
}

/// The exchange's public API key and API passphrase recorded with a key version.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<Passphrase>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &self.api_key)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl Credentials {
    pub(crate) fn is_empty(&self) -> bool {
        self.api_key.is_none() && self.passphrase.is_none()
    }
}

/// An API passphrase: never printed, wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl KeyMeta {
    pub(crate) fn active(&self) -> Option<&VersionInfo> {
        self.versions
            .iter()
            .find(|v| v.state == VersionState::Active)
    }

    pub(crate) fn version(&self, n: u32) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.version == n)
    }

    pub(crate) fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
    }

    /// The invariant every write keeps: at most one active and at most one pending version.
    pub(crate) fn check(&self) -> Result<()> {
        let count = |s| self.versions.iter().filter(|v| v.state == s).count();
        if count(VersionState::Active) > 1 || count(VersionState::Pending) > 1 {
            return Err(Error::Lifecycle(format!(
                "metadata of `{}` would hold two active or pending versions; nothing written",
                self.name
            )));
        }
        Ok(())
    }
}

/// `CKA_ID` of a key version's objects.
pub(crate) fn version_id(version: u32) -> Vec<u8> {
    format!("hsm-custody/v{version}").into_bytes()
}

/// The version in a `CKA_ID` written by [`version_id`].
pub(crate) fn parse_version_id(id: &[u8]) -> Option<u32> {
    std::str::from_utf8(id)
        .ok()?
        .strip_prefix("hsm-custody/v")?
        .parse()
        .ok()
}
