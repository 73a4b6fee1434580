#!/usr/bin/env bash
# ccxt as the oracle (issue 12): the same requests signed by stock ccxt (secret in memory) and by
# ccxt wrapped with hsm_custody.ccxt (secret in a fresh SoftHSM2 token, signed by the agent) must
# give identical URLs, bodies and headers. See docs/ccxt-oracle.md.
#
#   ./python/tests/run_oracle.sh            # from the repository root or anywhere
#   ./python/tests/run_oracle.sh -v         # extra arguments go to oracle.py (-v: print diffs)
#
# Needs: softhsm2 (./softhsm-setup/setup.sh installs it), cargo, python3 (>= 3.9) with venv,
# and the pip registry. Everything it creates lives in the shared venv (python/venv.sh:
# target/py-venv) and a temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODULE=${HSM_CUSTODY_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PYTHON=${PYTHON:-python3}

command -v softhsm2-util >/dev/null && [ -e "$MODULE" ] ||
  { echo "run_oracle.sh: SoftHSM2 missing; run ./softhsm-setup/setup.sh first" >&2; exit 2; }

# 1. virtualenv with pinned ccxt and this repository's package
VENV=$(PYTHON=$PYTHON "$ROOT/python/venv.sh")

# 2. the CLI
(cd "$ROOT" && cargo build -q --features cli --bin hsm-custody)
CLI=${CARGO_TARGET_DIR:-$ROOT/target}/debug/hsm-custody

# 3. a fresh token in a temp dir
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsm-custody-oracle.XXXXXX")
AGENT_PID=
cleanup() {
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  if [ -n "${HSM_CUSTODY_ORACLE_KEEP:-}" ]; then echo "run_oracle.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
umask 077
mkdir -p "$WORK/run"
# A fresh token of its own, made by the project's setup script (random PINs in 0600 files).
LABEL=ccxt-oracle
HSM_CUSTODY_SETUP_DIR=$WORK/softhsm HSM_CUSTODY_DEV_TOKEN=$LABEL HSM_CUSTODY_MODULE=$MODULE \
  "$ROOT/softhsm-setup/setup.sh" >/dev/null 2>&1
# shellcheck disable=SC1091
source "$WORK/softhsm/env"
unset HSM_CUSTODY_CONFIG

# 4. one test secret per exchange, from oracle.py's table, through stdin (never argv)
ORACLE=$ROOT/python/tests/oracle.py
CONFIG=$WORK/agent.toml
{
  echo "module = \"$MODULE\""
  echo "token = \"$LABEL\""
  echo "pin_file = \"$HSM_CUSTODY_PIN_FILE\""
  echo
  echo "[audit]"
  echo "path = \"$WORK/audit.jsonl\""
  echo "fsync = \"never\""
  echo
  echo "[agent]"
  echo "socket = \"$WORK/run/agent.sock\""
  echo "rate_per_second = 1000"
  echo "burst = 1000"
  echo "allow_same_uid = true  # test setup: the oracle runs as this script's own uid"
} > "$CONFIG"
while IFS=$'\t' read -r name exchange raw; do
  bind=()
  [ "$exchange" != - ] && bind=(--exchange "$exchange")
  # The API passphrase is recorded with the key (KuCoin's passphrase HMAC is computed over the
  # recorded one only).
  "$VENV/bin/python" "$ORACLE" passphrase "$name" > "$WORK/passphrase"
  [ -s "$WORK/passphrase" ] && bind+=(--passphrase-file "$WORK/passphrase")
  # So is the exchange API key: requests must name it (schemes that sign the key, such as
  # Bybit's and MEXC futures', take an unrecorded one only in a narrow form).
  api_key=$("$VENV/bin/python" "$ORACLE" apikey "$name")
  [ -n "$api_key" ] && bind+=(--api-key "$api_key")
  "$VENV/bin/python" "$ORACLE" secret "$name" |
    "$CLI" key import --name "$name" "${bind[@]}" >/dev/null
  {
    echo
    echo "[keys.\"$name\"]"
    [ "$exchange" != - ] && echo "exchange = \"$exchange\""
    # Every Deribit signature is also a `public/auth` session with the key's full scope: the
    # guard refuses Deribit signing unless the policy lists that endpoint exactly (do so only
    # for a Deribit key without wallet scope; docs/guardrails.md).
    [ "$exchange" = deribit ] && echo 'allow = ["GET /api/v2/public/auth", "* /api/v2/**"]'

    [ "$raw" = raw ] && echo "allow_raw = true"
    echo "[agent.keys.\"$name\"]"
    echo "uids = [$(id -u)]"
  } >> "$CONFIG"
done < <("$VENV/bin/python" "$ORACLE" keys)

# 5. the agent
"$CLI" --config "$CONFIG" agent 2> "$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 1 100); do
  [ -S "$WORK/run/agent.sock" ] && break
  kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log" >&2; exit 1; }
  sleep 0.1
done
[ -S "$WORK/run/agent.sock" ] || { echo "run_oracle.sh: agent did not start" >&2; cat "$WORK/agent.log" >&2; exit 1; }

# 6. the oracle
status=0
HSM_CUSTODY_AGENT_SOCKET=$WORK/run/agent.sock "$VENV/bin/python" "$ORACLE" run "$@" || status=$?

# 7. the audit chain still verifies after every signature
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=
if ! "$CLI" --config "$CONFIG" audit verify "$WORK/audit.jsonl" >/dev/null 2>"$WORK/verify.err"; then
  echo "run_oracle.sh: audit chain does not verify" >&2; cat "$WORK/verify.err" >&2; status=1
fi
# 8. and it shows what the adapter did: raw MACs audited as raw, the withdrawal denied
grep -q '"key":"oracle-bitso".*"method":"RAW","path":"ccxt:bitso".*"rule":"allow_raw"' "$WORK/audit.jsonl" ||
  { echo "run_oracle.sh: no raw-mode MAC in the audit log" >&2; status=1; }
grep -q '"path":"/sapi/v1/capital/withdraw/apply".*"decision":"deny","rule":"withdrawal-guard:binance"' "$WORK/audit.jsonl" ||
  { echo "run_oracle.sh: the refused withdrawal is not in the audit log" >&2; status=1; }
exit $status
