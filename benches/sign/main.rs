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
//! `--keys 1,100,1000`, `--no-peers`, `--only SUBSTRING` (those cases and their baselines),
//! `--help`. Environment: `HSM_CUSTODY_BENCH_MODULE` (default Debian's SoftHSM2).
//!
//! Layout: [`options`] (the flags), [`token`] (fresh tokens, keys, fillers), [`cases`] (what is
//! timed, and the messages), [`peers`] (python-pkcs11 and crypto11 as child processes),
//! [`measure`] (threads, rounds, pairing), [`probe`] (session-object facts), [`detail`] and
//! [`grid`] (the cells), [`report`] and [`targets`] (the table, the JSON, the verdicts).
#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

#[path = "../common/binance_order.rs"]
mod binance_order;
mod cases;
#[path = "../common/mod.rs"]
mod common;
mod detail;
mod grid;
mod measure;
mod options;
mod peers;
mod probe;
mod report;
mod targets;
mod token;

use std::path::PathBuf;
use std::time::Instant;

use cryptoki::context::Pkcs11;

use cases::Messages;
use common::{raw_context, BenchEnv};
use measure::Row;
use options::Opts;
use peers::Peers;
use report::{machine, print_markdown, write_json};

/// What every cell of a run shares.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub env: &'a BenchEnv,
    /// A raw cryptoki context on the module (the raw and naive cases, fillers, the probe).
    pub ctx: &'a Pkcs11,
    pub peers: &'a Peers,
    pub m: &'a Messages,
    pub opts: &'a Opts,
}

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
    let m = Messages::new();

    // The detail token stays open for the whole run (the grid's cells run beside it).
    let mut exch = token::fresh_token(&env, "bench-exch");
    let ctx = raw_context(&env.module);
    let bench = Run {
        env: &env,
        ctx: &ctx,
        peers: &peers,
        m: &m,
        opts: &opts,
    };
    let probe = detail::run(&bench, &mut exch, &mut rows);
    grid::run(&bench, &mut rows);

    let elapsed = started.elapsed().as_secs_f64();
    print_markdown(&rows, &machine, &probe, elapsed, &opts);
    write_json(&root, &rows, &machine, &probe, elapsed, &opts);
}
