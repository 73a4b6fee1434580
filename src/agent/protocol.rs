//! Wire format shared by the agent and its clients (see `docs/agent-protocol.md`).
//!
//! A frame is a 4-byte big-endian length `N` followed by `N` bytes of UTF-8 JSON (one object).
//! Every message carries `"v": 1`. Requests carry an `id` (any JSON value) that the reply
//! echoes, and an `op`: `ping`, `keys` or `sign`. A reply holds either `ok` or `err`.

// With only one side of the agent compiled, the other side's helpers are unused.
#![cfg_attr(
    not(all(feature = "agent", feature = "agent-client")),
    allow(dead_code, unused_imports)
)]

use serde_json::{json, Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::exchanges::{Request, SignedRequest};

/// The protocol version this crate speaks.
pub const VERSION: u64 = 1;

/// Default largest frame payload the agent accepts, in bytes (64 KiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The `kind`s of the agent's own refusals, which no crate [`Error`] stands behind: framing,
/// version, op and field checks, and the allow-list. (`busy` and `rate_limited` are sent for
/// the agent's own limits too, with the same strings as [`ErrorKind::Busy`] and
/// [`ErrorKind::RateLimited`].)
pub(crate) mod kind {
    /// A frame the agent cannot use; the connection is closed.
    pub(crate) const BAD_FRAME: &str = "bad_frame";
    /// A field of the message is missing or of the wrong type.
    pub(crate) const BAD_REQUEST: &str = "bad_request";
    /// `v` is not a version the agent speaks.
    pub(crate) const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// `op` is not an op the agent knows.
    pub(crate) const UNKNOWN_OP: &str = "unknown_op";
    /// This peer may not use this key (or this exchange with it).
    pub(crate) const FORBIDDEN: &str = "forbidden";
    /// The agent's own refusals' kinds.
    pub(crate) const AGENT: &[&str] = &[
        BAD_FRAME,
        BAD_REQUEST,
        UNSUPPORTED_VERSION,
        UNKNOWN_OP,
        FORBIDDEN,
    ];
}

/// Every error `kind` the agent may send (`docs/agent-protocol.md`), sorted: the agent's own
/// refusals' and the [`ErrorKind::wire_name`] of every crate error kind.
pub fn wire_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = kind::AGENT
        .iter()
        .copied()
        .chain(ErrorKind::ALL.iter().map(|k| k.wire_name()))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// Largest reply a client accepts, in bytes (replies are a signed request; 1 MiB is ample).
pub(crate) const MAX_REPLY: usize = 1024 * 1024;

/// The 4-byte length prefix and the payload of one frame.
pub(crate) fn encode_frame(message: &Value) -> Vec<u8> {
    let payload = message.to_string().into_bytes();
    // A frame longer than u32::MAX cannot be built from the bounded inputs here; saturate so a
    // bug shows up as a refused frame rather than a truncated one.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The `request` object of a `sign` message: the `sign-request` JSON fields, absent ones
/// omitted.
pub(crate) fn request_to_json(req: &Request) -> Value {
    let mut map = Map::new();
    let fields = [
        ("method", &req.method),
        ("path", &req.path),
        ("query", &req.query),
        ("body", &req.body),
        ("timestamp", &req.timestamp),
        ("nonce", &req.nonce),
        ("expires", &req.expires),
        ("api_key", &req.api_key),
        ("recv_window", &req.recv_window),
        ("passphrase", &req.passphrase),
        ("host", &req.host),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            map.insert(name.to_owned(), Value::String(v.clone()));
        }
    }
    Value::Object(map)
}

/// The `ok` object of a `sign` reply: method, path, query, body, headers as ordered
/// `[name, value]` pairs, and the signature.
pub(crate) fn signed_to_json(signed: &SignedRequest<'_>) -> Value {
    let headers: Vec<Value> = signed.headers.iter().map(|(n, v)| json!([n, v])).collect();
    json!({
        "method": signed.method,
        "path": signed.path,
        "query": signed.query,
        "body": signed.body,
        "headers": headers,
        "signature": signed.signature,
    })
}

/// Reads the `ok` object of a `sign` reply back into a [`SignedRequest`].
pub(crate) fn signed_from_json(value: &Value) -> Result<SignedRequest<'static>> {
    let text = |name: &str| -> Result<String> {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::invalid(format!("agent reply lacks `{name}`")))
    };
    let mut signed = SignedRequest::new(
        text("method")?,
        text("path")?,
        text("query")?,
        text("body")?,
        text("signature")?,
    );
    let headers = value
        .get("headers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("agent reply lacks `headers`"))?;
    for pair in headers {
        match pair.as_array().map(Vec::as_slice) {
            Some([Value::String(n), Value::String(v)]) => {
                signed = signed.with_header(n.clone(), v.clone())
            }
            _ => return Err(Error::invalid("agent reply has a malformed header")),
        }
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Python client's table of protocol kinds (`_BY_KIND` in
    /// `python/hsm_custody/errors.py`, one `"kind": Class,` per line) lists exactly the kinds
    /// the agent sends. Parsed here rather than generated: the Python package stays plain
    /// source, and a kind added on one side only fails this test.
    #[test]
    fn python_errors_table_lists_every_wire_kind() {
        let source = include_str!("../../python/hsm_custody/errors.py");
        let start = source
            .find("_BY_KIND: Dict[str, Type[AgentError]] = {")
            .expect("errors.py defines _BY_KIND");
        let table = &source[start..];
        let table = &table[table.find('{').unwrap() + 1..table.find("\n}").unwrap()];
        let mut python: Vec<&str> = table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (kind, class) = l.split_once(':').expect("`\"kind\": Class,` per line");
                assert!(class.trim().ends_with(','), "{l}");
                kind.trim().trim_matches('"')
            })
            .collect();
        python.sort_unstable();
        assert_eq!(
            python,
            wire_kinds(),
            "python/hsm_custody/errors.py _BY_KIND"
        );
    }

    /// The protocol document's table of kinds lists exactly the kinds the agent sends.
    #[test]
    fn protocol_document_lists_every_wire_kind() {
        let doc = include_str!("../../docs/agent-protocol.md");
        let mut documented: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` |").map(|(kind, _)| kind))
            .collect();
        documented.sort_unstable();
        assert_eq!(documented, wire_kinds(), "docs/agent-protocol.md, Errors");
    }

    #[test]
    fn frames_are_length_prefixed_json() {
        let frame = encode_frame(&json!({"v": 1, "op": "ping"}));
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        let back: Value = serde_json::from_slice(&frame[4..]).unwrap();
        assert_eq!(back["op"], "ping");
    }

    #[test]
    fn signed_requests_round_trip_with_header_order() {
        let signed = SignedRequest::new("POST", "/p", "a=1", "b=2", "sig")
            .with_header("Z-First", "1")
            .with_header("A-Second", "2");
        let back = signed_from_json(&signed_to_json(&signed)).unwrap();
        assert_eq!(back, signed);
        let req = Request::post("/x").query("q=1").passphrase("pp");
        let again = Request::from_json(&request_to_json(&req).to_string()).unwrap();
        assert_eq!(again, req);
    }
}
