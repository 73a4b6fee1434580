//! The agent's server: a Unix socket, peer credentials, frames, and the sign path through the
//! async facade (so through the [`Custody`]'s guard rails).
//!
//! One file per part: `socket` (creating it, refusing on it), `conns` (admission and the
//! connection table), `connection` (one connection's frames), `ops` (what a frame asks
//! for, and the replies), `log` (each request's one log line).

mod connection;
mod conns;
mod log;
mod ops;
pub(crate) mod peer;
mod socket;

use std::future::Future;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::config::AgentConfig;
use crate::asynch::AsyncCustody;
use crate::custody::Custody;
use crate::error::{Error, Result};
use connection::serve_connection;
use conns::{admit_connection, Conns};
use peer::Peer;
use socket::{bind_socket, refuse};

/// The runtime `hsm-custody agent` serves on: single-threaded, so that each request is read,
/// judged, signed and answered on one thread (see [`crate::asynch::AsyncCustody::run_here`]).
/// With [`AgentConfig::threads`] above 1, [`Agent::serve`] starts that many threads less one,
/// each with a runtime like this one, and deals the connections out among them in turn.
///
/// # Errors
/// A failure to start the runtime, as [`Error::Internal`].
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .thread_name("hsm-custody-agent")
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the agent's runtime: {e}")))
}

/// The agent's other threads (`threads` above 1), each serving the connections dealt to it on
/// a single-threaded runtime of its own, until stopped.
struct Shards {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shards {
    fn start(extra: usize) -> Result<Shards> {
        let mut shards = Shards {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for n in 1..=extra {
            let rt = runtime()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            shards.handles.push(rt.handle().clone());
            shards.stops.push(stop);
            let thread = std::thread::Builder::new()
                // `hsm-agent-N` in `top -H` and /proc/PID/task/*/comm (15 bytes at most).
                .name(format!("hsm-agent-{n}"))
                .spawn(move || {
                    let _ = rt.block_on(stopped);
                })
                .map_err(|e| Error::Internal(format!("cannot start an agent thread: {e}")))?;
            shards.threads.push(thread);
        }
        Ok(shards)
    }

    /// The thread whose turn the `n`-th connection is: `None` for the thread that accepts.
    fn turn(&self, n: u64) -> Option<&tokio::runtime::Handle> {
        let turn = usize::try_from(n).unwrap_or(0) % (self.handles.len() + 1);
        turn.checked_sub(1).map(|i| &self.handles[i])
    }

    /// Stops the threads (their connections are done or aborted) and waits for them.
    fn stop(self) {
        drop(self.stops);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

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

/// What a finished [`Agent::serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections still open when the drain timeout ran out (their tasks were aborted).
    pub aborted: usize,
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
        let shards = Shards::start(shared.config.threads.saturating_sub(1))?;
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
                        Ok(cred) => {
                            Peer::accepted(cred.uid(), cred.gid(), cred.pid().unwrap_or(0))
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "no peer credentials; closing");
                            continue;
                        }
                    };
                    match admit_connection(&shared, &peer) {
                        Ok(ticket) => {
                            let stop = stop_rx.clone();
                            // Dealt in turn: this thread, then each other one.
                            match shards.turn(report.connections) {
                                None => {
                                    tasks.spawn(serve_connection(ticket, stream, peer, stop));
                                }
                                Some(handle) => match stream.into_std() {
                                    Ok(std) => {
                                        tasks.spawn_on(
                                            serve_handed_over(ticket, std, peer, stop),
                                            handle,
                                        );
                                    }
                                    Err(e) => tracing::warn!(error = %e,
                                        "cannot hand a connection over; closing"),
                                },
                            }
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
        shards.stop();
        tracing::info!(aborted = report.aborted, "agent stopped");
        Ok(report)
    }
}

/// [`serve_connection`] on another thread: the stream, taken off the accepting thread's event
/// loop, is registered with this thread's own.
async fn serve_handed_over(
    ticket: conns::Ticket,
    stream: std::os::unix::net::UnixStream,
    peer: Peer,
    stop: watch::Receiver<bool>,
) {
    match UnixStream::from_std(stream) {
        Ok(stream) => serve_connection(ticket, stream, peer, stop).await,
        Err(e) => tracing::warn!(error = %e, "cannot serve a connection; closing"),
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
