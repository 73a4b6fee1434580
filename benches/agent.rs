//! Async facade and agent overhead (issue 9): the same Binance request signed through the sync
//! API, the async facade and the agent (Unix socket round trip), in one process, on one fresh
//! SoftHSM2 token.
//!
//! `cargo bench --bench agent` (5 rounds, about 1 min) or `cargo bench --bench agent -- --quick`
//! (3 rounds); `--rounds N`. Every path signs through the guard rails (policy, rate limit,
//! audit log with `fsync = "batch"`), the in-process sync call being the baseline of issue 29's
//! goals; figures are medians over the rounds with their range, paired per round. Run it under
//! `taskset -c 0` too: on a VM, a wake-up across cores costs more than the agent's own work.
//! It makes its own token directory in a temp dir (`SOFTHSM2_CONF` is set before the module
//! loads); module from `HSM_CUSTODY_BENCH_MODULE` (default Debian's SoftHSM2).
//!
//! Latency: one caller, sequential, median and p99 of per-call times. Throughput: 8 callers at
//! once (8 threads for sync, 8 tasks for async, 8 client threads with a connection each for the
//! agent) for a fixed time. The agent runs in this process, on its own thread and runtime, so
//! its figure is the socket, framing, JSON and scheduling cost, not process start-up: as
//! `hsm-custody agent` runs it by default (one thread; busy-poll 50 µs in the agent, 200 µs in
//! the client), with busy-polling off on both sides, and on a 2-worker runtime.

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_custody::agent::{AgentClient, AgentConfig, KeyAccess};
use hsm_custody::asynch::AsyncCustody;
use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, GuardConfig, Guardrails, KeySpec, SecretString};

use common::BenchEnv;

const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
/// The signer appends `timestamp` from the crate's clock (a caller's must be within 5 s of it).
const QUERY: &str =
    "symbol=BTCFDUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01000000&price=43250.10";
const CALLERS: usize = 8;

fn request() -> Request {
    Request::post("/api/v3/order").query(QUERY).api_key("k")
}

struct Latency {
    median_us: f64,
    p99_us: f64,
}

fn latency(n: usize, mut f: impl FnMut()) -> Latency {
    for _ in 0..n / 10 {
        f();
    }
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    Latency {
        median_us: times[n / 2],
        p99_us: times[(n * 99) / 100],
    }
}

/// Runs `CALLERS` threads for `secs`, each calling the worker that `make_worker` builds on
/// that thread (its own client connection, say) in a loop; signatures per second.
fn throughput_threads<W: FnMut()>(
    secs: f64,
    make_worker: impl Fn() -> W + Send + Sync + 'static,
) -> f64 {
    let make_worker = Arc::new(make_worker);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (make_worker, stop, count) = (make_worker.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let mut worker = make_worker();
                while !stop.load(Ordering::Relaxed) {
                    worker();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("bench thread");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Median and range of a figure over the rounds.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 3 } else { 5 });
    let (n, secs) = if quick { (1000, 0.5) } else { (3000, 2.0) };
    // Sets SOFTHSM2_CONF before the module is first loaded (single-threaded here).
    let env = BenchEnv::new();
    let module = env.module.clone();
    eprintln!(
        "SoftHSM2 token directory in {} ({})",
        env.dir.path().display(),
        env.conf.display()
    );
    let (so, user) = (
        SecretString::from("bench-so"),
        SecretString::from("bench-user"),
    );
    hsm_custody::admin::init_token(&module, "agent-bench", &so, &user)?;
    let custody = Custody::connect(Config::new(&module, "agent-bench").pin(user))?;
    let profile = exchanges::profile("binance").ok_or("no binance profile")?;
    custody.import_hmac_secret(
        KeySpec::hmac("bn")
            .exchange("binance")
            .encoding(profile.encoding)
            .algorithms(profile.algorithms),
        SecretString::from(SECRET),
    )?;
    // The guard rails as deployed (issue 29 compares the agent with the in-process *guarded*
    // call): a policy that allows the order endpoint with a rate limit high enough never to
    // refuse, and the MAC-chained audit log with fsync = "batch".
    let audit = env.dir.path().join("audit.jsonl");
    let toml = format!(
        "[audit]\npath = '{}'\nfsync = 'batch'\n[keys.bn]\nexchange = 'binance'\n\
         allow = ['POST /api/v3/order']\nrate_per_second = 100000000\nburst = 100000000\n",
        audit.display()
    );
    let guard = GuardConfig::from_toml_str(&toml)?.ok_or("guard config")?;
    let guardrails = Guardrails::install(&custody, guard)?;
    let capacity = custody.stats().capacity;

    // For the async facade.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sync = custody.exchange_signer_for("bn", "binance")?;
    let asynch = AsyncCustody::new(custody.clone());
    let signer = rt.block_on(asynch.exchange_signer_for("bn", "binance"))?;

    // The agent, in this process, three times, each on its own thread and socket: as
    // `hsm-custody agent` runs it by default (one thread; busy-poll 50 µs in the agent and
    // 200 µs in the client, their defaults), with busy-polling off on both sides, and on a
    // 2-worker runtime (`[agent] threads = 2`). `None`: the defaults.
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata(env.dir.path())?.uid();
    let variants = [(1usize, None), (1, Some(Duration::ZERO)), (2, None)];
    let mut agents = Vec::new();
    let mut sockets = Vec::new();
    for (i, (threads, busy_poll)) in variants.into_iter().enumerate() {
        let socket = env.dir.path().join(format!("run{i}")).join("agent.sock");
        let mut config = AgentConfig::new(&socket)
            // Bench setup: the callers are this process's own uid.
            .allow_same_uid(true)
            .rate(1_000_000, 1_000_000)
            .allow("bn", KeyAccess::uids([uid]));
        if let Some(window) = busy_poll {
            config = config.busy_poll(window);
        }
        agents.push(common::RunningAgent::start(
            custody.clone(),
            config,
            threads,
        )?);
        sockets.push((socket, busy_poll));
    }
    let connect = |(socket, busy_poll): &(std::path::PathBuf, Option<Duration>)| {
        let client = AgentClient::connect(socket).expect("agent connect");
        if let Some(window) = busy_poll {
            client.set_busy_poll(*window);
        }
        client
    };
    let mut clients: Vec<AgentClient> = sockets.iter().map(connect).collect();

    let names = [
        "sync `ExchangeSigner::sign`, guarded",
        "async `AsyncExchangeSigner::sign`, guarded",
        "agent round trip (`AgentClient::sign`), guarded, 1 thread, busy-poll on (default)",
        "agent round trip (`AgentClient::sign`), guarded, 1 thread, busy-poll off",
        "agent round trip (`AgentClient::sign`), guarded, 2 threads, busy-poll on",
    ];
    let mut lat: [Vec<Latency>; 5] = Default::default();
    let mut tp: [Vec<f64>; 5] = Default::default();
    let req = request();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        // Latency: the three paths one after the other, in each round.
        lat[0].push(latency(n, || {
            sync.sign(&req).expect("sync sign");
        }));
        lat[1].push(latency(n, || {
            rt.block_on(signer.sign(&req)).expect("async sign");
        }));
        for (i, client) in clients.iter_mut().enumerate() {
            lat[2 + i].push(latency(n, || {
                client.sign("bn", "binance", &req).expect("agent sign");
            }));
        }
        // Throughput, 8 callers.
        let s = sync.clone();
        tp[0].push(throughput_threads(secs, move || {
            let s = s.clone();
            move || {
                s.sign(&request()).expect("sync sign");
            }
        }));
        tp[1].push(rt.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..CALLERS {
                let (signer, stop, count) = (signer.clone(), stop.clone(), count.clone());
                set.spawn(async move {
                    let req = request();
                    while !stop.load(Ordering::Relaxed) {
                        signer.sign(&req).await.expect("async sign");
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.store(true, Ordering::Relaxed);
            while set.join_next().await.is_some() {}
            count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
        }));
        for (i, socket) in sockets.iter().enumerate() {
            let socket = socket.clone();
            tp[2 + i].push(throughput_threads(secs, move || {
                let mut c = connect(&socket);
                let req = request();
                move || {
                    c.sign("bn", "binance", &req).expect("agent sign");
                }
            }));
        }
    }
    for agent in agents {
        agent.stop()?;
    }
    guardrails.sync()?;

    println!(
        "Binance POST /api/v3/order, SoftHSM2, guard rails (policy, rate limit, audit log with \
         fsync = \"batch\"), pool capacity {capacity}, {} cores, {rounds} rounds of {n} \
         sequential calls per latency cell and {CALLERS} callers for {secs} s per throughput \
         cell; median of the rounds [min–max]\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| path | median µs | p99 µs | added vs sync (median) | signs/s, {CALLERS} callers | vs sync throughput |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let sync_median: Vec<f64> = lat[0].iter().map(|l| l.median_us).collect();
    let sync_tp = tp[0].clone();
    for i in 0..names.len() {
        let median: Vec<f64> = lat[i].iter().map(|l| l.median_us).collect();
        let p99: Vec<f64> = lat[i].iter().map(|l| l.p99_us).collect();
        // Paired per round: this path's figure against the sync path's of the same round.
        let added: Vec<f64> = median
            .iter()
            .zip(&sync_median)
            .map(|(a, b)| a - b)
            .collect();
        let ratio: Vec<f64> = tp[i].iter().zip(&sync_tp).map(|(a, b)| a / b).collect();
        let (m, m0, m1) = spread(&median);
        let (p, p0, p1) = spread(&p99);
        let (a, a0, a1) = spread(&added);
        let (t, t0, t1) = spread(&tp[i]);
        let (r, r0, r1) = spread(&ratio);
        println!(
            "| {} | {m:.1} [{m0:.1}–{m1:.1}] | {p:.1} [{p0:.1}–{p1:.1}] | {a:+.1} µs [{a0:+.1}–{a1:+.1}] | {t:.0} [{t0:.0}–{t1:.0}] | {:.0} % [{:.0}–{:.0}] |",
            names[i],
            r * 100.0,
            r0 * 100.0,
            r1 * 100.0
        );
    }
    Ok(())
}
