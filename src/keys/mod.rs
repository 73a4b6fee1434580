//! Keys: specs, metadata kept in the token, the hardened templates, import, lookup, listing.
//!
//! A managed key is two token objects with the same label (the key name):
//! - the secret key itself (`CKO_SECRET_KEY`, `CKA_ID` = `v<version>`), built from the one
//!   hardened template in [`template`];
//! - a private `CKO_DATA` object (`CKA_APPLICATION` = `hsm-custody`) holding the key's metadata
//!   as JSON: exchange, secret encoding, lengths, algorithms, creation time. No secret is in it.
//!
//! The metadata object is written last, so its presence marks a completed import.

pub(crate) mod cache;
pub(crate) mod import;
pub(crate) mod store;
pub(crate) mod template;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sign::HmacAlg;

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
}

impl KeySpec {
    /// An HMAC key called `name`, raw encoding, all HMAC algorithms, no exchange binding.
    pub fn hmac(name: impl Into<String>) -> Self {
        KeySpec {
            name: name.into(),
            exchange: None,
            encoding: SecretEncoding::Raw,
            algorithms: HmacAlg::ALL.to_vec(),
        }
    }

    /// Binds the key to one exchange id (`binance`, `kraken` ...): other exchanges' signers
    /// refuse it.
    pub fn exchange(mut self, id: impl Into<String>) -> Self {
        self.exchange = Some(id.into());
        self
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

    pub(crate) fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if self.algorithms.is_empty() {
            return Err(Error::invalid("a key needs at least one algorithm"));
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

/// The metadata stored in the token next to each key (JSON in a private data object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyMeta {
    pub format: u32,
    pub name: String,
    pub kind: String,
    pub version: u32,
    pub exchange: Option<String>,
    pub encoding: SecretEncoding,
    pub secret_len: usize,
    pub stored_len: usize,
    pub algorithms: Vec<HmacAlg>,
    pub created: String,
}

impl KeyMeta {
    pub(crate) fn key_id(&self) -> Vec<u8> {
        format!("v{}", self.version).into_bytes()
    }
}

/// What `key list` shows about a key: names and flags, never a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Key name (the token label).
    pub name: String,
    /// `hmac`, or `foreign` for a secret key this crate did not create.
    pub kind: String,
    /// Version number (1 for now).
    pub version: Option<u32>,
    /// The exchange the key is bound to.
    pub exchange: Option<String>,
    /// How the secret was decoded at import.
    pub encoding: Option<SecretEncoding>,
    /// Algorithms the key may be used with.
    pub algorithms: Vec<HmacAlg>,
    /// Creation time (RFC 3339, UTC).
    pub created: Option<String>,
    /// Whether the metadata object is present (false: an interrupted import or a foreign key).
    pub managed: bool,
    /// The key object's protection flags as the token reports them.
    pub flags: KeyFlags,
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
    /// and no encrypt, decrypt, wrap, unwrap or derive.
    ///
    /// `CKA_ALWAYS_SENSITIVE` / `CKA_NEVER_EXTRACTABLE` are not required: PKCS#11 sets them false
    /// for every *imported* key, since its value once existed outside the token.
    pub fn is_hardened(&self) -> bool {
        self.sensitive == Some(true)
            && self.extractable == Some(false)
            && [
                self.encrypt,
                self.decrypt,
                self.wrap,
                self.unwrap,
                self.derive,
            ]
            .iter()
            .all(|f| *f == Some(false))
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
