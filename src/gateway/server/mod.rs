//! The gateway's server: the listeners (loopback TCP, the Unix socket) and each client's peer
//! from the kernel. The request pipeline is in `handle.rs` (with the request target in
//! `target.rs`); the exchange's reply and the gateway's own errors in `reply.rs`; each
//! request's one log line in `log.rs`.

mod handle;
mod log;
mod reply;
mod target;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::config::GatewayConfig;
use super::peer::{self, Peer};
use super::upstream::Upstream;
use crate::asynch::AsyncCustody;
use crate::custody::Custody;
use crate::error::{Error, Result};
use crate::guardrails::Guardrails;

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
                    // Supplementary groups as the agent reads them (checked against pid reuse);
                    // none when they cannot be read.
                    let groups = cred
                        .pid()
                        .and_then(|pid| {
                            crate::agent::server::peer::supplementary_groups(
                                cred.uid(),
                                cred.gid(),
                                pid,
                            )
                            .ok()
                        })
                        .unwrap_or_default();
                    let peer = Peer {
                        uid: cred.uid(),
                        gid: Some(cred.gid()),
                        groups,
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
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(log::handled(&shared, peer, req).await) }
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
