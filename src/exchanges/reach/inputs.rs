//! The inputs the crate owns for one signature, and the checks of a request's fields against
//! them (time, API key, passphrase, host).

use super::Limits;
use crate::error::{Error, Result};

/// The inputs the crate owns, for one signature: the clock, the limits, and the key's own API
/// key and passphrase (key metadata). Exchanges validate a request's fields against them.
pub struct Inputs<'a> {
    exchange: &'a str,
    now_ms: u64,
    limits: &'a Limits,
    api_key: Option<&'a str>,
    passphrase: Option<&'a str>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("exchange", &self.exchange)
            .field("now_ms", &self.now_ms)
            .field("limits", &self.limits)
            .field("api_key", &self.api_key)
            .field("passphrase", &self.passphrase.map(|_| "[REDACTED]"))
            .finish()
    }
}

/// What API keys may look like when the key has none recorded: printable, no separators that
/// could carry another field's content.
const API_KEY_MAX: usize = 256;

impl<'a> Inputs<'a> {
    /// Inputs for a signature for `exchange` at `now_ms`.
    pub fn new(
        exchange: &'a str,
        now_ms: u64,
        limits: &'a Limits,
        api_key: Option<&'a str>,
        passphrase: Option<&'a str>,
    ) -> Self {
        Inputs {
            exchange,
            now_ms,
            limits,
            api_key,
            passphrase,
        }
    }

    /// The crate's clock, in ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        self.limits
    }

    /// The key's recorded API key, if any.
    pub fn stored_api_key(&self) -> Option<&str> {
        self.api_key
    }

    /// The key's recorded passphrase, if any.
    pub fn stored_passphrase(&self) -> Option<&str> {
        self.passphrase
    }

    /// The refusal for field `field` of this exchange's request.
    pub fn refuse(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::RequestRefused {
            exchange: self.exchange.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// A decimal number without sign or leading zero (`0` itself allowed), at most 20 digits.
    pub fn number(&self, field: &str, value: &str) -> Result<u64> {
        let ok = !value.is_empty()
            && value.len() <= 20
            && value.bytes().all(|b| b.is_ascii_digit())
            && (value == "0" || !value.starts_with('0'));
        ok.then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                self.refuse(
                    field,
                    "must be a decimal number without sign or leading zero",
                )
            })
    }

    /// Checks that `ms` (a time in milliseconds) is within the allowed skew of the clock.
    pub fn within_skew(&self, field: &str, ms: u64) -> Result<()> {
        if ms.abs_diff(self.now_ms) > self.limits.skew_ms {
            return Err(self.refuse(
                field,
                format!(
                    "is {} ms from the crate's clock (allowed: ±{} ms); leave it out and the crate \
                     sets it",
                    ms.abs_diff(self.now_ms),
                    self.limits.skew_ms
                ),
            ));
        }
        Ok(())
    }

    /// A timestamp in milliseconds given by the caller: a number within the skew.
    pub fn timestamp_ms(&self, field: &str, value: &str) -> Result<u64> {
        let ms = self.number(field, value)?;
        self.within_skew(field, ms)?;
        Ok(ms)
    }

    /// A timestamp in seconds given by the caller: a number within the skew.
    pub fn timestamp_s(&self, field: &str, value: &str) -> Result<u64> {
        let s = self.number(field, value)?;
        self.within_skew(field, s.saturating_mul(1000))?;
        Ok(s)
    }

    /// A nonce given by the caller that the exchange reads as a time: a number of 10 (s), 13
    /// (ms), 16 (µs) or 19 (ns) digits within the skew (so that no caller can burn the nonce
    /// space for everyone or sign far ahead).
    pub fn time_nonce(&self, field: &str, value: &str) -> Result<u64> {
        let n = self.number(field, value)?;
        let ms =
            match value.len() {
                10 => n.saturating_mul(1000),
                13 => n,
                16 => n / 1000,
                19 => n / 1_000_000,
                _ => return Err(self.refuse(
                    field,
                    "must be a time in s, ms, µs or ns (10, 13, 16 or 19 digits); leave it out \
                     and the crate's nonce source sets it",
                )),
            };
        self.within_skew(field, ms)?;
        Ok(n)
    }

    /// An expiry in seconds: after the clock, at most the TTL ahead.
    pub fn expires_s(&self, field: &str, value: &str) -> Result<u64> {
        let s = self.number(field, value)?;
        let ms = s.saturating_mul(1000);
        // Saturating: an expiry near u64::MAX is refused, not an overflow (found by the fuzz
        // target `exchange_canonical` through BitMEX's `api-expires`).
        if ms.saturating_add(self.limits.skew_ms) < self.now_ms
            || ms
                > self
                    .now_ms
                    .saturating_add(self.limits.ttl_ms)
                    .saturating_add(self.limits.skew_ms)
        {
            return Err(self.refuse(
                field,
                format!(
                    "must lie between now and {} ms ahead of the crate's clock",
                    self.limits.ttl_ms
                ),
            ));
        }
        Ok(s)
    }

    /// A receive window in milliseconds: a number from 1 to the TTL.
    pub fn recv_window_ms(&self, field: &str, value: &str) -> Result<u64> {
        let w = self.number(field, value)?;
        if w == 0 || w > self.limits.ttl_ms {
            return Err(self.refuse(
                field,
                format!("must be from 1 to {} ms", self.limits.ttl_ms),
            ));
        }
        Ok(w)
    }

    /// The API key a request carries: the key's recorded one when it has one (a request value
    /// must equal it), else a value of `A-Z a-z 0-9 - _` (what exchanges issue) when `required`
    /// or given. Returns the value to use.
    pub fn api_key<'v>(&self, value: Option<&'v str>) -> Result<Option<&'v str>>
    where
        'a: 'v,
    {
        self.api_key_with(value, b"-_")
    }

    /// As [`Inputs::api_key`], with more characters allowed besides `A-Z a-z 0-9`.
    pub fn api_key_with<'v>(&self, value: Option<&'v str>, extra: &[u8]) -> Result<Option<&'v str>>
    where
        'a: 'v,
    {
        match (self.api_key, value) {
            (Some(stored), None) => Ok(Some(stored)),
            (Some(stored), Some(given)) if given == stored => Ok(Some(given)),
            (Some(_), Some(_)) => {
                Err(self.refuse("api_key", "differs from the API key recorded with the key"))
            }
            (None, None) => Ok(None),
            (None, Some(given)) => {
                let ok = !given.is_empty()
                    && given.len() <= API_KEY_MAX
                    && given
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
                if ok {
                    Ok(Some(given))
                } else {
                    Err(self.refuse(
                        "api_key",
                        "must be an API key as the exchange issues it (letters, digits and few \
                         marks); record it with the key to have the crate set it",
                    ))
                }
            }
        }
    }

    /// The passphrase a request carries: the key's recorded one when it has one (a request value
    /// must equal it), else printable ASCII without spaces when given.
    pub fn passphrase<'v>(&self, value: Option<&'v str>) -> Result<Option<&'v str>>
    where
        'a: 'v,
    {
        match (self.passphrase, value) {
            (Some(stored), None) => Ok(Some(stored)),
            (Some(stored), Some(given)) if given == stored => Ok(Some(given)),
            (Some(_), Some(_)) => Err(self.refuse(
                "passphrase",
                "differs from the passphrase recorded with the key",
            )),
            (None, None) => Ok(None),
            (None, Some(given)) => {
                let ok = !given.is_empty()
                    && given.len() <= 128
                    && given.bytes().all(|b| b.is_ascii_graphic());
                if ok {
                    Ok(Some(given))
                } else {
                    Err(self.refuse("passphrase", "must be printable ASCII without spaces"))
                }
            }
        }
    }

    /// A host the exchange signs: one of its documented API hosts, or a configured test host.
    pub fn host(&self, value: &str, documented: &[&str]) -> Result<()> {
        let lower = value.to_ascii_lowercase();
        if lower != value {
            return Err(self.refuse("host", "must be lower case"));
        }
        if documented.contains(&value) || self.limits.test_hosts.iter().any(|h| h == value) {
            return Ok(());
        }
        Err(self.refuse(
            "host",
            format!(
                "is not one of the exchange's API hosts ({}) or a configured test host",
                documented.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(limits: &Limits) -> Inputs<'_> {
        Inputs::new("test", 1_700_000_000_000, limits, None, None)
    }

    #[test]
    fn time_inputs_are_held_to_the_clock() {
        let limits = Limits::default();
        let i = inputs(&limits);
        assert!(i.timestamp_ms("timestamp", "1700000004000").is_ok());
        assert!(i.timestamp_ms("timestamp", "1700000006000").is_err());
        assert!(i.timestamp_ms("timestamp", "01700000000000").is_err());
        assert!(i.timestamp_ms("timestamp", "+1700000000000").is_err());
        assert!(i.timestamp_s("timestamp", "1700000001").is_ok());
        assert!(i.timestamp_s("timestamp", "1800000000").is_err());
        assert!(i.time_nonce("nonce", "1700000000000123").is_ok());
        assert!(i.time_nonce("nonce", "18446744073709551615").is_err());
        assert!(i.time_nonce("nonce", "12345").is_err());
        assert!(i.expires_s("expires", "1700000060").is_ok());
        assert!(i.expires_s("expires", "1700000100").is_err());
        assert!(i.expires_s("expires", "1699999000").is_err());
        // Refused, not an overflow panic (a fuzz find).
        assert!(i.expires_s("expires", "18446744073709551615").is_err());
        assert!(i.expires_s("expires", "18446744073709551").is_err());
        assert!(i.recv_window_ms("recv_window", "5000").is_ok());
        assert!(i.recv_window_ms("recv_window", "60001").is_err());
        assert!(i.recv_window_ms("recv_window", "0").is_err());
    }

    #[test]
    fn api_key_and_passphrase_are_the_keys_own() {
        let limits = Limits::default();
        let stored = Inputs::new("x", 0, &limits, Some("AK"), Some("pass"));
        assert_eq!(stored.api_key(None).unwrap(), Some("AK"));
        assert!(stored.api_key(Some("AK")).is_ok());
        assert!(stored.api_key(Some("BK")).is_err());
        assert!(stored.passphrase(Some("other")).is_err());
        let free = inputs(&limits);
        assert!(free.api_key(Some("abc-DEF_123")).is_ok());
        assert!(free.api_key(Some("abc5000sym")).is_ok());
        assert!(free.api_key(Some("a&b")).is_err());
        assert!(free.api_key(Some("")).is_err());
        assert!(free.passphrase(Some("a b")).is_err());
    }
}
