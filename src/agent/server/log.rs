//! The one log line of each request (`tracing`, target [`TARGET`], level `info`; `warn` for a
//! peer outside the key's allow-list and for failures): the peer's uid and pid, the op, key,
//! exchange, method and endpoint the client asked for, the decision (`allowed`, `refused` with
//! the reply's error kind, or `error` with it) and the latency in µs. Never the request's query
//! or body, a signature, a MAC, the message bytes or a PIN.
//!
//! With no subscriber, or one that filters the target out, a request costs one check of
//! `tracing`'s cached interest: no clock read, no field taken from the message.

use std::time::Instant;

use serde_json::Value;
use tracing::Level;

use super::ops::handle;
use super::{Peer, Shared};

/// The request lines' target (`RUST_LOG=hsm_custody::agent::request=info`).
const TARGET: &str = "hsm_custody::agent::request";

/// Longest client-given text (key, exchange, method, endpoint) a line repeats.
const MAX_FIELD: usize = 128;

/// Answers one well-formed frame ([`handle`]) and logs it.
pub(super) async fn handled(shared: &Shared, peer: &Peer, message: &Value) -> Value {
    let started = tracing::enabled!(target: TARGET, Level::WARN).then(Instant::now);
    let reply = handle(shared, peer, message).await;
    if let Some(started) = started {
        line(peer, message, &reply, started);
    }
    reply
}

/// The kinds that are a failure of the agent or the token rather than a refusal of the
/// request: the line says `error`.
fn is_failure(kind: &str) -> bool {
    matches!(kind, "token" | "busy" | "audit_failed")
}

fn line(peer: &Peer, message: &Value, reply: &Value, started: Instant) {
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let op = text(message.get("op"));
    let key = text(message.get("key"));
    // `mac` signs client-chosen bytes: no exchange, method `RAW`, its label as the endpoint
    // (as the audit log records it).
    let (exchange, method, endpoint) = if op == Some("mac") {
        (
            Some("raw"),
            Some("RAW"),
            text(message.get("label")).or(Some("raw")),
        )
    } else {
        let request = message.get("request");
        (
            text(message.get("exchange")),
            text(request.and_then(|r| r.get("method"))),
            text(request.and_then(|r| r.get("path"))),
        )
    };
    let kind = reply
        .get("err")
        .and_then(|e| e.get("kind"))
        .and_then(Value::as_str);
    let decision = match kind {
        None => "allowed",
        Some(k) if is_failure(k) => "error",
        Some(_) => "refused",
    };
    macro_rules! request_line {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                uid = peer.uid,
                pid = peer.pid,
                op,
                key,
                exchange,
                method,
                endpoint,
                decision,
                kind,
                latency_us,
                "request"
            )
        };
    }
    match (decision, kind) {
        ("error", _) | (_, Some("forbidden")) => request_line!(Level::WARN),
        _ => request_line!(Level::INFO),
    }
}

/// A string field, cut to [`MAX_FIELD`] bytes.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).map(short)
}

/// `text`, cut to [`MAX_FIELD`] bytes at a character boundary: a client cannot make a line
/// as long as its frame.
fn short(text: &str) -> &str {
    if text.len() <= MAX_FIELD {
        return text;
    }
    let mut end = MAX_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_cuts_long_text_at_a_character_boundary() {
        assert_eq!(short("/api/v3/order"), "/api/v3/order");
        let long = "é".repeat(100);
        let cut = short(&long);
        assert!(cut.len() <= MAX_FIELD && cut.len() >= MAX_FIELD - 1);
        assert!(long.starts_with(cut));
    }
}
