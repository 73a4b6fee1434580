//! A small blocking client for the agent (feature `agent-client`; std only).

use std::io::{BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::busy::BusyPoll;
use super::protocol::{encode_frame, request_to_json, signed_from_json, MAX_REPLY, VERSION};
use crate::error::{Error, Result};
use crate::exchanges::{Request, SignedRequest};
use crate::sign::{HmacAlg, Signature};

/// A connection to a signing agent. The client holds no PIN and no key: it sends requests and
/// gets them back signed, as the agent's policy allows.
///
/// ```no_run
/// use hsm_custody::agent::AgentClient;
/// use hsm_custody::exchanges::Request;
///
/// # fn main() -> Result<(), hsm_custody::Error> {
/// let mut agent = AgentClient::connect("/run/hsm-custody/agent.sock")?;
/// let signed = agent.sign("binance-main", "binance", &Request::get("/api/v3/account"))?;
/// println!("GET {}", signed.path_and_query());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AgentClient {
    /// Replies are read through a buffer: a reply is one `recv`, not one per frame part.
    stream: BufReader<UnixStream>,
    path: PathBuf,
    next_id: u64,
    /// The read/write timeout in ms (also bounds the wait for a reply).
    timeout_ms: std::sync::atomic::AtomicU64,
    /// How long to look for a reply before sleeping, µs ([`AgentClient::set_busy_poll`]).
    busy_poll_us: std::sync::atomic::AtomicU64,
    /// Whether looking has paid lately.
    busy: BusyPoll,
}

/// [`AgentClient::set_busy_poll`]'s default: covers a signature on a software token (20–30 µs)
/// and the agent's own wake-up when it was asleep (about 40 µs on a VM), with room for load.
const DEFAULT_BUSY_POLL_US: u64 = 200;

/// A key the agent lets this client use (reply to `keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentKey {
    /// Key name.
    pub name: String,
    /// Exchange ids allowed with it; `None` for every id its binding accepts.
    pub exchanges: Option<Vec<String>>,
}

impl AgentClient {
    /// Connects to the agent's socket; reads and writes time out after 30 s.
    ///
    /// # Errors
    /// [`Error::Io`] when the socket cannot be reached (no agent, or no permission).
    pub fn connect(path: impl AsRef<Path>) -> Result<AgentClient> {
        let path = path.as_ref().to_owned();
        let stream = UnixStream::connect(&path).map_err(|source| Error::Io {
            what: "signing agent",
            path: path.clone(),
            source,
        })?;
        let client = AgentClient {
            stream: BufReader::with_capacity(16 * 1024, stream),
            path,
            next_id: 1,
            timeout_ms: std::sync::atomic::AtomicU64::new(30_000),
            busy_poll_us: std::sync::atomic::AtomicU64::new(DEFAULT_BUSY_POLL_US),
            busy: BusyPoll::default(),
        };
        client.set_timeout(Duration::from_secs(30))?;
        Ok(client)
    }

    /// Replaces the read/write timeout.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket refuses it.
    pub fn set_timeout(&self, timeout: Duration) -> Result<()> {
        let timeout = timeout.max(Duration::from_millis(1));
        let stream = self.stream.get_ref();
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| self.io(e))?;
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.timeout_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How long a call looks for the agent's reply before it sleeps until the reply comes
    /// (default 200 µs; zero: sleep at once). A reply usually comes within 20–70 µs; a thread
    /// that slept for it is woken by the kernel, which costs tens of µs where idle cores sleep
    /// (measured 40 µs on a Firecracker VM). Between looks the thread yields its core to any
    /// other thread that can run, so the look uses time the core would have idled; its cost is
    /// at most this much CPU per call. After two looks that found nothing (an agent too busy
    /// to answer within the window) the client stops looking, and looks again once in 32
    /// calls.
    pub fn set_busy_poll(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.busy_poll_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Checks that the agent answers.
    ///
    /// # Errors
    /// As [`AgentClient::sign`].
    pub fn ping(&mut self) -> Result<()> {
        self.call(json!({"op": "ping"})).map(|_| ())
    }

    /// The keys this client (its uid/gid) may use.
    ///
    /// # Errors
    /// As [`AgentClient::sign`].
    pub fn keys(&mut self) -> Result<Vec<AgentKey>> {
        let ok = self.call(json!({"op": "keys"}))?;
        let list = ok
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid("agent reply lacks `keys`"))?;
        Ok(list
            .iter()
            .filter_map(|k| {
                Some(AgentKey {
                    name: k.get("name")?.as_str()?.to_owned(),
                    exchanges: k.get("exchanges").and_then(Value::as_array).map(|ids| {
                        ids.iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    }),
                })
            })
            .collect())
    }

    /// Has the agent sign `request` for `exchange` with key `key`.
    ///
    /// # Errors
    /// [`Error::PolicyDenied`] and [`Error::RateLimited`] (the key's policy, or the agent's
    /// per-client limit, rule `agent-client-rate`) as the agent's guard rails said;
    /// [`Error::InvalidInput`] for a request the agent found invalid; any other refusal as
    /// [`Error::Io`] whose message starts with the protocol's error kind (`forbidden: ...`,
    /// I/O kind `PermissionDenied`; `busy`: `WouldBlock`; `key_not_found`: `NotFound`); and
    /// [`Error::Io`] when the connection fails.
    pub fn sign(
        &mut self,
        key: &str,
        exchange: &str,
        request: &Request,
    ) -> Result<SignedRequest<'static>> {
        let ok = self.call(json!({
            "op": "sign",
            "key": key,
            "exchange": exchange,
            "request": request_to_json(request),
        }))?;
        signed_from_json(&ok)
    }

    /// Has the agent compute a raw HMAC over `data` with key `key` (protocol op `mac`), for an
    /// exchange the crate has no signer for. Only keys whose policy sets `allow_raw = true`
    /// (and whose allow-list admits exchange `raw`); the audit log records each as raw, with
    /// `label` (1-64 of `A-Za-z0-9-_.:`, e.g. `ccxt:bitso`) as its path.
    ///
    /// # Errors
    /// As [`AgentClient::sign`]; a key without `allow_raw` gives [`Error::PolicyDenied`] with
    /// rule `raw-signing`.
    pub fn mac(
        &mut self,
        key: &str,
        alg: HmacAlg,
        data: &[u8],
        label: Option<&str>,
    ) -> Result<Signature> {
        use base64::Engine as _;
        let ok = self.call(json!({
            "op": "mac",
            "key": key,
            "alg": alg.name(),
            "data_b64": base64::engine::general_purpose::STANDARD.encode(data),
            "label": label,
        }))?;
        ok.get("mac")
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .map(Signature::from_bytes)
            .ok_or_else(|| Error::invalid("agent reply lacks a hex `mac`"))
    }

    /// Sends one request and reads its reply; returns the `ok` value.
    fn call(&mut self, mut message: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        message["v"] = json!(VERSION);
        message["id"] = json!(id);
        self.stream
            .get_mut()
            .write_all(&encode_frame(&message))
            .map_err(|e| self.io(e))?;
        self.wait_for_reply().map_err(|e| self.io(e))?;
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .map_err(|e| self.io(e))?;
        let len = u32::from_be_bytes(header) as usize;
        if len == 0 || len > MAX_REPLY {
            return Err(self.io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("reply frame length {len} out of range"),
            )));
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| self.io(e))?;
        let mut reply: Value = serde_json::from_slice(&payload).map_err(|_| {
            self.io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "reply is not JSON",
            ))
        })?;
        if reply.get("ok").is_some() {
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                return Err(self.io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "reply id does not match the request",
                )));
            }
            return Ok(reply["ok"].take());
        }
        let err = reply.get("err").cloned().unwrap_or(Value::Null);
        Err(self.refusal(&err))
    }

    fn refusal(&self, err: &Value) -> Error {
        use std::io::ErrorKind as K;
        let text = |name: &str| err.get(name).and_then(Value::as_str).unwrap_or("");
        let (kind, message) = (text("kind"), text("message"));
        let (key, rule) = (text("key").to_owned(), text("rule").to_owned());
        let io_kind = match kind {
            "policy_denied" => {
                let request = text("request").to_owned();
                return Error::PolicyDenied { key, rule, request };
            }
            "rate_limited" if !rule.is_empty() => return Error::RateLimited { key, rule },
            "invalid_input" | "bad_request" => return Error::invalid(message.to_owned()),
            "forbidden" => K::PermissionDenied,
            "rate_limited" | "busy" => K::WouldBlock,
            "key_not_found" => K::NotFound,
            "bad_frame" | "unsupported_version" | "unknown_op" => K::InvalidData,
            _ => K::Other,
        };
        self.io(std::io::Error::new(io_kind, format!("{kind}: {message}")))
    }

    /// Waits (up to the timeout) until the reply can be read: first looking for it for the
    /// busy-poll window ([`AgentClient::set_busy_poll`]), then in `poll` for input rather than
    /// asleep in `recv`. Linux wakes a task asleep in a Unix stream `recv` whenever the peer
    /// frees the bytes it was sent (the agent reading the request makes room to write), and
    /// that wake-up finds nothing to read; `poll` is woken for input only (measured: the agent
    /// thread spent 15 % of its time waking callers before, 2 % after).
    fn wait_for_reply(&mut self) -> std::io::Result<()> {
        if !self.stream.buffer().is_empty() {
            return Ok(());
        }
        let busy_us = self.busy_poll_us.load(std::sync::atomic::Ordering::Relaxed);
        if busy_us > 0 && self.busy.should_look() {
            let until = std::time::Instant::now() + Duration::from_micros(busy_us);
            let found = loop {
                if self.readable_within(Duration::ZERO)? {
                    break true;
                }
                if std::time::Instant::now() >= until {
                    break false;
                }
                std::thread::yield_now();
            };
            self.busy.looked(found);
            if found {
                return Ok(());
            }
        }
        let ms = self.timeout_ms.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = std::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.readable_within(left)? {
                return Ok(());
            }
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no reply within the timeout",
                ));
            }
        }
    }

    /// Whether the socket has input (or was closed, or failed: `recv` says which) within
    /// `wait`, in `poll`; `false` when `wait` passed or a signal interrupted it.
    fn readable_within(&self, wait: Duration) -> std::io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let wait = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(self.stream.get_ref(), PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            what: "signing agent",
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixListener;
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use super::AgentClient;
    use crate::agent::protocol::encode_frame;
    use crate::error::Error;

    /// A peer on a real socket that reads one request and then runs `answer` on the stream.
    fn peer(
        answer: impl FnOnce(&mut std::os::unix::net::UnixStream, Value) + Send + 'static,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut header = [0u8; 4];
            stream.read_exact(&mut header).unwrap();
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            stream.read_exact(&mut payload).unwrap();
            answer(&mut stream, serde_json::from_slice(&payload).unwrap());
        });
        (dir, thread)
    }

    /// The wait for a reply (in `poll`, not in `recv`) keeps the client's timeout: an agent
    /// that never answers is a `TimedOut` error after it, not a hang.
    #[test]
    fn a_silent_agent_times_out() {
        let (dir, thread) = peer(|_, _| std::thread::sleep(Duration::from_secs(2)));
        let mut client = AgentClient::connect(dir.path().join("s")).unwrap();
        client.set_timeout(Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        let err = client.ping().unwrap_err();
        let waited = started.elapsed();
        match err {
            Error::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{source}");
            }
            other => panic!("{other:?}"),
        }
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        thread.join().unwrap();
    }

    /// A reply that arrives in pieces (header, then the payload later) is read whole, and the
    /// next call reads only its own reply.
    #[test]
    fn a_reply_in_pieces_is_read_whole() {
        let (dir, thread) = peer(|stream, request| {
            let frame = encode_frame(&json!({"id": request["id"], "ok": {"pong": true}}));
            stream.write_all(&frame[..3]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(&frame[3..10]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(&frame[10..]).unwrap();
            // The next request, answered in one piece.
            let mut header = [0u8; 4];
            stream.read_exact(&mut header).unwrap();
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            stream.read_exact(&mut payload).unwrap();
            let request: Value = serde_json::from_slice(&payload).unwrap();
            let frame = encode_frame(&json!({"id": request["id"], "ok": {}}));
            stream.write_all(&frame).unwrap();
        });
        let mut client = AgentClient::connect(dir.path().join("s")).unwrap();
        client.ping().unwrap();
        client.ping().unwrap();
        thread.join().unwrap();
    }

    /// An agent that closes the connection instead of answering is an error at once.
    #[test]
    fn a_closed_connection_is_an_error_at_once() {
        let (dir, thread) = peer(|stream, _| {
            stream.shutdown(std::net::Shutdown::Both).unwrap();
        });
        let mut client = AgentClient::connect(dir.path().join("s")).unwrap();
        let started = Instant::now();
        assert!(matches!(client.ping(), Err(Error::Io { .. })));
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().unwrap();
    }
}
