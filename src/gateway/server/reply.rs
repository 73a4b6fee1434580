//! The exchange's reply streamed back to the bot (hop-by-hop headers removed, an idle limit on
//! the body), and the gateway's own errors as JSON.

use std::future::Future as _;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::json;

use super::Shared;
use crate::gateway::config::Route;
use crate::gateway::forms::Http;
use crate::gateway::peer::Peer;
use crate::gateway::upstream::Failure;

pub(super) type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1), plus those the
/// gateway sets itself. The headers a message's `Connection` header names are hop-by-hop too
/// ([`connection_named`]).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The header names (lower case) that the `Connection` headers of a message list: options of
/// that one connection, which a proxy removes before forwarding (RFC 9110 7.6.1). Every
/// `Connection` line counts; a value that is not visible ASCII names nothing.
pub(super) fn connection_named(headers: &hyper::HeaderMap) -> Vec<String> {
    headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether header `name` (lower case, as [`HeaderName::as_str`]) stays on its hop: a fixed
/// hop-by-hop header or one of `named` (the message's [`connection_named`]).
pub(super) fn is_hop_by_hop(name: &str, named: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || named.iter().any(|n| n == name)
}

/// The kind of a gateway error, kept with its response for the request's log line.
#[derive(Clone, Debug)]
pub(super) struct Refused(pub(super) String);

/// A gateway error: JSON `{"error": {"kind", "message", ...}}` with a status ccxt maps sensibly.
pub(super) fn error(status: StatusCode, kind: &str, message: &str) -> hyper::Response<Body> {
    error_with(status, json!({"kind": kind, "message": message}))
}

pub(super) fn error_with(status: StatusCode, err: serde_json::Value) -> hyper::Response<Body> {
    let kind = Refused(err["kind"].as_str().unwrap_or("").to_owned());
    let body = json!({ "error": err, "gateway": "hsm-custody" }).to_string();
    let mut resp = hyper::Response::new(full(body));
    *resp.status_mut() = status;
    resp.extensions_mut().insert(kind);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// Sends `http` to the route's host and streams the reply back. `signer` is set for a
/// re-signed request: its outcome is audited, and a lost reply to a non-idempotent one is
/// reported as such (never retried).
pub(super) async fn forward(
    shared: &Shared,
    route: &Route,
    http: &Http,
    body: Bytes,
    signer: Option<Peer>,
) -> hyper::Response<Body> {
    let mut uri = http.path.clone();
    if http.qmark || !http.query.is_empty() {
        uri.push('?');
        uri.push_str(&http.query);
    }
    let Ok(method) = Method::from_bytes(http.method.as_bytes()) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "invalid method");
    };
    let mut builder = hyper::Request::builder().method(method.clone()).uri(uri);
    if let Some(h) = builder.headers_mut() {
        if let Ok(v) = HeaderValue::from_str(&route.host) {
            h.insert(hyper::header::HOST, v);
        }
        for (name, value) in &http.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(n), Ok(v)) => {
                    h.append(n, v);
                }
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        &format!("header `{name}` cannot be sent"),
                    )
                }
            }
        }
        if !body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }
    let req = match builder.body(Full::new(body)) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
    };
    let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let result = shared.upstream.send(&route.host, req).await;
    let outcome = match &result {
        Ok(resp) => format!("upstream {}", resp.status().as_u16()),
        Err(Failure::Unreachable(_)) => "upstream unreachable (not sent)".to_owned(),
        Err(Failure::Timeout) => "upstream timeout".to_owned(),
        Err(Failure::Lost(_)) => "upstream reply lost".to_owned(),
    };
    if let Some(peer) = signer.clone() {
        audit(shared, route, http, peer, outcome).await;
    }
    match result {
        Ok(resp) => {
            let (parts, incoming) = resp.into_parts();
            let announced = parts
                .headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if announced.is_some_and(|n| n > shared.config.max_reply) {
                return error_with(
                    StatusCode::BAD_GATEWAY,
                    json!({
                        "kind": "reply_too_large",
                        "message": format!(
                            "{}: the reply ({} bytes, status {}) is over max_reply ({} bytes); \
                             not passed on",
                            route.host,
                            announced.unwrap_or(0),
                            parts.status.as_u16(),
                            shared.config.max_reply
                        ),
                        "sent": true,
                    }),
                );
            }
            let limited = Limited::new(
                incoming,
                usize::try_from(shared.config.max_reply).unwrap_or(usize::MAX),
            )
            .boxed();
            let mut out =
                hyper::Response::new(IdleTimeout::new(limited, shared.config.timeout).boxed());
            *out.status_mut() = parts.status;
            let named = connection_named(&parts.headers);
            for (name, value) in &parts.headers {
                if !is_hop_by_hop(name.as_str(), &named) {
                    out.headers_mut().append(name.clone(), value.clone());
                }
            }
            out
        }
        Err(Failure::Unreachable(why)) => error(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            &format!("{}: {why}; nothing was sent", route.host),
        ),
        Err(Failure::Timeout) if signer.is_some() && unsafe_method => {
            reply_lost(route, "no reply within the time limit")
        }
        Err(Failure::Timeout) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            &format!(
                "{}: no reply within {} ms",
                route.host,
                shared.config.timeout.as_millis()
            ),
        ),
        Err(Failure::Lost(why)) if signer.is_some() && unsafe_method => reply_lost(route, &why),
        Err(Failure::Lost(why)) => error(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            &format!("{}: {why}", route.host),
        ),
    }
}

/// A signed non-idempotent request whose reply was lost: it may have executed.
fn reply_lost(route: &Route, why: &str) -> hyper::Response<Body> {
    error_with(
        StatusCode::BAD_GATEWAY,
        json!({
            "kind": "reply_lost",
            "message": format!(
                "{}: the signed request was sent but its reply was lost ({why}); it may have \
                 executed: check (open orders, history) before sending it again. The gateway \
                 never retries it",
                route.host
            ),
            "sent": true,
        }),
    )
}

/// The audit line for a re-signed request's outcome (the exchange's status, or the failure).
async fn audit(shared: &Shared, route: &Route, http: &Http, peer: Peer, outcome: String) {
    let Some(guard) = shared.guard.clone() else {
        return;
    };
    let mut rec = crate::audit::Record::new(crate::audit::Event::GatewayReply);
    rec.key = Some(route.key.clone());
    rec.exchange = Some(route.exchange.clone());
    rec.method = Some(http.method.clone());
    rec.path = Some(http.path.clone());
    rec.client = Some(peer.audit_name());
    rec.outcome = Some(outcome);
    let written = tokio::task::spawn_blocking(move || guard.audit_log().append(rec)).await;
    if !matches!(written, Ok(Ok(_))) {
        tracing::warn!("the gateway's reply line could not be written to the audit log");
    }
}

/// A reply body that fails when the exchange sends nothing for `idle`: a stalled reply ends the
/// client's connection instead of holding it (and the upstream connection) open.
struct IdleTimeout {
    inner: Body,
    idle: Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeout {
    fn new(inner: Body, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl hyper::body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "the exchange sent no reply data for {} ms",
                    this.idle.as_millis()
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
