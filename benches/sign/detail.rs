//! The detail cell: one token with the Binance, OKX and Kraken keys, one thread; every kind of
//! case on the same three messages (software, raw token and session objects, naive, the crate's
//! sign and exchange requests with and without the guard, diagnostics, the peers).

use std::time::{Duration, Instant};

use hsm_custody::Custody;

use crate::binance_order::BINANCE_QUERY;
use crate::cases::{
    crate_mac_for_case, crate_sign_after, crate_sign_case, exchange_case, naive_case, raw_case,
    software_case, software_signer,
};
use crate::measure::{run_cell, Row};
use crate::probe::copy_probe;
use crate::token::{find_key, import, session_object, BenchToken};
use crate::Run;

/// Imports the three exchange keys into `exch`, runs the session-object probe and the detail
/// cell; returns the probe's report.
pub fn run(bench: &Run<'_>, exch: &mut BenchToken, rows: &mut Vec<Row>) -> serde_json::Value {
    let Run {
        env,
        ctx,
        peers,
        m,
        opts,
    } = *bench;
    let bn = import(exch, "bench-binance", "binance", 1);
    let okx = import(exch, "bench-okx", "okx", 2);
    let kr = import(exch, "bench-kraken", "kraken", 3);
    let probe = copy_probe(ctx, exch, &bn);
    eprintln!("session-object probe: {probe}");
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
        software_case("software hmac 110B", &bn, &m.binance),
        software_case("software hmac 1KiB", &okx, &m.okx),
        exchange_case(
            "software binance request",
            r110,
            software_signer("binance", &bn),
            m.binance_req.clone(),
        ),
        exchange_case(
            "software okx request 1KiB",
            r1k,
            software_signer("okx", &okx),
            m.okx_req.clone(),
        ),
        exchange_case(
            "software kraken request",
            rkr,
            software_signer("kraken", &kr),
            m.kraken_req.clone(),
        ),
        raw_case(r110, Some(r110), ctx, exch.slot, h_bn, bn.alg, &m.binance),
        raw_case(
            "raw session-object 110B",
            Some(r110),
            ctx,
            exch.slot,
            s_bn,
            bn.alg,
            &m.binance,
        ),
        naive_case(
            "naive find+sign 110B",
            r110,
            ctx,
            exch.slot,
            &bn,
            &m.binance,
        ),
        crate_sign_case("crate sign 110B", k110, bn_key, bn.alg, &m.binance),
        crate_sign_case("crate sign 110B +guard", k110, bn_guard, bn.alg, &m.binance),
        crate_mac_for_case(
            "crate mac_for 110B (request context)",
            k110,
            exch.custody.key(bn.name).expect("key"),
            bn.alg,
            &m.binance,
        ),
        exchange_case(
            "crate binance request fixed clock",
            k110,
            signer(&exch.custody, bn.name)
                .with_clock(hsm_custody::exchanges::FixedClock(1_700_000_000_000)),
            m.binance_req.clone(),
        ),
        exchange_case(
            "crate binance request",
            k110,
            signer(&exch.custody, bn.name),
            m.binance_req.clone(),
        ),
        exchange_case(
            "crate binance request +guard",
            k110,
            signer(&exch.guarded, bn.name),
            m.binance_req.clone(),
        ),
        raw_case(r1k, Some(r1k), ctx, exch.slot, h_okx, okx.alg, &m.okx),
        raw_case(
            "raw session-object 1KiB",
            Some(r1k),
            ctx,
            exch.slot,
            s_okx,
            okx.alg,
            &m.okx,
        ),
        crate_sign_case("crate sign 1KiB", k1k, okx_key, okx.alg, &m.okx),
        exchange_case(
            "crate okx request 1KiB",
            k1k,
            signer(&exch.custody, okx.name),
            m.okx_req.clone(),
        ),
        exchange_case(
            "crate okx request 1KiB +guard",
            k1k,
            signer(&exch.guarded, okx.name),
            m.okx_req.clone(),
        ),
        raw_case(rkr, Some(rkr), ctx, exch.slot, h_kr, kr.alg, &m.kraken),
        raw_case(
            "raw session-object kraken 51B sha512",
            Some(rkr),
            ctx,
            exch.slot,
            s_kr,
            kr.alg,
            &m.kraken,
        ),
        exchange_case(
            "crate kraken request",
            kkr,
            signer(&exch.custody, kr.name),
            m.kraken_req.clone(),
        ),
        exchange_case(
            "crate kraken request +guard",
            kkr,
            signer(&exch.guarded, kr.name),
            m.kraken_req.clone(),
        ),
    ];
    // Diagnostic rows: host work before each crate sign, to see what it costs between
    // token calls against what it costs alone.
    type Work<'w> = Box<dyn Fn() + Send + Sync + 'w>;
    let soft_bn = (software_signer("binance", &bn), m.binance_req.clone());
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
                let v: [Vec<u8>; 8] =
                    std::array::from_fn(|i| std::hint::black_box(Vec::with_capacity(16 + 24 * i)));
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
        cases.insert(at + i, crate_sign_after(name, k110, key, &m.binance, work));
    }
    if opts.peers {
        cases.extend(peers.cases(&env.module, exch, &bn, &m.binance, "110B", r110));
        cases.extend(peers.cases(&env.module, exch, &okx, &m.okx, "1KiB", r1k));
    }
    eprintln!("detail (token with 3 keys, 1 thread)");
    run_cell("detail", exch.keys, 1, &cases, opts, rows);
    drop(cases);
    let _ = holder.destroy_object(s_bn);
    let _ = holder.destroy_object(s_okx);
    let _ = holder.destroy_object(s_kr);
    probe
}
