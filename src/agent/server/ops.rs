//! The ops a well-formed frame asks for (`ping`, `keys`, `sign`, `mac`): the client's rate and
//! the key's allow-list first, then the signature through the async facade (so through the
//! `Custody`'s guard rails); and the replies, with errors in the protocol's kinds.

use governor::clock::Clock as _;
use serde_json::{json, Value};

use super::{Peer, Shared};
use crate::agent::protocol::{kind, signed_to_json, VERSION};
use crate::error::{Error, ErrorKind, Result};
use crate::exchanges::Request;
use crate::sign::HmacAlg;
use crate::sign::RequestContext;

/// Answers one well-formed frame.
pub(super) async fn handle(shared: &Shared, peer: &Peer, message: &Value) -> Value {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    match message.get("v").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => {
            let mut reply = error_reply(
                &id,
                kind::UNSUPPORTED_VERSION,
                &format!("protocol version {other} is not supported"),
            );
            reply["err"]["supported"] = json!([VERSION]);
            return reply;
        }
        None => return error_reply(&id, kind::BAD_REQUEST, "message lacks `v`"),
    }
    let op = message.get("op").and_then(Value::as_str).unwrap_or("");
    match op {
        "ping" => ok_reply(
            &id,
            json!({"pong": true, "agent": "hsm-custody", "version": env!("CARGO_PKG_VERSION")}),
        ),
        "keys" => {
            let keys: Vec<Value> = shared
                .config
                .keys
                .iter()
                .filter(|(_, a)| a.allows_peer(peer.uid, peer.gids()))
                .map(|(name, a)| json!({"name": name, "exchanges": a.exchanges}))
                .collect();
            ok_reply(&id, json!({ "keys": keys }))
        }
        "sign" => reply(&id, sign(shared, peer, message).await),
        "mac" => reply(&id, mac(shared, peer, message).await),
        "" => error_reply(&id, kind::BAD_REQUEST, "message lacks `op`"),
        _ => error_reply(
            &id,
            kind::UNKNOWN_OP,
            "unknown op; known: ping, keys, sign, mac",
        ),
    }
}

/// A string field of a request, or a `bad_request` refusal naming it.
fn text_field(message: &Value, op: &str, name: &str) -> std::result::Result<String, Value> {
    message
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| refusal(kind::BAD_REQUEST, &format!("{op} needs a string `{name}`")))
}

/// The checks every keyed op passes first: the client's rate (before anything else, so that
/// refused requests cannot be used to probe at full speed), then the allow-list for `key` and
/// `exchange` (`raw` for the `mac` op).
fn admit(
    shared: &Shared,
    peer: &Peer,
    key: &str,
    exchange: &str,
) -> std::result::Result<(), Value> {
    if let Err(not_until) = shared.limiter.check_key(&(peer.uid, peer.pid)) {
        let wait = not_until.wait_time_from(shared.limiter.clock().now());
        let ms = wait.as_millis().max(1);
        let mut err = refusal(
            ErrorKind::RateLimited.wire_name(),
            &format!("client over its rate limit; retry after {ms} ms"),
        );
        err["key"] = json!(key);
        err["rule"] = json!("agent-client-rate");
        err["retry_after_ms"] = json!(ms);
        return Err(err);
    }
    let allowed = shared
        .config
        .keys
        .get(key)
        .is_some_and(|a| a.allows_groups(peer.uid, peer.gids(), exchange));
    if !allowed {
        return Err(refusal(
            kind::FORBIDDEN,
            &format!(
                "{} may not sign `{exchange}` requests with key `{key}`: not in its \
                 [agent.keys.{key}] uids or gids",
                peer.checked()
            ),
        ));
    }
    Ok(())
}

/// The `mac` op: a raw HMAC over client-chosen bytes, for exchanges the crate has no signer
/// for. The key's policy must set `allow_raw = true` (else `policy_denied`, rule
/// `raw-signing`), the allow-list must admit exchange `raw` when it lists exchanges, and the
/// audit log records it with no exchange, method `RAW` and the client's label as the path.
async fn mac(shared: &Shared, peer: &Peer, message: &Value) -> std::result::Result<Value, Value> {
    use base64::Engine as _;
    let key = text_field(message, "mac", "key")?;
    let alg = text_field(message, "mac", "alg")?;
    let alg = if alg.starts_with("hmac-") {
        alg
    } else {
        format!("hmac-{alg}")
    };
    let alg: HmacAlg = alg
        .parse()
        .map_err(|e: Error| refusal(kind::BAD_REQUEST, &e.to_string()))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(text_field(message, "mac", "data_b64")?)
        .map_err(|_| refusal(kind::BAD_REQUEST, "mac needs `data_b64` in standard base64"))?;
    let label = match message.get("label") {
        None | Some(Value::Null) => "raw".to_owned(),
        Some(Value::String(l))
            if !l.is_empty()
                && l.len() <= 64
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            l.clone()
        }
        Some(_) => {
            return Err(refusal(
                kind::BAD_REQUEST,
                "`label` must be 1-64 characters of A-Z a-z 0-9 - _ . :",
            ))
        }
    };
    admit(shared, peer, &key, "raw")?;
    let client = peer.audit_name();
    let result = shared
        .custody
        .run_here(move |c| {
            let context = RequestContext::raw("RAW", &label).with_client(&client);
            c.key(&key)?.hmac_for(alg, &data, &context)
        })
        .await;
    answer(result, |mac| json!({ "mac": mac.to_hex() }))
}

/// The reply for a keyed op's outcome (the request's log line is `log.rs`'s).
fn answer<T>(result: Result<T>, ok: impl FnOnce(T) -> Value) -> std::result::Result<Value, Value> {
    result.map(ok).map_err(|e| kind_of(&e))
}

async fn sign(shared: &Shared, peer: &Peer, message: &Value) -> std::result::Result<Value, Value> {
    let key = text_field(message, "sign", "key")?;
    let exchange = text_field(message, "sign", "exchange")?;
    admit(shared, peer, &key, &exchange)?;
    let request = match message.get("request") {
        Some(v @ Value::Object(_)) => Request::from_json_value(v).map_err(|e| kind_of(&e))?,
        _ => return Err(refusal(kind::BAD_REQUEST, "sign needs a `request` object")),
    };
    let client = peer.audit_name();
    let result = shared
        .custody
        .run_here(move |c| {
            // Serialized here: the signed request borrows from `request`.
            c.exchange_signer_for(&key, &exchange)?
                .sign_as(&request, &client)
                .map(|signed| signed_to_json(&signed))
        })
        .await;
    answer(result, |ok| ok)
}

/// The protocol's `err` object for a crate error: kind ([`ErrorKind::wire_name`]), message
/// (which never holds a PIN, a secret, a signature or a request body), the error's hint when it
/// has one, and the key and rule of a guard-rail refusal.
fn kind_of(e: &Error) -> Value {
    let mut err = refusal(e.kind().wire_name(), &e.to_string());
    if let Some(hint) = e.hint() {
        err["hint"] = json!(hint);
    }
    if let Error::PolicyDenied { key, rule, .. } | Error::RateLimited { key, rule } = e {
        err["key"] = json!(key);
        err["rule"] = json!(rule);
    }
    if let Error::PolicyDenied { request, .. } = e {
        err["request"] = json!(request);
    }
    err
}

pub(super) fn refusal(kind: &str, message: &str) -> Value {
    json!({"kind": kind, "message": message})
}

/// The reply to a keyed op: its `ok` object, or its `err` object.
pub(super) fn reply(id: &Value, result: std::result::Result<Value, Value>) -> Value {
    match result {
        Ok(ok) => ok_reply(id, ok),
        Err(err) => json!({"v": VERSION, "id": id, "err": err}),
    }
}

fn ok_reply(id: &Value, ok: Value) -> Value {
    json!({"v": VERSION, "id": id, "ok": ok})
}

pub(super) fn error_reply(id: &Value, kind: &str, message: &str) -> Value {
    reply(id, Err(refusal(kind, message)))
}
