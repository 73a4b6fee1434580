//! What a signature is good for: the canonical request an exchange will execute, and the
//! inputs the crate owns.
//!
//! A signature is a capability: the exchange's verifier decides what it authorises, from the
//! bytes that were signed, not from the fields a caller names. So before anything is signed,
//! each exchange checks the structured [`Request`](super::Request) against its grammar
//! ([`super::Exchange::reach`]) and answers with a [`Reach`]: the method and endpoint the
//! exchange will execute and the parameter names it will read. A request that does not fit the
//! grammar (a path that could be cut short and continued in the body, a query that is not plain
//! `name=value&...`, a JSON body with a duplicate member, a body that names another endpoint than
//! the path, a time far from the crate's clock, an API key other than the key's own) is refused
//! before the token is asked. The signer then signs the request exactly as validated: a
//! validator refuses what it would have to rewrite, so the validated request *is* the canonical
//! form. Policy and audit judge the [`Reach`].
//!
//! The crate owns time: a timestamp, nonce, expiry or receive window that the caller gives is
//! accepted only when it is well formed and within [`Limits`] of the crate's clock (by default
//! ±5 s, and at most 60 s of validity); otherwise the crate's clock and nonce source fill them in.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// What an exchange's signature binds: the parts of a request that the verifier recomputes
/// from what it receives and that the signature therefore fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Binding {
    /// The HTTP method.
    pub method: bool,
    /// The URL path (the endpoint).
    pub path: bool,
    /// The host.
    pub host: bool,
    /// The query string.
    pub query: bool,
    /// The body.
    pub body: bool,
    /// A timestamp, nonce or expiry.
    pub time: bool,
}

impl Binding {
    /// Binds method, path, query, body and time (the common `ts‖METHOD‖path‖body` schemes).
    pub const REQUEST: Binding = Binding {
        method: true,
        path: true,
        host: false,
        query: true,
        body: true,
        time: true,
    };

    /// Binds the parameters (query and body) and time only: the path is not signed.
    pub const PARAMS: Binding = Binding {
        method: false,
        path: false,
        host: false,
        query: true,
        body: true,
        time: true,
    };

    /// The same binding, changing one part.
    pub const fn with(self, part: &str, on: bool) -> Binding {
        let mut b = self;
        match part.as_bytes() {
            b"method" => b.method = on,
            b"path" => b.path = on,
            b"host" => b.host = on,
            b"query" => b.query = on,
            b"body" => b.body = on,
            b"time" => b.time = on,
            _ => {}
        }
        b
    }

    /// The bound parts, comma-separated (`method,path,query,body,time`).
    pub fn describe(&self) -> String {
        let parts = [
            ("method", self.method),
            ("path", self.path),
            ("host", self.host),
            ("query", self.query),
            ("body", self.body),
            ("time", self.time),
        ];
        parts
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where the guard reads the endpoint an exchange will execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointFrom {
    /// The signed URL path.
    Path,
    /// A member of the signed body names it (Gemini `request`, Crypto.com `method`); it must
    /// equal the path.
    BodyMember(&'static str),
    /// The path is not signed: the signature is good at every endpoint whose required
    /// parameters it carries, so the guard judges the parameter set.
    Params,
}

/// What a signature will be good for at the exchange: the method and endpoint it executes and
/// the parameter names it reads. Built by [`super::Exchange::reach`] from a validated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    method: String,
    endpoint: String,
    params: Vec<String>,
    path_bound: bool,
    split_names: bool,
    also: Vec<(String, String)>,
}

impl Reach {
    /// A request whose signature binds the method and the endpoint.
    pub fn bound(method: impl Into<String>, endpoint: impl Into<String>) -> Reach {
        Reach {
            method: method.into(),
            endpoint: endpoint.into(),
            params: Vec::new(),
            path_bound: true,
            split_names: false,
            also: Vec::new(),
        }
    }

    /// A request whose signature does not bind the endpoint: `named` is the endpoint the caller
    /// names, `params` every parameter name the exchange will read from the signed bytes.
    pub fn unbound(
        method: impl Into<String>,
        named: impl Into<String>,
        params: impl IntoIterator<Item = String>,
    ) -> Reach {
        Reach {
            method: method.into(),
            endpoint: named.into(),
            params: Vec::new(),
            path_bound: false,
            split_names: false,
            also: Vec::new(),
        }
        .with_params(params)
    }

    /// Sets the parameter names (sorted, without duplicates).
    pub fn with_params(mut self, params: impl IntoIterator<Item = String>) -> Reach {
        let set: BTreeSet<String> = params.into_iter().collect();
        self.params = set.into_iter().collect();
        self
    }

    /// Marks that whoever holds the signature can move the boundary between the signed query
    /// and body (Binance signs `query‖body` without a separator), so a parameter name can be cut
    /// at its front: `xaddress=..` is also read as `address=..`.
    pub fn with_split_names(mut self) -> Reach {
        self.split_names = true;
        self
    }

    /// Another endpoint the exchange accepts the same signature at, whatever the request
    /// (Deribit: every signature also verifies as a `public/auth` client signature, which
    /// opens a session with the key's full scope). The guard judges it like the endpoint.
    pub fn with_also(mut self, method: impl Into<String>, endpoint: impl Into<String>) -> Reach {
        self.also.push((method.into(), endpoint.into()));
        self
    }

    /// The other endpoints the signature is good at ([`Reach::with_also`]).
    pub fn also(&self) -> &[(String, String)] {
        &self.also
    }

    /// The method the exchange executes (for unbound schemes, the one the caller named).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The endpoint the exchange executes (for unbound schemes, the one the caller named).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The parameter names the exchange reads, sorted.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// Whether the signature binds the endpoint.
    pub fn path_bound(&self) -> bool {
        self.path_bound
    }

    /// Whether a parameter name can be cut at its front by the holder of the signature.
    pub fn split_names(&self) -> bool {
        self.split_names
    }

    /// Whether the exchange can read parameter `name` from the signed bytes. Letter case is
    /// ignored: an exchange whose parameter names are case-insensitive reads `COIN` as `coin`.
    pub fn carries(&self, name: &str) -> bool {
        self.params.iter().any(|p| {
            p.eq_ignore_ascii_case(name)
                || (self.split_names
                    && p.len() >= name.len()
                    && p.is_char_boundary(p.len() - name.len())
                    && p[p.len() - name.len()..].eq_ignore_ascii_case(name))
        })
    }
}

// `Limits` lives in the vocabulary layer (`alg`), so that `config` reads it without importing
// the exchanges; its path here stays.
pub use crate::alg::Limits;

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
        if ms + self.limits.skew_ms < self.now_ms
            || ms > self.now_ms + self.limits.ttl_ms + self.limits.skew_ms
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

/// The strict grammars exchanges share: they refuse rather than rewrite.
pub mod grammar {
    use super::Inputs;
    use crate::error::Result;

    /// Checks that the method is one of `allowed` (upper case, exactly).
    pub fn method<'m>(inputs: &Inputs<'_>, value: &'m str, allowed: &[&str]) -> Result<&'m str> {
        if allowed.contains(&value) {
            Ok(value)
        } else {
            Err(inputs.refuse("method", format!("must be one of {}", allowed.join(", "))))
        }
    }

    /// A URL path: starts with `prefix` (which starts with `/`), then segments of
    /// `A-Z a-z 0-9 - _ . ~ :` (no `%`, no `?`, no empty, `.` or `..` segment, no trailing `/`).
    /// What the exchange's router reads is then exactly these bytes.
    pub fn path<'p>(inputs: &Inputs<'_>, value: &'p str, prefix: &str) -> Result<&'p str> {
        path_with(inputs, value, prefix, b"-_.~:")
    }

    /// As [`path`], with the characters `extra` allowed in segments besides `A-Z a-z 0-9`.
    pub fn path_with<'p>(
        inputs: &Inputs<'_>,
        value: &'p str,
        prefix: &str,
        extra: &[u8],
    ) -> Result<&'p str> {
        if !value.starts_with(prefix) {
            return Err(inputs.refuse("path", format!("must start with `{prefix}`")));
        }
        if value.len() > 512 {
            return Err(inputs.refuse("path", "is longer than 512 bytes"));
        }
        let Some(rest) = value.strip_prefix('/') else {
            return Err(inputs.refuse("path", "must start with `/`"));
        };
        for segment in rest.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(inputs.refuse(
                    "path",
                    "has an empty, `.` or `..` segment (or a trailing `/`)",
                ));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
            {
                return Err(inputs.refuse(
                    "path",
                    "may hold only letters, digits and - _ . ~ : (no %, ?, # or spaces)",
                ));
            }
        }
        Ok(value)
    }

    /// Characters a query or form value may hold as written (besides `%XX` escapes).
    const VALUE_EXTRA: &[u8] = b"-_.~,:*+/@!$'()";

    /// A query string or form body as written: `name=value` pairs joined by single `&`, names of
    /// `A-Z a-z 0-9 - _ . [ ]`, values of `A-Z a-z 0-9 - _ . ~ , : * + / @ ! $ ' ( )` and valid
    /// `%XX` escapes; no duplicate name, no empty pair, no leading `?`. Returns the names.
    pub fn form(inputs: &Inputs<'_>, field: &str, value: &str) -> Result<Vec<String>> {
        form_with(inputs, field, value, VALUE_EXTRA)
    }

    /// As [`form`], with the characters `extra` allowed in values as written besides
    /// `A-Z a-z 0-9` and `%XX` escapes.
    pub fn form_with(
        inputs: &Inputs<'_>,
        field: &str,
        value: &str,
        extra: &[u8],
    ) -> Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        if value.is_empty() {
            return Ok(names);
        }
        for pair in value.split('&') {
            let Some((name, v)) = pair.split_once('=') else {
                return Err(inputs.refuse(field, "every parameter must be `name=value`"));
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.[]".contains(&b))
            {
                return Err(inputs.refuse(
                    field,
                    "parameter names may hold only letters, digits and - _ . [ ]",
                ));
            }
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                if b == b'%' {
                    let hex = bytes.get(i + 1..i + 3);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(inputs.refuse(field, "has a `%` that is not a `%XX` escape"));
                    }
                    i += 3;
                } else if b.is_ascii_alphanumeric() || extra.contains(&b) {
                    i += 1;
                } else {
                    return Err(inputs.refuse(
                        field,
                        format!(
                            "value of `{name}` holds `{}`: percent-encode it",
                            char::from(b).escape_default()
                        ),
                    ));
                }
            }
            if names.iter().any(|n| n == name) {
                return Err(inputs.refuse(field, format!("parameter `{name}` appears twice")));
            }
            names.push(name.to_owned());
        }
        Ok(names)
    }

    /// A JSON object body: parsed strictly (no duplicate member at any depth, nesting at most
    /// 16 deep, nothing before `{` or after `}`). Returns the object.
    pub fn json_object(
        inputs: &Inputs<'_>,
        field: &str,
        value: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        if !value.starts_with('{') || !value.ends_with('}') {
            return Err(inputs.refuse(
                field,
                "must be a JSON object with nothing before `{` or after `}`",
            ));
        }
        match super::strict_json::parse(value) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(inputs.refuse(field, "must be a JSON object")),
            Err(e) => Err(inputs.refuse(field, e)),
        }
    }
}

/// A JSON parser that refuses duplicate members and deep nesting (two parsers reading one
/// body differently is how a member slips past a check).
mod strict_json {
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    const MAX_DEPTH: usize = 16;

    pub(super) fn parse(text: &str) -> Result<Value, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Strict(0)
            .deserialize(&mut de)
            .map_err(|e| format!("is not strict JSON: {e}"))?;
        de.end().map_err(|e| format!("is not strict JSON: {e}"))?;
        Ok(value)
    }

    #[derive(Clone, Copy)]
    struct Strict(usize);

    impl<'de> de::DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl Strict {
        fn deserialize<'de, D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| E::custom("a number out of range"))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            if self.0 >= MAX_DEPTH {
                return Err(de::Error::custom("nested too deep"));
            }
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(Strict(self.0 + 1))? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            if self.0 >= MAX_DEPTH {
                return Err(de::Error::custom("nested too deep"));
            }
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("member `{key}` appears twice")));
                }
                let v = map.next_value_seed(Strict(self.0 + 1))?;
                out.insert(key, v);
            }
            Ok(Value::Object(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::grammar;
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

    #[test]
    fn grammars_refuse_what_they_would_have_to_rewrite() {
        let limits = Limits::default();
        let i = inputs(&limits);
        assert!(grammar::path(&i, "/api/v3/order", "/api/").is_ok());
        for bad in [
            "/api/v3/order/",
            "/api//v3",
            "/api/./x",
            "/api/%77ithdraw",
            "/api/v3?x=1",
            "api/v3",
            "/api/v3 x",
            "/sapi/v1",
        ] {
            assert!(grammar::path(&i, bad, "/api/").is_err(), "{bad}");
        }
        assert_eq!(
            grammar::form(&i, "query", "a=1&b=%20x").unwrap(),
            vec!["a", "b"]
        );
        for bad in [
            "a=1&a=2", "a", "a=1&", "&a=1", "?a=1", "a=b=c", "a=%zz", "a=1 2", "a=é",
        ] {
            assert!(grammar::form(&i, "query", bad).is_err(), "{bad}");
        }
        assert!(grammar::json_object(&i, "body", r#"{"a":{"b":1}}"#).is_ok());
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":2}}"#,
            r#" {"a":1}"#,
            r#"{"a":1} "#,
            r#"[1]"#,
            r#"{"a":1}{"#,
        ] {
            assert!(grammar::json_object(&i, "body", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn split_names_reach_suffixes() {
        let r = Reach::unbound("POST", "/api/v3/order", ["xaddress".to_owned()]);
        assert!(!r.carries("address"));
        assert!(r.with_split_names().carries("ADDRESS"));
        let shouted = Reach::unbound("POST", "/api/v3/order", ["COIN".to_owned()]);
        assert!(shouted.carries("coin"));
    }
}
