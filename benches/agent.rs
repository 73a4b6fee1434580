//! Async facade and agent overhead (issue 9): the same Binance request signed through the sync
//! API, the async facade and the agent (Unix socket round trip), in one process, on one fresh
//! SoftHSM2 token.
//!
//! `cargo bench --bench agent` (about 20 s) or `cargo bench --bench agent -- --quick`.
//! It makes its own token directory in a temp dir (`SOFTHSM2_CONF` is set before the module
//! loads); module from `HSM_CUSTODY_BENCH_MODULE` (default Debian's SoftHSM2).
//!
//! Latency: one caller, sequential, median and p99 of per-call times. Throughput: 8 callers at
//! once (8 threads for sync, 8 tasks for async, 8 client threads with a connection each for the
//! agent) for a fixed time. The agent runs in this process on a 2-worker runtime, so its figure
//! is the socket, framing, JSON and scheduling cost, not process start-up.

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_custody::agent::{Agent, AgentClient, AgentConfig, KeyAccess};
use hsm_custody::asynch::AsyncCustody;
use hsm_custody::exchanges::Request;
use hsm_custody::{exchanges, Config, Custody, KeySpec, SecretString};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, secs) = if quick { (300, 0.5) } else { (3000, 3.0) };
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
    let capacity = custody.stats().capacity;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // Sync.
    let sync = custody.exchange_signer_for("bn", "binance")?;
    let req = request();
    let sync_lat = latency(n, || {
        sync.sign(&req).expect("sync sign");
    });
    let s = sync.clone();
    let sync_tp = throughput_threads(secs, move || {
        let s = s.clone();
        move || {
            s.sign(&request()).expect("sync sign");
        }
    });

    // Async facade.
    let asynch = AsyncCustody::new(custody.clone());
    let signer = rt.block_on(asynch.exchange_signer_for("bn", "binance"))?;
    let async_lat = latency(n, || {
        rt.block_on(signer.sign(&req)).expect("async sign");
    });
    let async_tp = rt.block_on(async {
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
    });

    // Agent round trip.
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata(env.dir.path())?.uid();
    let socket = env.dir.path().join("run").join("agent.sock");
    let config = AgentConfig::new(&socket)
        // Bench setup: the callers are this process's own uid.
        .allow_same_uid(true)
        .rate(1_000_000, 1_000_000)
        .allow("bn", KeyAccess::uids([uid]));
    let agent = rt.block_on(Agent::bind(custody.clone(), config))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(agent.serve(async {
        let _ = stop_rx.await;
    }));
    let mut client = AgentClient::connect(&socket)?;
    let agent_lat = latency(n, || {
        client.sign("bn", "binance", &req).expect("agent sign");
    });
    let path = socket.clone();
    let agent_tp = throughput_threads(secs, move || {
        let mut c = AgentClient::connect(&path).expect("agent connect");
        let req = request();
        move || {
            c.sign("bn", "binance", &req).expect("agent sign");
        }
    });
    let _ = stop_tx.send(());
    rt.block_on(server)??;

    println!(
        "Binance POST /api/v3/order, SoftHSM2, pool capacity {capacity}, {} cores, {n} sequential \
         calls per latency row, {CALLERS} callers for {secs} s per throughput row\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "| path | median µs | p99 µs | overhead vs sync (median) | signs/s, {CALLERS} callers |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, lat, tp) in [
        ("sync `ExchangeSigner::sign`", &sync_lat, sync_tp),
        ("async `AsyncExchangeSigner::sign`", &async_lat, async_tp),
        (
            "agent round trip (`AgentClient::sign`)",
            &agent_lat,
            agent_tp,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:+.1} µs | {:.0} |",
            lat.median_us,
            lat.p99_us,
            lat.median_us - sync_lat.median_us,
            tp
        );
    }
    Ok(())
}
