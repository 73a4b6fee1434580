//! HTTPS to the exchanges: rustls (the system's roots plus an optional CA), `connect_to`
//! redirection (SNI and Host unchanged), connection reuse, time limits.
//!
//! A request is sent at most once. The one case where the gateway tries a second connection is
//! a pooled connection that closed before the request was written (hyper hands the request
//! back: it never left this process).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

use super::config::GatewayConfig;
use crate::error::{Error, Result};

/// Why the exchange's reply did not come.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing was sent (connect, TLS or a refused write).
    Unreachable(String),
    /// The request may have been sent; no reply head within the time limit.
    Timeout,
    /// The request was sent (or may have been); the connection failed before a reply head.
    Lost(String),
}

type Sender = SendRequest<Full<Bytes>>;

pub(crate) struct Upstream {
    tls: TlsConnector,
    connect_to: BTreeMap<String, String>,
    connect_timeout: Duration,
    timeout: Duration,
    idle: Mutex<HashMap<String, Vec<Sender>>>,
}

/// Most idle connections kept per host.
const IDLE_PER_HOST: usize = 16;

impl Upstream {
    pub(crate) fn new(config: &GatewayConfig) -> Result<Upstream> {
        let mut roots = rustls::RootCertStore::empty();
        // The system's roots; a missing or partly unreadable store leaves fewer roots (the
        // handshake then fails with an unknown-issuer error, which is reported).
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &config.upstream_ca {
            use rustls::pki_types::pem::PemObject as _;
            use rustls::pki_types::CertificateDer;
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::Config(format!("upstream_ca `{}`: {e}", path.display())))?;
            for cert in certs {
                let cert = cert
                    .map_err(|e| Error::Config(format!("upstream_ca `{}`: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("upstream_ca `{}`: {e}", path.display())))?;
            }
        }
        // ring, not aws-lc-rs (which needs cmake and minutes of C build on 2 cores); ring has
        // no post-quantum key exchange, hence rustls's deprecation note.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Upstream {
            tls: TlsConnector::from(Arc::new(tls)),
            connect_to: config.connect_to.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `req` to `host` (port 443) and waits for the reply head.
    pub(crate) async fn send(
        &self,
        host: &str,
        req: hyper::Request<Full<Bytes>>,
    ) -> std::result::Result<hyper::Response<Incoming>, Failure> {
        let run = async {
            let mut req = req;
            // A pooled connection may have closed meanwhile: try the next one while the
            // request comes back unsent; a fresh connection gets it otherwise.
            while let Some(mut sender) = self.pooled(host) {
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        self.put_back(host, sender);
                        return Ok(resp);
                    }
                    Err(mut e) => match e.take_message() {
                        Some(unsent) => req = unsent,
                        None => return Err(Failure::Lost(e.into_error().to_string())),
                    },
                }
            }
            let mut sender = self.connect(host).await?;
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.put_back(host, sender);
                    Ok(resp)
                }
                Err(mut e) => match e.take_message() {
                    Some(_) => Err(Failure::Unreachable(e.into_error().to_string())),
                    None => Err(Failure::Lost(e.into_error().to_string())),
                },
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    fn pooled(&self, host: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(host)?;
        list.retain(|s| !s.is_closed());
        let at = list.iter().position(SendRequest::is_ready)?;
        Some(list.swap_remove(at))
    }

    /// Keeps `sender` for reuse: it becomes ready again once the reply body has been read.
    fn put_back(&self, host: &str, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(host.to_owned()).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < IDLE_PER_HOST {
            list.push(sender);
        }
    }

    async fn connect(&self, host: &str) -> std::result::Result<Sender, Failure> {
        let authority = format!("{host}:443");
        let target = self
            .connect_to
            .get(&authority)
            .cloned()
            .unwrap_or_else(|| authority.clone());
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| Failure::Unreachable(format!("`{host}` is not a DNS name")))?;
        let connect = async {
            let tcp = TcpStream::connect(&target)
                .await
                .map_err(|e| Failure::Unreachable(format!("connecting to {target}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Unreachable(format!("TLS with {host}: {e}")))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| Failure::Unreachable(format!("HTTP with {host}: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
            Ok(sender)
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Unreachable(format!(
                "connecting to {target}: no answer within {} ms",
                self.connect_timeout.as_millis()
            ))),
        }
    }
}
