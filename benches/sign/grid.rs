//! The grid: threads x keys in the token, on the Binance message; per key count also a
//! "scaling" cell (1 thread against the most, in the same rounds) and a "flat" cell (the crate
//! and raw C_Sign on this token against the token with the fewest keys, in the same rounds).

use std::time::Instant;

use cryptoki::object::ObjectHandle;
use cryptoki::slot::Slot;
use hsm_custody::KeyRef;

use crate::cases::{crate_sign_case, exchange_case, naive_case, raw_case, Case};
use crate::measure::{run_cell, Row};
use crate::token::{add_fillers, find_key, fresh_token, import, session_object};
use crate::Run;

/// One token per key count in `--keys`, filled with hardened filler keys, and its cells.
pub fn run(bench: &Run<'_>, rows: &mut Vec<Row>) {
    let Run {
        env,
        ctx,
        peers,
        m,
        opts,
    } = *bench;
    // The token with the fewest keys stays open, so that each larger one is paired with it in a
    // "flat" cell (same rounds) as well as compared across cells.
    let mut fewest: Option<(usize, KeyRef, Slot, ObjectHandle)> = None;
    for &n in &opts.keys {
        let mut t = fresh_token(env, &format!("bench-k{n}"));
        let bn = import(&mut t, "bench-binance", "binance", 1);
        let fill = Instant::now();
        add_fillers(ctx, &mut t, n);
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
                raw_case(r110, Some(r110), ctx, t.slot, h_bn, bn.alg, &m.binance),
                raw_case(
                    "raw session-object 110B",
                    Some(r110),
                    ctx,
                    t.slot,
                    s_bn,
                    bn.alg,
                    &m.binance,
                ),
                crate_sign_case(
                    "crate sign 110B",
                    k110,
                    t.custody.key(bn.name).expect("key"),
                    bn.alg,
                    &m.binance,
                ),
                crate_sign_case(
                    "crate sign 110B +guard",
                    k110,
                    t.guarded.key(bn.name).expect("key"),
                    bn.alg,
                    &m.binance,
                ),
                exchange_case(
                    "crate binance request",
                    k110,
                    t.custody.exchange_signer(bn.name).expect("signer"),
                    m.binance_req.clone(),
                ),
            ];
            if threads == 1 {
                cases.push(naive_case(
                    "naive find+sign 110B",
                    r110,
                    ctx,
                    t.slot,
                    &bn,
                    &m.binance,
                ));
            }
            if opts.peers {
                cases.extend(peers.cases(&env.module, &t, &bn, &m.binance, "110B", r110));
            }
            run_cell("grid", n, threads, &cases, opts, rows);
        }
        // 1 thread against the most threads, interleaved in the same rounds (paired per round,
        // as every ratio here): the cells above ran minutes apart, under other load.
        let max_t = opts.threads.iter().copied().max().unwrap_or(1);
        if max_t > 1 {
            type Make<'m> = Box<dyn Fn() -> Case<'m> + 'm>;
            let makers: [(&str, Make<'_>); 3] = [
                (
                    "raw session-object 110B",
                    Box::new(|| raw_case("", None, ctx, t.slot, s_bn, bn.alg, &m.binance)),
                ),
                (
                    "crate sign 110B",
                    Box::new(|| {
                        let key = t.custody.key(bn.name).expect("key");
                        crate_sign_case("", "", key, bn.alg, &m.binance)
                    }),
                ),
                (
                    "crate binance request",
                    Box::new(|| {
                        let signer = t.custody.exchange_signer(bn.name).expect("signer");
                        exchange_case("", "", signer, m.binance_req.clone())
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
            run_cell("scaling", n, 1, &cases, opts, rows);
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
                        ..crate_sign_case("", "", lo_key.clone(), bn.alg, &m.binance)
                    },
                    Case {
                        name: format!("crate sign 110B, {n} keys"),
                        baseline: Some(crate_lo),
                        ..crate_sign_case(
                            "",
                            "",
                            t.custody.key(bn.name).expect("key"),
                            bn.alg,
                            &m.binance,
                        )
                    },
                    Case {
                        name: raw_lo.clone(),
                        baseline: None,
                        ..raw_case("", None, ctx, *lo_slot, *lo_handle, bn.alg, &m.binance)
                    },
                    Case {
                        name: format!("raw token 110B, {n} keys"),
                        baseline: Some(raw_lo),
                        ..raw_case("", None, ctx, t.slot, h_bn, bn.alg, &m.binance)
                    },
                ];
                run_cell("flat", n, 1, &cases, opts, rows);
            }
        }
        let _ = holder.destroy_object(s_bn);
        eprintln!("  pool after the grid on {n} keys: {:?}", t.custody.stats());
    }
}
