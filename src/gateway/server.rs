//! The gateway's server: loopback TCP, the peer from the kernel, request forms, re-signing, the
//! exchange's reply streamed back.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::config::{GatewayConfig, Route};
use super::forms::{self, Http};
use super::peer::{self, Peer};
use super::upstream::{Failure, Upstream};
use crate::asynch::AsyncCustody;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::guardrails::Guardrails;

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A bound gateway: the listener exists and the login is held; call [`Gateway::serve`].
pub struct Gateway {
    shared: Arc<Shared>,
    tcp: TcpListener,
    unix: Option<tokio::net::UnixListener>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.tcp.local_addr().ok())
            .finish_non_exhaustive()
    }
}

struct Shared {
    custody: AsyncCustody,
    guard: Option<Arc<Guardrails>>,
    config: GatewayConfig,
    limiter: DefaultKeyedRateLimiter<u32>,
    own_uid: u32,
    upstream: Upstream,
}

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1), plus those the
/// gateway sets itself.
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

impl Gateway {
    /// Binds the listener for `config` and wraps `custody`; `guard` is the guard rails
    /// installed on it (their audit log also records each exchange reply's status). Must run
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or CA file, [`Error::Io`] when the
    /// address cannot be bound.
    pub async fn bind(
        custody: Custody,
        guard: Option<Arc<Guardrails>>,
        config: GatewayConfig,
    ) -> Result<Gateway> {
        config.validate()?;
        let addr = config
            .listen
            .ok_or_else(|| Error::Config("[gateway] needs `listen`".into()))?;
        let tcp = TcpListener::bind(addr).await.map_err(|source| Error::Io {
            what: "gateway listen address",
            path: addr.to_string().into(),
            source,
        })?;
        let unix = match &config.socket {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let per_second = NonZeroU32::new(config.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        Ok(Gateway {
            shared: Arc::new(Shared {
                custody: AsyncCustody::new(custody),
                guard,
                upstream: Upstream::new(&config)?,
                config,
                limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                own_uid: rustix::process::geteuid().as_raw(),
            }),
            tcp,
            unix,
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.tcp.local_addr().map_err(|source| Error::Io {
            what: "gateway listen address",
            path: Default::default(),
            source,
        })
    }

    /// Serves bots until `shutdown` completes; connections still open then get 5 s to finish
    /// the request they are in.
    ///
    /// # Errors
    /// None today; kept for accept failures that are not about one client.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Gateway { shared, tcp, unix } = self;
        let local = tcp.local_addr().map_err(|source| Error::Io {
            what: "gateway listen address",
            path: Default::default(),
            source,
        })?;
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = accept_unix(unix.as_ref()) => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let Ok(cred) = stream.peer_cred() else {
                        continue;
                    };
                    let peer = Peer {
                        uid: cred.uid(),
                        gid: Some(cred.gid()),
                        pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
                    };
                    tasks.spawn(serve_io(Arc::clone(&shared), peer, stream));
                }
                accepted = tcp.accept() => {
                    let (stream, from) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let shared = Arc::clone(&shared);
                    tasks.spawn(async move {
                        let found = tokio::task::spawn_blocking(move || peer::tcp_peer(from, local))
                            .await
                            .ok()
                            .flatten();
                        let Some(peer) = found else {
                            tracing::warn!(%from, "no owner for the client socket; closing");
                            return;
                        };
                        let _ = stream.set_nodelay(true);
                        serve_io(shared, peer, stream).await;
                    });
                }
            }
        }
        drop(tcp);
        if let (Some(_), Some(path)) = (unix, &shared.config.socket) {
            let _ = std::fs::remove_file(path);
        }
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
        }
        Ok(())
    }
}

/// Serves one client connection (HTTP/1.1, keep-alive).
async fn serve_io<S>(shared: Arc<Shared>, peer: Peer, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, peer, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "client connection ended");
    }
}

/// The next Unix-socket client, or never when there is no socket.
async fn accept_unix(
    unix: Option<&tokio::net::UnixListener>,
) -> std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)> {
    match unix {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Binds the Unix socket: its directory made 0700 when absent and refused when other users can
/// enter it; a stale socket replaced, a live one refused; the socket made 0600.
fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
    let io = |source| Error::Io {
        what: "gateway socket",
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() || meta.permissions().mode() & 0o077 != 0 => {
            return Err(Error::Config(format!(
                "gateway socket directory `{}` must be a directory only its owner can enter \
                 (chmod 700)",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(_) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "`{}` exists and is not a socket; not replacing it",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Config(format!(
                "a gateway is already listening on `{}`",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// A gateway error: JSON `{"error": {"kind", "message", ...}}` with a status ccxt maps sensibly.
fn error(status: StatusCode, kind: &str, message: &str) -> hyper::Response<Body> {
    error_with(status, json!({"kind": kind, "message": message}))
}

fn error_with(status: StatusCode, err: serde_json::Value) -> hyper::Response<Body> {
    let body = json!({ "error": err, "gateway": "hsm-custody" }).to_string();
    let mut resp = hyper::Response::new(full(body));
    *resp.status_mut() = status;
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

/// Where a request goes: the route and the exchange path and query.
struct Target<'a> {
    route: &'a Route,
    path: String,
    query: Option<String>,
}

/// Reads the request target: ccxt's proxy-URL form (`/https://host/path?q`, or all of it
/// percent-encoded) or the base-URL form (`/<route>/<path>?q`).
fn target<'a>(
    config: &'a GatewayConfig,
    uri: &hyper::Uri,
) -> std::result::Result<Target<'a>, Box<hyper::Response<Body>>> {
    let raw = uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    let lower = rest.get(..10).unwrap_or(rest).to_ascii_lowercase();
    if lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("http%3a")
        || lower.starts_with("https%3a")
    {
        let url = if lower.starts_with("http%3a") || lower.starts_with("https%3a") {
            forms::decode_component(rest)
        } else {
            rest.to_owned()
        };
        let Some(after) = url.strip_prefix("https://").or_else(|| {
            url.get(..8)
                .filter(|p| p.eq_ignore_ascii_case("https://"))
                .map(|_| &url[8..])
        }) else {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_target",
                "only https:// exchange URLs are forwarded",
            )));
        };
        let (authority, path_query) = match after.find(['/', '?']) {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        let host = authority
            .strip_suffix(":443")
            .unwrap_or(authority)
            .to_ascii_lowercase();
        let Some(route) = config.routes.iter().find(|r| r.host == host) else {
            return Err(Box::new(not_routed(&host)));
        };
        let (path, query) = split_query(path_query);
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        return Ok(Target { route, path, query });
    }
    let (name, after) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(route) = config.routes.iter().find(|r| r.name == name) else {
        return Err(Box::new(not_routed(name)));
    };
    let (path, query) = split_query(after);
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Ok(Target { route, path, query })
}

fn split_query(path_query: &str) -> (String, Option<String>) {
    match path_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_query.to_owned(), None),
    }
}

fn not_routed(what: &str) -> hyper::Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "not_routed",
        &format!(
            "`{what}` is not a route of this gateway (no open proxy); add a [[gateway.route]]"
        ),
    )
}

async fn handle(
    shared: &Shared,
    peer: Peer,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Body> {
    let config = &shared.config;
    if peer.uid == shared.own_uid && !config.allow_same_uid {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "uid {} is the gateway's own uid: such a process can read the gateway's memory \
                 and files; run the bot as another user, or set `allow_same_uid = true` in \
                 [gateway] (tests and development only)",
                peer.uid
            ),
        );
    }
    let target = match target(config, req.uri()) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let route = target.route;
    let method = req.method().clone();
    let mut headers = Vec::new();
    for (name, value) in req.headers() {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "host" || n == "content-length" {
            continue;
        }
        let Ok(v) = value.to_str() else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("header `{n}` is not visible ASCII"),
            );
        };
        headers.push((name.to_string(), v.to_owned()));
    }
    let body = match Limited::new(req.into_body(), config.max_body)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("request body over {} bytes (max_body)", config.max_body),
            )
        }
        Err(e) => {
            tracing::debug!(error = %e, "client left mid-request");
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "request body incomplete",
            );
        }
    };
    let Some(form) = forms::form(&route.exchange) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "config",
            "route without a form",
        );
    };
    let body_text = String::from_utf8(body.to_vec()).ok();
    let http = Http {
        method: method.as_str().to_owned(),
        host: route.host.clone(),
        path: target.path,
        qmark: target.query.is_some(),
        query: target.query.unwrap_or_default(),
        headers,
        body: body_text.clone().unwrap_or_default(),
    };
    let signed = body_text.is_some() && form.is_signed(&http);
    if !signed {
        if !route.public {
            return error(
                StatusCode::FORBIDDEN,
                "public_refused",
                &format!(
                    "route `{}` forwards signed requests only (public = false)",
                    route.name
                ),
            );
        }
        return forward(shared, route, &http, body, None).await;
    }
    // Signed: the client's rate first (so refusals cannot probe at full speed), the key's
    // allow-list, then the exchange's canonical form, policy and the token.
    if shared.limiter.check_key(&peer.uid).is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "client over its rate limit (gateway rate_per_second/burst)",
        );
    }
    // An unknown gid (the holding process was not found) matches no gid in the list.
    let allowed = config
        .keys
        .get(&route.key)
        .is_some_and(|a| a.allows(peer.uid, peer.gid.unwrap_or(u32::MAX), &route.exchange));
    if !allowed {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "uid {} may not sign `{}` requests with key `{}` ([gateway.keys])",
                peer.uid, route.exchange, route.key
            ),
        );
    }
    let request = match form.request(&http) {
        Ok(r) => r,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "request_refused",
                &format!("{}: {reason}", route.exchange),
            )
        }
    };
    let (key, exchange, client) = (route.key.clone(), route.exchange.clone(), peer.audit_name());
    let result = shared
        .custody
        .run(move |c| {
            c.exchange_signer_for(&key, &exchange)?
                .sign_as(&request, &client)
                .map(|s| s.into_owned())
        })
        .await;
    let signed = match result {
        Ok(s) => s,
        Err(e) => return refusal(&e),
    };
    let out = match form.rebuild(&http, &signed) {
        Ok(out) => out,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "request_refused",
                &format!(
                    "{}: the re-signed request would differ from the bot's: {reason}",
                    route.exchange
                ),
            )
        }
    };
    let body = Bytes::from(out.body.clone());
    forward(shared, route, &out, body, Some(peer)).await
}

/// The JSON reply for a crate error from signing.
fn refusal(e: &Error) -> hyper::Response<Body> {
    let (status, kind) = match e {
        Error::PolicyDenied { .. } => (StatusCode::FORBIDDEN, "policy_denied"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::RequestRefused { .. } | Error::InvalidInput(_) | Error::WrongExchange { .. } => {
            (StatusCode::BAD_REQUEST, "request_refused")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "signing_failed"),
    };
    let mut err = json!({"kind": kind, "message": e.to_string()});
    if let Error::PolicyDenied { key, rule } | Error::RateLimited { key, rule } = e {
        err["key"] = json!(key);
        err["rule"] = json!(rule);
    }
    error_with(status, err)
}

/// Sends `http` to the route's host and streams the reply back. `signer` is set for a
/// re-signed request: its outcome is audited, and a lost reply to a non-idempotent one is
/// reported as such (never retried).
async fn forward(
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
    if let Some(peer) = signer {
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
            for (name, value) in &parts.headers {
                if !HOP_BY_HOP.contains(&name.as_str()) {
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
