//! Signing benchmark (issue 8): what the crate adds on top of what the token costs.
//!
//! `cargo bench --bench sign` (full run, a few minutes) or `cargo bench --bench sign -- --quick`
//! (smoke run). It makes its own SoftHSM2 token directory in a temp dir, points `SOFTHSM2_CONF`
//! at it before the module loads, initialises fresh tokens with `hsm_custody::admin::init_token`,
//! imports the exchange secrets through the crate, and measures in one process, on the same
//! token and the same message:
//!
//! - software HMAC (the floor);
//! - raw cryptoki `C_SignInit`+`C_Sign` on the crate's token-object key and on a hardened
//!   session-object key with the same value; the crate's rows are compared with the kind it
//!   really signs with (`Custody::fast_path_active`: its session copy, sealed on SoftHSM2);
//! - naive signing: `C_FindObjects` by label before every sign;
//! - the crate: `KeyRef::hmac`, and full exchange requests (Binance, Kraken, OKX) through
//!   `Custody::exchange_signer`, without and with the guard rails (policy + MAC-chained audit
//!   log, `fsync = "never"`);
//! - the peers, python-pkcs11 and crypto11 (Go), run as child processes on the same token
//!   (installed by `benches/peers/setup.sh`; reported as missing otherwise);
//!
//! for 1, 2, 4 and 8 threads and 1, 100 and 1,000 keys in the token. Cases of one cell are run
//! in interleaved rounds (each round runs every case once); ops/s and latencies are the median
//! round's, and each ratio is the median over rounds of that round's case-to-baseline ratio, so
//! that a burst of load from other processes moves one round's pair, not the figure. Output: a
//! Markdown table on
//! stdout and `target/bench/results.json` (read by `benches/plot.py` for `BENCHMARKS.png`).
//!
//! Options: `--quick`, `--secs S` (per case per round), `--rounds N`, `--threads 1,2,4,8`,
//! `--keys 1,100,1000`, `--no-peers`, `--only SUBSTRING` (those cases and their baselines). Environment: `HSM_CUSTODY_BENCH_MODULE` (default
//! Debian's SoftHSM2).

#[path = "common/binance_order.rs"]
mod binance_order;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use hmac::Mac as _;
use hsm_custody::exchanges::{ExchangeSigner, Request};
use hsm_custody::{
    Config, Custody, GuardConfig, Guardrails, HmacAlg, KeyRef, KeySpec, SecretEncoding,
    SecretString,
};
use secrecy::ExposeSecret;
use serde_json::json;

use binance_order::{binance_message, binance_request, API_KEY, BINANCE_QUERY};
use common::{raw_context, BenchEnv};
use sha2::Digest as _;

const OKX_PATH: &str = "/api/v5/trade/batch-orders";
const OKX_TS: &str = "2023-11-14T22:13:20.000Z";
const KRAKEN_PATH: &str = "/0/private/AddOrder";
const KRAKEN_BODY: &str = "ordertype=limit&pair=XBTUSD&price=37500.0&type=buy&volume=1.25";

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    quick: bool,
    secs: f64,
    rounds: usize,
    threads: Vec<usize>,
    keys: Vec<usize>,
    peers: bool,
    /// Only the cases whose name contains this (plus their baselines).
    only: Option<String>,
}

fn list(v: &str) -> Vec<usize> {
    v.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = if quick {
            Opts {
                quick,
                secs: 0.1,
                rounds: 3,
                threads: vec![1, 8],
                keys: vec![1, 100],
                peers: true,
                only: None,
            }
        } else {
            Opts {
                quick,
                secs: 0.25,
                rounds: 5,
                threads: vec![1, 2, 4, 8],
                keys: vec![1, 100, 1000],
                peers: true,
                only: None,
            }
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--secs" => o.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(o.secs),
                "--rounds" => o.rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(1),
                "--threads" => o.threads = it.next().map(|v| list(v)).unwrap_or_default(),
                "--keys" => o.keys = it.next().map(|v| list(v)).unwrap_or_default(),
                "--no-peers" => o.peers = false,
                "--only" => o.only = it.next().cloned(),
                _ => {} // `cargo bench` passes `--bench`; other flags are ignored
            }
        }
        o.rounds = o.rounds.max(1);
        o
    }
}

// ---------------------------------------------------------------------------------------------
// Environment: a private SoftHSM2 token directory, fresh tokens

/// A fresh token with the crate connected to it (once plain, once with the bench guard), a raw
/// cryptoki context on the same module, and the secrets imported into it.
struct BenchToken {
    label: String,
    pin: SecretString,
    slot: Slot,
    custody: Custody,
    guarded: Custody,
    keys: usize,
}

fn fresh_token(env: &BenchEnv, label: &str) -> BenchToken {
    let pin = SecretString::from(format!("bench-user-{}", std::process::id()));
    let so = SecretString::from(format!("bench-so-{}", std::process::id()));
    hsm_custody::admin::init_token(&env.module, label, &so, &pin).expect("init token");
    let config = Config::new(&env.module, label).pin(pin.clone());
    let custody = Custody::connect(config.clone()).expect("connect");
    let guarded = Custody::connect(config).expect("connect guarded");
    // The real guard rails (issue 5): a policy for every key and the MAC-chained audit log
    // (one MAC in the token per record), `fsync = "never"` so that the disk is not measured.
    let audit = env.dir.path().join(format!("{label}-audit.jsonl"));
    let toml = format!(
        "[audit]\npath = '{}'\nfsync = 'never'\n[keys.\"*\"]\nallow_raw = true\n",
        audit.display()
    );
    let guard = GuardConfig::from_toml_str(&toml)
        .expect("guard config")
        .expect("guard rails configured");
    Guardrails::install(&guarded, guard).expect("guard rails");
    let slot = Slot::try_from(hsm_custody::admin::slot_id(&env.module, label).expect("slot"))
        .expect("slot id");
    BenchToken {
        label: label.to_owned(),
        pin,
        slot,
        custody,
        guarded,
        keys: 0,
    }
}

/// A deterministic 64-character printable secret (the length exchanges issue).
fn secret_text(seed: u8) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

/// What one imported exchange key is: name, the bytes stored in the token, its algorithm.
struct BenchKey {
    name: &'static str,
    value: Vec<u8>,
    alg: HmacAlg,
}

fn import(t: &mut BenchToken, name: &'static str, exchange: &str, seed: u8) -> BenchKey {
    let text = secret_text(seed);
    let (spec, value, alg) = if exchange == "kraken" {
        use base64::Engine as _;
        let bytes: Vec<u8> = text.bytes().chain(text.bytes().rev()).collect(); // 128 bytes
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let spec = KeySpec::hmac(name)
            .exchange(exchange)
            .encoding(SecretEncoding::Base64)
            .algorithms(&[HmacAlg::HmacSha512]);
        t.custody
            .import_hmac_secret(spec.clone(), SecretString::from(b64))
            .expect("import");
        (spec, bytes, HmacAlg::HmacSha512)
    } else {
        let spec = KeySpec::hmac(name)
            .exchange(exchange)
            .algorithms(&[HmacAlg::HmacSha256]);
        t.custody
            .import_hmac_secret(spec.clone(), SecretString::from(text.clone()))
            .expect("import");
        (spec, text.into_bytes(), HmacAlg::HmacSha256)
    };
    let _ = spec;
    t.keys += 1;
    BenchKey { name, value, alg }
}

/// Fills the token up to `total` keys with hardened HMAC keys, each with a data object beside
/// it, as the crate stores keys (raw `C_CreateObject`: importing 1,000 keys one by one through
/// the crate's self-checked path would dominate the run).
fn add_fillers(ctx: &Pkcs11, t: &mut BenchToken, total: usize) {
    let session = ctx.open_rw_session(t.slot).expect("session");
    for i in t.keys..total {
        let label = format!("filler-{i:05}").into_bytes();
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Modifiable(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Derive(false),
                Attribute::Label(label.clone()),
                Attribute::Id(vec![0, 0, 0, 1]),
                Attribute::Value(secret_text((i % 251) as u8).into_bytes()),
            ])
            .expect("filler key");
        session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label),
                Attribute::Application(b"bench-filler".to_vec()),
                Attribute::Value(br#"{"bench":"filler"}"#.to_vec()),
            ])
            .expect("filler data");
    }
    t.keys = total;
}

fn find_key(session: &Session, name: &str) -> ObjectHandle {
    *session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(name.as_bytes().to_vec()),
        ])
        .expect("find")
        .first()
        .expect("key in token")
}

/// A hardened session object with the same value (what a session-object fast path signs with).
fn session_object(holder: &Session, key: &BenchKey) -> ObjectHandle {
    holder
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::Value(key.value.clone()),
        ])
        .expect("session object")
}

fn mechanism(alg: HmacAlg) -> Mechanism<'static> {
    match alg {
        HmacAlg::HmacSha256 => Mechanism::Sha256Hmac,
        HmacAlg::HmacSha384 => Mechanism::Sha384Hmac,
        HmacAlg::HmacSha512 => Mechanism::Sha512Hmac,
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    ops: u64,
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// The 99.9th percentile and the slowest sign: where a starved thread shows, which p99
    /// can hide (with N threads, one thread's long waits are few samples among many fast ones).
    p999_us: f64,
    max_us: f64,
}

type Worker<'a> = Box<dyn FnMut() + 'a>;
type Factory<'a> = Box<dyn Fn() -> Worker<'a> + Sync + 'a>;

enum Runner<'a> {
    InProcess(Factory<'a>),
    Peer(PeerCmd),
}

struct PeerCmd {
    program: PathBuf,
    args: Vec<String>,
    pin: SecretString,
    /// Run N single-threaded processes instead of N threads (python-pkcs11 calls
    /// `C_Initialize(NULL)`, which tells the module that no two threads will call it at once:
    /// SoftHSM2 then runs without locks and concurrent threads fail with CKR_GENERAL_ERROR).
    processes_for_threads: bool,
}

struct Case<'a> {
    name: String,
    /// Which raw token-object case this one is compared with.
    baseline: Option<String>,
    /// Its own thread count, where it differs from the cell's (the "scaling" cells).
    threads: Option<usize>,
    runner: Runner<'a>,
}

impl Case<'_> {
    fn on_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() - 1) as f64 * p) as usize]) / 1000.0
}

/// Runs `threads` workers for `secs`; each worker is made in its own thread (sessions are not
/// `Sync`) and warmed up once before the clock starts.
fn run_in_process(factory: &Factory<'_>, threads: usize, secs: f64) -> Measure {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(threads + 1);
    let (lat, elapsed) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut work = factory();
                    work();
                    let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        work();
                        lat.push(t0.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                    }
                    lat
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().expect("worker panicked"));
        }
        (all, t0.elapsed())
    });
    let mut lat = lat;
    lat.sort_unstable();
    Measure {
        ops: lat.len() as u64,
        ops_per_s: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        p999_us: percentile(&lat, 0.999),
        max_us: percentile(&lat, 1.0),
    }
}

fn run_peer(cmd: &PeerCmd, threads: usize, secs: f64) -> Result<Measure, String> {
    if cmd.processes_for_threads && threads > 1 {
        // N processes at once; each warms up, then waits for the common start time, so their
        // windows overlap. Throughput adds up; p50 is the median and p99 the worst of theirs.
        let start_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            + 1.5
            + 0.1 * threads as f64;
        let children: Vec<_> = (0..threads)
            .map(|i| {
                // Staggered starts: SoftHSM2 processes that open the token directory at the
                // same moment can miss the token.
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Command::new(&cmd.program)
                    .args(&cmd.args)
                    .args(["--threads", "1", "--seconds", &secs.to_string()])
                    .args(["--start-at", &format!("{start_at:.3}")])
                    .env("PEER_PIN", cmd.pin.expose_secret())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("{}: {e}", cmd.program.display()))
            })
            .collect::<Result<_, _>>()?;
        let mut ms = Vec::new();
        for child in children {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            ms.push(parse_peer(&out)?);
        }
        return Ok(Measure {
            ops: ms.iter().map(|m| m.ops).sum(),
            ops_per_s: ms.iter().map(|m| m.ops_per_s).sum(),
            p50_us: median(ms.iter().map(|m| m.p50_us).collect()),
            p99_us: ms.iter().map(|m| m.p99_us).fold(0.0, f64::max),
            p999_us: ms.iter().map(|m| m.p999_us).fold(0.0, f64::max),
            max_us: ms.iter().map(|m| m.max_us).fold(0.0, f64::max),
        });
    }
    let out = Command::new(&cmd.program)
        .args(&cmd.args)
        .args([
            "--threads",
            &threads.to_string(),
            "--seconds",
            &secs.to_string(),
        ])
        .env("PEER_PIN", cmd.pin.expose_secret())
        .output()
        .map_err(|e| format!("{}: {e}", cmd.program.display()))?;
    parse_peer(&out)
}

fn parse_peer(out: &std::process::Output) -> Result<Measure, String> {
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("peer output `{}`: {e}", line.trim()))?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Measure {
        ops: f("ops") as u64,
        ops_per_s: f("ops_per_s"),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        p999_us: f("p999_us"),
        max_us: f("max_us"),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// One result row.
#[derive(Clone, Debug)]
struct Row {
    group: String,
    case: String,
    threads: usize,
    keys: usize,
    m: Measure,
    baseline: Option<String>,
    /// Baseline ops/s ÷ this ops/s: the cost relative to raw C_Sign (1.00 = same, >1 = slower).
    cost_vs_raw: Option<f64>,
    p50_vs_raw: Option<f64>,
    error: Option<String>,
}

/// Runs the cases of one cell in `rounds` interleaved rounds and reports the median round.
fn run_cell(
    group: &str,
    keys: usize,
    threads: usize,
    cases: &[Case<'_>],
    opts: &Opts,
    rows: &mut Vec<Row>,
) {
    let keep = |c: &Case<'_>| {
        opts.only.as_ref().is_none_or(|only| {
            c.name.contains(only.as_str())
                || cases
                    .iter()
                    .any(|o| o.name.contains(only.as_str()) && o.baseline.as_ref() == Some(&c.name))
        })
    };
    let cases: Vec<&Case<'_>> = cases.iter().filter(|c| keep(c)).collect();
    let mut per: Vec<Vec<Measure>> = vec![Vec::new(); cases.len()];
    let mut errors: Vec<Option<String>> = vec![None; cases.len()];
    for _ in 0..opts.rounds {
        for (i, case) in cases.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            let threads = case.threads.unwrap_or(threads);
            match &case.runner {
                Runner::InProcess(f) => per[i].push(run_in_process(f, threads, opts.secs)),
                // SoftHSM2 processes that start together now and then misread a large token
                // directory (`NoSuchToken`, `UserPinNotInitialized` with 8 processes on the
                // 1,000-key token): one retry in the same round, so that the pairing holds.
                Runner::Peer(cmd) => match run_peer(cmd, threads, opts.secs).or_else(|e| {
                    eprintln!("  {} failed ({e}); once more", case.name);
                    std::thread::sleep(Duration::from_millis(500));
                    run_peer(cmd, threads, opts.secs)
                }) {
                    Ok(m) => per[i].push(m),
                    Err(e) => errors[i] = Some(e),
                },
            }
        }
    }
    let per_round = per.clone();
    let out_errors: Vec<bool> = errors.iter().map(Option::is_some).collect();
    let mut out: Vec<Row> = cases
        .iter()
        .zip(per)
        .zip(errors)
        .map(|((case, ms), error)| Row {
            group: group.to_owned(),
            case: case.name.clone(),
            threads: case.threads.unwrap_or(threads),
            keys,
            m: Measure {
                ops: ms.iter().map(|m| m.ops).sum(),
                ops_per_s: median(ms.iter().map(|m| m.ops_per_s).collect()),
                p50_us: median(ms.iter().map(|m| m.p50_us).collect()),
                p99_us: median(ms.iter().map(|m| m.p99_us).collect()),
                p999_us: median(ms.iter().map(|m| m.p999_us).collect()),
                max_us: median(ms.iter().map(|m| m.max_us).collect()),
            },
            baseline: case.baseline.clone(),
            cost_vs_raw: None,
            p50_vs_raw: None,
            error,
        })
        .collect();
    // Ratios are paired per round (a case and its baseline ran seconds apart, under the same
    // load) and the median over rounds is reported: a burst of load from another process then
    // moves one round's pair, not the figure.
    for (i, row) in out.iter_mut().enumerate() {
        let Some(b) = row.baseline.as_ref() else {
            continue;
        };
        let Some(j) = cases.iter().position(|c| &c.name == b) else {
            continue;
        };
        if row.error.is_some() || out_errors[j] || per_round[i].len() != per_round[j].len() {
            continue;
        }
        let pairs = per_round[i].iter().zip(&per_round[j]);
        let cost: Vec<f64> = pairs
            .clone()
            .filter(|(m, _)| m.ops_per_s > 0.0)
            .map(|(m, base)| base.ops_per_s / m.ops_per_s)
            .collect();
        let p50: Vec<f64> = pairs
            .filter(|(_, base)| base.p50_us > 0.0)
            .map(|(m, base)| m.p50_us / base.p50_us)
            .collect();
        if !cost.is_empty() && !p50.is_empty() {
            row.cost_vs_raw = Some(median(cost));
            row.p50_vs_raw = Some(median(p50));
        }
    }
    for row in &out {
        eprintln!(
            "  {group:8} keys={keys:<5} t={} {:34} {:>10.0} ops/s  p50 {:>8.1} µs  p99 {:>8.1} µs  cost×raw {}  p99.9 {:.0} µs  max {:.0} µs{}",
            row.threads,
            row.case,
            row.m.ops_per_s,
            row.m.p50_us,
            row.m.p99_us,
            row.cost_vs_raw.map(|c| format!("{c:.3}")).unwrap_or_else(|| "-".into()),
            row.m.p999_us,
            row.m.max_us,
            row.error.as_ref().map(|e| format!("  ERROR {e}")).unwrap_or_default(),
        );
    }
    rows.extend(out);
}

// ---------------------------------------------------------------------------------------------
// Case builders

fn software_case<'a>(name: &str, key: &'a BenchKey, msg: &'a [u8]) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: None,
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let alg = key.alg;
            Box::new(move || {
                let out = match alg {
                    HmacAlg::HmacSha512 => {
                        let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(&key.value)
                            .expect("any key length");
                        m.update(msg);
                        m.finalize().into_bytes()[0]
                    }
                    _ => {
                        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.value)
                            .expect("any key length");
                        m.update(msg);
                        m.finalize().into_bytes()[0]
                    }
                };
                std::hint::black_box(out);
            })
        })),
    }
}

/// Raw cryptoki on a thread-owned session: `C_SignInit` + `C_Sign` (cryptoki's `sign`, the same
/// call the crate makes).
fn raw_case<'a>(
    name: &str,
    baseline: Option<&str>,
    ctx: &'a Pkcs11,
    slot: Slot,
    handle: ObjectHandle,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: baseline.map(str::to_owned),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let session = ctx.open_ro_session(slot).expect("session");
            let mech = mechanism(alg);
            Box::new(move || {
                let sig = session.sign(&mech, handle, msg).expect("raw sign");
                std::hint::black_box(sig);
            })
        })),
    }
}

/// Naive: find the token object by label before every sign.
fn naive_case<'a>(
    name: &str,
    baseline: &str,
    ctx: &'a Pkcs11,
    slot: Slot,
    key: &'a BenchKey,
    msg: &'a [u8],
) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: Some(baseline.to_owned()),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let session = ctx.open_ro_session(slot).expect("session");
            let mech = mechanism(key.alg);
            Box::new(move || {
                let handle = find_key(&session, key.name);
                let sig = session.sign(&mech, handle, msg).expect("naive sign");
                std::hint::black_box(sig);
            })
        })),
    }
}

fn crate_sign_case<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: Some(baseline.to_owned()),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let key = key.clone();
            Box::new(move || {
                let sig = key.hmac(alg, msg).expect("crate sign");
                std::hint::black_box(sig);
            })
        })),
    }
}

/// "crate sign" with some host work before each sign (a diagnostic row): what that work costs
/// when it runs between token calls, against what it costs alone.
fn crate_sign_after<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    msg: &'a [u8],
    work: impl Fn() + Send + Sync + 'a,
) -> Case<'a> {
    let work = std::sync::Arc::new(work);
    Case {
        name: name.to_owned(),
        baseline: Some(baseline.to_owned()),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let (key, work) = (key.clone(), work.clone());
            Box::new(move || {
                work();
                std::hint::black_box(key.hmac(HmacAlg::HmacSha256, msg).expect("sign"));
            })
        })),
    }
}

/// `Mac::mac_for` with a request context, as the exchange signers call it.
fn crate_mac_for_case<'a>(
    name: &str,
    baseline: &str,
    key: KeyRef,
    alg: HmacAlg,
    msg: &'a [u8],
) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: Some(baseline.to_owned()),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let key = key.clone();
            Box::new(move || {
                let ctx = hsm_custody::RequestContext::new("binance", "POST", "/api/v3/order");
                let sig = hsm_custody::Mac::mac_for(&key, alg, msg, &ctx).expect("crate sign");
                std::hint::black_box(sig);
            })
        })),
    }
}

fn exchange_case<'a>(name: &str, baseline: &str, signer: ExchangeSigner, req: Request) -> Case<'a> {
    Case {
        name: name.to_owned(),
        baseline: Some(baseline.to_owned()),
        threads: None,
        runner: Runner::InProcess(Box::new(move || {
            let signer = signer.clone();
            let req = req.clone();
            Box::new(move || {
                let signed = signer.sign(&req).expect("exchange sign");
                std::hint::black_box(signed);
            })
        })),
    }
}

/// A software [`Mac`] bound to an exchange: the exchange signer's own formatting cost, no token.
struct SoftwareMac {
    exchange: &'static str,
    value: Vec<u8>,
}

impl hsm_custody::Mac for SoftwareMac {
    fn key_name(&self) -> &str {
        "software"
    }

    fn exchange(&self) -> Option<&str> {
        Some(self.exchange)
    }

    fn mac(&self, alg: HmacAlg, msg: &[u8]) -> hsm_custody::Result<hsm_custody::Signature> {
        let out = match alg {
            HmacAlg::HmacSha512 => {
                let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(&self.value)
                    .expect("any key length");
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.value)
                    .expect("any key length");
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
        };
        Ok(hsm_custody::Signature::from_bytes(out))
    }
}

fn software_signer(exchange: &'static str, key: &BenchKey) -> ExchangeSigner {
    let ex = hsm_custody::exchanges::by_id(exchange).expect("exchange id");
    ExchangeSigner::new(
        ex,
        SoftwareMac {
            exchange,
            value: key.value.clone(),
        },
    )
    .expect("software signer")
}

struct Peers {
    python: Option<PathBuf>,
    crypto11: Option<PathBuf>,
    script: PathBuf,
}

impl Peers {
    fn find(root: &Path) -> Peers {
        let bench = root.join("target/bench");
        let python = bench.join("venv/bin/python");
        let go = bench.join("crypto11-bench");
        Peers {
            python: python.exists().then_some(python),
            crypto11: go.exists().then_some(go),
            script: root.join("benches/peers/python_pkcs11_bench.py"),
        }
    }

    fn cases<'a>(
        &self,
        module: &Path,
        t: &BenchToken,
        key: &BenchKey,
        msg: &[u8],
        suffix: &str,
        baseline: &str,
    ) -> Vec<Case<'a>> {
        let alg = match key.alg {
            HmacAlg::HmacSha256 => "sha256",
            HmacAlg::HmacSha384 => "sha384",
            HmacAlg::HmacSha512 => "sha512",
        };
        let common = vec![
            "--module".to_owned(),
            module.display().to_string(),
            "--token".to_owned(),
            t.label.clone(),
            "--key".to_owned(),
            key.name.to_owned(),
            "--alg".to_owned(),
            alg.to_owned(),
            "--msg-hex".to_owned(),
            hex::encode(msg),
        ];
        let mut v = Vec::new();
        let missing = PathBuf::from("(not installed: run benches/peers/setup.sh)");
        let mut py_args = vec![
            "-X".to_owned(),
            "utf8".to_owned(),
            self.script.display().to_string(),
        ];
        py_args.extend(common.iter().cloned());
        v.push(Case {
            name: format!("python-pkcs11 {suffix}"),
            baseline: Some(baseline.to_owned()),
            threads: None,
            runner: Runner::Peer(PeerCmd {
                program: self.python.clone().unwrap_or_else(|| missing.clone()),
                args: py_args,
                pin: t.pin.clone(),
                processes_for_threads: true,
            }),
        });
        v.push(Case {
            name: format!("crypto11 {suffix}"),
            baseline: Some(baseline.to_owned()),
            threads: None,
            runner: Runner::Peer(PeerCmd {
                program: self.crypto11.clone().unwrap_or(missing),
                args: common,
                pin: t.pin.clone(),
                processes_for_threads: false,
            }),
        });
        v
    }
}

/// A 1,024-byte JSON body of OKX batch orders.
fn okx_body() -> String {
    let mut orders = Vec::new();
    let mut i = 0;
    loop {
        let order = format!(
            r#"{{"instId":"BTC-USDT","tdMode":"cash","clOrdId":"b{i:05}","side":"buy","ordType":"limit","px":"43250.1","sz":"0.001"}}"#
        );
        let next = format!(
            "[{}]",
            [orders.clone(), vec![order.clone()]].concat().join(",")
        );
        if next.len() + 20 > 1024 {
            break;
        }
        orders.push(order);
        i += 1;
    }
    let body = format!("[{}]", orders.join(","));
    // Pad the last order's tag to reach exactly 1,024 bytes.
    let pad = 1024 - body.len() - r#","tag":"""#.len();
    let body = format!(
        "{},\"tag\":\"{}\"}}]",
        &body[..body.len() - 2],
        "x".repeat(pad)
    );
    assert_eq!(body.len(), 1024);
    body
}

// ---------------------------------------------------------------------------------------------
// Session-object facts on this module (reported, not timed)

/// `Function: RvError` (CKR name) for the probe's report.
fn ck_name(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, f) => format!("refused: {f:?} {rv:?}"),
        other => other.to_string(),
    }
}

fn copy_probe(ctx: &Pkcs11, t: &BenchToken, key: &BenchKey) -> serde_json::Value {
    let session = ctx.open_rw_session(t.slot).expect("session");
    let hardened = find_key(&session, key.name);
    let copy_hardened = match session.copy_object(hardened, &[Attribute::Token(false)]) {
        Ok(h) => {
            let _ = session.destroy_object(h);
            "accepted".to_owned()
        }
        Err(e) => ck_name(&e),
    };
    // A modifiable twin (never what the crate creates): can it be copied, and what does
    // modifiability open up?
    let twin = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(true),
            Attribute::Sign(true),
            Attribute::Derive(false),
            Attribute::Label(b"bench-modifiable-twin".to_vec()),
            Attribute::Value(key.value.clone()),
        ])
        .expect("twin");
    let copy_modifiable = match session.copy_object(
        twin,
        &[Attribute::Token(false), Attribute::Modifiable(false)],
    ) {
        Ok(h) => {
            let _ = session.destroy_object(h);
            "accepted (copy made non-modifiable)".to_owned()
        }
        Err(e) => ck_name(&e),
    };
    let set = |attr: Attribute| match session.update_attributes(twin, &[attr]) {
        Ok(()) => "accepted".to_owned(),
        Err(e) => ck_name(&e),
    };
    let set_derive = set(Attribute::Derive(true));
    let set_encrypt = set(Attribute::Encrypt(true));
    let set_extractable = set(Attribute::Extractable(true));
    let set_sensitive_false = set(Attribute::Sensitive(false));
    let _ = session.destroy_object(twin);
    let read_flag = |h: ObjectHandle| {
        session
            .get_attributes(h, &[AttributeType::Modifiable])
            .ok()
            .and_then(|a| match a.first() {
                Some(Attribute::Modifiable(m)) => Some(*m),
                _ => None,
            })
    };
    json!({
        "crate_key_modifiable": read_flag(hardened),
        "copy_object_on_crate_key": copy_hardened,
        "copy_object_on_modifiable_twin": copy_modifiable,
        "modifiable_twin_set_derive_true": set_derive,
        "modifiable_twin_set_encrypt_true": set_encrypt,
        "modifiable_twin_set_extractable_true": set_extractable,
        "modifiable_twin_set_sensitive_false": set_sensitive_false,
    })
}

// ---------------------------------------------------------------------------------------------

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let softhsm = Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "softhsm2": softhsm,
        "loadavg_at_start": load.trim(),
    })
}

#[allow(clippy::too_many_lines)]
fn main() {
    let opts = Opts::parse();
    let env = BenchEnv::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let peers = Peers::find(&root);
    let machine = machine();
    eprintln!(
        "sign bench: {} mode, {} s x {} rounds per case, threads {:?}, keys {:?}, SOFTHSM2_CONF={}",
        if opts.quick { "quick" } else { "full" },
        opts.secs,
        opts.rounds,
        opts.threads,
        opts.keys,
        env.conf.display()
    );
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();

    let binance_msg = binance_message();
    let body = okx_body();
    let okx_msg = format!("{OKX_TS}POST{OKX_PATH}{body}").into_bytes();
    let kraken_msg: Vec<u8> = {
        let inner = sha2::Sha256::digest(format!("1700000000000000{KRAKEN_BODY}").as_bytes());
        [KRAKEN_PATH.as_bytes(), inner.as_slice()].concat()
    };
    let binance_req = binance_request();
    let okx_req = Request::post(OKX_PATH)
        .body(body.clone())
        .api_key(API_KEY)
        .passphrase("bench-passphrase");
    let kraken_req = Request::post(KRAKEN_PATH)
        .body(KRAKEN_BODY)
        .api_key(API_KEY);

    // ---- detail: one token with the Binance, OKX and Kraken keys, one thread -----------------
    let mut exch = fresh_token(&env, "bench-exch");
    let ctx = raw_context(&env.module);
    let bn = import(&mut exch, "bench-binance", "binance", 1);
    let okx = import(&mut exch, "bench-okx", "okx", 2);
    let kr = import(&mut exch, "bench-kraken", "kraken", 3);
    let probe = copy_probe(&ctx, &exch, &bn);
    eprintln!("session-object probe: {probe}");
    {
        let holder = ctx.open_rw_session(exch.slot).expect("holder session");
        let finder = ctx.open_ro_session(exch.slot).expect("session");
        let (h_bn, h_okx, h_kr) = (
            find_key(&finder, bn.name),
            find_key(&finder, okx.name),
            find_key(&finder, kr.name),
        );
        let (s_bn, s_okx, s_kr) = (
            session_object(&holder, &bn),
            session_object(&holder, &okx),
            session_object(&holder, &kr),
        );
        let bn_key = exch.custody.key(bn.name).expect("key");
        let okx_key = exch.custody.key(okx.name).expect("key");
        let bn_guard = exch.guarded.key(bn.name).expect("key");
        let signer = |c: &Custody, name: &str| c.exchange_signer(name).expect("signer");
        let (r110, r1k, rkr) = (
            "raw token 110B",
            "raw token 1KiB",
            "raw token kraken 51B sha512",
        );
        // The crate's cases are compared with raw C_Sign on the kind of key the crate really
        // signs with: its session copy when the fast path is on (sealed copies on SoftHSM2),
        // else the token object.
        let fast = exch.custody.fast_path_active(bn.name).expect("key");
        eprintln!("crate fast path (session copy): {fast}");
        eprintln!(
            "crate HMAC signs one at a time up to the core count: {}",
            exch.custody.serializes_hmac()
        );
        let (k110, k1k, kkr) = if fast {
            (
                "raw session-object 110B",
                "raw session-object 1KiB",
                "raw session-object kraken 51B sha512",
            )
        } else {
            (r110, r1k, rkr)
        };
        let mut cases = vec![
            software_case("software hmac 110B", &bn, &binance_msg),
            software_case("software hmac 1KiB", &okx, &okx_msg),
            exchange_case(
                "software binance request",
                r110,
                software_signer("binance", &bn),
                binance_req.clone(),
            ),
            exchange_case(
                "software okx request 1KiB",
                r1k,
                software_signer("okx", &okx),
                okx_req.clone(),
            ),
            exchange_case(
                "software kraken request",
                rkr,
                software_signer("kraken", &kr),
                kraken_req.clone(),
            ),
            raw_case(
                r110,
                Some(r110),
                &ctx,
                exch.slot,
                h_bn,
                bn.alg,
                &binance_msg,
            ),
            raw_case(
                "raw session-object 110B",
                Some(r110),
                &ctx,
                exch.slot,
                s_bn,
                bn.alg,
                &binance_msg,
            ),
            naive_case(
                "naive find+sign 110B",
                r110,
                &ctx,
                exch.slot,
                &bn,
                &binance_msg,
            ),
            crate_sign_case("crate sign 110B", k110, bn_key, bn.alg, &binance_msg),
            crate_sign_case(
                "crate sign 110B +guard",
                k110,
                bn_guard,
                bn.alg,
                &binance_msg,
            ),
            crate_mac_for_case(
                "crate mac_for 110B (request context)",
                k110,
                exch.custody.key(bn.name).expect("key"),
                bn.alg,
                &binance_msg,
            ),
            exchange_case(
                "crate binance request fixed clock",
                k110,
                signer(&exch.custody, bn.name)
                    .with_clock(hsm_custody::exchanges::FixedClock(1_700_000_000_000)),
                binance_req.clone(),
            ),
            exchange_case(
                "crate binance request",
                k110,
                signer(&exch.custody, bn.name),
                binance_req.clone(),
            ),
            exchange_case(
                "crate binance request +guard",
                k110,
                signer(&exch.guarded, bn.name),
                binance_req.clone(),
            ),
            raw_case(r1k, Some(r1k), &ctx, exch.slot, h_okx, okx.alg, &okx_msg),
            raw_case(
                "raw session-object 1KiB",
                Some(r1k),
                &ctx,
                exch.slot,
                s_okx,
                okx.alg,
                &okx_msg,
            ),
            crate_sign_case("crate sign 1KiB", k1k, okx_key, okx.alg, &okx_msg),
            exchange_case(
                "crate okx request 1KiB",
                k1k,
                signer(&exch.custody, okx.name),
                okx_req.clone(),
            ),
            exchange_case(
                "crate okx request 1KiB +guard",
                k1k,
                signer(&exch.guarded, okx.name),
                okx_req.clone(),
            ),
            raw_case(rkr, Some(rkr), &ctx, exch.slot, h_kr, kr.alg, &kraken_msg),
            raw_case(
                "raw session-object kraken 51B sha512",
                Some(rkr),
                &ctx,
                exch.slot,
                s_kr,
                kr.alg,
                &kraken_msg,
            ),
            exchange_case(
                "crate kraken request",
                kkr,
                signer(&exch.custody, kr.name),
                kraken_req.clone(),
            ),
            exchange_case(
                "crate kraken request +guard",
                kkr,
                signer(&exch.guarded, kr.name),
                kraken_req.clone(),
            ),
        ];
        // Diagnostic rows: host work before each crate sign, to see what it costs between
        // token calls against what it costs alone.
        type Work<'w> = Box<dyn Fn() + Send + Sync + 'w>;
        let soft_bn = (software_signer("binance", &bn), binance_req.clone());
        let diagnostics: [(&str, Work<'_>); 4] = [
            (
                "crate sign 110B + 1.8 µs spin",
                Box::new(|| {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_nanos(1800) {
                        std::hint::spin_loop();
                    }
                }),
            ),
            (
                "crate sign 110B + 12 heap allocations",
                Box::new(|| {
                    let v: Vec<String> = (0..12)
                        .map(|i| std::hint::black_box(format!("{BINANCE_QUERY}{i}")))
                        .collect();
                    std::hint::black_box(&v);
                }),
            ),
            (
                // As many allocations as a Binance request makes (query, method, path, MAC,
                // hex, header list, header name and value), and no work.
                "crate sign 110B + 8 small allocations",
                Box::new(|| {
                    let v: [Vec<u8>; 8] = std::array::from_fn(|i| {
                        std::hint::black_box(Vec::with_capacity(16 + 24 * i))
                    });
                    std::hint::black_box(&v);
                }),
            ),
            (
                "crate sign 110B + software binance request",
                Box::new(move || {
                    std::hint::black_box(soft_bn.0.sign(&soft_bn.1).expect("software"));
                }),
            ),
        ];
        let at = cases
            .iter()
            .position(|c| c.name == "crate binance request fixed clock")
            .expect("case");
        for (i, (name, work)) in diagnostics.into_iter().enumerate() {
            let key = exch.custody.key(bn.name).expect("key");
            cases.insert(
                at + i,
                crate_sign_after(name, k110, key, &binance_msg, work),
            );
        }
        if opts.peers {
            cases.extend(peers.cases(&env.module, &exch, &bn, &binance_msg, "110B", r110));
            cases.extend(peers.cases(&env.module, &exch, &okx, &okx_msg, "1KiB", r1k));
        }
        eprintln!("detail (token with 3 keys, 1 thread)");
        run_cell("detail", exch.keys, 1, &cases, &opts, &mut rows);
        drop(cases);
        let _ = holder.destroy_object(s_bn);
        let _ = holder.destroy_object(s_okx);
        let _ = holder.destroy_object(s_kr);
    }

    // ---- grid: threads x keys in the token, the Binance message ------------------------------
    // The token with the fewest keys stays open, so that each larger one is paired with it in a
    // "flat" cell (same rounds) as well as compared across cells.
    let mut fewest: Option<(usize, KeyRef, Slot, ObjectHandle)> = None;
    for &n in &opts.keys {
        let mut t = fresh_token(&env, &format!("bench-k{n}"));
        let bn = import(&mut t, "bench-binance", "binance", 1);
        let fill = Instant::now();
        add_fillers(&ctx, &mut t, n);
        eprintln!(
            "token with {n} keys ready ({:.1} s of fillers)",
            fill.elapsed().as_secs_f64()
        );
        let holder = ctx.open_rw_session(t.slot).expect("holder session");
        let h_bn = find_key(&holder, bn.name);
        let s_bn = session_object(&holder, &bn);
        let r110 = "raw token 110B";
        let k110 = if t.custody.fast_path_active(bn.name).expect("key") {
            "raw session-object 110B"
        } else {
            r110
        };
        for &threads in &opts.threads {
            let mut cases = vec![
                raw_case(r110, Some(r110), &ctx, t.slot, h_bn, bn.alg, &binance_msg),
                raw_case(
                    "raw session-object 110B",
                    Some(r110),
                    &ctx,
                    t.slot,
                    s_bn,
                    bn.alg,
                    &binance_msg,
                ),
                crate_sign_case(
                    "crate sign 110B",
                    k110,
                    t.custody.key(bn.name).expect("key"),
                    bn.alg,
                    &binance_msg,
                ),
                crate_sign_case(
                    "crate sign 110B +guard",
                    k110,
                    t.guarded.key(bn.name).expect("key"),
                    bn.alg,
                    &binance_msg,
                ),
                exchange_case(
                    "crate binance request",
                    k110,
                    t.custody.exchange_signer(bn.name).expect("signer"),
                    binance_req.clone(),
                ),
            ];
            if threads == 1 {
                cases.push(naive_case(
                    "naive find+sign 110B",
                    r110,
                    &ctx,
                    t.slot,
                    &bn,
                    &binance_msg,
                ));
            }
            if opts.peers {
                cases.extend(peers.cases(&env.module, &t, &bn, &binance_msg, "110B", r110));
            }
            run_cell("grid", n, threads, &cases, &opts, &mut rows);
        }
        // 1 thread against the most threads, interleaved in the same rounds (paired per round,
        // as every ratio here): the cells above ran minutes apart, under other load.
        let max_t = opts.threads.iter().copied().max().unwrap_or(1);
        if max_t > 1 {
            type Make<'m> = Box<dyn Fn() -> Case<'m> + 'm>;
            let makers: [(&str, Make<'_>); 3] = [
                (
                    "raw session-object 110B",
                    Box::new(|| raw_case("", None, &ctx, t.slot, s_bn, bn.alg, &binance_msg)),
                ),
                (
                    "crate sign 110B",
                    Box::new(|| {
                        let key = t.custody.key(bn.name).expect("key");
                        crate_sign_case("", "", key, bn.alg, &binance_msg)
                    }),
                ),
                (
                    "crate binance request",
                    Box::new(|| {
                        let signer = t.custody.exchange_signer(bn.name).expect("signer");
                        exchange_case("", "", signer, binance_req.clone())
                    }),
                ),
            ];
            let mut cases = Vec::new();
            for (base, make) in &makers {
                let single = format!("{base}, 1 thread");
                cases.push(Case {
                    name: single.clone(),
                    baseline: None,
                    ..make()
                });
                cases.push(
                    Case {
                        name: format!("{base}, {max_t} threads"),
                        baseline: Some(single),
                        ..make()
                    }
                    .on_threads(max_t),
                );
            }
            run_cell("scaling", n, 1, &cases, &opts, &mut rows);
        }
        match &fewest {
            None => fewest = Some((n, t.custody.key(bn.name).expect("key"), t.slot, h_bn)),
            Some((lo, lo_key, lo_slot, lo_handle)) => {
                let (crate_lo, raw_lo) = (
                    format!("crate sign 110B, {lo} key(s)"),
                    format!("raw token 110B, {lo} key(s)"),
                );
                let cases = vec![
                    Case {
                        name: crate_lo.clone(),
                        baseline: None,
                        ..crate_sign_case("", "", lo_key.clone(), bn.alg, &binance_msg)
                    },
                    Case {
                        name: format!("crate sign 110B, {n} keys"),
                        baseline: Some(crate_lo),
                        ..crate_sign_case(
                            "",
                            "",
                            t.custody.key(bn.name).expect("key"),
                            bn.alg,
                            &binance_msg,
                        )
                    },
                    Case {
                        name: raw_lo.clone(),
                        baseline: None,
                        ..raw_case("", None, &ctx, *lo_slot, *lo_handle, bn.alg, &binance_msg)
                    },
                    Case {
                        name: format!("raw token 110B, {n} keys"),
                        baseline: Some(raw_lo),
                        ..raw_case("", None, &ctx, t.slot, h_bn, bn.alg, &binance_msg)
                    },
                ];
                run_cell("flat", n, 1, &cases, &opts, &mut rows);
            }
        }
        let _ = holder.destroy_object(s_bn);
        eprintln!("  pool after the grid on {n} keys: {:?}", t.custody.stats());
    }

    let elapsed = started.elapsed().as_secs_f64();
    print_markdown(&rows, &machine, &probe, elapsed, &opts);
    write_json(&root, &rows, &machine, &probe, elapsed, &opts);
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "–".into())
}

fn print_markdown(
    rows: &[Row],
    machine: &serde_json::Value,
    probe: &serde_json::Value,
    elapsed: f64,
    opts: &Opts,
) {
    println!(
        "## sign bench ({} run, {elapsed:.0} s)\n",
        if opts.quick { "quick" } else { "full" }
    );
    println!("machine: {machine}\n\nsession-object probe: {probe}\n");
    println!("| group | keys | threads | case | ops/s | p50 µs | p99 µs | p99.9 µs | max µs | cost × raw C_Sign | p50 × raw |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        if let Some(e) = &r.error {
            println!(
                "| {} | {} | {} | {} | error: {} | | | | | | |",
                r.group,
                r.keys,
                r.threads,
                r.case,
                e.replace('|', "/").lines().last().unwrap_or("")
            );
            continue;
        }
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {} |",
            r.group,
            r.keys,
            r.threads,
            r.case,
            r.m.ops_per_s,
            r.m.p50_us,
            r.m.p99_us,
            r.m.p999_us,
            r.m.max_us,
            fmt_ratio(r.cost_vs_raw),
            fmt_ratio(r.p50_vs_raw)
        );
    }
    println!();
    for line in targets(rows) {
        println!("- {line}");
    }
}

fn find<'r>(
    rows: &'r [Row],
    group: &str,
    keys: Option<usize>,
    threads: usize,
    case: &str,
) -> Option<&'r Row> {
    rows.iter().find(|r| {
        r.group == group
            && keys.is_none_or(|k| r.keys == k)
            && r.threads == threads
            && r.case == case
            && r.error.is_none()
    })
}

/// The issue's targets, judged from this run's rows.
fn targets(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let ops = |r: Option<&Row>| r.map(|r| r.m.ops_per_s);
    let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
    // 1. crate sign vs raw C_Sign on the same key kind; exchange requests. Judged on the median
    // over cells of the p50 ratio (a load burst from another process moves ops/s by 20-40% in
    // one round but hardly moves a median latency); the throughput ratios are shown beside it.
    // One thread only: there the ratio is the crate's own cost. With more threads the crate
    // also changes how the token is driven (HMAC signs one at a time on SoftHSM2), which is
    // reported apart below.
    let mut buckets: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut threaded: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.error.is_none() && r.group != "scaling")
    {
        let (Some(c), Some(p)) = (r.cost_vs_raw, r.p50_vs_raw) else {
            continue;
        };
        if !r.case.starts_with("crate")
            || r.case.contains(" + ")
            || r.case.contains("fixed clock")
            || r.case.contains("mac_for")
        {
            continue;
        }
        let bucket = if r.case.starts_with("crate sign") && !r.case.contains("guard") {
            "crate sign"
        } else if r.case.contains("request") && !r.case.contains("guard") {
            "exchange request"
        } else if r.case.contains("guard") {
            "with guard"
        } else {
            continue;
        };
        if r.threads > 1 {
            threaded.entry(bucket).or_default().push(c);
            continue;
        }
        let e = buckets.entry(bucket).or_default();
        e.0.push(p);
        e.1.push(c);
    }
    // Issue 8 sets no target for the guard rails: their audit record is MACed in the token, a
    // second token operation per signature. Shown for the record.
    for (bucket, limit) in [
        ("crate sign", Some(1.05)),
        ("exchange request", Some(1.10)),
        ("with guard", None),
    ] {
        if let Some((p50s, costs)) = buckets.get(bucket) {
            let range = |v: &Vec<f64>| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                format!("{lo:.2}-{hi:.2}")
            };
            let m = median(p50s.clone());
            out.push(format!(
                "{bucket}: p50 latency {m:.3}x raw C_Sign on the same key kind (median of {} cells, range {}); throughput cost median {:.3}x (range {}) ({})",
                p50s.len(),
                range(p50s),
                median(costs.clone()),
                range(costs),
                match limit {
                    Some(limit) => format!("target <= {limit}: {}", verdict(m <= limit)),
                    None => "no target: policy + MAC-chained audit log".to_owned(),
                }
            ));
        }
    }
    for (bucket, costs) in &threaded {
        let lo = costs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = costs.iter().copied().fold(0.0, f64::max);
        out.push(format!(
            "{bucket}, 2+ threads: throughput cost median {:.3}x raw C_Sign at the same thread count (range {lo:.2}-{hi:.2}, {} cells; raw threads sign at once; where the crate serializes, its HMACs go one at a time up to the core count)",
            median(costs.clone()),
            costs.len()
        ));
    }
    // 2. default path vs naive.
    for r in rows
        .iter()
        .filter(|r| r.case == "naive find+sign 110B" && r.error.is_none())
    {
        if let Some(c) = ops(find(rows, &r.group, Some(r.keys), 1, "crate sign 110B")) {
            let x = c / r.m.ops_per_s;
            out.push(format!(
                "{} {} keys: crate sign {x:.1}x faster than naive find+sign (target >= 3): {}",
                r.group,
                r.keys,
                verdict(x >= 3.0)
            ));
        }
    }
    // 3. flat in the key count.
    let counts: Vec<usize> = {
        let mut c: Vec<usize> = rows
            .iter()
            .filter(|r| r.group == "grid")
            .map(|r| r.keys)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    // Paired in the same rounds where the "flat" cells ran (ratio = cost with more keys).
    for r in rows
        .iter()
        .filter(|r| r.group == "flat" && r.baseline.is_some() && r.error.is_none())
    {
        if let Some(x) = r.cost_vs_raw {
            let crate_row = r.case.starts_with("crate");
            out.push(format!(
                "{}: cost {x:.3}x the cost with {}, same rounds (target <= 1.10{}): {}",
                r.case,
                r.baseline
                    .as_deref()
                    .and_then(|b| b.split(", ").nth(1))
                    .unwrap_or("fewer keys"),
                if crate_row {
                    ""
                } else {
                    ", shown for reference"
                },
                verdict(x <= 1.10)
            ));
        }
    }
    if let (Some(&lo), Some(&hi)) = (counts.first(), counts.last()) {
        for case in [
            "crate sign 110B",
            "raw token 110B",
            "raw session-object 110B",
        ] {
            if let (Some(a), Some(b)) = (
                ops(find(rows, "grid", Some(lo), 1, case)),
                ops(find(rows, "grid", Some(hi), 1, case)),
            ) {
                let x = a / b;
                out.push(format!(
                    "{case}: cost at {hi} keys = {x:.3}x the cost at {lo} key(s), 1 thread, grid cells minutes apart (for reference: the machine's drift between cells is in it; the \"flat\" cells above are the paired measurement)"
                ));
            }
        }
    }
    // 4. peers and threads.
    for (peer, want) in [("python-pkcs11 110B", 2.0), ("crypto11 110B", 1.0)] {
        let ours = "crate sign 110B";
        for r in rows.iter().filter(|r| r.case == peer && r.error.is_none()) {
            if let Some(c) = ops(find(rows, &r.group, Some(r.keys), r.threads, ours)) {
                let x = c / r.m.ops_per_s;
                out.push(format!(
                    "{} {} keys {} thr: {ours} {x:.2}x {peer} throughput (target >= {want}): {}",
                    r.group,
                    r.keys,
                    r.threads,
                    verdict(x >= want)
                ));
            }
        }
    }
    // 5. no collapse with threads: the "scaling" cells, where 1 thread and the most threads ran
    // in the same rounds; the ratio is the median over rounds of (N-thread ops/s ÷ 1-thread).
    for r in rows
        .iter()
        .filter(|r| r.group == "scaling" && r.threads > 1 && r.error.is_none())
    {
        if let Some(cost) = r.cost_vs_raw {
            let x = 1.0 / cost;
            let case = r.case.split(',').next().unwrap_or(&r.case);
            out.push(format!(
                "{case}, {} keys: {} threads = {x:.2}x the 1-thread rate, same rounds ({}): {}",
                r.keys,
                r.threads,
                if case.starts_with("raw") {
                    "reference"
                } else {
                    "target >= 0.9"
                },
                verdict(x >= 0.9)
            ));
        }
    }
    out
}

fn write_json(
    root: &Path,
    rows: &[Row],
    machine: &serde_json::Value,
    probe: &serde_json::Value,
    elapsed: f64,
    opts: &Opts,
) {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let rows_json: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "group": r.group, "case": r.case, "threads": r.threads, "keys": r.keys,
                "ops": r.m.ops, "ops_per_s": r.m.ops_per_s, "p50_us": r.m.p50_us, "p99_us": r.m.p99_us, "p999_us": r.m.p999_us, "max_us": r.m.max_us,
                "baseline": r.baseline, "cost_vs_raw": r.cost_vs_raw, "p50_vs_raw": r.p50_vs_raw,
                "error": r.error,
            })
        })
        .collect();
    let doc = json!({
        "machine": machine,
        "session_object_probe": probe,
        "mode": if opts.quick { "quick" } else { "full" },
        "secs_per_case_per_round": opts.secs,
        "rounds": opts.rounds,
        "elapsed_s": elapsed,
        "targets": targets(rows),
        "rows": rows_json,
    });
    let name = if opts.only.is_some() {
        "results-only.json"
    } else if opts.quick {
        "results-quick.json"
    } else {
        "results.json"
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json"))
        .expect("write results");
    eprintln!("wrote {}", path.display());
}
