//! The agent's memory (issue 29): resident size of the real `hsm-custody agent` process with
//! 1,000 keys and 64 clients, against 1 key and 1 client, and whether it stays bounded.
//!
//! `cargo bench --bench agent_memory` (1,000 keys: about 10 min on 2 cores, nearly all of it
//! SoftHSM2's file store, see below) or `cargo bench --bench agent_memory -- --quick` (200 keys,
//! 3 s passes, about 1 min); `--secs S` (per pass), `--keys N`, `--clients N`. Module from
//! `HSM_CUSTODY_BENCH_MODULE` (default Debian's SoftHSM2).
//!
//! Why so long: SoftHSM2's file store opens, locks and reads the file of every object a
//! `C_FindObjects` looks at (`strace -c` on the agent's first pass: `openat`, `fcntl`, `read`,
//! `close` by the tens of thousands a second), so a find costs in proportion to the objects in
//! the token (three per key: the key, its metadata, its seal's KEK). Importing key *n* and the agent's first use
//! of key *n* (its cache load: metadata, version object and KEK found, sealed copy unwrapped)
//! each cost O(objects): ~4 min to import 1,000 keys, ~3 min for the agent's first pass over
//! them (both reported).
//!
//! For each scenario (1 key / 1 client, then N keys / N clients) it initialises a fresh token in
//! a private SoftHSM2 directory (`SOFTHSM2_CONF` set before the module loads), imports the keys
//! through the crate (`Custody::import_hmac_secret`: the keys the agent signs with must carry
//! the crate's metadata and sealed copies, which `benches/sign/token.rs`'s raw fillers lack),
//! writes a configuration (`[audit]` with `fsync = "batch"`, `[keys."*"]` allowing the Binance
//! order endpoint and raw MACs, `[agent]` with a high rate and `[agent.keys.NAME]` for every key)
//! and starts the `hsm-custody` binary as `hsm-custody --config FILE agent` (PIN from a 0600
//! `pin_file`; the agent refuses one from the environment), waiting for `listening on`. It then
//! reads `VmRSS`, `VmHWM` and `Threads` from `/proc/PID/status`: idle; with every client
//! connected but not yet signing; while the clients sign Binance orders across all keys (a
//! shared counter hands out key indexes round-robin, so every key is signed about equally and at
//! least `MIN_PER_KEY` times per pass; every signature is checked against the software HMAC),
//! sampled every 100 ms; at the end of the pass; after the clients disconnect; and all of it
//! again for two more passes (every key already loaded), so that growth with requests (rather
//! than with keys) would show as each pass ending above the one before.

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use hsm_custody::agent::AgentClient;
use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};
use sha2::Sha256;

use common::BenchEnv;

const QUERY: &str =
    "symbol=BTCFDUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=43250.10";
/// Each key is signed at least this many times in each pass.
const MIN_PER_KEY: u64 = 5;
/// Passes per scenario: the first loads every key, the others show whether RSS still grows.
const PASSES: usize = 3;
/// How often the sampler reads `/proc/PID/status` during a pass.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long the agent gets to notice closed connections before a reading.
const SETTLE: Duration = Duration::from_millis(500);

struct Opts {
    secs: f64,
    keys: usize,
    clients: usize,
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(|v| v.parse::<f64>().unwrap_or_else(|_| panic!("{flag} {v}?")))
        };
        let quick = args.iter().any(|a| a == "--quick");
        Opts {
            secs: value("--secs").unwrap_or(if quick { 3.0 } else { 8.0 }),
            keys: value("--keys").map_or(if quick { 200 } else { 1000 }, |v| v as usize),
            clients: value("--clients").map_or(64, |v| v as usize),
        }
    }
}

/// A deterministic 64-character secret for key `i`.
fn secret(i: usize) -> String {
    common::secret_text((i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D))
}

fn key_name(i: usize) -> String {
    format!("mem-{i:04}")
}

/// One reading of `/proc/PID/status`, in KiB (threads as a count).
#[derive(Clone, Copy, Default)]
struct Status {
    rss: u64,
    hwm: u64,
    threads: u64,
}

fn status(pid: u32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("agent status");
    let mut s = Status::default();
    for line in text.lines() {
        let field = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(v) = field("VmRSS:") {
            s.rss = v;
        } else if let Some(v) = field("VmHWM:") {
            s.hwm = v;
        } else if let Some(v) = field("Threads:") {
            s.threads = v;
        }
    }
    s
}

/// A running `hsm-custody agent`, killed on drop.
struct AgentProc {
    child: Child,
    socket: PathBuf,
}

impl AgentProc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait (the agent drains and syncs its audit log).
    fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("agent did not stop on SIGTERM; killing it");
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `hsm-custody` binary: Cargo's path for it (the crate's dev-dependency on itself turns
/// on feature `cli`, so `cargo bench` builds it).
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hsm-custody"))
}

/// Initialises token `label`, imports `keys` keys through the crate, writes the agent's
/// configuration and PIN file under `dir`, and starts the agent; waits for `listening on`.
fn start_agent(env: &BenchEnv, dir: &Path, label: &str, keys: usize) -> (AgentProc, f64) {
    std::fs::create_dir_all(dir).expect("scenario dir");
    let pin_text = format!("mem-user-{}", std::process::id());
    let (so, pin) = (
        SecretString::from(format!("mem-so-{}", std::process::id())),
        SecretString::from(pin_text.clone()),
    );
    hsm_custody::admin::init_token(&env.module, label, &so, &pin).expect("init token");
    let import_secs;
    {
        let custody = Custody::connect(Config::new(&env.module, label).pin(pin)).expect("connect");
        let profile = exchanges::profile("binance").expect("binance profile");
        let started = Instant::now();
        for i in 0..keys {
            custody
                .import_hmac_secret(
                    KeySpec::hmac(key_name(i))
                        .exchange("binance")
                        .encoding(profile.encoding)
                        .algorithms(profile.algorithms),
                    SecretString::from(secret(i)),
                )
                .expect("import");
            if (i + 1) % 100 == 0 {
                eprintln!(
                    "  {} keys imported in {:.1} s",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        import_secs = started.elapsed().as_secs_f64();
        eprintln!("{label}: {keys} keys imported in {import_secs:.1} s");
        // The bench process lets go of the token before the agent logs in.
    }
    let uid = std::fs::metadata(dir).expect("dir").uid();
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, &pin_text).expect("pin file");
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let socket = dir.join("run").join("agent.sock");
    let mut toml = format!(
        "module = '{module}'\ntoken = '{label}'\npin_file = '{pin}'\n\
         [audit]\npath = '{audit}'\nfsync = 'batch'\n\
         [keys.\"*\"]\nexchange = 'binance'\nallow = ['POST /api/v3/order']\nallow_raw = true\n\
         rate_per_second = 100000000\nburst = 100000000\n\
         [agent]\nsocket = '{socket}'\nrate_per_second = 100000000\nburst = 100000000\n\
         max_connections = 128\nmax_connections_per_uid = 128\n\
         allow_same_uid = true  # bench setup: the clients are this process's own uid\n",
        module = env.module.display(),
        pin = pin_file.display(),
        audit = dir.join("audit.jsonl").display(),
        socket = socket.display(),
    );
    for i in 0..keys {
        toml.push_str(&format!("[agent.keys.{}]\nuids = [{uid}]\n", key_name(i)));
    }
    let config = dir.join("hsm-custody.toml");
    std::fs::write(&config, toml).expect("config");

    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&config)
        .arg("agent")
        .env_remove("HSM_CUSTODY_PIN")
        .env_remove("HSM_CUSTODY_PIN_FILE")
        .env_remove("HSM_CUSTODY_CONFIG")
        .env_remove("HSM_CUSTODY_MODULE")
        .env_remove("HSM_CUSTODY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hsm-custody agent");
    if let Err(log) =
        common::stderr_log::wait_for_line(&mut child, "listening on", Duration::from_secs(60))
    {
        panic!("agent did not start:\n{log}");
    }
    (AgentProc { child, socket }, import_secs)
}

/// The Binance signature of what a signed order sends (its query without the signature).
fn verifies(key: usize, signed: &hsm_custody::exchanges::SignedRequest<'_>) -> bool {
    let payload = signed
        .query
        .split_once("&signature=")
        .map_or(&*signed.query, |(p, _)| p);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret(key).as_bytes()).expect("hmac key");
    mac.update(payload.as_bytes());
    signed.signature == hex::encode(mac.finalize().into_bytes())
}

/// What one pass saw.
#[derive(Default)]
struct Pass {
    /// All clients connected, none signing yet.
    connected: Status,
    /// The largest `VmRSS` sampled while signing, and the most threads.
    peak_rss: u64,
    peak_threads: u64,
    /// The last reading before the clients disconnect.
    end: Status,
    /// After the clients disconnected.
    after: Status,
    signatures: u64,
    secs: f64,
}

/// `clients` connections sign Binance orders with keys handed out round-robin (a shared
/// counter) for at least `secs` and until every key was signed `MIN_PER_KEY` times.
fn pass(agent: &AgentProc, keys: usize, clients: usize, secs: f64) -> Pass {
    let pid = agent.pid();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Two rendezvous: all connected (main reads the status), then all stopped signing (main
    // reads the status again before any connection closes).
    let connected = Arc::new(Barrier::new(clients + 1));
    let go = Arc::new(Barrier::new(clients + 1));
    let finished = Arc::new(Barrier::new(clients + 1));
    let close = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (next, done, stop) = (next.clone(), done.clone(), stop.clone());
            let (connected, go, finished, close) = (
                connected.clone(),
                go.clone(),
                finished.clone(),
                close.clone(),
            );
            let socket = agent.socket.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut client = AgentClient::connect(&socket).expect("agent connect");
                    connected.wait();
                    go.wait();
                    let req = Request::post("/api/v3/order").query(QUERY).api_key("k");
                    while !stop.load(Ordering::Relaxed) {
                        let i = (next.fetch_add(1, Ordering::Relaxed) % keys as u64) as usize;
                        let signed = client
                            .sign(&key_name(i), "binance", &req)
                            .unwrap_or_else(|e| panic!("agent sign with {}: {e}", key_name(i)));
                        assert!(verifies(i, &signed), "wrong signature from {}", key_name(i));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    finished.wait();
                    close.wait();
                    drop(client);
                })
                .expect("client thread")
        })
        .collect();
    let mut p = Pass::default();
    connected.wait();
    std::thread::sleep(SETTLE);
    p.connected = status(pid);
    go.wait();
    let started = Instant::now();
    let least = MIN_PER_KEY * keys as u64;
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let s = status(pid);
        p.peak_rss = p.peak_rss.max(s.rss);
        p.peak_threads = p.peak_threads.max(s.threads);
        if started.elapsed().as_secs_f64() >= secs && done.load(Ordering::Relaxed) >= least {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    finished.wait();
    p.secs = started.elapsed().as_secs_f64();
    p.signatures = done.load(Ordering::Relaxed);
    p.end = status(pid);
    p.peak_rss = p.peak_rss.max(p.end.rss);
    close.wait();
    for t in threads {
        t.join().expect("client thread");
    }
    std::thread::sleep(SETTLE);
    p.after = status(pid);
    p
}

/// One scenario: the agent idle, then two passes.
struct Scenario {
    keys: usize,
    import_secs: f64,
    clients: usize,
    idle: Status,
    passes: Vec<Pass>,
}

fn scenario(env: &BenchEnv, label: &str, keys: usize, clients: usize, secs: f64) -> Scenario {
    let (agent, import_secs) = start_agent(env, &env.dir.path().join(label), label, keys);
    std::thread::sleep(SETTLE);
    let idle = status(agent.pid());
    eprintln!(
        "{label}: agent pid {} idle, RSS {} KiB",
        agent.pid(),
        idle.rss
    );
    let passes: Vec<Pass> = (1..=PASSES)
        .map(|n| {
            let p = pass(&agent, keys, clients, secs);
            eprintln!(
                "{label}: pass {n}, {} signatures in {:.1} s",
                p.signatures, p.secs
            );
            p
        })
        .collect();
    agent.stop();
    Scenario {
        keys,
        import_secs,
        clients,
        idle,
        passes,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn main() {
    let opts = Opts::parse();
    // Sets SOFTHSM2_CONF before the module is first loaded (single-threaded here); the agent
    // processes inherit it.
    let env = BenchEnv::new();
    eprintln!(
        "SoftHSM2 token directory in {} ({}); agent {}",
        env.dir.path().display(),
        env.conf.display(),
        binary().display()
    );
    // The baseline first, so that its agent's SoftHSM2 does not load the big token's objects.
    let runs = [
        scenario(&env, "mem-base", 1, 1, opts.secs),
        scenario(&env, "mem-many", opts.keys, opts.clients, opts.secs),
    ];

    println!(
        "`hsm-custody agent` (1 runtime thread, the default), SoftHSM2, guard rails (policy, \
         rate limit, audit log with fsync = \"batch\"); Binance orders signed round-robin \
         across the keys, every key at least {MIN_PER_KEY} times a pass, for at least {} s a \
         pass; RSS read from /proc/PID/status (MiB), sampled every {} ms while signing\n",
        opts.secs,
        SAMPLE_EVERY.as_millis()
    );
    let head: Vec<String> = runs
        .iter()
        .map(|r| format!("{} key(s), {} client(s)", r.keys, r.clients))
        .collect();
    println!("| agent | {} |", head.join(" | "));
    println!("| --- |{}", " ---: |".repeat(runs.len()));
    let row = |name: &str, f: &dyn Fn(&Scenario) -> String| {
        let cells: Vec<String> = runs.iter().map(f).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("RSS idle, after start", &|r| mib(r.idle.rss));
    for n in 0..PASSES {
        let label = format!("pass {}", n + 1);
        row(&format!("{label}: RSS, clients connected, idle"), &|r| {
            mib(r.passes[n].connected.rss)
        });
        row(&format!("{label}: RSS peak while signing"), &|r| {
            mib(r.passes[n].peak_rss)
        });
        row(&format!("{label}: RSS at the end, still connected"), &|r| {
            mib(r.passes[n].end.rss)
        });
        row(&format!("{label}: RSS after the clients left"), &|r| {
            mib(r.passes[n].after.rss)
        });
        row(&format!("{label}: signatures in s (per s)"), &|r| {
            let p = &r.passes[n];
            format!(
                "{} in {:.1} ({:.0})",
                p.signatures,
                p.secs,
                p.signatures as f64 / p.secs
            )
        });
    }
    for n in 1..PASSES {
        row(
            &format!("RSS growth, pass {} end − pass {n} end", n + 1),
            &|r| {
                format!(
                    "{:+.2}",
                    (r.passes[n].end.rss as f64 - r.passes[n - 1].end.rss as f64) / 1024.0
                )
            },
        );
    }
    row("VmHWM (kernel's peak RSS) at the end", &|r| {
        mib(r.passes[PASSES - 1].after.hwm)
    });
    row("keys imported through the crate in s (bench setup)", &|r| {
        format!("{:.1}", r.import_secs)
    });
    row("threads: idle / busy (most seen)", &|r| {
        format!(
            "{} / {}",
            r.idle.threads,
            r.passes.iter().map(|p| p.peak_threads).max().unwrap_or(0)
        )
    });
}
