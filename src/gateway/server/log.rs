//! The one log line of each request through the gateway (`tracing`, target [`TARGET`], level
//! `info`; `warn` for a refused peer and for failures): the peer's uid and pid, the route's key
//! and exchange, the method and the exchange endpoint (its path, never the query: it holds the
//! bot's signature), whether it is a signed request, the decision (`allowed`, `refused`
//! with the gateway's error kind, or `error` with it), the reply's status and the latency in µs
//! until the reply's head. Never a header, a body, a signature or a PIN.
//!
//! With no subscriber, or one that filters the target out, a request costs one check of
//! `tracing`'s cached interest: no clock read, no copy of the path.

use std::time::Instant;

use hyper::body::Incoming;
use tracing::Level;

use super::handle::handle;
use super::reply::{Body, Refused};
use super::Shared;
use crate::gateway::config::Route;
use crate::gateway::peer::Peer;

/// The request lines' target (`RUST_LOG=hsm_custody::gateway::request=info`).
const TARGET: &str = "hsm_custody::gateway::request";

/// What [`handle`] found out about a request, for its line; filled only when the line will be
/// written (`on`).
pub(super) struct Seen<'a> {
    pub(super) on: bool,
    pub(super) route: Option<&'a Route>,
    /// The exchange path (no query).
    pub(super) endpoint: Option<String>,
    /// A request the exchange wants signed (re-signed in the token when allowed), not a
    /// public one forwarded as is.
    pub(super) signed: bool,
}

/// Handles one request ([`handle`]) and logs it.
pub(super) async fn handled(
    shared: &Shared,
    peer: Peer,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    let started = tracing::enabled!(target: TARGET, Level::WARN).then(Instant::now);
    let mut seen = Seen {
        on: started.is_some(),
        route: None,
        endpoint: None,
        signed: false,
    };
    let who = started.map(|_| (peer.uid, peer.pid, req.method().clone()));
    let resp = handle(shared, peer, req, &mut seen).await;
    if let (Some(started), Some((uid, pid, method))) = (started, who) {
        line(uid, pid, method.as_str(), &seen, &resp, started);
    }
    resp
}

/// The kinds that are a failure of the gateway, the token or the exchange rather than a
/// refusal of the request: the line says `error`.
fn is_failure(kind: &str) -> bool {
    matches!(
        kind,
        "signing_failed"
            | "config"
            | "upstream_unreachable"
            | "upstream_timeout"
            | "upstream_failed"
            | "reply_lost"
            | "reply_too_large"
    )
}

fn line(
    uid: u32,
    pid: Option<u32>,
    method: &str,
    seen: &Seen<'_>,
    resp: &hyper::Response<Body>,
    started: Instant,
) {
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let kind = resp.extensions().get::<Refused>().map(|r| r.0.as_str());
    let decision = match kind {
        None => "allowed",
        Some(k) if is_failure(k) => "error",
        Some(_) => "refused",
    };
    let key = seen.route.map(|r| r.key.as_str());
    let exchange = seen.route.map(|r| r.exchange.as_str());
    let endpoint = seen.endpoint.as_deref();
    let status = resp.status().as_u16();
    let signed = seen.signed;
    macro_rules! request_line {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                uid,
                pid,
                key,
                exchange,
                method,
                endpoint,
                signed,
                decision,
                kind,
                status,
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
