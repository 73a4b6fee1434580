//! Cache-footprint harness (issue 8): what a Binance request costs on top of a bare sign, in
//! instructions and simulated L1 cache misses, for `benches/footprint.sh` to run under
//! callgrind. Timing is `benches/sign/`'s job; this counts, which is repeatable to the event.
//!
//! Between two SoftHSM2 calls the crate's own code and data evict the token's from the L1
//! caches, and SoftHSM2's next `C_SignInit` pays for it: a request's cost over a sign is what
//! the crate's host work touches, more than what it computes (docs/fast-path.md, "Cache
//! footprint").
//!
//! `cargo bench --bench footprint -- N` runs N requests, then N bare signs, on a fresh token in
//! a temp dir (Debian's SoftHSM2, or `HSM_CUSTODY_BENCH_MODULE`).

#![deny(unsafe_code)] // test-side unsafe lives in tests/support/raw_pkcs11.rs

#[path = "common/binance_order.rs"]
mod binance_order;
mod common;

use binance_order::{binance_message, binance_request};
use common::BenchEnv;
use hsm_custody::exchanges::{ExchangeSigner, Request};
use hsm_custody::{Config, Custody, HmacAlg, KeyRef, KeySpec, SecretString};

/// `n` full Binance requests (callgrind collects inside this function only).
#[inline(never)]
fn requests(signer: &ExchangeSigner, req: &Request, n: usize) -> usize {
    (0..n)
        .map(|_| {
            let signed = signer.sign(std::hint::black_box(req)).expect("sign");
            signed.query.len()
        })
        .sum()
}

/// `n` bare signs of the same 110-byte message the request signs.
#[inline(never)]
fn signs(key: &KeyRef, msg: &[u8], n: usize) -> usize {
    (0..n)
        .map(|_| {
            let mac = key
                .hmac(HmacAlg::HmacSha256, std::hint::black_box(msg))
                .expect("sign");
            mac.as_bytes().len()
        })
        .sum()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let env = BenchEnv::new();
    let module = &env.module;
    eprintln!(
        "SoftHSM2 token directory in {} ({})",
        env.dir.path().display(),
        env.conf.display()
    );

    let pin = SecretString::from(format!("footprint-{}", std::process::id()));
    let so = SecretString::from(format!("footprint-so-{}", std::process::id()));
    hsm_custody::admin::init_token(module, "footprint", &so, &pin).expect("init token");
    let custody = Custody::connect(Config::new(module, "footprint").pin(pin)).expect("connect");
    let spec = KeySpec::hmac("binance")
        .exchange("binance")
        .algorithms(&[HmacAlg::HmacSha256]);
    // A public test value, not a credential; 64 bytes like an exchange's (a longer HMAC key
    // would be hashed on every `C_SignInit`).
    custody
        .import_hmac_secret(spec, SecretString::from("0123456789abcdef".repeat(4)))
        .expect("import");
    let signer = custody.exchange_signer("binance").expect("signer");
    let key = custody.key("binance").expect("key");
    let req = binance_request();
    let msg = binance_message();
    // Warm the cache entry and the pool before anything is counted.
    let _ = (requests(&signer, &req, 100), signs(&key, &msg, 100));
    let sent = requests(&signer, &req, n);
    let signed = signs(&key, &msg, n);
    println!("{n} requests ({sent} query bytes), {n} signs ({signed} MAC bytes)");
}
