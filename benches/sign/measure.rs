//! Timing: cases run by threads for a fixed time; a cell's cases in interleaved rounds, ratios
//! paired per round and the median round reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::cases::{Case, Factory, Runner};
use crate::options::Opts;
use crate::peers::run_peer;

#[derive(Clone, Copy, Debug, Default)]
pub struct Measure {
    pub ops: u64,
    pub ops_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The 99.9th percentile and the slowest sign: where a starved thread shows, which p99
    /// can hide (with N threads, one thread's long waits are few samples among many fast ones).
    pub p999_us: f64,
    pub max_us: f64,
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() - 1) as f64 * p) as usize]) / 1000.0
}

/// Runs `threads` workers for `secs`; each worker is made in its own thread (sessions are not
/// `Sync`) and warmed up once before the clock starts.
pub fn run_in_process(factory: &Factory<'_>, threads: usize, secs: f64) -> Measure {
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

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// One result row.
#[derive(Clone, Debug)]
pub struct Row {
    pub group: String,
    pub case: String,
    pub threads: usize,
    pub keys: usize,
    pub m: Measure,
    pub baseline: Option<String>,
    /// Baseline ops/s ÷ this ops/s: the cost relative to raw C_Sign (1.00 = same, >1 = slower).
    pub cost_vs_raw: Option<f64>,
    pub p50_vs_raw: Option<f64>,
    pub error: Option<String>,
}

/// Runs the cases of one cell in `rounds` interleaved rounds and reports the median round.
pub fn run_cell(
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
