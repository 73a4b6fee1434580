#!/usr/bin/env bash
# What a Binance request costs over a bare sign, per operation, in instructions and simulated
# L1 misses (callgrind's cache model of this machine's L1: 64 KiB 4-way I, 32 KiB 8-way D).
# Usage: bash benches/footprint.sh [N]   (N requests and N signs; default 10000, ~2 min)
# Needs valgrind (apt-get install valgrind). Figures in docs/fast-path.md, "Cache footprint".
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
bin=$(cargo bench --bench footprint --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "footprint" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for what in requests signs; do
    valgrind --tool=callgrind --cache-sim=yes --toggle-collect="footprint::$what" \
        --callgrind-out-file="$out/$what" "$bin" "$n" >/dev/null 2>&1 &
done
wait
python3 - "$out" "$n" <<'PY'
import re, sys
out, n = sys.argv[1], int(sys.argv[2])
def totals(path):
    events = totals_ = None
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") or line.startswith("summary:"):
            totals_ = [int(x) for x in line.split()[1:]]
    return dict(zip(events, totals_))
r, s = totals(f"{out}/requests"), totals(f"{out}/signs")
print(f"per operation (N = {n})      {'Ir':>9} {'I1 miss':>8} {'D1 miss':>8}")
for name, t in (("Binance request", r), ("bare sign (KeyRef::hmac)", s)):
    print(f"{name:<28} {t['Ir']/n:9.0f} {t['I1mr']/n:8.1f} {(t['D1mr']+t['D1mw'])/n:8.1f}")
print(f"{'request - sign':<28} {(r['Ir']-s['Ir'])/n:9.0f} {(r['I1mr']-s['I1mr'])/n:8.1f} "
      f"{(r['D1mr']+r['D1mw']-s['D1mr']-s['D1mw'])/n:8.1f}")
PY
