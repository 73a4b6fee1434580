//! The signing agent (issue 9), run as a child process (`hsm-custody agent`) on a fresh token,
//! with guard rails ([keys] policy and [audit]) from its config file. Clients are other
//! processes (this test binary re-run as `agent::agent_client_child_process`), with no PIN.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm_custody::agent::AgentClient;
use hsm_custody::exchanges::Request;
use hsm_custody::{Error, HmacAlg};

use crate::common::{child_env, fresh_token, software_hmac, TestToken};
use crate::exchanges::import_for;

const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const CLIENTS: usize = 8;
const SIGNS_PER_CLIENT: usize = 25;
const ENV_SOCKET: &str = "HSM_CUSTODY_AGENT_TEST_SOCKET";
const ENV_CLIENT: &str = "HSM_CUSTODY_AGENT_TEST_CLIENT";
const ENV_KEY: &str = "HSM_CUSTODY_AGENT_TEST_KEY";
/// The uid/gid a foreign client runs as (`nobody`/`nogroup` on Debian).
const NOBODY: u32 = 65534;

/// A running `hsm-custody agent` child.
struct AgentProc {
    child: Child,
    socket: PathBuf,
    config: PathBuf,
    audit: PathBuf,
    stderr: Arc<Mutex<String>>,
    token: TestToken,
    _dir: tempfile::TempDir,
}

impl AgentProc {
    /// Imports `bn` (Binance), `other` (Binance, allowed to nobody's uid only) and `raw` (policy
    /// `allow_raw`, allow-list exchange `raw` only) and starts
    /// the agent; with `group`, the socket is shared with group `nogroup` (0660, dir 0750).
    fn start(tag: &str, group: bool) -> AgentProc {
        Self::start_with(
            tag,
            group,
            "allow_same_uid = true  # test setup: the clients are this test's own uid\n",
        )
    }

    /// [`AgentProc::start`] with more lines in the `[agent]` section.
    fn start_with(tag: &str, group: bool, agent_lines: &str) -> AgentProc {
        Self::start_full(tag, group, agent_lines, "")
    }

    /// [`AgentProc::start_with`] with more lines in key `other`'s allow-list.
    fn start_full(tag: &str, group: bool, agent_lines: &str, other_lines: &str) -> AgentProc {
        Self::start_env(tag, group, agent_lines, other_lines, &[])
    }

    /// [`AgentProc::start_full`] with `env` set for the agent process.
    fn start_env(
        tag: &str,
        group: bool,
        agent_lines: &str,
        other_lines: &str,
        env: &[(&str, &str)],
    ) -> AgentProc {
        let token = fresh_token(tag);
        let custody = token.connect();
        import_for(&custody, "bn", "binance", SECRET);
        import_for(&custody, "other", "binance", SECRET);
        import_for(&custody, "raw", "binance", SECRET);
        drop(custody);
        let dir = tempfile::tempdir().unwrap();
        // Let a client of another uid reach the socket's own directory (which the agent makes).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let me = std::fs::metadata(dir.path()).unwrap().uid();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, token.user_pin_text()).unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = dir.path().join("run").join("agent.sock");
        let audit = dir.path().join("audit.jsonl");
        let config = dir.path().join("hsm-custody.toml");
        let group_line = if group {
            format!("socket_group = {NOBODY}\n")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                "module = '{module}'\ntoken = '{label}'\npin_file = '{pin}'\n[pool]\nsize = 4\n\
                 [audit]\npath = '{audit}'\nfsync = 'batch'\n\
                 [keys.bn]\nexchange = 'binance'\n\
                 [keys.other]\nexchange = 'binance'\n\
                 [keys.raw]\nallow_raw = true\n\
                 [agent]\nsocket = '{socket}'\nrate_per_second = 100000\nburst = 100000\n\
                 max_frame = 4096\nframe_timeout_ms = 2000\n{group_line}{agent_lines}\
                 [agent.keys.bn]\nuids = [{me}]\n\
                 [agent.keys.other]\nuids = [{NOBODY}]\n{other_lines}\
                 [agent.keys.raw]\nuids = [{me}]\nexchanges = ['raw']\n",
                module = token.module.display(),
                label = token.label,
                pin = pin.display(),
                audit = audit.display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        // SoftHSM2 can answer C_GetTokenInfo with CKR_GENERAL_ERROR in a child process while
        // another test initialises a token in the shared directory (see `common::cli`): such a
        // start is repeated, at most three times.
        let mut attempt = 0;
        let (child, stderr) = loop {
            attempt += 1;
            match spawn_agent(&config, env) {
                Ok(started) => break started,
                Err(log) if attempt < 3 && log.contains("GeneralError") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(log) => panic!("agent did not start: {log}"),
            }
        };
        AgentProc {
            child,
            socket,
            config,
            audit,
            stderr,
            token,
            _dir: dir,
        }
    }

    /// SIGTERM, then the exit status within 20 s.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client_command(&self, client: usize, key: &str) -> Command {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "agent::agent_client_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_SOCKET, &self.socket)
        .env(ENV_CLIENT, client.to_string())
        .env(ENV_KEY, key)
        // Clients get no PIN and no token: only the socket.
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hsm-custody --config CONFIG agent` (with `env` on top) and waits for `listening on`;
/// the agent's stderr on failure.
fn spawn_agent(config: &Path, env: &[(&str, &str)]) -> Result<(Child, Arc<Mutex<String>>), String> {
    // No token is made (by another test) until the agent's module is loaded.
    let _no_init = crate::common::no_token_init();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .arg("--config")
        .arg(config)
        .arg("agent")
        .envs(child_env())
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .env_remove("HSM_CUSTODY_MODULE")
        .env_remove("HSM_CUSTODY_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hsm-custody agent");
    let stderr = crate::common::stderr_log::wait_for_line(
        &mut child,
        "listening on",
        Duration::from_secs(30),
    )?;
    Ok((child, stderr))
}

/// The query a client sends; the agent appends `timestamp` from the crate's clock.
fn binance_query(client: usize, n: usize) -> String {
    format!("symbol=LTCBTC&client={client}&n={n}")
}

/// Whether a signed Binance request's signature is the software HMAC of what it sends (the
/// query without its signature parameter).
fn verifies(signed: &hsm_custody::exchanges::SignedRequest<'_>) -> bool {
    let payload = signed
        .query
        .split_once("&signature=")
        .map_or(&*signed.query, |(p, _)| p);
    signed.signature == expected_signature(payload)
}

fn expected_signature(query: &str) -> String {
    hex::encode(software_hmac(
        HmacAlg::HmacSha256,
        SECRET.as_bytes(),
        query.as_bytes(),
    ))
}

/// Not a test of its own: the body of a client process, run by the tests below with
/// `ENV_SOCKET` set (it returns at once otherwise). Prints one `SIG client n signature` line
/// per request, or `ERR client kind message` when refused.
#[test]
fn agent_client_child_process() {
    let Some(socket) = std::env::var_os(ENV_SOCKET) else {
        return;
    };
    let client: usize = std::env::var(ENV_CLIENT).unwrap().parse().unwrap();
    let key = std::env::var(ENV_KEY).unwrap();
    let mut agent = AgentClient::connect(&socket).expect("connect to the agent");
    for n in 0..SIGNS_PER_CLIENT {
        let req = Request::get("/api/v3/order").query(binance_query(client, n));
        match agent.sign(&key, "binance", &req) {
            Ok(signed) => {
                // What was signed: the query as sent, without the signature parameter.
                let payload = signed
                    .query
                    .split_once("&signature=")
                    .map_or(&*signed.query, |(p, _)| p);
                println!("SIG {client} {n} {} {payload}", signed.signature)
            }
            Err(e) => {
                println!("ERR {client} {e}");
                return;
            }
        }
    }
}

/// Runs `cmd` (a client process) and returns its `SIG`/`ERR` lines.
fn client_lines(mut cmd: Command) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let out = cmd.output().expect("client process");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "client failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            // libtest prints the test's name without a newline before the first line.
            .filter_map(|l| {
                l.find("SIG ")
                    .or_else(|| l.find("ERR "))
                    .map(|i| l[i..].to_owned())
            })
            .collect()
    })
}

fn audit_sign_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "sign")
        .collect()
}

/// 8 client processes sign 25 requests each at once; every signature equals the software HMAC
/// of its own request (no mix-ups between clients); a withdrawal is refused by the policy the
/// agent loaded; SIGTERM stops the agent cleanly (exit 0, socket removed); the audit log has a
/// line per signature and `audit verify` finds the chain intact.
#[test]
fn agent_serves_eight_client_processes_with_policy_audit_and_graceful_shutdown() {
    let mut agent = AgentProc::start("agent-8", false);
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode");
    let dir_mode = std::fs::metadata(agent.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "socket directory mode");

    let started = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|c| client_lines(agent.client_command(c, "bn")))
        .collect();
    let mut signed = 0;
    for (c, h) in handles.into_iter().enumerate() {
        let lines = h.join().unwrap();
        assert_eq!(lines.len(), SIGNS_PER_CLIENT, "client {c}: {lines:?}");
        for line in lines {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts[0], "SIG", "{line}");
            let (client, n): (usize, usize) =
                (parts[1].parse().unwrap(), parts[2].parse().unwrap());
            assert_eq!(client, c);
            let payload = parts[4];
            assert!(
                payload.starts_with(&format!("{}&timestamp=", binance_query(client, n))),
                "{line}"
            );
            assert_eq!(parts[3], expected_signature(payload), "{line}");
            signed += 1;
        }
    }
    eprintln!(
        "{CLIENTS} client processes, {signed} signatures in {:?}",
        started.elapsed()
    );

    // The agent's guard rails apply: a withdrawal is refused before the token.
    let mut client = AgentClient::connect(&agent.socket).unwrap();
    let withdraw =
        Request::post("/sapi/v1/capital/withdraw/apply").body("coin=BTC&address=x&amount=1");
    let err = client.sign("bn", "binance", &withdraw).unwrap_err();
    assert!(
        matches!(&err, Error::PolicyDenied { key, rule, request } if key == "bn" && rule.starts_with("withdrawal-guard") && request == "POST /sapi/v1/capital/withdraw/apply on binance"),
        "{err}"
    );
    drop(client);

    let status = agent.terminate();
    assert!(
        status.success(),
        "agent exit: {status:?}\n{}",
        agent.stderr.lock().unwrap()
    );
    assert!(!agent.socket.exists(), "socket removed on shutdown");
    let log = agent.stderr.lock().unwrap().clone();
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(&agent.token.user_pin_text()),
        "no PIN in the agent's output"
    );

    let records = audit_sign_records(&agent.audit);
    let allowed = records.iter().filter(|r| r["decision"] == "allow").count();
    let denied = records.iter().filter(|r| r["decision"] == "deny").count();
    assert_eq!(
        allowed,
        CLIENTS * SIGNS_PER_CLIENT,
        "one audit line per signature"
    );
    assert_eq!(denied, 1, "the withdrawal was audited as denied");
    // Each line names the client process that asked: 8 client processes plus this one (the
    // withdrawal), all of this uid.
    let me = std::fs::metadata(&agent.config).unwrap().uid();
    let clients: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["client"].as_str().expect("client recorded"))
        .collect();
    assert_eq!(clients.len(), CLIENTS + 1, "{clients:?}");
    assert!(
        clients
            .iter()
            .all(|c| c.starts_with(&format!("uid={me} pid="))),
        "{clients:?}"
    );
    assert!(clients.contains(format!("uid={me} pid={}", std::process::id()).as_str()));
    assert_audit_verifies(&agent);
}

/// Each request is one JSON line on the agent's stderr (RUST_LOG, HSM_CUSTODY_LOG_FORMAT=json):
/// uid, pid, key, exchange, method, endpoint, decision (and kind when refused), latency; never
/// the secret, the PIN, the signature or the query that was signed.
#[test]
fn agent_logs_one_json_line_per_request_and_no_secret() {
    let mut agent = AgentProc::start_env(
        "agent-log",
        false,
        "allow_same_uid = true  # test setup: the client is this test's own uid\n",
        "",
        &[
            ("RUST_LOG", "warn,hsm_custody::agent::request=info"),
            ("HSM_CUSTODY_LOG_FORMAT", "json"),
        ],
    );
    let mut client = AgentClient::connect(&agent.socket).unwrap();
    let req = Request::get("/api/v3/order").query(binance_query(7, 7));
    let signed = client.sign("bn", "binance", &req).unwrap();
    assert!(verifies(&signed));
    // Not in `other`'s allow-list (nobody's uid only), then the withdrawal guard.
    client.sign("other", "binance", &req).unwrap_err();
    let withdraw =
        Request::post("/sapi/v1/capital/withdraw/apply").body("coin=BTC&address=x&amount=1");
    client.sign("bn", "binance", &withdraw).unwrap_err();
    drop(client);
    let status = agent.terminate();
    assert!(status.success(), "{status:?}");
    // The reader thread has the last lines once it saw the agent's goodbye.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !agent.stderr.lock().unwrap().contains("stopped") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = agent.stderr.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &serde_json::Value| v["target"] == "hsm_custody::agent::request")
        .collect();
    assert_eq!(lines.len(), 3, "one line per request:\n{log}");
    let me = std::fs::metadata(&agent.config).unwrap().uid();
    for line in &lines {
        assert_eq!(line["uid"], me, "{line}");
        assert_eq!(line["pid"], std::process::id(), "{line}");
        assert_eq!(line["op"], "sign", "{line}");
        assert_eq!(line["exchange"], "binance", "{line}");
        assert_eq!(line["message"], "request", "{line}");
        assert!(line["latency_us"].as_u64().is_some(), "{line}");
    }
    let (ok, forbidden, denied) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(ok["level"], "INFO", "{ok}");
    assert_eq!(ok["key"], "bn", "{ok}");
    assert_eq!(ok["method"], "GET", "{ok}");
    assert_eq!(ok["endpoint"], "/api/v3/order", "{ok}");
    assert_eq!(ok["decision"], "allowed", "{ok}");
    assert!(ok.get("kind").is_none(), "{ok}");
    assert_eq!(forbidden["key"], "other", "{forbidden}");
    assert_eq!(forbidden["decision"], "refused", "{forbidden}");
    assert_eq!(forbidden["kind"], "forbidden", "{forbidden}");
    assert_eq!(forbidden["level"], "WARN", "{forbidden}");
    assert_eq!(denied["method"], "POST", "{denied}");
    assert_eq!(
        denied["endpoint"], "/sapi/v1/capital/withdraw/apply",
        "{denied}"
    );
    assert_eq!(denied["decision"], "refused", "{denied}");
    assert_eq!(denied["kind"], "policy_denied", "{denied}");
    for secret in [
        SECRET.to_owned(),
        agent.token.user_pin_text(),
        signed.signature.clone(),
        binance_query(7, 7),
        "coin=BTC".to_owned(),
    ] {
        assert!(
            !log.contains(&secret),
            "`{secret}` in the agent's log:\n{log}"
        );
    }
}

/// `hsm-custody audit verify` on the agent's log succeeds. Repeated (at most 3 runs) only on
/// SoftHSM2's cross-process GeneralError, see `common::cli`.
fn assert_audit_verifies(agent: &AgentProc) {
    let mut verify = audit_verify(&agent.config, &agent.audit);
    for _ in 0..2 {
        if verify.status.success()
            || !String::from_utf8_lossy(&verify.stderr).contains("GeneralError")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        verify = audit_verify(&agent.config, &agent.audit);
    }
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// The `mac` op (raw HMAC over client-chosen bytes): only for a key whose policy sets
/// `allow_raw` and whose allow-list admits `raw`; the MAC is the software HMAC of the bytes;
/// a key without `allow_raw` is refused by policy (`raw-signing`), the key's algorithms still
/// bind, a key whose allow-list
/// names other exchanges is `forbidden`, a bad algorithm or label is `bad_request`; the audit
/// log records the raw MAC with no exchange, method `RAW` and the label, and verifies.
#[test]
fn agent_raw_mac_needs_allow_raw_and_is_audited_as_raw() {
    let mut agent = AgentProc::start("agent-raw", false);
    let mut client = AgentClient::connect(&agent.socket).unwrap();
    let data = b"GET\n/v3/balance\n1700000000";
    let mac = client
        .mac("raw", HmacAlg::HmacSha256, data, Some("ccxt:bitso"))
        .unwrap();
    assert_eq!(
        mac.as_bytes(),
        software_hmac(HmacAlg::HmacSha256, SECRET.as_bytes(), data).as_slice()
    );
    // The key's algorithms still bind: it was imported for HMAC-SHA256 only.
    let err = client
        .mac("raw", HmacAlg::HmacSha512, data, None)
        .unwrap_err();
    assert!(err.to_string().contains("wrong_exchange"), "{err}");
    let err = client
        .mac("bn", HmacAlg::HmacSha256, data, None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::PolicyDenied { key, rule, .. } if key == "bn" && rule == "raw-signing"),
        "{err}"
    );
    // `raw` may not sign exchange requests through this agent: its allow-list says `raw` only.
    let req = Request::get("/api/v3/account").query(binance_query(0, 0));
    let err = client.sign("raw", "binance", &req).unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    drop(client);
    let mut s = connect_raw(&agent.socket);
    for (message, kind) in [
        (
            r#"{"v":1,"id":1,"op":"mac","key":"raw","alg":"md5","data_b64":"YQ=="}"#,
            "bad_request",
        ),
        (
            r#"{"v":1,"id":2,"op":"mac","key":"raw","alg":"sha256","data_b64":"not base64!"}"#,
            "bad_request",
        ),
        (
            r#"{"v":1,"id":3,"op":"mac","key":"raw","alg":"sha256","data_b64":"YQ==","label":"a b"}"#,
            "bad_request",
        ),
    ] {
        raw_frame(&mut s, message.as_bytes());
        let reply = raw_reply(&mut s).expect("a reply");
        assert_eq!(reply["err"]["kind"], kind, "{message} -> {reply}");
    }
    raw_frame(
        &mut s,
        br#"{"v":1,"id":4,"op":"mac","key":"raw","alg":"sha256","data_b64":"YQ=="}"#,
    );
    let reply = raw_reply(&mut s).unwrap();
    assert_eq!(
        reply["ok"]["mac"],
        hex::encode(software_hmac(HmacAlg::HmacSha256, SECRET.as_bytes(), b"a"))
    );
    drop(s);

    assert!(agent.terminate().success());
    let records = audit_sign_records(&agent.audit);
    let raw: Vec<_> = records
        .iter()
        .filter(|r| r["method"] == "RAW" && r["decision"] == "allow")
        .collect();
    assert_eq!(raw.len(), 2, "{records:?}");
    for r in &raw {
        assert!(r.get("exchange").is_none(), "{r}");
        assert_eq!(r["decision"], "allow", "{r}");
        assert_eq!(r["rule"], "allow_raw", "{r}");
    }
    assert_eq!(raw[0]["key"], "raw");
    assert_eq!(raw[0]["path"], "ccxt:bitso");
    assert_eq!(
        raw[0]["client"],
        format!(
            "uid={} pid={}",
            std::fs::metadata(&agent.config).unwrap().uid(),
            std::process::id()
        )
    );
    assert_eq!(raw[1]["path"], "raw", "no label: `raw`");
    let denied: Vec<_> = records.iter().filter(|r| r["decision"] == "deny").collect();
    assert_eq!(denied.len(), 1, "{records:?}");
    assert_eq!(denied[0]["key"], "bn");
    assert_eq!(denied[0]["rule"], "raw-signing");
    assert_audit_verifies(&agent);
}

fn audit_verify(config: &Path, audit: &Path) -> std::process::Output {
    let _no_init = crate::common::no_token_init();
    Command::new(env!("CARGO_BIN_EXE_hsm-custody"))
        .arg("--config")
        .arg(config)
        .args(["audit", "verify"])
        .arg(audit)
        .envs(child_env())
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .output()
        .unwrap()
}

fn raw_frame(stream: &mut UnixStream, payload: &[u8]) {
    try_raw_frame(stream, payload).unwrap();
}

fn try_raw_frame(stream: &mut UnixStream, payload: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(payload.len() as u32).to_be_bytes())?;
    stream.write_all(payload)
}

/// Reads one reply frame, or `None` at EOF.
fn raw_reply(stream: &mut UnixStream) -> Option<serde_json::Value> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).ok()?;
    Some(serde_json::from_slice(&payload).unwrap())
}

fn connect_raw(socket: &Path) -> UnixStream {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A key whose allow-list lacks the client's uid is refused (`forbidden`), and `keys` lists only
/// what the client may use. Garbage, oversized frames, non-JSON frames, a client that vanishes
/// mid-frame or mid-header: each closes that connection only; unknown ops and versions get an
/// error and the connection stays usable; afterwards the agent still signs correctly.
#[test]
fn agent_refuses_disallowed_uid_and_survives_garbage_and_disconnects() {
    let agent = AgentProc::start("agent-bad", false);
    let mut client = AgentClient::connect(&agent.socket).unwrap();
    client.ping().unwrap();
    let keys = client.keys().unwrap();
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["bn", "raw"]
    );
    let req = Request::get("/api/v3/order").query(binance_query(0, 0));
    let err = client.sign("other", "binance", &req).unwrap_err();
    let Error::Io { source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("forbidden"), "{err}");
    let err = client.sign("no-such-key", "binance", &req).unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");

    // Garbage: an HTTP request line reads as a 1.2 GB length.
    let mut s = connect_raw(&agent.socket);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let reply = raw_reply(&mut s).expect("an error reply");
    assert_eq!(reply["err"]["kind"], "bad_frame");
    assert!(raw_reply(&mut s).is_none(), "then the connection is closed");

    // A frame just over max_frame, a zero-length frame, a frame that is not JSON.
    for payload in [vec![b' '; 4097], vec![], b"not json at all".to_vec()] {
        let mut s = connect_raw(&agent.socket);
        // The agent may refuse on the header alone and close before the payload is written:
        // a broken pipe on the write is fine, the refusal must still be readable.
        if let Err(e) = try_raw_frame(&mut s, &payload) {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
                "{e}"
            );
        }
        let reply = raw_reply(&mut s).expect("an error reply");
        assert_eq!(reply["err"]["kind"], "bad_frame", "{reply}");
        assert!(raw_reply(&mut s).is_none());
    }

    // Disconnects mid-message: half a header; a header promising 100 bytes and 10 sent.
    let mut s = connect_raw(&agent.socket);
    s.write_all(&[0, 0]).unwrap();
    drop(s);
    let mut s = connect_raw(&agent.socket);
    s.write_all(&100u32.to_be_bytes()).unwrap();
    s.write_all(b"{\"v\":1,\"op").unwrap();
    drop(s);
    // A stalled client is cut at the frame timeout (2 s here).
    let mut stalled = connect_raw(&agent.socket);
    stalled.write_all(&100u32.to_be_bytes()).unwrap();
    assert!(raw_reply(&mut stalled).is_none(), "stalled frame closed");

    // Well-formed but wrong messages: an error each, and the connection stays usable.
    let mut s = connect_raw(&agent.socket);
    for (message, kind) in [
        (r#"{"v":2,"id":1,"op":"ping"}"#, "unsupported_version"),
        (r#"{"v":1,"id":2,"op":"launch"}"#, "unknown_op"),
        (r#"{"id":3,"op":"ping"}"#, "bad_request"),
        (r#"{"v":1,"id":4,"op":"sign","key":"bn"}"#, "bad_request"),
        (
            r#"{"v":1,"id":5,"op":"sign","key":"bn","exchange":"binance","request":{"path":[]}}"#,
            "invalid_input",
        ),
    ] {
        raw_frame(&mut s, message.as_bytes());
        let reply = raw_reply(&mut s).expect("a reply");
        assert_eq!(reply["err"]["kind"], kind, "{message} -> {reply}");
    }
    raw_frame(&mut s, br#"{"v":1,"id":"last","op":"ping"}"#);
    let reply = raw_reply(&mut s).unwrap();
    assert_eq!(reply["id"], "last");
    assert_eq!(reply["ok"]["pong"], true);

    // The agent is alive and signs correctly, on the old connection and on a new one.
    let signed = client.sign("bn", "binance", &req).unwrap();
    assert!(verifies(&signed), "{signed:?}");
    let mut fresh = AgentClient::connect(&agent.socket).unwrap();
    assert!(verifies(&fresh.sign("bn", "binance", &req).unwrap()));
}

/// A client process running as another uid (nobody, through `setpriv`, when this test runs as
/// root) reaches the agent through the socket's group, is identified by SO_PEERCRED, is refused
/// the key allowed to root only and gets the key allowed to its uid.
#[test]
fn agent_tells_client_uids_apart_by_peer_credentials() {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    let setpriv = Path::new("/usr/bin/setpriv");
    if me != 0 || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to run a client as another uid");
        return;
    }
    let agent = AgentProc::start("agent-uid", true);
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "group socket mode");
    let as_nobody = |key: &str| {
        let inner = agent.client_command(0, key);
        let mut cmd = Command::new(setpriv);
        cmd.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".to_owned(),
        ])
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("HSM_CUSTODY_PIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        client_lines(cmd).join().unwrap()
    };
    let refused = as_nobody("bn");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("ERR 0") && refused[0].contains("forbidden: uid 65534"),
        "{refused:?}"
    );
    let allowed = as_nobody("other");
    assert_eq!(allowed.len(), SIGNS_PER_CLIENT, "{allowed:?}");
    for line in &allowed {
        let parts: Vec<&str> = line.split(' ').collect();
        let n: usize = parts[2].parse().unwrap();
        assert!(parts[4].starts_with(&binance_query(0, n)), "{line}");
        assert_eq!(parts[3], expected_signature(parts[4]));
    }
    // And root, on the same socket, gets the opposite answers.
    let mut root = AgentClient::connect(&agent.socket).unwrap();
    let req = Request::get("/api/v3/order").query(binance_query(1, 1));
    assert!(root.sign("bn", "binance", &req).is_ok());
    assert!(root.sign("other", "binance", &req).is_err());
}

/// A bot whose allowed group is a *supplementary* group (how `usermod -aG` adds it) is let in:
/// the agent reads the peer's groups from the kernel at accept time. Without that group the
/// same uid is refused, and the refusal says what was checked (uid, primary gid, groups).
#[test]
fn agent_lets_in_a_bot_by_its_supplementary_group() {
    const BOT: u32 = 64_001;
    const BOTS: u32 = 64_002;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    let setpriv = Path::new("/usr/bin/setpriv");
    if me != 0 || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to run a client as another uid");
        return;
    }
    let agent = AgentProc::start_full(
        "agent-groups",
        true,
        "allow_same_uid = true  # test setup: root checks the socket too\n",
        &format!("gids = [{BOTS}]\n"),
    );
    // uid BOT, primary gid BOT; supplementary: the socket's group, and BOTS or not.
    let as_bot = |groups: &str| {
        let inner = agent.client_command(0, "other");
        let mut cmd = Command::new(setpriv);
        cmd.args([
            format!("--reuid={BOT}"),
            format!("--regid={BOT}"),
            format!("--groups={groups}"),
        ])
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env_remove("HSM_CUSTODY_PIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        client_lines(cmd).join().unwrap()
    };
    let allowed = as_bot(&format!("{NOBODY},{BOTS}"));
    assert_eq!(allowed.len(), SIGNS_PER_CLIENT, "{allowed:?}");
    for line in &allowed {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[3], expected_signature(parts[4]), "{line}");
    }
    let refused = as_bot(&NOBODY.to_string());
    assert_eq!(refused.len(), 1, "{refused:?}");
    let expected =
        format!("forbidden: uid {BOT} (primary gid {BOT}, supplementary groups {NOBODY}; pid ");
    assert!(
        refused[0].starts_with("ERR 0") && refused[0].contains(&expected),
        "{refused:?}"
    );
    assert!(
        refused[0].contains("not in its [agent.keys.other] uids or gids"),
        "{refused:?}"
    );
}

/// A module that loads but fails `C_Initialize` because this user cannot read its files: the
/// error names the file (SoftHSM2's configuration, then its token directory), its owner and
/// mode, and the uid that tried, not just the module path (which was right).
#[test]
fn c_initialize_failure_names_the_unreadable_file() {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    let setpriv = Path::new("/usr/bin/setpriv");
    if me != 0 || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to run the CLI as another uid");
        return;
    }
    if crate::common::backend() != "softhsm" {
        // The files named are SoftHSM2's (SOFTHSM2_CONF and its token directory).
        eprintln!("skipped: SoftHSM2's files, on {}", crate::common::backend());
        return;
    }
    let t = fresh_token("cinit-unreadable");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o700)).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            tokens.display()
        ),
    )
    .unwrap();
    let run = |mode: u32| {
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(mode)).unwrap();
        let _no_init = crate::common::no_token_init();
        let out = Command::new(setpriv)
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_owned(),
            ])
            .arg(env!("CARGO_BIN_EXE_hsm-custody"))
            .args(["key", "list", "--module"])
            .arg(&t.module)
            .args(["--token", "absent"])
            .envs(child_env())
            .env("SOFTHSM2_CONF", &conf)
            // Never tried: the module fails before any login.
            .env("HSM_CUSTODY_PIN", "not-used")
            .env_remove("HSM_CUSTODY_PIN_FILE")
            .env_remove("HSM_CUSTODY_CONFIG")
            .env_remove("HSM_CUSTODY_MODULE")
            .env_remove("HSM_CUSTODY_TOKEN")
            .env_remove("TPM2_PKCS11_STORE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(0o600);
    assert!(err.contains("C_Initialize failed"), "{err}");
    // The advice is about access, not the (right) module path.
    assert!(err.contains("hint: the module is at that path"), "{err}");
    assert!(!err.contains("check the path"), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read SOFTHSM2_CONF `{}` (uid 0 gid 0 mode 600): Permission denied",
            conf.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("this process: uid {NOBODY}")),
        "{err}"
    );
    let err = run(0o644);
    assert!(
        err.contains(&format!(
            "cannot read the token directory `{}` (uid 0 gid 0 mode 700) (directories.tokendir in {})",
            tokens.display(),
            conf.display()
        )),
        "{err}"
    );
    assert!(!err.contains("SOFTHSM2_CONF `"), "{err}");
}

/// In-process agent ([`hsm_custody::agent::Agent`]): the per-client rate limit refuses the
/// request past the burst with a typed error and lets the client go on after the wait; a
/// shutdown while a client signs in a loop drains without aborting anything, every reply the
/// client got is a correct signature, and the socket is gone.
#[test]
fn agent_rate_limits_per_client_and_drains_on_shutdown() {
    use hsm_custody::agent::{Agent, AgentConfig, KeyAccess};
    let t = fresh_token("agent-inproc");
    import_for(&t.connect(), "bn", "binance", SECRET);
    let dir = tempfile::tempdir().unwrap();
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // One agent per phase, each with its own custody and socket.
    let start = |name: &str, per_second: u32, burst: u32| {
        let socket = dir.path().join(name).join("agent.sock");
        let config = AgentConfig::new(&socket)
            // Test setup: the client is this test's own uid.
            .allow_same_uid(true)
            .rate(per_second, burst)
            .allow("bn", KeyAccess::uids([me]).exchanges(["binance"]));
        let agent = rt.block_on(Agent::bind(t.connect(), config)).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(agent.serve(async {
            let _ = stop_rx.await;
        }));
        (socket, stop_tx, server)
    };
    let req = |n: usize| Request::get("/api/v3/order").query(binance_query(9, n));

    // Burst phase: 1 request per second after a burst of 5. The refill is slow enough that no
    // scheduling delay on a loaded machine can sneak an extra request through.
    let (socket, stop_tx, server) = start("burst", 1, 5);
    let mut client = AgentClient::connect(&socket).unwrap();
    // A kraken request with the binance-only key is refused by the allow-list's exchanges (and
    // costs one request of the burst: refused requests count).
    assert!(client
        .sign("bn", "kraken", &req(0))
        .unwrap_err()
        .to_string()
        .contains("forbidden"));
    let mut limited = None;
    for n in 0..6 {
        match client.sign("bn", "binance", &req(n)) {
            Ok(s) => assert!(verifies(&s), "{s:?}"),
            Err(e) => {
                limited = Some((n, e));
                break;
            }
        }
    }
    let (n, err) = limited.expect("the burst of 5 runs out");
    assert_eq!(
        n, 4,
        "4 signs after the refused kraken request, then refused"
    );
    assert!(
        matches!(&err, Error::RateLimited { rule, .. } if rule == "agent-client-rate"),
        "{err}"
    );
    // After the wait the client goes on.
    std::thread::sleep(Duration::from_millis(1100));
    let s = client.sign("bn", "binance", &req(4)).unwrap();
    assert!(verifies(&s), "{s:?}");
    stop_tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();

    // Drain phase: a client signing in a loop (within its rate) while the agent shuts down.
    let (socket, stop_tx, server) = start("drain", 20, 5);
    let loop_socket = socket.clone();
    let signer = std::thread::spawn(move || {
        let mut client = AgentClient::connect(&loop_socket).unwrap();
        let mut good = 0;
        for n in 0..400 {
            std::thread::sleep(Duration::from_millis(60));
            match client.sign("bn", "binance", &req(n)) {
                Ok(s) => {
                    assert!(verifies(&s), "{s:?}");
                    good += 1;
                }
                Err(Error::Io { .. }) => return good,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        good
    });
    std::thread::sleep(Duration::from_millis(500));
    stop_tx.send(()).unwrap();
    let report = rt.block_on(server).unwrap().unwrap();
    let good = signer.join().unwrap();
    assert!(good >= 3, "the client signed before the shutdown ({good})");
    assert_eq!(report.aborted, 0, "{report:?}");
    assert!(report.connections >= 1);
    assert!(!socket.exists());
}

/// Runs `hsm-custody ARGS` (ARGS include `agent`) with `env` on top of the SoftHSM2 variables
/// (and no PIN, module, token or config of the test's own) and returns its exit status and stderr; panics if the agent
/// is still running (it started) after 30 s.
fn agent_exit(
    args: &[&std::ffi::OsStr],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let _no_init = crate::common::no_token_init();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-custody"));
    cmd.args(args)
        .envs(child_env())
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .env_remove("HSM_CUSTODY_MODULE")
        .env_remove("HSM_CUSTODY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), std::fs::read_to_string(&log).unwrap());
        }
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        if stderr.contains("listening on") || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the agent started ({args:?}, {:?}): {stderr}",
                env.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 26: a PIN in the agent's environment is in `/proc/<pid>/environ`, readable by every
/// process of the agent's uid for as long as the agent runs. `hsm-custody agent` refuses to start
/// (exit 2, bad configuration) when its PIN comes from the environment (`pin_env`,
/// `HSM_CUSTODY_PIN`) or when `HSM_CUSTODY_PIN` (or the `pin_env` variable) is set at all, and
/// says why and what to do; the PIN is never printed. A PIN file (flag, `pin_file`,
/// `HSM_CUSTODY_PIN_FILE`) starts it.
#[test]
fn agent_refuses_a_pin_from_the_environment() {
    use std::ffi::OsStr;
    let token = fresh_token("agent-envpin");
    let pin_text = token.user_pin_text();
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, &pin_text).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.path().join("run").join("agent.sock");
    let config = |name: &str, pin_line: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "module = '{}'\ntoken = '{}'\n{pin_line}\n[agent]\nsocket = '{}'\n",
                token.module.display(),
                token.label,
                socket.display()
            ),
        )
        .unwrap();
        path
    };
    let pin = OsStr::new(&pin_text);
    let module = token.module.as_os_str();
    let label = OsStr::new(&token.label);
    let check = |case: &str, (code, stderr): (Option<i32>, String), names: &str| {
        assert_eq!(code, Some(2), "{case}: exit code, stderr: {stderr}");
        assert!(
            stderr.contains("/proc") && stderr.contains(names),
            "{case}: says why, naming the variable: {stderr}"
        );
        assert!(
            stderr.contains("pin_file") || stderr.contains("--pin-file"),
            "{case}: says what to do: {stderr}"
        );
        assert!(!stderr.contains(&pin_text), "{case}: PIN printed: {stderr}");
    };

    // `pin_env` in the config file.
    let with_pin_env = config("pin-env.toml", "pin_env = 'TRADING_PIN'");
    check(
        "pin_env",
        agent_exit(
            &[
                OsStr::new("--config"),
                with_pin_env.as_os_str(),
                OsStr::new("agent"),
            ],
            &[("TRADING_PIN", pin)],
        ),
        "TRADING_PIN",
    );
    // No config file: module and token from the environment, and `HSM_CUSTODY_PIN`.
    let sock_args = [
        OsStr::new("agent"),
        OsStr::new("--socket"),
        socket.as_os_str(),
    ];
    let flags = [OsStr::new("--module"), module, OsStr::new("--token"), label];
    let args: Vec<&OsStr> = flags.iter().chain(&sock_args).copied().collect();
    check(
        "HSM_CUSTODY_PIN",
        agent_exit(&args, &[("HSM_CUSTODY_PIN", pin)]),
        "HSM_CUSTODY_PIN",
    );
    // A PIN file, with `HSM_CUSTODY_PIN` set beside it (not used, but still in the environ).
    let with_file = config(
        "pin-file.toml",
        &format!("pin_file = '{}'", pin_file.display()),
    );
    check(
        "pin_file + HSM_CUSTODY_PIN set",
        agent_exit(
            &[
                OsStr::new("--config"),
                with_file.as_os_str(),
                OsStr::new("agent"),
            ],
            &[("HSM_CUSTODY_PIN", pin)],
        ),
        "HSM_CUSTODY_PIN",
    );
    check(
        "HSM_CUSTODY_PIN_FILE + HSM_CUSTODY_PIN set",
        agent_exit(
            &args,
            &[
                ("HSM_CUSTODY_PIN", pin),
                ("HSM_CUSTODY_PIN_FILE", pin_file.as_os_str()),
            ],
        ),
        "HSM_CUSTODY_PIN",
    );
    // The `pin_env` variable set while `--pin-file` overrides it: still in the environ.
    let mut overridden: Vec<&OsStr> = vec![OsStr::new("--config"), with_pin_env.as_os_str()];
    overridden.extend([
        OsStr::new("--pin-file"),
        pin_file.as_os_str(),
        OsStr::new("agent"),
    ]);
    check(
        "pin_env set, --pin-file used",
        agent_exit(&overridden, &[("TRADING_PIN", pin)]),
        "TRADING_PIN",
    );

    // Control: the same agent starts with the PIN from a file (through the environment's
    // `HSM_CUSTODY_PIN_FILE`, which holds a path, not the PIN).
    let (child, stderr) = {
        let _no_init = crate::common::no_token_init();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-custody"));
        cmd.args(&args)
            .envs(child_env())
            .env_remove("HSM_CUSTODY_PIN")
            .env_remove("HSM_CUSTODY_CONFIG")
            .env("HSM_CUSTODY_PIN_FILE", &pin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let pipe = child.stderr.take().unwrap();
        let mut seen = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listening on") {
                break;
            }
        }
        (child, seen)
    };
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        stderr.contains("listening on"),
        "PIN file: starts: {stderr}"
    );
}

/// Issue 26: a process of the agent's own uid can read the agent's memory and files (the PIN
/// file, the logged-in session), so it is not a client the agent can guard against: the agent
/// refuses it (`forbidden`, rule `agent-same-uid`, on every op) unless `[agent] allow_same_uid =
/// true`. A client of another uid (nobody, when run as root) is served by the same agent.
#[test]
fn agent_refuses_same_uid_clients_unless_allowed() {
    let agent = AgentProc::start_with("agent-same-uid", true, "");
    let mut client = AgentClient::connect(&agent.socket).unwrap();
    let req = Request::get("/api/v3/order").query(binance_query(0, 0));
    let err = client.sign("bn", "binance", &req).unwrap_err();
    let Error::Io { source, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("forbidden") && text.contains("allow_same_uid"),
        "{text}"
    );
    // On the wire: a typed reply to the request, naming the rule; then the connection closes.
    for message in [
        r#"{"v":1,"id":7,"op":"ping"}"#,
        r#"{"v":1,"id":8,"op":"keys"}"#,
    ] {
        let mut s = connect_raw(&agent.socket);
        raw_frame(&mut s, message.as_bytes());
        let reply = raw_reply(&mut s).expect("a refusal");
        assert_eq!(reply["err"]["kind"], "forbidden", "{reply}");
        assert_eq!(reply["err"]["rule"], "agent-same-uid", "{reply}");
        assert!(reply["id"] == 7 || reply["id"] == 8, "{reply}");
        assert!(reply.get("ok").is_none(), "{reply}");
        assert!(raw_reply(&mut s).is_none(), "closed after the refusal");
    }
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    let setpriv = Path::new("/usr/bin/setpriv");
    if me != 0 || !setpriv.exists() {
        eprintln!("another uid skipped: needs root and setpriv");
        return;
    }
    let lines = as_nobody(&agent, 0, "other").join().unwrap();
    assert_eq!(lines.len(), SIGNS_PER_CLIENT, "nobody is served: {lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("SIG 0 ")), "{lines:?}");
}

/// A client process of this test binary run as `nobody` through `setpriv` (root only).
fn as_nobody(agent: &AgentProc, client: usize, key: &str) -> std::thread::JoinHandle<Vec<String>> {
    let inner = agent.client_command(client, key);
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".to_owned(),
    ])
    .arg(inner.get_program())
    .args(inner.get_args())
    .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
    .env_remove("HSM_CUSTODY_PIN")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    client_lines(cmd)
}

/// Sends a ping on `s` and returns the reply (`None` when the connection is closed).
fn raw_ping(s: &mut UnixStream, id: u64) -> Option<serde_json::Value> {
    try_raw_frame(s, format!(r#"{{"v":1,"id":{id},"op":"ping"}}"#).as_bytes()).ok()?;
    raw_reply(s)
}

/// Issue 26: one uid cannot hold every connection. With `max_connections_per_uid = 2`, this
/// uid's third connection is refused (`busy`, rule `agent-connections-per-uid`) while its first
/// two still work, and a client of another uid (nobody, when run as root) still gets in; closing
/// one of the two makes room again.
#[test]
fn agent_limits_connections_per_uid() {
    let agent = AgentProc::start_with(
        "agent-per-uid",
        true,
        "allow_same_uid = true  # test setup: the clients are this test's own uid\n\
         max_connections = 8\nmax_connections_per_uid = 2\n",
    );
    let mut a = connect_raw(&agent.socket);
    let mut b = connect_raw(&agent.socket);
    assert_eq!(raw_ping(&mut a, 1).unwrap()["ok"]["pong"], true);
    assert_eq!(raw_ping(&mut b, 2).unwrap()["ok"]["pong"], true);
    let mut c = connect_raw(&agent.socket);
    let reply = raw_ping(&mut c, 3).expect("a refusal");
    assert_eq!(reply["err"]["kind"], "busy", "{reply}");
    assert_eq!(reply["err"]["rule"], "agent-connections-per-uid", "{reply}");
    assert!(raw_reply(&mut c).is_none(), "closed after the refusal");
    assert_eq!(raw_ping(&mut a, 4).unwrap()["ok"]["pong"], true);
    assert_eq!(raw_ping(&mut b, 5).unwrap()["ok"]["pong"], true);

    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if me == 0 && Path::new("/usr/bin/setpriv").exists() {
        let lines = as_nobody(&agent, 0, "other").join().unwrap();
        assert_eq!(
            lines.len(),
            SIGNS_PER_CLIENT,
            "another uid gets in: {lines:?}"
        );
        assert!(lines.iter().all(|l| l.starts_with("SIG 0 ")), "{lines:?}");
    } else {
        eprintln!("another uid skipped: needs root and setpriv");
    }

    // A closed connection frees its place (the agent sees the close at once).
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = connect_raw(&agent.socket);
        let reply = raw_ping(&mut d, 6).expect("a reply");
        if reply["ok"]["pong"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a close: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(raw_ping(&mut a, 7).unwrap()["ok"]["pong"], true);
}

/// Issue 26: when the agent is full, a newcomer is served and the connection idle for longest is
/// closed (between frames: it never loses a reply), rather than the newcomer being refused. So
/// idle connections cannot lock out a bot that needs to sign.
#[test]
fn agent_evicts_the_longest_idle_connection_when_full() {
    let agent = AgentProc::start_with(
        "agent-evict",
        false,
        "allow_same_uid = true  # test setup: the clients are this test's own uid\n\
         max_connections = 3\nmax_connections_per_uid = 4  # all clients are one uid here\n",
    );
    let pause = || std::thread::sleep(Duration::from_millis(30));
    let mut a = connect_raw(&agent.socket);
    assert_eq!(raw_ping(&mut a, 1).unwrap()["ok"]["pong"], true);
    pause();
    let mut b = connect_raw(&agent.socket);
    assert_eq!(raw_ping(&mut b, 2).unwrap()["ok"]["pong"], true);
    pause();
    let mut c = connect_raw(&agent.socket);
    assert_eq!(raw_ping(&mut c, 3).unwrap()["ok"]["pong"], true);
    pause();
    // `a` is used again: `b` is now the connection idle for longest.
    assert_eq!(raw_ping(&mut a, 4).unwrap()["ok"]["pong"], true);
    pause();
    let mut d = connect_raw(&agent.socket);
    let reply = raw_ping(&mut d, 5).expect("a reply");
    assert_eq!(reply["ok"]["pong"], true, "the newcomer is served: {reply}");
    // `b` was closed by the agent: EOF, not a timeout.
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    match b.read(&mut byte) {
        Ok(0) => {}
        other => panic!("the longest-idle connection is still open: {other:?}"),
    }
    for (s, id) in [(&mut a, 6), (&mut c, 7), (&mut d, 8)] {
        assert_eq!(raw_ping(s, id).unwrap()["ok"]["pong"], true, "conn {id}");
    }
}

/// `threads = 3`: the agent starts two more threads (`hsm-agent-1`, `hsm-agent-2`), each
/// with its own event loop, and deals the connections out among the three in turn. Six
/// clients signing at once all get good signatures, and each added thread did work (its CPU
/// time in /proc grew). Fails if connections stay on the first thread.
#[test]
fn an_agent_with_three_threads_serves_connections_on_each() {
    let agent = AgentProc::start_with(
        "agent-threads",
        false,
        "allow_same_uid = true\nthreads = 3\n",
    );
    let pid = agent.child.id();
    let shards = || -> Vec<(String, u64)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let comm = comm.trim();
            if comm.starts_with("hsm-agent-") {
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
                // After the `(comm)` field: utime and stime are the 12th and 13th.
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                let ticks = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
                found.push((comm.to_owned(), ticks));
            }
        }
        found.sort();
        found
    };
    // `listening on` comes before `serve` starts the threads.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shards().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = shards();
    assert_eq!(
        before.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["hsm-agent-1", "hsm-agent-2"],
        "threads = 3: two threads besides the main one"
    );
    let socket = agent.socket.clone();
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut client = AgentClient::connect(&socket).unwrap();
                for n in 0..400 {
                    let req = Request::get("/api/v3/order").query(binance_query(c, n));
                    let signed = client.sign("bn", "binance", &req).expect("signed");
                    assert!(verifies(&signed), "{}", signed.query);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let after = shards();
    for ((name, t0), (_, t1)) in before.iter().zip(&after) {
        assert!(t1 > t0, "{name} served nothing: {t0} -> {t1} clock ticks");
    }
}

/// `busy_poll_us`: after a reply the agent looks for that client's next request for a while
/// before it sleeps. The look yields to every other connection: with a window of 300 ms on a
/// one-thread agent, a second client is answered at once, not after the first one's window. A
/// request sent inside the window and one sent after it are both read whole and signed.
#[test]
fn busy_polling_a_connection_never_holds_up_another() {
    let agent = AgentProc::start_with(
        "agent-busy-poll",
        false,
        "allow_same_uid = true\nthreads = 1\nbusy_poll_us = 300000\n",
    );
    let mut first = AgentClient::connect(&agent.socket).unwrap();
    let mut second = AgentClient::connect(&agent.socket).unwrap();
    for client in [&first, &second] {
        client.set_busy_poll(Duration::ZERO);
    }
    let sign = |client: &mut AgentClient, n: usize| {
        let req = Request::get("/api/v3/order").query(binance_query(0, n));
        let signed = client.sign("bn", "binance", &req).expect("signed");
        assert!(verifies(&signed), "{}", signed.query);
    };
    sign(&mut second, 0);
    for round in 0..5 {
        // The agent now looks for `first`'s next request for 300 ms.
        sign(&mut first, 2 * round);
        let started = Instant::now();
        sign(&mut second, 2 * round + 1);
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(150),
            "the second client waited {waited:?} behind the first one's busy-poll"
        );
    }
    // Inside the window (at once) and after it.
    sign(&mut first, 100);
    sign(&mut first, 101);
    std::thread::sleep(Duration::from_millis(400));
    sign(&mut first, 102);
}
