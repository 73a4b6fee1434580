#!/usr/bin/env bash
# The ccxt bot against a loopback stand-in exchange, its Binance secret in a fresh SoftHSM2
# token behind the hsm-custody agent. Checks: the order and the balance go through (the stand-in
# verified every signature), the withdrawal is refused by policy before signing and never reaches
# the stand-in, the refusal is in the audit log, and `audit verify` passes.
#
#   ./examples/python/run.sh          (from a clone; installs what it needs: SoftHSM2, the venv
#                                      of python/venv.sh with the pinned ccxt)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV=$("$ROOT/python/venv.sh")
cargo build -q --features cli --bin hsm-custody
CLI=${CARGO_TARGET_DIR:-$ROOT/target}/debug/hsm-custody

WORK=$(mktemp -d)
AGENT_PID=""; STANDIN_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
  [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh token of its own (the dev token is left alone).
HSM_CUSTODY_SETUP_DIR=$WORK/softhsm HSM_CUSTODY_DEV_TOKEN=ccxt-demo ./softhsm-setup/setup.sh
# shellcheck disable=SC1091
source "$WORK/softhsm/env"

API_KEY=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A
# A demo secret: the stand-in exchange gets its own copy; the bot never sees it.
umask 077
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$WORK/exchange-secret"
"$CLI" key import --name binance-main --exchange binance < "$WORK/exchange-secret" >/dev/null

cat > "$WORK/hsm-custody.toml" <<TOML
module = "$HSM_CUSTODY_MODULE"
token = "$HSM_CUSTODY_TOKEN"
pin_file = "$HSM_CUSTODY_PIN_FILE"

[audit]
path = "$WORK/audit.jsonl"

[keys.binance-main]
exchange = "binance"
allow = ["POST /api/v3/order", "DELETE /api/v3/order", "GET /api/v3/*"]

[agent]
socket = "$WORK/run/agent.sock"
rate_per_second = 1000              # the client checks sign 200 requests at once
burst = 1000
allow_same_uid = true               # test setup: the bot runs as this script's own uid

[agent.keys.binance-main]
uids = [$(id -u)]
exchanges = ["binance"]
TOML

"$CLI" agent --config "$WORK/hsm-custody.toml" 2>"$WORK/agent.log" &
AGENT_PID=$!
"$VENV/bin/python" examples/python/standin_exchange.py --port-file "$WORK/port" \
  --api-key "$API_KEY" --secret-file "$WORK/exchange-secret" &
STANDIN_PID=$!
for _ in $(seq 100); do
  [ -S "$WORK/run/agent.sock" ] && [ -s "$WORK/port" ] && break
  sleep 0.1
done
[ -S "$WORK/run/agent.sock" ] || { cat "$WORK/agent.log"; echo "agent did not start" >&2; exit 1; }
STANDIN_URL="http://127.0.0.1:$(cat "$WORK/port")"

# The bot: no PIN, no secret in its environment.
env -u HSM_CUSTODY_PIN_FILE -u HSM_CUSTODY_PIN \
  HSM_CUSTODY_AGENT_SOCKET="$WORK/run/agent.sock" BINANCE_API_KEY="$API_KEY" \
  STANDIN_URL="$STANDIN_URL" "$VENV/bin/python" examples/python/bot.py | tee "$WORK/bot.out"

# The client library's own checks against the same agent (typed refusals, thread safety).
env -u HSM_CUSTODY_PIN_FILE -u HSM_CUSTODY_PIN "$VENV/bin/python" python/tests/client_checks.py \
  "$WORK/run/agent.sock" binance-main "$WORK/exchange-secret" "$API_KEY"

# Negative control: the stand-in refuses a request whose signature is not the HMAC it expects.
"$VENV/bin/python" - "$STANDIN_URL" "$API_KEY" <<'PY'
import sys, time, urllib.error, urllib.request
body = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timestamp={int(time.time() * 1000)}&signature={'0' * 64}"
req = urllib.request.Request(sys.argv[1] + "/api/v3/order", data=body.encode(), method="POST",
                             headers={"X-MBX-APIKEY": sys.argv[2]})
try:
    urllib.request.urlopen(req)
    sys.exit("stand-in accepted a forged signature")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
PY
stats=$(curl -fsS "$STANDIN_URL/_standin/stats" 2>/dev/null || "$VENV/bin/python" -c \
  "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode())" \
  "$STANDIN_URL/_standin/stats")
echo "stand-in: $stats"
kill "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=""

"$VENV/bin/python" - "$WORK/bot.out" "$stats" "$WORK/audit.jsonl" "$WORK/exchange-secret" <<'PY'
import json, sys
steps = {json.loads(l)["step"]: json.loads(l) for l in open(sys.argv[1])}
stats = json.loads(sys.argv[2])
audit = [json.loads(l) for l in open(sys.argv[3])]
secret = open(sys.argv[4]).read().strip()
assert steps["order"]["status"] == "open", steps
assert steps["balance"]["BTC"] == 0.5, steps
assert steps["withdrawal"]["refused"] and steps["withdrawal"]["rule"] == "withdrawal-guard:binance", steps
assert secret not in steps["secret_in_process"]["secret"], "the bot holds no secret"
assert stats["verified"] >= 2 and stats["rejected"] == 1 and stats["orders"] == 1, stats
assert stats["withdrawals"] == 0, "the withdrawal never reached the exchange"
signs = [r for r in audit if r["event"] in ("sign", "sign_failed")]
bot = signs[0]["client"]  # the bot ran first: its lines name its uid and pid
assert bot.startswith("uid="), bot
signs = [r for r in signs if r["client"] == bot]
denied = [r for r in signs if r.get("decision") == "deny"]
assert [(r["path"], r["rule"]) for r in denied] == [
    ("/sapi/v1/capital/withdraw/apply", "withdrawal-guard:binance")], denied
allowed = sum(r.get("decision") == "allow" for r in signs)
assert allowed == stats["verified"], (allowed, stats)
print(f"checks: order and balance signed in the token and verified by the stand-in "
      f"({stats['verified']} requests), withdrawal refused by policy and audited for {bot}")
PY
"$CLI" --config "$WORK/hsm-custody.toml" audit verify "$WORK/audit.jsonl"
echo "examples/python/run.sh: ok"
