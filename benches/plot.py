#!/usr/bin/env python3
"""Draws BENCHMARKS.png from target/bench/results.json (written by `cargo bench --bench sign`).

Four panels: ops/s and p99 latency against the thread count (1-key token), and against the
number of keys in the token (1 thread), for raw C_Sign on the token object and on a session
object, the crate's sign, a full Binance request, and the peers. Needs matplotlib (installed into
target/bench/venv by benches/peers/setup.sh):

    target/bench/venv/bin/python benches/plot.py [results.json] [out.png]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = [
    ("raw token 110B", "raw C_Sign, token object", "black", "-"),
    ("raw session-object 110B", "raw C_Sign, session object", "gray", ":"),
    ("crate sign 110B", "crate sign", "tab:blue", "-"),
    ("crate sign 110B +guard", "crate sign + guard", "tab:cyan", "--"),
    ("crate binance request", "crate Binance request", "tab:green", "-"),
    ("crypto11 110B", "crypto11 (Go)", "tab:orange", "-."),
    ("python-pkcs11 110B", "python-pkcs11 (N procs)", "tab:red", "-."),
    ("naive find+sign 110B", "naive find+sign", "tab:purple", ":"),
]


def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json"
    out = sys.argv[2] if len(sys.argv) > 2 else "BENCHMARKS.png"
    doc = json.load(open(src))
    rows = [r for r in doc["rows"] if r["group"] == "grid" and not r.get("error")]
    key_counts = sorted({r["keys"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    k0 = key_counts[0]

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for case, label, color, style in SERIES:
        by_t = sorted((r["threads"], r) for r in rows if r["case"] == case and r["keys"] == k0)
        by_k = sorted((r["keys"], r) for r in rows if r["case"] == case and r["threads"] == 1)
        for col, pts in ((0, by_t), (1, by_k)):
            if not pts:
                continue
            xs = [x for x, _ in pts]
            axes[0][col].plot(xs, [r["ops_per_s"] for _, r in pts], style, color=color,
                              marker="o", label=label)
            axes[1][col].plot(xs, [r["p99_us"] for _, r in pts], style, color=color,
                              marker="o", label=label)
    axes[0][0].set_title(f"ops/s vs threads ({k0} key in the token)")
    axes[1][0].set_title(f"p99 latency vs threads ({k0} key in the token)")
    axes[0][1].set_title("ops/s vs keys in the token (1 thread)")
    axes[1][1].set_title("p99 latency vs keys in the token (1 thread)")
    for ax in axes[0]:
        ax.set_ylabel("signatures / s")
        ax.set_ylim(bottom=0)
    for ax in axes[1]:
        ax.set_ylabel("p99 µs (log)")
        ax.set_yscale("log")
    for ax in (axes[0][0], axes[1][0]):
        ax.set_xlabel("threads")
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads, [str(t) for t in threads])
    for ax in (axes[0][1], axes[1][1]):
        ax.set_xlabel("keys in the token")
        ax.set_xscale("log")
        ax.set_xticks(key_counts, [str(k) for k in key_counts])
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower left")
    m = doc["machine"]
    fig.suptitle(
        f"hsm-custody sign bench on SoftHSM2 {m.get('softhsm2', '?')}, {m.get('nproc', '?')} vCPU "
        f"{m.get('cpu', '')}; HMAC-SHA256 of a 110-byte Binance query ({doc['mode']} run, "
        f"median of {doc['rounds']} rounds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
