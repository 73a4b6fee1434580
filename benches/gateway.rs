//! The latency the re-signing gateway adds (issue 28): the same client sends the same Binance
//! request to a TLS stand-in exchange on loopback directly (its own keep-alive TLS connection)
//! and through the gateway (keep-alive HTTP to the gateway, which re-signs in a fresh SoftHSM2
//! token and reuses its TLS connection to the stand-in). p50 and p99 of per-request times at 1
//! and 8 concurrent clients, and requests per second.
//!
//! `cargo bench --bench gateway` (about 30 s) or `cargo bench --bench gateway -- --quick`.
//! Everything runs in this process: the gateway on a 2-worker runtime, the stand-in on its own
//! thread, each client on its own thread; on a 2-core machine they share the cores, as they
//! would on a small trading host.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;

use hsm_custody::agent::KeyAccess;
use hsm_custody::gateway::{Gateway, GatewayConfig, Route};
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};

use common::BenchEnv;

const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const HOST: &str = "api.binance.com";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 1.0 } else { 5.0 };
    let env = BenchEnv::new();
    eprintln!("SoftHSM2 configuration: {}", env.conf.display());
    let (so, user) = (
        SecretString::from("bench-so"),
        SecretString::from("bench-user"),
    );
    hsm_custody::admin::init_token(&env.module, "gateway-bench", &so, &user)?;
    let custody = Custody::connect(Config::new(&env.module, "gateway-bench").pin(user))?;
    let profile = exchanges::profile("binance").ok_or("no binance profile")?;
    custody.import_hmac_secret(
        KeySpec::hmac("bn")
            .exchange("binance")
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        SecretString::from(SECRET),
    )?;

    let (standin, ca_pem, tls_client) = stand_in(&env)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let uid = rustix::process::geteuid().as_raw();
    let config = GatewayConfig::new("127.0.0.1:0".parse()?)
        .route(Route::new(HOST, "binance", "bn").named("binance"))
        .allow("bn", KeyAccess::uids([uid]))
        .allow_same_uid(true)
        .rate(1_000_000, 1_000_000)
        .upstream_ca(&ca_pem)
        .connect_to(&format!("{HOST}:443"), &standin.to_string());
    let gateway = rt.block_on(Gateway::bind(custody, None, config))?;
    let gw_addr = gateway.local_addr()?;
    rt.spawn(gateway.serve(std::future::pending()));

    println!("gateway bench: Binance GET /api/v3/account, TLS stand-in on loopback");
    println!("| clients | path | p50 µs | p99 µs | requests/s |");
    println!("|---|---|---|---|---|");
    let mut p50 = [[0.0; 2]; 2];
    for (i, clients) in [1usize, 8].into_iter().enumerate() {
        let tls = tls_client.clone();
        let direct = run_clients(clients, secs, move || Client::Direct(standin, tls.clone()));
        let through = run_clients(clients, secs, move || Client::Gateway(gw_addr));
        for (j, (name, r)) in [("direct", &direct), ("gateway", &through)]
            .into_iter()
            .enumerate()
        {
            println!(
                "| {clients} | {name} | {:.0} | {:.0} | {:.0} |",
                r.p50, r.p99, r.per_second
            );
            p50[i][j] = r.p50;
        }
    }
    println!(
        "\nadded p50: {:.0} µs at 1 client, {:.0} µs at 8 clients (goal: ≤ 300 µs, token \
         signature included)",
        p50[0][1] - p50[0][0],
        p50[1][1] - p50[1][0]
    );
    Ok(())
}

#[derive(Clone)]
enum Client {
    Direct(std::net::SocketAddr, tokio_rustls::TlsConnector),
    Gateway(std::net::SocketAddr),
}

struct Result1 {
    p50: f64,
    p99: f64,
    per_second: f64,
}

/// `clients` threads, each with one keep-alive connection, for `secs`.
fn run_clients(
    clients: usize,
    secs: f64,
    make: impl Fn() -> Client + Send + Sync + 'static,
) -> Result1 {
    let make = Arc::new(make);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let make = Arc::clone(&make);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("client runtime");
                rt.block_on(client_loop(make(), Duration::from_secs_f64(secs)))
            })
        })
        .collect();
    let mut times: Vec<f64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let n = times.len().max(1);
    Result1 {
        p50: times.get(n / 2).copied().unwrap_or(0.0),
        p99: times.get(n * 99 / 100).copied().unwrap_or(0.0),
        per_second: times.len() as f64 / elapsed,
    }
}

async fn client_loop(client: Client, run: Duration) -> Vec<f64> {
    let mut sender = match &client {
        Client::Direct(addr, tls) => {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .expect("stand-in");
            tcp.set_nodelay(true).expect("nodelay");
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(HOST).expect("name");
            let tls = tls.connect(name, tcp).await.expect("TLS");
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("http");
            tokio::spawn(conn);
            s
        }
        Client::Gateway(addr) => {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("gateway");
            tcp.set_nodelay(true).expect("nodelay");
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("http");
            tokio::spawn(conn);
            s
        }
    };
    let prefix = match client {
        Client::Direct(..) => "",
        Client::Gateway(_) => "/binance",
    };
    let mut times = Vec::new();
    let end = Instant::now() + run;
    let mut warm = 20;
    while Instant::now() < end {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        let uri = format!(
            "{prefix}/api/v3/account?timestamp={now}&signature={}",
            "ab".repeat(32)
        );
        let req = hyper::Request::get(uri)
            .header("host", HOST)
            .header("X-MBX-APIKEY", "bench-api-key")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let t = Instant::now();
        let resp = sender.send_request(req).await.expect("reply");
        assert!(resp.status().is_success(), "{}", resp.status());
        let _ = resp.into_body().collect().await.expect("body");
        if warm > 0 {
            warm -= 1;
        } else {
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    times
}

/// A TLS stand-in answering every request with a small JSON body: its address, its CA file,
/// and a TLS client config trusting it.
fn stand_in(
    env: &BenchEnv,
) -> Result<
    (
        std::net::SocketAddr,
        std::path::PathBuf,
        tokio_rustls::TlsConnector,
    ),
    Error,
> {
    use tokio_rustls::rustls;
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec![HOST.to_owned()])?.signed_by(&leaf_key, &ca, &ca_key)?;
    let ca_pem = env.dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem())?;
    // ring, as the gateway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("stand-in runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{\"balances\":[]}"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    Ok((
        addr,
        ca_pem,
        tokio_rustls::TlsConnector::from(Arc::new(client)),
    ))
}
