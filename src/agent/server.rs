//! The agent's server: a Unix socket, peer credentials, frames, and the sign path through the
//! async facade (so through the [`Custody`]'s guard rails).

use std::future::Future;
use std::num::NonZeroU32;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use super::config::AgentConfig;
use super::protocol::{encode_frame, kind, signed_to_json, VERSION};
use crate::asynch::AsyncCustody;
use crate::custody::Custody;
use crate::error::{Error, ErrorKind, Result};
use crate::exchanges::Request;
use crate::sign::HmacAlg;
use crate::sign::RequestContext;

/// A bound signing agent: the socket exists (mode 0600) and the login is held; call
/// [`Agent::serve`] to answer clients.
pub struct Agent {
    shared: Arc<Shared>,
    listener: UnixListener,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("socket", &self.shared.config.socket)
            .finish_non_exhaustive()
    }
}

struct Shared {
    custody: AsyncCustody,
    config: AgentConfig,
    limiter: DefaultKeyedRateLimiter<(u32, i32)>,
    /// The agent's effective uid: a client of this uid is refused unless `allow_same_uid`.
    own_uid: u32,
    /// The connections being served, for the per-uid limit and idle-first eviction.
    conns: Mutex<Conns>,
}

/// The open connections. Only the accept loop adds entries; a connection's task marks itself
/// idle or busy and removes its entry when it ends (or the accept loop removes it on eviction).
#[derive(Default)]
struct Conns {
    next_id: u64,
    open: std::collections::HashMap<u64, Conn>,
}

struct Conn {
    uid: u32,
    /// Since when the connection has waited for a request; `None` while it serves one.
    idle_since: Option<Instant>,
    /// Tells the connection's task to close at its next frame boundary.
    evict: Arc<Notify>,
}

/// A served connection's place in [`Shared::conns`]; gives it up on drop.
struct Ticket {
    shared: Arc<Shared>,
    id: u64,
    evict: Arc<Notify>,
}

impl Ticket {
    /// Marks the connection as waiting for a request (evictable) or serving one.
    fn set_idle(&self, idle: bool) {
        let mut conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = conns.open.get_mut(&self.id) {
            conn.idle_since = idle.then(Instant::now);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut conns = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        conns.open.remove(&self.id);
    }
}

/// Rule of the refusal of a client of the agent's own uid.
const RULE_SAME_UID: &str = "agent-same-uid";
/// Rule of the refusal of a uid's connection past `max_connections_per_uid`.
const RULE_PER_UID: &str = "agent-connections-per-uid";
/// Rule of the refusal of a connection when every connection is serving a request.
const RULE_FULL: &str = "agent-connections";

/// A new connection: served (with its ticket), or refused with this `err` object.
fn admit_connection(shared: &Arc<Shared>, peer: Peer) -> std::result::Result<Ticket, Value> {
    let config = &shared.config;
    if peer.uid == shared.own_uid && !config.allow_same_uid {
        let mut err = refusal(
            kind::FORBIDDEN,
            &format!(
                "uid {} is the agent's own uid: a process of that uid can read the agent's \
                 memory and files, so the agent does not serve it; run the client as another \
                 user in the socket's group, or set `allow_same_uid = true` in [agent] (tests \
                 and development only)",
                peer.uid
            ),
        );
        err["rule"] = json!(RULE_SAME_UID);
        return Err(err);
    }
    let mut conns = shared.conns.lock().unwrap_or_else(PoisonError::into_inner);
    let limit = config.per_uid_limit();
    if conns.open.values().filter(|c| c.uid == peer.uid).count() >= limit {
        let mut err = refusal(
            ErrorKind::Busy.wire_name(),
            &format!(
                "uid {} already has {limit} connections to the agent (max_connections_per_uid); \
                 close one or share one between threads",
                peer.uid
            ),
        );
        err["rule"] = json!(RULE_PER_UID);
        return Err(err);
    }
    if conns.open.len() >= config.max_connections {
        // Full: close the connection idle for longest (between requests, so that it loses no
        // reply); refuse the newcomer only when every connection is serving a request.
        let oldest = conns
            .open
            .iter()
            .filter_map(|(id, c)| c.idle_since.map(|t| (t, *id)))
            .min();
        let Some((_, id)) = oldest else {
            let mut err = refusal(
                ErrorKind::Busy.wire_name(),
                "every connection is serving a request (max_connections); retry later",
            );
            err["rule"] = json!(RULE_FULL);
            return Err(err);
        };
        if let Some(evicted) = conns.open.remove(&id) {
            tracing::info!(
                uid = evicted.uid,
                "agent full: closing the longest-idle connection"
            );
            evicted.evict.notify_one();
        }
    }
    let id = conns.next_id;
    conns.next_id += 1;
    let evict = Arc::new(Notify::new());
    conns.open.insert(
        id,
        Conn {
            uid: peer.uid,
            idle_since: Some(Instant::now()),
            evict: Arc::clone(&evict),
        },
    );
    Ok(Ticket {
        shared: Arc::clone(shared),
        id,
        evict,
    })
}

/// What a finished [`Agent::serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections still open when the drain timeout ran out (their tasks were aborted).
    pub aborted: usize,
}

/// The peer of one connection, from `SO_PEERCRED`.
#[derive(Clone, Copy, Debug)]
struct Peer {
    uid: u32,
    gid: u32,
    pid: i32,
}

impl Peer {
    /// How the audit log names this client.
    fn audit_name(&self) -> String {
        format!("uid={} pid={}", self.uid, self.pid)
    }
}

impl Agent {
    /// Creates the socket for `config` and wraps `custody` (whose guard rails, if installed,
    /// apply to every signature the agent makes). Must run inside a tokio runtime.
    ///
    /// The socket's directory is created with mode 0700 (0750 with a `socket_group`) when
    /// absent; an existing one must give no access to other users. A stale socket file from a
    /// dead agent is replaced; a live agent on the same path is an error.
    ///
    /// # Errors
    /// [`Error::Io`] for file-system failures, [`Error::Config`] for an unsafe directory or a
    /// running agent.
    pub async fn bind(custody: Custody, config: AgentConfig) -> Result<Agent> {
        let listener = bind_socket(&config).await?;
        let per_second = NonZeroU32::new(config.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst));
        Ok(Agent {
            shared: Arc::new(Shared {
                custody: AsyncCustody::new(custody),
                config,
                limiter,
                own_uid: rustix::process::geteuid().as_raw(),
                conns: Mutex::new(Conns::default()),
            }),
            listener,
        })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.shared.config.socket
    }

    /// Serves clients until `shutdown` completes, then stops accepting, lets every connection
    /// finish the request it is working on (up to the drain timeout), and removes the socket.
    ///
    /// # Errors
    /// Accepting failed in a way that is not about one client.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<ServeReport> {
        let Agent { shared, listener } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        // Refusals wait briefly for the client's first request (to answer it by its id): at
        // most this many at once, past which a refused connection is just closed.
        let refusals = Arc::new(Semaphore::new(shared.config.max_connections));
        let mut tasks = JoinSet::new();
        let mut report = ServeReport::default();
        tokio::pin!(shutdown);
        tracing::info!(socket = %shared.config.socket.display(), "agent serving");
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // EMFILE and friends: keep serving the connections we have.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    report.connections += 1;
                    shared.limiter.retain_recent();
                    let peer = match stream.peer_cred() {
                        Ok(cred) => Peer {
                            uid: cred.uid(),
                            gid: cred.gid(),
                            pid: cred.pid().unwrap_or(0),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "no peer credentials; closing");
                            continue;
                        }
                    };
                    match admit_connection(&shared, peer) {
                        Ok(ticket) => {
                            let stop = stop_rx.clone();
                            tasks.spawn(serve_connection(ticket, stream, peer, stop));
                        }
                        Err(err) => {
                            tracing::info!(
                                uid = peer.uid,
                                pid = peer.pid,
                                rule = err["rule"].as_str().unwrap_or(""),
                                "connection refused"
                            );
                            if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                                let max_frame = shared.config.max_frame;
                                tasks.spawn(async move {
                                    let _permit = permit;
                                    refuse(stream, max_frame, err).await;
                                });
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(open = tasks.len(), "agent shutting down, draining");
        drop(listener);
        let _ = std::fs::remove_file(&shared.config.socket);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(shared.config.drain_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            report.aborted = tasks.len();
            tasks.abort_all();
        }
        tracing::info!(aborted = report.aborted, "agent stopped");
        Ok(report)
    }
}

/// Completes on SIGTERM or SIGINT (for [`Agent::serve`]).
///
/// # Errors
/// The signal handlers cannot be installed.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let io = |source| Error::Io {
        what: "signal handler",
        path: PathBuf::new(),
        source,
    };
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn bind_socket(config: &AgentConfig) -> Result<UnixListener> {
    let path = &config.socket;
    let io = |what: &'static str, source| Error::Io {
        what,
        path: path.clone(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_mode = if config.socket_group.is_some() {
        0o750
    } else {
        0o700
    };
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() || meta.permissions().mode() & 0o007 != 0 {
                return Err(Error::Config(format!(
                    "socket directory `{}` must be a directory other users cannot enter (chmod 700)",
                    dir.display()
                )));
            }
        }
        Err(_) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(dir_mode)
                .create(dir)
                .map_err(|e| io("agent socket directory", e))?;
            // The mode above is filtered by the umask; set it exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))
                .map_err(|e| io("agent socket directory", e))?;
            if let Some(gid) = config.socket_group {
                std::os::unix::fs::chown(dir, None, Some(gid))
                    .map_err(|e| io("agent socket directory", e))?;
            }
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "`{}` exists and is not a socket; not replacing it",
                path.display()
            )));
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(Error::Config(format!(
                "an agent is already listening on `{}`",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| io("stale agent socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| io("agent socket", e))?;
    let mode = if config.socket_group.is_some() {
        0o660
    } else {
        0o600
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("agent socket", e))?;
    if let Some(gid) = config.socket_group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("agent socket", e))?;
    }
    Ok(listener)
}

/// Answers a refused connection's first request (within 2 s; else unprompted, with id `null`)
/// with `err`, then closes it. Waiting for the request lets a client that writes it after the
/// agent decided read the refusal, instead of failing on a closed socket.
async fn refuse(mut stream: UnixStream, max_frame: usize, err: Value) {
    let id = tokio::time::timeout(
        Duration::from_secs(2),
        first_frame_id(&mut stream, max_frame),
    )
    .await
    .ok()
    .flatten()
    .unwrap_or(Value::Null);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(&encode_frame(&reply(&id, Err(err)))),
    )
    .await;
}

/// The `id` of the first frame on `stream`, if it is a well-formed request.
async fn first_frame_id(stream: &mut UnixStream, max_frame: usize) -> Option<Value> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 || len > max_frame {
        return None;
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    serde_json::from_slice::<Value>(&payload)
        .ok()?
        .get("id")
        .cloned()
}

/// One connection: frames in, replies out, one request at a time. Returns when the peer
/// closes, sends a bad frame, stalls, or the agent stops (at a frame boundary).
async fn serve_connection(
    ticket: Ticket,
    mut stream: UnixStream,
    peer: Peer,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::clone(&ticket.shared);
    tracing::debug!(
        uid = peer.uid,
        gid = peer.gid,
        pid = peer.pid,
        "client connected"
    );
    let config = &shared.config;
    loop {
        let mut header = [0u8; 4];
        // Idle: wait for the first byte of a frame, or the stop signal.
        let first = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = ticket.evict.notified() => {
                tracing::debug!(pid = peer.pid, "longest idle while the agent is full; closing");
                return;
            }
            r = tokio::time::timeout(config.idle_timeout, stream.read(&mut header[..1])) => r,
        };
        match first {
            Ok(Ok(1)) => ticket.set_idle(false),
            Ok(Ok(_)) => return, // clean close between frames
            Ok(Err(e)) => {
                tracing::debug!(pid = peer.pid, error = %e, "read failed; closing");
                return;
            }
            Err(_) => {
                tracing::debug!(pid = peer.pid, "idle timeout; closing");
                return;
            }
        }
        // A started frame must arrive whole within the frame timeout.
        let frame = tokio::time::timeout(config.frame_timeout, async {
            stream.read_exact(&mut header[1..]).await?;
            let len = u32::from_be_bytes(header) as usize;
            if len == 0 || len > config.max_frame {
                return Ok(Err(len));
            }
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>(Ok(payload))
        })
        .await;
        let payload = match frame {
            Ok(Ok(Ok(payload))) => payload,
            Ok(Ok(Err(len))) => {
                tracing::info!(pid = peer.pid, len, "bad frame length; closing");
                let reply = error_reply(
                    &Value::Null,
                    kind::BAD_FRAME,
                    &format!("frame length {len} is not within 1..={}", config.max_frame),
                );
                let _ = stream.write_all(&encode_frame(&reply)).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::info!(pid = peer.pid, error = %e, "client left mid-frame");
                return;
            }
            Err(_) => {
                tracing::info!(pid = peer.pid, "frame timeout; closing");
                return;
            }
        };
        let message: Value = match serde_json::from_slice(&payload) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                tracing::info!(pid = peer.pid, "frame is not a JSON object; closing");
                let reply =
                    error_reply(&Value::Null, kind::BAD_FRAME, "frame is not a JSON object");
                let _ = stream.write_all(&encode_frame(&reply)).await;
                return;
            }
        };
        let reply = handle(&shared, peer, &message).await;
        if stream.write_all(&encode_frame(&reply)).await.is_err() {
            return;
        }
        ticket.set_idle(true);
    }
}

/// Answers one well-formed frame.
async fn handle(shared: &Shared, peer: Peer, message: &Value) -> Value {
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
                .filter(|(_, a)| a.allows_peer(peer.uid, peer.gid))
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
fn admit(shared: &Shared, peer: Peer, key: &str, exchange: &str) -> std::result::Result<(), Value> {
    if let Err(not_until) = shared.limiter.check_key(&(peer.uid, peer.pid)) {
        let wait = not_until.wait_time_from(shared.limiter.clock().now());
        tracing::info!(uid = peer.uid, pid = peer.pid, "client over its rate");
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
        .is_some_and(|a| a.allows(peer.uid, peer.gid, exchange));
    if !allowed {
        tracing::warn!(
            uid = peer.uid,
            pid = peer.pid,
            key,
            exchange,
            "refused: peer not allowed"
        );
        return Err(refusal(
            kind::FORBIDDEN,
            &format!(
                "uid {} may not sign `{exchange}` requests with key `{key}`",
                peer.uid
            ),
        ));
    }
    Ok(())
}

/// The `mac` op: a raw HMAC over client-chosen bytes, for exchanges the crate has no signer
/// for. The key's policy must set `allow_raw = true` (else `policy_denied`, rule
/// `raw-signing`), the allow-list must admit exchange `raw` when it lists exchanges, and the
/// audit log records it with no exchange, method `RAW` and the client's label as the path.
async fn mac(shared: &Shared, peer: Peer, message: &Value) -> std::result::Result<Value, Value> {
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
    let label_for_log = label.clone();
    let client = peer.audit_name();
    let result = shared
        .custody
        .run(move |c| {
            let context = RequestContext::raw("RAW", &label).with_client(&client);
            c.key(&key)?.hmac_for(alg, &data, &context)
        })
        .await;
    answer(
        peer,
        "mac",
        &label_for_log,
        result,
        |mac| json!({ "mac": mac.to_hex() }),
    )
}

/// The reply for a keyed op's outcome, logged with the peer and what it asked for (never the
/// request body, the signature or the MAC).
fn answer<T>(
    peer: Peer,
    op: &str,
    target: &str,
    result: Result<T>,
    ok: impl FnOnce(T) -> Value,
) -> std::result::Result<Value, Value> {
    match result {
        Ok(value) => {
            tracing::info!(uid = peer.uid, pid = peer.pid, op, target, "done");
            Ok(ok(value))
        }
        Err(e) => {
            let err = kind_of(&e);
            let kind = err["kind"].as_str().unwrap_or("");
            tracing::info!(
                uid = peer.uid,
                pid = peer.pid,
                op,
                target,
                kind,
                "refused or failed"
            );
            Err(err)
        }
    }
}

async fn sign(shared: &Shared, peer: Peer, message: &Value) -> std::result::Result<Value, Value> {
    let key = text_field(message, "sign", "key")?;
    let exchange = text_field(message, "sign", "exchange")?;
    admit(shared, peer, &key, &exchange)?;
    let request = match message.get("request") {
        Some(v @ Value::Object(_)) => {
            Request::from_json(&v.to_string()).map_err(|e| kind_of(&e))?
        }
        _ => return Err(refusal(kind::BAD_REQUEST, "sign needs a `request` object")),
    };
    let target = format!(
        "{} {}",
        request.method.as_deref().unwrap_or("-"),
        request.path.as_deref().unwrap_or("-")
    );
    let client = peer.audit_name();
    let result = shared
        .custody
        .run(move |c| {
            // Serialized here: the signed request borrows from `request`.
            c.exchange_signer_for(&key, &exchange)?
                .sign_as(&request, &client)
                .map(|signed| signed_to_json(&signed))
        })
        .await;
    answer(peer, "sign", &target, result, |ok| ok)
}

/// The protocol's `err` object for a crate error: kind ([`ErrorKind::wire_name`]), message
/// (which never holds a PIN, a secret, a signature or a request body), the error's hint when it
/// has one, and the key and rule of a guard-rail refusal.
fn kind_of(e: &Error) -> Value {
    let mut err = refusal(e.kind().wire_name(), &e.to_string());
    if let Some(hint) = e.hint() {
        err["hint"] = json!(hint);
    }
    if let Error::PolicyDenied { key, rule } | Error::RateLimited { key, rule } = e {
        err["key"] = json!(key);
        err["rule"] = json!(rule);
    }
    err
}

fn refusal(kind: &str, message: &str) -> Value {
    json!({"kind": kind, "message": message})
}

/// The reply to a keyed op: its `ok` object, or its `err` object.
fn reply(id: &Value, result: std::result::Result<Value, Value>) -> Value {
    match result {
        Ok(ok) => ok_reply(id, ok),
        Err(err) => json!({"v": VERSION, "id": id, "err": err}),
    }
}

fn ok_reply(id: &Value, ok: Value) -> Value {
    json!({"v": VERSION, "id": id, "ok": ok})
}

fn error_reply(id: &Value, kind: &str, message: &str) -> Value {
    reply(id, Err(refusal(kind, message)))
}
