//! Validation shared by the `ts‖METHOD‖path[?query]‖body`-style signers (OKX, Coinbase
//! Exchange, Bitget, KuCoin, BitMEX, Bitfinex, Gate, Coinbase Advanced).

use std::borrow::Cow;

use crate::error::Result;
use crate::exchanges::{grammar, Inputs, Request};

/// What a request of a `METHOD‖path[?query]‖body` scheme may carry.
pub(in crate::exchanges) struct Target {
    /// The methods the exchange serves.
    pub methods: &'static [&'static str],
    /// The path prefix of its private API.
    pub prefix: &'static str,
    /// The methods whose parameters go in a JSON body; the others carry a query and no
    /// body. Empty: any method may carry both (schemes that separate query and body).
    pub body_methods: &'static [&'static str],
    /// Whether a JSON array body (batch endpoints) is allowed besides an object.
    pub arrays: bool,
    /// Whether the exchange verifies the query percent-decoded (Bitget, Gate).
    pub decoded_query: bool,
}

/// Checks method, path, query and body against `rules`; returns the method and path.
pub(in crate::exchanges) fn target<'r>(
    inputs: &Inputs<'_>,
    req: &'r Request,
    rules: &Target,
) -> Result<(&'r str, &'r str)> {
    let method = grammar::method(
        inputs,
        req.method.as_deref().unwrap_or("GET"),
        rules.methods,
    )?;
    let path = grammar::path(inputs, req.path.as_deref().unwrap_or(""), rules.prefix)?;
    let carries_body = rules.body_methods.is_empty() || rules.body_methods.contains(&method);
    let carries_query = rules.body_methods.is_empty() || !carries_body;
    let query = req.query.as_deref().unwrap_or("");
    if !query.is_empty() {
        if !carries_query {
            return Err(inputs.refuse(
                "query",
                format!("a {method} request carries its parameters in the JSON body"),
            ));
        }
        grammar::form(inputs, "query", query)?;
        if rules.decoded_query {
            decoded_query(inputs, query)?;
        }
    }
    let body = req.body.as_deref().unwrap_or("");
    if !body.is_empty() {
        if !carries_body {
            return Err(inputs.refuse(
                "body",
                format!("a {method} request has no body: its parameters go in the query"),
            ));
        }
        json_body(inputs, body, rules.arrays)?;
    }
    Ok((method, path))
}

/// A JSON body: an object, or (when `arrays`) an array, parsed strictly (no duplicate
/// member at any depth), nothing before or after it.
pub(in crate::exchanges) fn json_body(inputs: &Inputs<'_>, body: &str, arrays: bool) -> Result<()> {
    if arrays && body.starts_with('[') {
        if !body.ends_with(']') {
            return Err(inputs.refuse("body", "must be a JSON object or array"));
        }
        // The array as a member of an object: the strict parser checks it at every depth.
        grammar::json_object(inputs, "body", &format!("{{\"a\":{body}}}"))?;
        return Ok(());
    }
    grammar::json_object(inputs, "body", body)?;
    Ok(())
}

/// Characters a percent-escape may stand for in a query the exchange verifies decoded: none
/// that separates parameters (`&`, `=`, `?`, `#`), parts of the prehash (`\n`, `{`, `[`),
/// or escapes (`%`); non-ASCII UTF-8 is fine.
const DECODED_OK: &[u8] = b"-_.~,:*+/@!$'() ";

/// A query the exchange verifies percent-decoded: every escape decodes to an allowed
/// character, and the decoded query is UTF-8, so that the signed text has the parameters
/// that were sent, and nothing that reads as another part of the prehash.
pub(in crate::exchanges) fn decoded_query(inputs: &Inputs<'_>, query: &str) -> Result<()> {
    let decoded = crate::exchanges::encode::percent_decode_bytes(query);
    if std::str::from_utf8(&decoded).is_err() {
        return Err(inputs.refuse("query", "escapes must decode to UTF-8"));
    }
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .unwrap_or("");
            let v = u8::from_str_radix(hex, 16).unwrap_or(b'%');
            if v.is_ascii() && !(v.is_ascii_alphanumeric() || DECODED_OK.contains(&v)) {
                return Err(inputs.refuse(
                    "query",
                    format!(
                        "`%{hex}` decodes to `{}`, which the exchange would verify as a \
                         separator: the signed query would hold other parameters than \
                         those sent",
                        char::from(v).escape_default()
                    ),
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Refuses every request field in `fields` that is set: the scheme does not use it, and a
/// validator refuses what it would have to ignore.
pub(in crate::exchanges) fn unused(
    inputs: &Inputs<'_>,
    req: &Request,
    fields: &[&str],
) -> Result<()> {
    for field in fields {
        let set = match *field {
            "timestamp" => req.timestamp.is_some(),
            "nonce" => req.nonce.is_some(),
            "expires" => req.expires.is_some(),
            "recv_window" => req.recv_window.is_some(),
            "passphrase" => req.passphrase.is_some(),
            "host" => req.host.is_some(),
            _ => false,
        };
        if set {
            return Err(inputs.refuse(field, "is not part of this exchange's scheme"));
        }
    }
    Ok(())
}

/// A host the request names: one of the exchange's API hosts or a configured test host.
pub(in crate::exchanges) fn host(inputs: &Inputs<'_>, req: &Request, id: &str) -> Result<()> {
    match (req.host.as_deref(), crate::exchanges::info(id)) {
        (Some(h), Some(info)) => inputs.host(h, info.hosts),
        (Some(_), None) => Err(inputs.refuse("host", "unknown exchange")),
        (None, _) => Ok(()),
    }
}

/// The request's value, else the one recorded with the key (validated by the reach).
pub(in crate::exchanges) fn or_recorded<'r>(
    given: Option<&'r str>,
    recorded: Option<&str>,
) -> Option<Cow<'r, str>> {
    given
        .map(Cow::Borrowed)
        .or_else(|| recorded.map(|r| Cow::Owned(r.to_owned())))
}

/// Whether the last byte of `text` is one that a digit run right after it (an expiry or
/// nonce) could absorb or be read with: a digit, or an exponent after one.
pub(in crate::exchanges) fn ends_numeric(text: &str) -> bool {
    let b = text.as_bytes();
    match b {
        [.., d] if d.is_ascii_digit() => true,
        [.., d, e] if d.is_ascii_digit() && (*e == b'e' || *e == b'E') => true,
        _ => false,
    }
}
