//! Keys: specs, versions and metadata kept in the token, the hardened templates, import,
//! generation, lifecycle, lookup, listing.
//!
//! A managed key is a name with versions. Each version is its own token object (for asymmetric
//! keys, a private/public pair) labelled with the name, with `CKA_ID` = `hsm-custody/v<n>`.
//! Beside them, one private `CKO_DATA` object (`CKA_APPLICATION` = `hsm-custody`, same label)
//! holds the metadata as JSON: kind, exchange, secret encoding, algorithms, and per version its
//! state, creation time and validity dates. No secret is in it. Key objects are written first
//! and the metadata last, so a key object that the metadata does not list is the leftover of an
//! interrupted step; the next lifecycle operation on that name removes it.

pub(crate) mod adopt;
pub(crate) mod asym;
pub(crate) mod cache;
pub(crate) mod import;
pub(crate) mod lifecycle;
pub(crate) mod lock;
pub(crate) mod meta;
pub(crate) mod seal;
pub(crate) mod select;
pub(crate) mod store;
pub(crate) mod template;
pub(crate) mod vault;

pub(crate) use meta::{parse_version_id, version_id, Credentials, KeyMeta, KeyPurpose, Passphrase};
pub use vault::Vault;

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::alg::HmacAlg;
pub use crate::alg::KeyKind;
use crate::error::{Error, Result};

/// Default name of the audit key in the token ([`crate::audit`]).
pub const DEFAULT_AUDIT_KEY: &str = "hsm-custody-audit";

/// `CKA_APPLICATION` of our metadata objects.
pub(crate) const APPLICATION: &[u8] = b"hsm-custody";

/// How the exchange shows the secret to the user, and so how to turn it into key bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    /// The HMAC key is the UTF-8 bytes of the secret string as shown.
    #[default]
    Raw,
    /// The secret string is base64; the HMAC key is the decoded bytes.
    Base64,
}

impl SecretEncoding {
    /// `raw` or `base64`.
    pub fn name(self) -> &'static str {
        match self {
            SecretEncoding::Raw => "raw",
            SecretEncoding::Base64 => "base64",
        }
    }
}

impl fmt::Display for SecretEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecretEncoding {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raw" => Ok(SecretEncoding::Raw),
            "base64" => Ok(SecretEncoding::Base64),
            other => Err(Error::invalid(format!(
                "unknown secret encoding `{other}` (expected raw or base64)"
            ))),
        }
    }
}

/// What to create: name, exchange binding, encoding and allowed algorithms.
///
/// ```
/// use hsm_custody::{HmacAlg, KeySpec, SecretEncoding};
///
/// let spec = KeySpec::hmac("kraken-main")
///     .exchange("kraken")
///     .encoding(SecretEncoding::Base64)
///     .algorithms(&[HmacAlg::HmacSha512]);
/// assert_eq!(spec.name(), "kraken-main");
/// ```
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub(crate) name: String,
    pub(crate) exchange: Option<String>,
    pub(crate) encoding: SecretEncoding,
    pub(crate) algorithms: Vec<HmacAlg>,
    pub(crate) not_before: Option<time::Date>,
    pub(crate) not_after: Option<time::Date>,
    pub(crate) api_key: Option<String>,
    pub(crate) passphrase: Option<SecretString>,
}

impl KeySpec {
    /// An HMAC key called `name`, raw encoding, all HMAC algorithms, no exchange binding.
    pub fn hmac(name: impl Into<String>) -> Self {
        KeySpec {
            name: name.into(),
            exchange: None,
            encoding: SecretEncoding::Raw,
            algorithms: HmacAlg::ALL.to_vec(),
            not_before: None,
            not_after: None,
            api_key: None,
            passphrase: None,
        }
    }

    /// A spec for an asymmetric key (generated in the token, or imported for tests); the
    /// algorithms and encoding do not apply.
    pub fn asymmetric(name: impl Into<String>) -> Self {
        KeySpec {
            algorithms: Vec::new(),
            ..KeySpec::hmac(name)
        }
    }

    /// First day (UTC) the version may sign; stored in `CKA_START_DATE` too.
    pub fn not_before(mut self, date: time::Date) -> Self {
        self.not_before = Some(date);
        self
    }

    /// Last day (UTC) the version may sign; stored in `CKA_END_DATE` too.
    pub fn not_after(mut self, date: time::Date) -> Self {
        self.not_after = Some(date);
        self
    }

    /// Binds the key to one exchange id (`binance`, `kraken` ...): other exchanges' signers
    /// refuse it.
    pub fn exchange(mut self, id: impl Into<String>) -> Self {
        self.exchange = Some(id.into());
        self
    }

    /// Records the exchange's public API key with the version: exchange signers send it and
    /// refuse a request that names another (1-256 printable ASCII characters, no spaces).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Records the exchange's API passphrase (OKX, Coinbase Exchange, Bitget, KuCoin) with the
    /// version, in the token's private metadata: signers send it, KuCoin's v2 passphrase HMAC
    /// is computed over it only, and a request naming another is refused.
    pub fn passphrase(mut self, passphrase: SecretString) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// The credentials this spec records with a new version.
    pub(crate) fn credentials(&self) -> Credentials {
        use secrecy::ExposeSecret as _;
        Credentials {
            api_key: self.api_key.clone(),
            passphrase: self
                .passphrase
                .as_ref()
                .map(|p| Passphrase(p.expose_secret().to_owned())),
        }
    }

    /// How the secret string is turned into key bytes.
    pub fn encoding(mut self, encoding: SecretEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Restricts the algorithms the key may be used with (and that the import self-checks).
    pub fn algorithms(mut self, algorithms: &[HmacAlg]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self, kind: KeyKind) -> Result<()> {
        validate_name(&self.name)?;
        if kind == KeyKind::Hmac && self.algorithms.is_empty() {
            // Input, not misuse: an exchange whose keys are not HMAC keys has no algorithms to
            // give (`key import --exchange coinbase_advanced`).
            return Err(Error::invalid("a key needs at least one algorithm"));
        }
        if let (Some(nb), Some(na)) = (self.not_before, self.not_after) {
            if na < nb {
                return Err(Error::invalid(format!(
                    "not-after {na} is before not-before {nb}"
                )));
            }
        }
        let printable =
            |v: &str| !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic());
        if self.api_key.as_deref().is_some_and(|k| !printable(k)) {
            return Err(Error::invalid(
                "an API key is 1-256 printable ASCII characters without spaces",
            ));
        }
        if let Some(p) = &self.passphrase {
            use secrecy::ExposeSecret as _;
            let p = p.expose_secret();
            if p.is_empty()
                || p.len() > 128
                || !p.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            {
                return Err(Error::invalid(
                    "an API passphrase is 1-128 printable ASCII characters",
                ));
            }
        }
        if let Some(ex) = &self.exchange {
            if ex.is_empty() || !ex.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(Error::invalid(format!("invalid exchange id `{ex}`")));
            }
        }
        Ok(())
    }
}

/// Key names: 1 to 64 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid key name `{}`: use 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
            name.escape_debug()
        )))
    }
}

/// Where a version is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum VersionState {
    /// Imported by `rotate begin`, usable when named explicitly, not yet the signing version.
    Pending,
    /// The one version that signs by default.
    Active,
    /// Replaced by a newer active version, still usable for overlap until retired.
    Previous,
    /// Retired after a rotation: destroyed.
    Retired,
    /// Revoked: destroyed at once.
    Revoked,
}

impl VersionState {
    /// Whether a version in this state has a key object and may sign.
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            VersionState::Pending | VersionState::Active | VersionState::Previous
        )
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            VersionState::Pending => "pending",
            VersionState::Active => "active",
            VersionState::Previous => "previous",
            VersionState::Retired => "retired",
            VersionState::Revoked => "revoked",
        }
    }
}

/// One version of a key, as recorded in the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// Version number, from 1, never reused.
    pub version: u32,
    /// State.
    pub state: VersionState,
    /// Creation time (UTC, whole seconds; stored as RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// First valid day (UTC), if limited.
    pub not_before: Option<time::Date>,
    /// Last valid day (UTC), if limited.
    pub not_after: Option<time::Date>,
    /// Length of the secret as given (HMAC), in bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_len: Option<usize>,
    /// How the version's key came into the token.
    pub origin: VersionOrigin,
    /// For an adopted key: the `CKA_ID` (hex) its object already had, which the crate keeps
    /// instead of its own `hsm-custody/v<n>` id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_id: Option<String>,
}

impl VersionInfo {
    /// Days from `today` until the last valid day (negative once expired).
    pub fn days_until_expiry(&self, today: time::Date) -> Option<i64> {
        self.not_after.map(|na| (na - today).whole_days())
    }

    /// Whether the version may sign on `today`.
    pub fn valid_on(&self, today: time::Date) -> bool {
        self.not_before.is_none_or(|nb| today >= nb) && self.not_after.is_none_or(|na| today <= na)
    }

    /// Age in whole days since creation.
    pub fn age_days(&self, now: time::OffsetDateTime) -> i64 {
        (now - self.created).whole_days()
    }
}

/// How a version's key came into the token (stored as `imported`, `generated`, `adopted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum VersionOrigin {
    /// Imported: an exchange's HMAC secret or an Ed25519 seed given to the crate.
    Imported,
    /// Generated in the token.
    Generated,
    /// Adopted: a key object that was in the token before the crate managed it.
    Adopted,
}

impl VersionOrigin {
    /// `imported`, `generated` or `adopted`.
    pub fn name(self) -> &'static str {
        match self {
            VersionOrigin::Imported => "imported",
            VersionOrigin::Generated => "generated",
            VersionOrigin::Adopted => "adopted",
        }
    }
}

impl fmt::Display for VersionOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `key list` shows about a key: names, versions and flags, never a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Key name (the token label).
    pub name: String,
    /// The key's kind; `None` for a key without the crate's metadata (a foreign key, or an
    /// interrupted first import: `managed` is false). Serialised as `foreign` then.
    #[serde(serialize_with = "kind_or_foreign")]
    pub kind: Option<KeyKind>,
    /// The active version, if any.
    pub active_version: Option<u32>,
    /// Every version ever made, with states.
    pub versions: Vec<VersionInfo>,
    /// The exchange the key is bound to.
    pub exchange: Option<String>,
    /// How the secret was decoded at import (HMAC keys).
    pub encoding: Option<SecretEncoding>,
    /// HMAC algorithms the key may be used with.
    pub algorithms: Vec<HmacAlg>,
    /// Whether the metadata object is present (false: a foreign key or an interrupted import).
    pub managed: bool,
    /// The active version's key object flags as the token reports them.
    pub flags: KeyFlags,
}

/// `KeyInfo.kind` as `key list --json` has always shown it: the kind's name, or `foreign`.
fn kind_or_foreign<S: serde::Serializer>(
    kind: &Option<KeyKind>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.map_or("foreign", KeyKind::name))
}

impl KeyInfo {
    /// The active version's record.
    pub fn active(&self) -> Option<&VersionInfo> {
        self.versions
            .iter()
            .find(|v| v.state == VersionState::Active)
    }
}

/// Protection-relevant attributes of a key object (`None`: the token did not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyFlags {
    /// `CKA_SENSITIVE`.
    pub sensitive: Option<bool>,
    /// `CKA_EXTRACTABLE`.
    pub extractable: Option<bool>,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: Option<bool>,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: Option<bool>,
    /// `CKA_SIGN`.
    pub sign: Option<bool>,
    /// `CKA_VERIFY`.
    pub verify: Option<bool>,
    /// `CKA_ENCRYPT`.
    pub encrypt: Option<bool>,
    /// `CKA_DECRYPT`.
    pub decrypt: Option<bool>,
    /// `CKA_WRAP`.
    pub wrap: Option<bool>,
    /// `CKA_UNWRAP`.
    pub unwrap: Option<bool>,
    /// `CKA_DERIVE`.
    pub derive: Option<bool>,
    /// `CKA_MODIFIABLE`.
    pub modifiable: Option<bool>,
}

impl KeyFlags {
    /// True when the flags are those of the hardened template: sensitive, not extractable,
    /// and no encrypt, decrypt, wrap, unwrap or derive (an attribute the object class does not
    /// have counts as not allowed: a private key has no `CKA_ENCRYPT`).
    ///
    /// `CKA_ALWAYS_SENSITIVE` / `CKA_NEVER_EXTRACTABLE` are not required: PKCS#11 sets them false
    /// for every *imported* key, since its value once existed outside the token.
    pub fn is_hardened(&self) -> bool {
        self.weaknesses().is_empty()
    }

    /// What keeps these flags from the hardened template, as (attribute, what it means):
    /// extractable or not known to be non-extractable, not (known to be) sensitive, and each of
    /// derive, wrap, unwrap, encrypt, decrypt that is allowed. Empty for a hardened key.
    pub(crate) fn weaknesses(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        match self.extractable {
            Some(false) => {}
            Some(true) => out.push(("CKA_EXTRACTABLE", "extractable")),
            None => out.push(("CKA_EXTRACTABLE", "extractable unknown")),
        }
        match self.sensitive {
            Some(true) => {}
            Some(false) => out.push(("CKA_SENSITIVE", "not sensitive")),
            None => out.push(("CKA_SENSITIVE", "sensitive unknown")),
        }
        for (allowed, attribute, what) in [
            (self.derive, "CKA_DERIVE", "may derive"),
            (self.wrap, "CKA_WRAP", "may wrap"),
            (self.unwrap, "CKA_UNWRAP", "may unwrap"),
            (self.encrypt, "CKA_ENCRYPT", "may encrypt"),
            (self.decrypt, "CKA_DECRYPT", "may decrypt"),
        ] {
            if allowed == Some(true) {
                out.push((attribute, what));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("binance-main").is_ok());
        assert!(validate_name("k.v_2").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65), "ключ"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encodings_parse() {
        assert_eq!(
            "base64".parse::<SecretEncoding>().unwrap(),
            SecretEncoding::Base64
        );
        assert!("hex".parse::<SecretEncoding>().is_err());
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn version_ids_round_trip_and_foreign_ids_do_not_parse() {
        assert_eq!(parse_version_id(&version_id(7)), Some(7));
        assert_eq!(parse_version_id(b"v1"), None);
        assert_eq!(parse_version_id(b"\xff"), None);
    }

    #[test]
    fn validity_is_inclusive() {
        let d = |s: &str| {
            time::Date::parse(s, &time::format_description::well_known::Iso8601::DATE).unwrap()
        };
        let v = VersionInfo {
            version: 1,
            state: VersionState::Active,
            created: time::macros::datetime!(2026-01-01 00:00 UTC),
            not_before: Some(d("2026-01-10")),
            not_after: Some(d("2026-01-20")),
            secret_len: None,
            origin: VersionOrigin::Imported,
            object_id: None,
        };
        assert!(!v.valid_on(d("2026-01-09")));
        assert!(v.valid_on(d("2026-01-10")));
        assert!(v.valid_on(d("2026-01-20")));
        assert!(!v.valid_on(d("2026-01-21")));
        assert_eq!(v.days_until_expiry(d("2026-01-18")), Some(2));
        assert_eq!(
            v.age_days(time::macros::datetime!(2026-01-31 23:59 UTC)),
            30
        );
        let stored = serde_json::to_value(&v).unwrap();
        assert_eq!(stored["created"], "2026-01-01T00:00:00Z");
        assert_eq!(stored["origin"], "imported");
        assert_eq!(serde_json::from_value::<VersionInfo>(stored).unwrap(), v);
    }

    #[test]
    fn a_key_without_metadata_shows_as_foreign() {
        let info = KeyInfo {
            name: "legacy".into(),
            kind: None,
            active_version: None,
            versions: Vec::new(),
            exchange: None,
            encoding: None,
            algorithms: Vec::new(),
            managed: false,
            flags: KeyFlags::default(),
        };
        assert_eq!(serde_json::to_value(&info).unwrap()["kind"], "foreign");
        let hmac = KeyInfo {
            kind: Some(KeyKind::Hmac),
            ..info
        };
        assert_eq!(serde_json::to_value(&hmac).unwrap()["kind"], "hmac");
    }
}
