//! One served connection: frames in, replies out, one request at a time.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::watch;

use super::conns::Ticket;
use super::log::handled;
use super::ops::error_reply;
use super::Peer;
use crate::agent::busy::BusyPoll;
use crate::agent::protocol::{encode_frame, kind};

/// Tries to read the next frame's first byte into `byte` for up to `window`, yielding to the
/// runtime (every other connection's work, and its `epoll` without a wait) between tries; the
/// read's outcome, or `None` when nothing came (or `window` is zero; the caller does not look
/// while bytes are buffered). A client that sends its next request within the window is
/// served without waking a sleeping core, which costs tens of µs on a VM (see
/// [`crate::agent::AgentConfig::busy_poll`]).
async fn next_byte_soon(
    stream: &tokio::io::BufReader<UnixStream>,
    window: std::time::Duration,
    byte: &mut [u8],
) -> Option<std::io::Result<usize>> {
    if window.is_zero() {
        return None;
    }
    let until = std::time::Instant::now() + window;
    loop {
        match stream.get_ref().try_read(byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            read => return Some(read),
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::task::yield_now().await;
    }
}

/// One connection: frames in, replies out, one request at a time. Returns when the peer
/// closes, sends a bad frame, stalls, or the agent stops (at a frame boundary).
pub(super) async fn serve_connection(
    ticket: Ticket,
    stream: UnixStream,
    peer: Peer,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::clone(&ticket.shared);
    tracing::debug!(
        uid = peer.uid,
        gid = peer.gid,
        groups = %peer.checked(),
        pid = peer.pid,
        "client connected"
    );
    let config = &shared.config;
    // Reads through a buffer: a frame usually arrives whole, and is then read with one
    // system call instead of three (first byte, rest of the header, payload).
    let mut stream = tokio::io::BufReader::with_capacity(16 * 1024, stream);
    let mut busy = BusyPoll::default();
    loop {
        let mut header = [0u8; 4];
        // Idle: look for the next request a moment (`busy_poll`), then wait for the first byte
        // of a frame, or the stop signal.
        // Not once the agent is stopping (the select below sees the stop first), nor while the
        // next frame is already buffered (that is no look, found or missed).
        let window = if !*stop.borrow() && stream.buffer().is_empty() && busy.should_look() {
            config.busy_poll
        } else {
            std::time::Duration::ZERO
        };
        let soon = next_byte_soon(&stream, window, &mut header[..1]).await;
        if !window.is_zero() {
            busy.looked(soon.is_some());
        }
        let first = match soon {
            Some(read) => Ok(read),
            None => tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = ticket.evict.notified() => {
                    tracing::debug!(pid = peer.pid, "longest idle while the agent is full; closing");
                    return;
                }
                r = tokio::time::timeout(config.idle_timeout, stream.read(&mut header[..1])) => r,
            },
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
        let reply = handled(&shared, &peer, &message).await;
        if stream.write_all(&encode_frame(&reply)).await.is_err() {
            return;
        }
        ticket.set_idle(true);
    }
}
