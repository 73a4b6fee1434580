//! The re-signing gateway (issue 28) against stand-in exchanges over TLS on loopback: a test CA
//! made here (rcgen), one TLS server holding a certificate for every routed host, each request
//! verified with the exchange's server-side model (`model/`) and echoed back as JSON.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::common::{child_env, cli, fresh_token, TestToken};
use crate::model::{model, Http};

/// One routed host of the stand-in: its exchange and the secret its model verifies with.
#[derive(Clone)]
pub struct Host {
    pub exchange: String,
    pub secret: Vec<u8>,
}

/// What the stand-in saw: (host, method, path).
pub type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// How the stand-in answers: echo (default), or a fault for the fault tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Echo,
    /// Waits this long before answering.
    Slow(u64),
    /// Reads the request and closes the connection without a reply.
    Reset,
    /// Sends a reply head and part of the body, then closes.
    Cut,
    /// Sends a reply head and part of the body, then nothing for 10 s.
    Stall,
    /// A reply body of this many bytes.
    Huge(usize),
    /// Binance's market data for one pair and an account with a balance (freqtrade's start-up);
    /// the seen path records whether the model verified the request.
    Market,
}

/// A TLS stand-in exchange on 127.0.0.1 (its own runtime thread).
pub struct StandIn {
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
    pub seen: Seen,
    _dir: tempfile::TempDir,
}

impl StandIn {
    pub fn start(hosts: BTreeMap<String, Host>, fault: Fault) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hsm-custody gateway test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        // A key is a host, or a host and a path prefix (`api.mexc.com/api/v1/private`).
        let mut names: Vec<String> = hosts.keys().map(|k| spec_host(k).to_owned()).collect();
        names.sort();
        names.dedup();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        // ring, as the gateway (no aws-lc-rs build here).
        #[allow(deprecated)]
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                    leaf_key.serialize_der().into(),
                ),
            )
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let seen2 = Arc::clone(&seen);
        let hosts = Arc::new(hosts);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let hosts = Arc::clone(&hosts);
                    let seen = Arc::clone(&seen2);
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if matches!(fault, Fault::Reset | Fault::Cut | Fault::Stall) {
                            seen.lock()
                                .unwrap()
                                .push(("?".into(), "?".into(), "reset".into()));
                            let hold = if fault == Fault::Stall { 10 } else { 0 };
                            reset(tls, fault != Fault::Reset, Duration::from_secs(hold)).await;
                            return;
                        }
                        let service = hyper::service::service_fn(move |req| {
                            let hosts = Arc::clone(&hosts);
                            let seen = Arc::clone(&seen);
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    answer(&hosts, &seen, fault, req).await,
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        });
        StandIn {
            addr,
            ca_pem,
            seen,
            _dir: dir,
        }
    }
}

/// Reads one request, then drops the connection: at once, or after a head and part of a body.
async fn reset<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    head: bool,
    hold: Duration,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).await;
    if !head {
        return;
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\ncontent-type: application/json\r\n\r\n{\"partial\":")
        .await;
    let _ = s.flush().await;
    tokio::time::sleep(hold).await;
}

type StandBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn answer(
    hosts: &BTreeMap<String, Host>,
    seen: &Seen,
    fault: Fault,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<StandBody> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock()
        .unwrap()
        .push((host.clone(), method.clone(), path.clone()));
    if let Fault::Slow(ms) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Fault::Huge(n) = fault {
        let chunk = Bytes::from(vec![b' '; n]);
        return hyper::Response::new(Full::new(chunk).boxed());
    }
    let http = Http {
        method: method.clone(),
        host: host.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.clone(),
    };
    // The host's entry with the longest path prefix that covers the path.
    let entry = hosts
        .iter()
        .filter(|(k, _)| spec_host(k) == host && spec_covers(k, &path))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, h)| h);
    let verified = entry.is_some_and(|h| model(&h.exchange).verify(&http, &h.secret));
    if fault == Fault::Market {
        seen.lock()
            .unwrap()
            .push((host, method, format!("{path} verified={verified}")));
        let mut resp = hyper::Response::new(Full::new(Bytes::from(market(&path))).boxed());
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    // What ccxt and the gateway may add or drop without touching what is signed.
    const TRANSPORT: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "transfer-encoding",
        "origin",
    ];
    let shown: BTreeMap<String, String> = headers
        .into_iter()
        .filter(|(n, _)| !TRANSPORT.contains(&n.to_ascii_lowercase().as_str()))
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .collect();
    let echo = json!({
        "verified": verified, "method": method, "path": path, "query": query,
        "body": body, "headers": shown,
    });
    let mut resp = hyper::Response::new(Full::new(Bytes::from(echo.to_string())).boxed());
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    // A hop-by-hop header of this connection only (RFC 9110 7.6.1): the gateway drops it.
    h.insert(
        "connection",
        hyper::header::HeaderValue::from_static("x-standin-hop"),
    );
    h.insert(
        "x-standin-hop",
        hyper::header::HeaderValue::from_static("1"),
    );
    resp
}

/// The host of a route spec: `host` or `host/path/prefix`.
fn spec_host(spec: &str) -> &str {
    spec.split_once('/').map_or(spec, |(h, _)| h)
}

/// The path prefix of a route spec (`""` for a whole host).
fn spec_prefix(spec: &str) -> &str {
    spec.find('/').map_or("", |i| &spec[i..])
}

/// Whether the route spec serves `path`.
fn spec_covers(spec: &str, path: &str) -> bool {
    let prefix = spec_prefix(spec);
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
}

/// The ccxt virtualenv (python/venv.sh), or `None` when it has not been made.
pub fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("HSM_CUSTODY_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py-venv"));
    let python = venv.join("bin/python");
    python.exists().then_some(python)
}

/// A running `hsm-custody gateway` and its files.
pub struct GatewayProc {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub audit: PathBuf,
    /// What the gateway wrote on stderr after `listening on` (also passed on to the test's).
    pub log: Arc<Mutex<String>>,
    pub _dir: tempfile::TempDir,
}

/// A route: host (or `host/path/prefix`), exchange, key, where the host's stand-in listens.
type Route = (String, String, String, SocketAddr);

impl GatewayProc {
    /// Starts the CLI's gateway on token `t` with `routes` (host or `host/path/prefix`,
    /// exchange, key, where the host's stand-in listens; each route named after its spec with
    /// `/` as `.`), trusting the stand-ins' CAs, with `extra` lines in [gateway]
    /// and `keys_extra` before it. Keys named `nobody-*` are allowed to uid 65534 only, keys
    /// named `bots-*` to group [`BOTS_GID`] only.
    pub fn start(
        t: &TestToken,
        routes: &[Route],
        cas: &[&Path],
        extra: &str,
        keys_extra: &str,
    ) -> GatewayProc {
        Self::start_env(t, routes, cas, extra, keys_extra, &[])
    }

    /// [`GatewayProc::start`] with `env` set for the gateway process.
    pub fn start_env(
        t: &TestToken,
        routes: &[Route],
        cas: &[&Path],
        extra: &str,
        keys_extra: &str,
        env: &[(&str, &str)],
    ) -> GatewayProc {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, t.user_pin_text()).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ca = dir.path().join("cas.pem");
        let pems: Vec<String> = cas
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        std::fs::write(&ca, pems.concat()).unwrap();
        let audit = dir.path().join("audit.jsonl");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uid = rustix::process::geteuid().as_raw();
        let mut text = format!(
            "module = '{}'\ntoken = '{}'\npin_file = '{}'\n[audit]\npath = '{}'\nfsync = 'never'\n\
             {keys_extra}\n[gateway]\nlisten = '127.0.0.1:{port}'\nallow_same_uid = true\n\
             rate_per_second = 1000\nburst = 1000\nupstream_ca = '{}'\n{extra}\n",
            t.module.display(),
            t.label,
            pin.display(),
            audit.display(),
            ca.display()
        );
        text.push_str("[gateway.connect_to]\n");
        let mut redirected = std::collections::BTreeSet::new();
        for (spec, _, _, to) in routes {
            if redirected.insert(spec_host(spec)) {
                text.push_str(&format!("'{}:443' = '{to}'\n", spec_host(spec)));
            }
        }
        for (spec, exchange, key, _) in routes {
            let (host, prefix) = (spec_host(spec), spec_prefix(spec));
            let name = spec.replace('/', ".");
            text.push_str(&format!(
                "[[gateway.route]]\nname = '{name}'\nhost = '{host}'\nexchange = '{exchange}'\nkey = '{key}'\n"
            ));
            if !prefix.is_empty() {
                text.push_str(&format!("path_prefix = '{prefix}'\n"));
            }
        }
        let mut keys: Vec<&String> = routes.iter().map(|r| &r.2).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            if key.starts_with("bots-") {
                // The bots' group only, as deploy/README.md allows bots.
                text.push_str(&format!("[gateway.keys.'{key}']\ngids = [{BOTS_GID}]\n"));
                continue;
            }
            let who = if key.starts_with("nobody-") {
                65534
            } else {
                uid
            };
            text.push_str(&format!("[gateway.keys.'{key}']\nuids = [{who}]\n"));
        }
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        // No token is made (by another test) until the gateway's module is loaded.
        let no_init = crate::common::no_token_init();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
            .args(["--config", config.to_str().unwrap(), "gateway"])
            .envs(child_env())
            .env_remove("HSM_CUSTODY_PIN")
            .env_remove("HSM_CUSTODY_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let mut said = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap() == 0 {
                panic!("gateway exited: {:?}: {said}", child.wait());
            }
            said.push_str(&line);
            if line.contains("listening on") {
                break;
            }
        }
        drop(no_init);
        let log = Arc::new(Mutex::new(String::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut all = kept.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        GatewayProc {
            child,
            url: format!("http://{addr}"),
            addr,
            config,
            audit,
            log,
            _dir: dir,
        }
    }

    /// SIGTERM, wait.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to the gateway on a new connection: (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

fn import(
    t: &TestToken,
    name: &str,
    exchange: &str,
    api_key: &str,
    passphrase: &str,
    secret: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "key",
        "import",
        "--name",
        name,
        "--exchange",
        exchange,
        "--api-key",
        api_key,
    ];
    if exchange == "coinbase-advanced" {
        // A CDP key: the Ed25519 seed Coinbase hands out (base64).
        args.extend(["--type", "ed25519"]);
    }
    let pass = dir.path().join("pass");
    let pass_text = pass.to_str().unwrap().to_owned();
    if !passphrase.is_empty() {
        std::fs::write(&pass, passphrase).unwrap();
        args.extend(["--passphrase-file", &pass_text]);
    }
    let out = cli(t, &args, Some(secret));
    assert!(
        out.status.success(),
        "import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stock ccxt (Python, the pinned version of python/venv.sh) with a placeholder secret through
/// the gateway gives, at the stand-in, the request stock ccxt with the real secret sends
/// directly (time frozen on both), verified by each exchange's model; a withdrawal is refused
/// and never reaches the stand-in. Needs the venv: run by .ci/run's gateway step.
#[test]
#[ignore = "needs the ccxt virtualenv (python/venv.sh); run by .ci/run's gateway step"]
fn ccxt_python_through_the_gateway_matches_ccxt_direct() {
    let python = venv_python().expect("the ccxt venv: run ./python/venv.sh first");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/tests/gateway_check.py");
    let plan = Command::new(&python)
        .arg(&script)
        .arg("plan")
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let t = fresh_token("gw-ccxt");
    let (standin, mut gw) = start_for_plan(&t, &String::from_utf8(plan.stdout).unwrap());
    let run = Command::new(&python)
        .arg(&script)
        .args([
            "run",
            &gw.url,
            &standin.addr.to_string(),
            standin.ca_pem.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&run.stdout);
    println!("{table}");
    assert!(
        run.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // MEXC futures: its route serves `/api/v1/private` of api.mexc.com only (the contract API
    // has no withdrawal); a withdrawal path through it is not routed, and a dot segment that
    // would climb out of the prefix is refused, both before the token and the stand-in.
    let futures = "api.mexc.com.api.v1.private";
    let mexc_auth = [("ApiKey", "oracle-api-key-0123456789"), ("Signature", "00")];
    let withdraw = "coin=USDT&address=TXexample&amount=1";
    for (target, status, kind) in [
        (
            format!("/{futures}/api/v3/capital/withdraw?{withdraw}"),
            403,
            "not_routed",
        ),
        (
            format!("/{futures}/api/v3/capit%61l/withdraw?{withdraw}"),
            403,
            "not_routed",
        ),
        (
            format!("/api.mexc.com/api/v1/%70rivate/account/assets?{withdraw}"),
            403,
            "not_routed",
        ),
        (
            format!("/{futures}/api/v1/private/../../v3/capital/withdraw?{withdraw}"),
            400,
            "bad_target",
        ),
        (
            format!(
                "/https://api.mexc.com/api/v1/private/%2e%2e/%2E%2E/v3/capital/withdraw?{withdraw}"
            ),
            400,
            "bad_target",
        ),
    ] {
        let (got, body) = http(gw.addr, "POST", &target, &mexc_auth, "");
        assert_eq!(got, status, "{target}: {body}");
        assert_eq!(echo(&body)["error"]["kind"], kind, "{target}: {body}");
    }
    let seen = standin.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, _, p)| !p.contains("withdraw")),
        "a withdrawal reached the stand-in"
    );
    assert!(
        seen.iter()
            .any(|(h, _, p)| h == "api.mexc.com" && p.starts_with("/api/v1/private/")),
        "no MEXC futures request reached the stand-in"
    );
    gw.stop();
    let audit = std::fs::read_to_string(&gw.audit).unwrap();
    assert!(
        audit.contains("\"event\":\"gateway_reply\""),
        "no reply line in the audit log"
    );
    assert!(audit.contains("\"outcome\":\"upstream 200\""));
    assert!(audit.contains("withdraw") && audit.contains("\"decision\":\"deny\""));
    let verify = cli(
        &t,
        &[
            "--config",
            gw.config.to_str().unwrap(),
            "audit",
            "verify",
            gw.audit.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

const BN_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const BN_API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn binance_host() -> Host {
    Host {
        exchange: "binance".into(),
        secret: BN_SECRET.as_bytes().to_vec(),
    }
}

/// A fresh token with Binance keys `keys` (same secret), a stand-in serving api.binance.com and
/// api1.binance.com, and routes sending the first host to `keys[0]`, the second to `keys[1]`.
fn two_binance_keys(tag: &str, keys: [&str; 2]) -> (TestToken, StandIn, [Route; 2]) {
    let t = fresh_token(tag);
    for key in keys {
        import(&t, key, "binance", BN_API_KEY, "", BN_SECRET);
    }
    let standin = StandIn::start(
        BTreeMap::from([
            ("api.binance.com".to_owned(), binance_host()),
            ("api1.binance.com".to_owned(), binance_host()),
        ]),
        Fault::Echo,
    );
    let hosts = ["api.binance.com", "api1.binance.com"];
    let routes = [0, 1].map(|i| {
        let (host, key) = (hosts[i].to_owned(), keys[i].to_owned());
        (host, "binance".to_owned(), key, standin.addr)
    });
    (t, standin, routes)
}

fn one_host(host: &str) -> BTreeMap<String, Host> {
    BTreeMap::from([(host.to_owned(), binance_host())])
}

/// A Binance request as a bot with a placeholder secret sends it: a signature that is not valid.
fn bot_query(extra: &str) -> String {
    format!(
        "{extra}timestamp={}&signature={}",
        now_ms(),
        "ab".repeat(32)
    )
}

fn echo(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Every request form, the routes, the peer's allow-list, policy and canonical-form refusals,
/// public requests passed through, and the audit line with the exchange's status.
#[test]
fn gateway_resigns_binance_and_refuses_what_it_must() {
    let (t, standin, routes) = two_binance_keys("gw-core", ["bn", "nobody-bn"]);
    let keys = "[keys.bn]\nexchange = 'binance'\n[keys.nobody-bn]\nexchange = 'binance'\n";
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("run/gw.sock");
    let mut gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        &format!("socket = '{}'", sock.display()),
        keys,
    );
    let key = [("X-MBX-APIKEY", BN_API_KEY)];

    // Base-URL form: re-signed, verified by the model; only the signature changed.
    let query = bot_query("omitZeroBalances=true&");
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{query}"),
        &key,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let e = echo(&body);
    assert_eq!(e["verified"], true, "{e}");
    let sent = e["query"].as_str().unwrap();
    let (bot_rest, bot_sig) = query.rsplit_once("&signature=").unwrap();
    let (sent_rest, sent_sig) = sent.rsplit_once("&signature=").unwrap();
    assert_eq!(bot_rest, sent_rest);
    assert_ne!(bot_sig, sent_sig);
    assert_eq!(e["headers"]["x-mbx-apikey"], BN_API_KEY);

    // ccxt's proxy-URL form, plain and percent-encoded (as ccxt for JavaScript sends a URL
    // with a query).
    let url = format!(
        "https://api.binance.com/api/v3/openOrders?{}",
        bot_query("symbol=BTCUSDT&")
    );
    let (status, body) = http(gw.addr, "GET", &format!("/{url}"), &key, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["verified"], true);
    let encoded = hsm_custody::exchanges::percent_encode(&url);
    let (status, body) = http(gw.addr, "GET", &format!("/{encoded}"), &key, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["verified"], true);
    assert_eq!(echo(&body)["path"], "/api/v3/openOrders");

    // The Unix socket: the same, the peer from SO_PEERCRED.
    let out = Command::new("curl")
        .args(["-s", "--unix-socket", sock.to_str().unwrap(), "-H"])
        .arg(format!("X-MBX-APIKEY: {BN_API_KEY}"))
        .arg(format!(
            "http://gw/api.binance.com/api/v3/account?{}",
            bot_query("")
        ))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(echo(&body)["verified"], true, "{body}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A signed POST with a form body.
    let form =
        bot_query("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&");
    let (status, body) = http(
        gw.addr,
        "POST",
        "/api.binance.com/api/v3/order",
        &[
            key[0],
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["verified"], true);

    // No open proxy: hosts and names without a route.
    for target in [
        "/https://evil.example.com/x",
        "/nope/api/v3/account",
        "/https%3A%2F%2Fevil.example.com%2Fx%3Fa%3D1",
    ] {
        let (status, body) = http(gw.addr, "GET", target, &key, "");
        assert_eq!(status, 403, "{target}: {body}");
        assert_eq!(echo(&body)["error"]["kind"], "not_routed", "{body}");
    }
    assert_eq!(
        http(
            gw.addr,
            "GET",
            "/http://api.binance.com/api/v3/time",
            &[],
            ""
        )
        .0,
        400
    );

    // Public: forwarded unchanged.
    let (status, body) = http(gw.addr, "GET", "/api.binance.com/api/v3/time?x=1", &[], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["query"], "x=1");

    // The key's allow-list: `nobody-bn` is uid 65534's only.
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api1.binance.com/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(echo(&body)["error"]["kind"], "forbidden");

    // The canonical form: a timestamp far from the crate's clock is refused before the token.
    let stale = format!(
        "timestamp={}&signature={}",
        now_ms() - 3_600_000,
        "ab".repeat(32)
    );
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{stale}"),
        &key,
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(echo(&body)["error"]["kind"], "request_refused");
    // A second copy of an authentication header.
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{}", bot_query("")),
        &[key[0], key[0]],
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sent 2 times"), "{body}");
    // Another API key than the key's own.
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{}", bot_query("")),
        &[("X-MBX-APIKEY", "someone-else")],
        "",
    );
    assert_eq!(status, 400, "{body}");

    // A withdrawal: refused by the withdrawal guard, never sent.
    let before = standin.seen.lock().unwrap().len();
    let (status, body) = http(
        gw.addr,
        "POST",
        "/api.binance.com/sapi/v1/capital/withdraw/apply",
        &key,
        &bot_query("coin=BTC&address=bc1qexample&amount=1&"),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(echo(&body)["error"]["kind"], "policy_denied");
    assert!(
        echo(&body)["error"]["rule"]
            .as_str()
            .unwrap()
            .starts_with("withdrawal-guard"),
        "{body}"
    );
    assert_eq!(standin.seen.lock().unwrap().len(), before);
    assert!(standin
        .seen
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, p)| !p.contains("withdraw")));

    gw.stop();
    let audit = std::fs::read_to_string(&gw.audit).unwrap();
    let replies = audit
        .lines()
        .filter(|l| l.contains("\"event\":\"gateway_reply\""))
        .count();
    assert_eq!(replies, 5, "{audit}");
    assert!(audit.contains("\"outcome\":\"upstream 200\""));
    let verify = cli(
        &t,
        &[
            "--config",
            gw.config.to_str().unwrap(),
            "audit",
            "verify",
            gw.audit.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Each request through the gateway is one JSON line on its stderr (RUST_LOG,
/// HSM_CUSTODY_LOG_FORMAT=json): uid, pid, key, exchange, method, endpoint, decision (and kind
/// when refused), status, latency; never the secret, the PIN, a signature or the query.
#[test]
fn gateway_logs_one_json_line_per_request_and_no_secret() {
    let (t, standin, routes) = two_binance_keys("gw-log", ["bn", "nobody-bn"]);
    let mut gw = GatewayProc::start_env(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        "[keys.bn]\nexchange = 'binance'\n[keys.nobody-bn]\nexchange = 'binance'\n",
        &[
            ("RUST_LOG", "warn,hsm_custody::gateway::request=info"),
            ("HSM_CUSTODY_LOG_FORMAT", "json"),
        ],
    );
    let key = [("X-MBX-APIKEY", BN_API_KEY)];
    let query = bot_query("omitZeroBalances=true&");
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{query}"),
        &key,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let sent = echo(&body)["query"].as_str().unwrap().to_owned();
    let resigned = sent.rsplit_once("&signature=").unwrap().1.to_owned();
    // `nobody-bn` is uid 65534's only; then the withdrawal guard.
    let (status, _) = http(
        gw.addr,
        "GET",
        &format!("/api1.binance.com/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(status, 403);
    let withdrawal = bot_query("coin=BTC&address=bc1qexample&amount=1&");
    let (status, _) = http(
        gw.addr,
        "POST",
        "/api.binance.com/sapi/v1/capital/withdraw/apply",
        &key,
        &withdrawal,
    );
    assert_eq!(status, 403);
    gw.stop();
    // The reader thread takes the last lines once the pipe closes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let log = gw.log.lock().unwrap().clone();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .filter(|v: &serde_json::Value| v["target"] == "hsm_custody::gateway::request")
            .collect();
        if lines.len() >= 3 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = gw.log.lock().unwrap().clone();
    assert_eq!(lines.len(), 3, "one line per request:\n{log}");
    let me = rustix::process::geteuid().as_raw();
    for line in &lines {
        assert_eq!(line["uid"], me, "{line}");
        assert_eq!(line["pid"], std::process::id(), "{line}");
        assert_eq!(line["exchange"], "binance", "{line}");
        assert_eq!(line["signed"], true, "{line}");
        assert_eq!(line["message"], "request", "{line}");
        assert!(line["latency_us"].as_u64().is_some(), "{line}");
    }
    let (ok, forbidden, denied) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(ok["key"], "bn", "{ok}");
    assert_eq!(ok["method"], "GET", "{ok}");
    assert_eq!(ok["endpoint"], "/api/v3/account", "{ok}");
    assert_eq!(ok["decision"], "allowed", "{ok}");
    assert_eq!(ok["status"], 200, "{ok}");
    assert!(ok.get("kind").is_none(), "{ok}");
    assert_eq!(forbidden["key"], "nobody-bn", "{forbidden}");
    assert_eq!(forbidden["decision"], "refused", "{forbidden}");
    assert_eq!(forbidden["kind"], "forbidden", "{forbidden}");
    assert_eq!(forbidden["status"], 403, "{forbidden}");
    assert_eq!(denied["method"], "POST", "{denied}");
    assert_eq!(
        denied["endpoint"], "/sapi/v1/capital/withdraw/apply",
        "{denied}"
    );
    assert_eq!(denied["decision"], "refused", "{denied}");
    assert_eq!(denied["kind"], "policy_denied", "{denied}");
    for secret in [
        BN_SECRET.to_owned(),
        t.user_pin_text(),
        resigned,
        "ab".repeat(32),
        "omitZeroBalances".to_owned(),
        "bc1qexample".to_owned(),
    ] {
        assert!(
            !log.contains(&secret),
            "`{secret}` in the gateway's log:\n{log}"
        );
    }
}

/// A gateway on a fresh token with one key `key` for a Binance stand-in that echoes: the
/// account URL a bot would call, and what keeps it running.
fn binance_gateway(tag: &str, key: &str) -> (String, StandIn, GatewayProc) {
    let t = fresh_token(tag);
    import(&t, key, "binance", BN_API_KEY, "", BN_SECRET);
    let standin = StandIn::start(one_host("api.binance.com"), Fault::Echo);
    let routes = [(
        "api.binance.com".to_owned(),
        "binance".to_owned(),
        key.to_owned(),
        standin.addr,
    )];
    let gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        &format!("[keys.{key}]\nexchange = 'binance'\n"),
    );
    let url = format!(
        "{}/api.binance.com/api/v3/account?{}",
        gw.url,
        bot_query("")
    );
    (url, standin, gw)
}

/// The reply body to a Binance account request sent by curl as nobody (uid and gid 65534),
/// with `groups` (a setpriv option) as its supplementary groups.
fn curl_as_nobody(url: &str, groups: &str) -> String {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", groups, "curl", "-s", "-H"])
        .arg(format!("X-MBX-APIKEY: {BN_API_KEY}"))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The peer's uid comes from the kernel: a process of another uid (nobody) is told apart from
/// this one, and a key allowed to nobody only is refused to this uid (above) and served to it.
#[test]
fn gateway_tells_peer_uids_apart_from_the_kernel() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to run a client as nobody");
        return;
    }
    let (url, _standin, gw) = binance_gateway("gw-uid", "nobody-bn");
    let body = curl_as_nobody(&url, "--clear-groups");
    assert_eq!(echo(&body)["verified"], true, "{body}");
    let (status, _) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{}", bot_query("")),
        &[("X-MBX-APIKEY", BN_API_KEY)],
        "",
    );
    assert_eq!(status, 403);
}

/// The group the `bots-*` keys are allowed to.
const BOTS_GID: u32 = 4242;

/// A bot is let in by a supplementary group (`usermod -aG`), read from the kernel, as the
/// agent does: the same client without the group is refused.
#[test]
fn gateway_lets_in_a_bot_by_its_supplementary_group() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to run a client with other groups");
        return;
    }
    let (url, _standin, _gw) = binance_gateway("gw-groups", "bots-bn");
    let body = curl_as_nobody(&url, &format!("--groups={BOTS_GID}"));
    assert_eq!(echo(&body)["verified"], true, "{body}");
    let body = curl_as_nobody(&url, "--clear-groups");
    assert_eq!(echo(&body)["error"]["kind"], "forbidden", "{body}");
}

/// One HTTP/1.1 request to the gateway written as is (`head` holds the request line's headers,
/// CRLF-terminated): (status, reply head in lower case, body).
fn raw_http(addr: SocketAddr, target: &str, head: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\n{head}content-length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (reply_head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = reply_head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, reply_head.to_ascii_lowercase(), body.to_owned())
}

/// Hop-by-hop headers (RFC 9110 7.6.1) stay on their hop, both ways: the fixed ones and every
/// header a `Connection` header names (each of several `Connection` lines, any case), in the
/// bot's request (public and signed) and in the exchange's reply; other headers pass.
#[test]
fn gateway_drops_connection_named_headers_both_ways() {
    let t = fresh_token("gw-hops");
    import(&t, "bn", "binance", BN_API_KEY, "", BN_SECRET);
    let standin = StandIn::start(one_host("api.binance.com"), Fault::Echo);
    let routes = [(
        "api.binance.com".to_owned(),
        "binance".to_owned(),
        "bn".to_owned(),
        standin.addr,
    )];
    let mut gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        "[keys.bn]\nexchange = 'binance'\n",
    );
    // The stand-in itself sends `x-standin-hop`, named by its `Connection` header.
    let direct = Command::new("curl")
        .args(["-s", "-i", "--cacert", standin.ca_pem.to_str().unwrap()])
        .arg("--connect-to")
        .arg(format!("api.binance.com:443:{}", standin.addr))
        .arg("https://api.binance.com/api/v3/time")
        .output()
        .unwrap();
    let direct = String::from_utf8_lossy(&direct.stdout).to_ascii_lowercase();
    assert!(direct.contains("\r\nx-standin-hop: 1\r\n"), "{direct}");
    assert!(
        direct.contains("\r\nconnection: x-standin-hop\r\n"),
        "{direct}"
    );

    let head = "Connection: close, X-Hop-A\r\nconnection: x-hop-b\r\nX-Hop-A: a\r\n\
                X-Hop-B: b\r\nKeep-Alive: timeout=5\r\nX-Kept: k\r\n";
    for target in [
        "/api.binance.com/api/v3/time?x=1".to_owned(),
        format!("/api.binance.com/api/v3/account?{}", bot_query("")),
    ] {
        let head = if target.contains("account") {
            format!("{head}X-MBX-APIKEY: {BN_API_KEY}\r\n")
        } else {
            head.to_owned()
        };
        let (status, reply_head, body) = raw_http(gw.addr, &target, &head);
        assert_eq!(status, 200, "{target}: {body}");
        let e = echo(&body);
        assert_eq!(e["verified"], target.contains("account"), "{e}");
        let sent = e["headers"].as_object().unwrap();
        assert_eq!(sent.get("x-kept"), Some(&json!("k")), "{e}");
        for hop in ["x-hop-a", "x-hop-b", "keep-alive"] {
            assert!(
                !sent.contains_key(hop),
                "{target}: `{hop}` was forwarded: {e}"
            );
        }
        assert!(!reply_head.contains("x-standin-hop"), "{reply_head}");
        assert!(
            !reply_head.contains("connection: x-standin-hop"),
            "{reply_head}"
        );
        assert!(
            reply_head.contains("content-type: application/json"),
            "{reply_head}"
        );
    }
    gw.stop();
}

/// BitMEX, which neither ccxt for Python 4.5.90 nor ccxt for JavaScript 4.5.84 has a class
/// for: a bot's request in BitMEX's wire form (`api-expires`, `api-key`, and an `api-signature`
/// made with a placeholder secret) is re-signed and verified by the model, GET and a JSON POST;
/// a withdrawal is refused by the withdrawal guard and never reaches the stand-in.
#[test]
fn gateway_resigns_bitmex_requests_without_ccxt() {
    const SECRET: &str = "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO";
    const API_KEY: &str = "LAqUlngMIQkIUjXMUreyu3qn";
    let t = fresh_token("gw-bitmex");
    import(&t, "mx", "bitmex", API_KEY, "", SECRET);
    let standin = StandIn::start(
        BTreeMap::from([(
            "www.bitmex.com".to_owned(),
            Host {
                exchange: "bitmex".into(),
                secret: SECRET.as_bytes().to_vec(),
            },
        )]),
        Fault::Echo,
    );
    let routes = [(
        "www.bitmex.com".to_owned(),
        "bitmex".to_owned(),
        "mx".to_owned(),
        standin.addr,
    )];
    let mut gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        "[keys.mx]\nexchange = 'bitmex'\n",
    );
    let expires = (now_ms() / 1000 + 30).to_string();
    let placeholder = "0f".repeat(32);
    let auth = [
        ("api-expires", expires.as_str()),
        ("api-key", API_KEY),
        ("api-signature", placeholder.as_str()),
    ];
    let (status, body) = http(
        gw.addr,
        "GET",
        "/www.bitmex.com/api/v1/user/wallet?currency=XBt",
        &auth,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let e = echo(&body);
    assert_eq!(e["verified"], true, "{e}");
    assert_eq!(e["query"], "currency=XBt");
    assert_eq!(e["headers"]["api-expires"], expires.as_str());
    assert_ne!(e["headers"]["api-signature"], placeholder.as_str());
    let order =
        r#"{"symbol":"XBTUSD","side":"Buy","orderQty":"1","price":"30000","ordType":"Limit"}"#;
    let json = [
        auth[0],
        auth[1],
        auth[2],
        ("Content-Type", "application/json"),
    ];
    let (status, body) = http(
        gw.addr,
        "POST",
        "/www.bitmex.com/api/v1/order",
        &json,
        order,
    );
    assert_eq!(status, 200, "{body}");
    let e = echo(&body);
    assert_eq!(e["verified"], true, "{e}");
    assert_eq!(e["body"], order);

    let before = standin.seen.lock().unwrap().len();
    let (status, body) = http(
        gw.addr,
        "POST",
        "/www.bitmex.com/api/v1/user/requestWithdrawal",
        &json,
        r#"{"currency":"XBt","amount":"1000","address":"bc1qexample"}"#,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(echo(&body)["error"]["kind"], "policy_denied", "{body}");
    assert_eq!(standin.seen.lock().unwrap().len(), before);
    gw.stop();
}

/// Children killed and reaped when the test ends, even when it fails.
struct Reaped(Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A remote bot's way in (docs/gateway.md, "Remote bots"): an SSH tunnel (`ssh -N -L`) to the
/// gateway's loopback port, through a real OpenSSH sshd on a loopback port (a host key and a
/// user key made here, the session user `nobody`). The gateway sees the connection sshd opens
/// for the forward, so the peer uid is the SSH session user's (65534), not the uid of the
/// process that runs `ssh`: a key allowed to 65534 is served through the tunnel, a key allowed
/// to this test's uid only is refused through it (and served to this uid directly).
#[test]
#[ignore = "needs root and OpenSSH's sshd (apt openssh-server); run by .ci/run's gateway step"]
fn gateway_serves_a_remote_bot_through_an_ssh_tunnel() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "needs root: sshd switches to the session user"
    );
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "needs /usr/sbin/sshd (apt-get install openssh-server)"
    );
    let (t, standin, routes) = two_binance_keys("gw-ssh", ["nobody-bn", "bn"]);
    let mut gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        "[keys.nobody-bn]\nexchange = 'binance'\n[keys.bn]\nexchange = 'binance'\n",
    );

    // sshd: loopback only, key login for `nobody` only, local forwards to the gateway only.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (key, comment) in [("host_key", "gw-test-host"), ("user_key", "gw-test-bot")] {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(d.join(key))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege-separation directory
    let ssh_port = free_port();
    let gw_port = gw.addr.port();
    let config = format!(
        "Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowUsers nobody\n\
         AllowTcpForwarding local\nPermitOpen 127.0.0.1:{gw_port}\nX11Forwarding no\n\
         PermitTTY no\nAllowAgentForwarding no\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let mut children = Reaped(Vec::new());
    children.0.push(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{ssh_port} {}\n", host_pub.join(" ")),
    )
    .unwrap();
    let up = |port: u16| {
        (0..100).any(|_| {
            let ok = TcpStream::connect(("127.0.0.1", port)).is_ok();
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            ok
        })
    };
    assert!(up(ssh_port), "sshd did not come up on {ssh_port}");

    // The bot's side: `ssh -N -L local:127.0.0.1:<gateway port>`.
    let local = free_port();
    children.0.push(
        Command::new("ssh")
            .args(["-N", "-p", &ssh_port.to_string(), "-i"])
            .arg(d.join("user_key"))
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                &format!("UserKnownHostsFile={}", d.join("known_hosts").display()),
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                &format!("127.0.0.1:{local}:127.0.0.1:{gw_port}"),
                "nobody@127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(up(local), "the tunnel did not come up on {local}");
    let tunnel: SocketAddr = format!("127.0.0.1:{local}").parse().unwrap();
    let key = [("X-MBX-APIKEY", BN_API_KEY)];
    let account = |route: &str| format!("/{route}/api/v3/account?{}", bot_query(""));

    // Through the tunnel the peer is sshd's session user, nobody (65534).
    let (status, body) = http(tunnel, "GET", &account("api.binance.com"), &key, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["verified"], true, "{body}");
    let (status, body) = http(tunnel, "GET", &account("api1.binance.com"), &key, "");
    assert_eq!(status, 403, "{body}");
    assert_eq!(echo(&body)["error"]["kind"], "forbidden", "{body}");
    assert!(body.contains("uid 65534"), "{body}");
    // This uid, directly: the other way round.
    let (status, body) = http(gw.addr, "GET", &account("api1.binance.com"), &key, "");
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(gw.addr, "GET", &account("api.binance.com"), &key, "");
    assert_eq!(status, 403);
    drop(children);
    gw.stop();
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Stand-in down, slow, reset before and during the reply, a huge reply, a client leaving
/// mid-request: clear JSON errors, signed POSTs sent once, bounded memory, and the gateway
/// still serves afterwards.
#[test]
fn gateway_faults_are_clear_and_never_retried() {
    let t = fresh_token("gw-faults");
    import(&t, "bn", "binance", BN_API_KEY, "", BN_SECRET);
    let slow = StandIn::start(one_host("slow.binance.test"), Fault::Slow(3_000));
    let reset = StandIn::start(one_host("reset.binance.test"), Fault::Reset);
    let cut = StandIn::start(one_host("cut.binance.test"), Fault::Cut);
    let stall = StandIn::start(one_host("stall.binance.test"), Fault::Stall);
    let huge = StandIn::start(one_host("huge.binance.test"), Fault::Huge(48 << 20));
    let big = StandIn::start(one_host("big.binance.test"), Fault::Huge(15 << 20));
    let ok = StandIn::start(one_host("api.binance.com"), Fault::Echo);
    let down: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let route = |h: &str, at: SocketAddr| (h.to_owned(), "binance".to_owned(), "bn".to_owned(), at);
    let routes = [
        route("slow.binance.test", slow.addr),
        route("reset.binance.test", reset.addr),
        route("cut.binance.test", cut.addr),
        route("stall.binance.test", stall.addr),
        route("huge.binance.test", huge.addr),
        route("big.binance.test", big.addr),
        route("api.binance.com", ok.addr),
        route("down.binance.test", down),
    ];
    let cas = [
        slow.ca_pem.as_path(),
        reset.ca_pem.as_path(),
        cut.ca_pem.as_path(),
        stall.ca_pem.as_path(),
        huge.ca_pem.as_path(),
        big.ca_pem.as_path(),
        ok.ca_pem.as_path(),
    ];
    let gw = GatewayProc::start(
        &t,
        &routes,
        &cas,
        "timeout_ms = 1000\nconnect_timeout_ms = 1000\nmax_reply = 16777216",
        "[keys.bn]\nexchange = 'binance'\n",
    );
    let key = [("X-MBX-APIKEY", BN_API_KEY)];
    let kind = |body: &str| {
        echo(body)["error"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };

    // Down: nothing sent.
    let (status, body) = http(
        gw.addr,
        "POST",
        "/down.binance.test/api/v3/order",
        &key,
        &bot_query("symbol=BTCUSDT&"),
    );
    assert_eq!(
        (status, kind(&body).as_str()),
        (502, "upstream_unreachable"),
        "{body}"
    );

    // Slow: a signed POST is reported lost, once; a GET times out.
    let (status, body) = http(
        gw.addr,
        "POST",
        "/slow.binance.test/api/v3/order",
        &key,
        &bot_query("symbol=BTCUSDT&"),
    );
    assert_eq!(
        (status, kind(&body).as_str()),
        (502, "reply_lost"),
        "{body}"
    );
    assert_eq!(echo(&body)["error"]["sent"], true);
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/slow.binance.test/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(
        (status, kind(&body).as_str()),
        (504, "upstream_timeout"),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(3_200));
    assert_eq!(
        slow.seen.lock().unwrap().len(),
        2,
        "each request reached the stand-in once"
    );

    // Reset before the reply: lost, never retried.
    let (status, body) = http(
        gw.addr,
        "POST",
        "/reset.binance.test/api/v3/order",
        &key,
        &bot_query("symbol=BTCUSDT&"),
    );
    assert_eq!(
        (status, kind(&body).as_str()),
        (502, "reply_lost"),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        reset.seen.lock().unwrap().len(),
        1,
        "a signed POST is sent once"
    );

    // Reset mid-reply: the exchange's head went through; the body ends short, the connection
    // is closed (never a complete-looking reply).
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/cut.binance.test/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(status, 200);
    assert!(body.len() < 1000, "{}", body.len());

    // A reply that stalls mid-body: the connection is closed after the idle time, not held.
    let t0 = std::time::Instant::now();
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/stall.binance.test/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(status, 200);
    assert!(body.len() < 1000, "{}", body.len());
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        t0.elapsed()
    );

    // Over max_reply: refused at the reply head; under it: streamed whole, in bounded memory.
    let (status, body) = http(gw.addr, "GET", "/huge.binance.test/api/v3/time", &[], "");
    assert_eq!(
        (status, kind(&body).as_str()),
        (502, "reply_too_large"),
        "{body}"
    );
    let before = vm_hwm_kib(gw.child.id());
    let (status, body) = http(gw.addr, "GET", "/big.binance.test/api/v3/time", &[], "");
    assert_eq!(status, 200);
    assert_eq!(body.len(), 15 << 20);
    let peak = vm_hwm_kib(gw.child.id());
    eprintln!("gateway peak RSS: {before} KiB before a 15 MiB reply, {peak} KiB after");
    assert!(
        peak < before + 6 * 1024,
        "the reply was buffered ({before} -> {peak} KiB)"
    );

    // A client that leaves mid-request: nothing is sent, and the gateway serves the next one.
    {
        let mut s = TcpStream::connect(gw.addr).unwrap();
        s.write_all(b"POST /api.binance.com/api/v3/order HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nsymbol=BTC").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(ok.seen.lock().unwrap().is_empty());
    let (status, body) = http(
        gw.addr,
        "GET",
        &format!("/api.binance.com/api/v3/account?{}", bot_query("")),
        &key,
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(echo(&body)["verified"], true);
}

/// The npm project with ccxt for JavaScript (made by .ci/run's gateway step), or `None`.
fn ccxt_js_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HSM_CUSTODY_CCXT_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/gw-js"));
    dir.join("node_modules/ccxt").exists().then_some(dir)
}

/// Stand-ins, keys and a gateway for the TSV plan of a ccxt check script.
fn start_for_plan(t: &TestToken, plan: &str) -> (StandIn, GatewayProc) {
    let mut hosts = BTreeMap::new();
    let mut routes = Vec::new();
    let mut keys_extra = String::new();
    for line in plan.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (host, exchange, key, api_key, pass, secret, enc) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
        import(t, key, exchange, api_key, pass, secret);
        let bytes = if enc == "b64" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(secret)
                .unwrap()
        } else {
            secret.as_bytes().to_vec()
        };
        hosts.insert(
            host.to_owned(),
            Host {
                exchange: exchange.to_owned(),
                secret: bytes,
            },
        );
        routes.push((host.to_owned(), exchange.to_owned(), key.to_owned()));
        keys_extra.push_str(&format!("[keys.'{key}']\nexchange = '{exchange}'\n"));
        if exchange == "deribit" {
            keys_extra.push_str("allow = ['GET /api/v2/public/auth', '* /api/v2/**']\n");
        }
    }
    let standin = StandIn::start(hosts, Fault::Echo);
    let routes: Vec<_> = routes
        .into_iter()
        .map(|(h, e, k)| (h, e, k, standin.addr))
        .collect();
    let gw = GatewayProc::start(t, &routes, &[standin.ca_pem.as_path()], "", &keys_extra);
    (standin, gw)
}

/// Stock ccxt for JavaScript (npm) with `proxyUrl` pointed at the gateway, for Binance, OKX,
/// Kraken and Bybit: the same requests at the stand-in as ccxt with the real secret sent
/// directly, verified by the models. Needs node and the npm project: run by .ci/run.
#[test]
#[ignore = "needs node and ccxt from npm (target/gw-js); run by .ci/run's gateway step"]
fn ccxt_js_through_the_gateway_with_proxy_url() {
    let dir = ccxt_js_dir().expect("ccxt for JavaScript: npm install ccxt in target/gw-js");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/ccxt_js.mjs");
    let node = |args: &[&str]| {
        Command::new("node")
            .arg(&script)
            .args(args)
            .env("CCXT_JS_DIR", &dir)
            .output()
            .unwrap()
    };
    let plan = node(&["plan"]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let t = fresh_token("gw-js");
    let (standin, mut gw) = start_for_plan(&t, &String::from_utf8(plan.stdout).unwrap());
    let run = node(&[
        "run",
        &gw.url,
        &standin.addr.to_string(),
        standin.ca_pem.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&run.stdout);
    println!("{table}");
    assert!(
        run.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(table.matches("identical, verified").count(), 9, "{table}");
    gw.stop();
}

/// Binance's answers for freqtrade's start-up: one spot pair, BTC/USDT, and a USDT balance.
fn market(path: &str) -> String {
    let now = now_ms();
    match path {
        "/api/v3/exchangeInfo" => json!({
            "timezone": "UTC", "serverTime": now as u64, "rateLimits": [],
            "symbols": [{
                "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC",
                "baseAssetPrecision": 8, "quoteAsset": "USDT", "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
                "icebergAllowed": true, "ocoAllowed": true, "isSpotTradingAllowed": true,
                "isMarginTradingAllowed": false, "permissions": ["SPOT"],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
                     "tickSize": "0.01"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00",
                     "stepSize": "0.00001"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00", "maxNotional": "9000000.00"}
                ]
            }]
        })
        .to_string(),
        "/api/v3/account" => json!({
            "makerCommission": 10, "takerCommission": 10, "canTrade": true,
            "canWithdraw": false, "canDeposit": false, "updateTime": now as u64,
            "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [{"asset": "USDT", "free": "1000.00", "locked": "0.00"},
                         {"asset": "BTC", "free": "0.00000000", "locked": "0.00000000"}]
        })
        .to_string(),
        "/api/v3/time" => json!({"serverTime": now as u64}).to_string(),
        "/api/v3/ticker/price" | "/api/v3/ticker/bookTicker" => json!([]).to_string(),
        "/api/v3/ticker/24hr" => json!([]).to_string(),
        _ => json!([]).to_string(),
    }
}

/// freqtrade (pip, in target/ft-venv) started in live mode against the Binance stand-in through
/// the gateway, with the `ccxt_config` that `hsm-custody gateway ccxt-config` prints, runs until
/// it has fetched the balance: a signed `GET /api/v3/account` the model verified.
#[test]
#[ignore = "needs freqtrade (pip install freqtrade in target/ft-venv); run by .ci/run's gateway step"]
fn freqtrade_live_through_the_gateway_fetches_the_balance() {
    let venv = std::env::var_os("HSM_CUSTODY_FT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ft-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "freqtrade venv missing: {}",
        venv.display()
    );
    let t = fresh_token("gw-freqtrade");
    import(&t, "bn", "binance", BN_API_KEY, "", BN_SECRET);
    let standin = StandIn::start(one_host("api.binance.com"), Fault::Market);
    let routes = [(
        "api.binance.com".to_owned(),
        "binance".to_owned(),
        "bn".to_owned(),
        standin.addr,
    )];
    let mut gw = GatewayProc::start(
        &t,
        &routes,
        &[standin.ca_pem.as_path()],
        "",
        "[keys.bn]\nexchange = 'binance'\n",
    );
    let out = cli(
        &t,
        &[
            "--config",
            gw.config.to_str().unwrap(),
            "gateway",
            "ccxt-config",
            "--route",
            "api.binance.com",
            "--python",
            python.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(printed["urls"]["api"]["private"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/api.binance.com/", gw.url)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("strategies")).unwrap();
    std::fs::write(
        dir.path().join("strategies/GatewayCheck.py"),
        "from freqtrade.strategy import IStrategy\n\n\nclass GatewayCheck(IStrategy):\n    \
         INTERFACE_VERSION = 3\n    timeframe = '5m'\n    minimal_roi = {'0': 0.1}\n    \
         stoploss = -0.1\n\n    def populate_indicators(self, df, metadata):\n        \
         return df\n\n    def populate_entry_trend(self, df, metadata):\n        \
         df['enter_long'] = 0\n        return df\n\n    def populate_exit_trend(self, df, \
         metadata):\n        df['exit_long'] = 0\n        return df\n",
    )
    .unwrap();
    let mut ccxt_config = printed.clone();
    ccxt_config["options"] = json!({"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": false});
    ccxt_config["enableRateLimit"] = json!(false);
    let config = json!({
        "dry_run": false, "trading_mode": "spot", "max_open_trades": 1,
        "stake_currency": "USDT", "stake_amount": 10, "timeframe": "5m",
        "initial_state": "running", "fiat_display_currency": "",
        "exchange": {
            "name": "binance", "key": BN_API_KEY, "secret": printed["secret"],
            "ccxt_config": ccxt_config, "ccxt_async_config": ccxt_config,
            "pair_whitelist": ["BTC/USDT"], "pair_blacklist": []
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": false},
        "exit_pricing": {"price_side": "same", "use_order_book": false},
        "internals": {"process_throttle_secs": 5},
        "bot_name": "gateway-check", "db_url": format!("sqlite:///{}/trades.sqlite", dir.path().display())
    });
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let log = dir.path().join("freqtrade.log");
    let mut ft = Command::new(venv.join("bin/freqtrade"))
        .args([
            "trade",
            "--config",
            cfg.to_str().unwrap(),
            "--strategy",
            "GatewayCheck",
        ])
        .args(["--userdir", dir.path().to_str().unwrap()])
        .args([
            "--strategy-path",
            dir.path().join("strategies").to_str().unwrap(),
        ])
        .args(["--logfile", log.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let fetched = loop {
        let seen = standin.seen.lock().unwrap().clone();
        if seen
            .iter()
            .any(|(_, m, p)| m == "GET" && p == "/api/v3/account verified=true")
        {
            break true;
        }
        if std::time::Instant::now() > deadline || ft.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &ft.id().to_string()])
        .status();
    let _ = ft.wait();
    gw.stop();
    let seen = standin.seen.lock().unwrap().clone();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        fetched,
        "freqtrade did not fetch the balance; stand-in saw {seen:?}\n{text}"
    );
    eprintln!("the stand-in saw, from freqtrade through the gateway: {seen:?}");
    let audit = std::fs::read_to_string(&gw.audit).unwrap();
    assert!(audit.contains("\"path\":\"/api/v3/account\""), "{audit}");
}
