//! The results: the machine, a Markdown table on stdout (BENCHMARKS.md quotes it) and
//! `target/bench/results*.json` (read by `benches/plot.py`).

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::measure::Row;
use crate::options::Opts;
use crate::targets::targets;

pub fn machine() -> serde_json::Value {
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

pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "–".into())
}

pub fn print_markdown(
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

pub fn write_json(
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
