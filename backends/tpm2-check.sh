#!/usr/bin/env bash
# What hsm-custody does on a TPM 2.0 (swtpm + tpm2-pkcs11), checked end to end with the CLI;
# docs/tpm2.md explains each line. Exits non-zero when any outcome differs from the documented one.
#
#   ./backends/tpm2-check.sh        # starts a software TPM in a temp dir, tears it down after
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo build -q --manifest-path "$ROOT/Cargo.toml" --features cli --bin hsm-custody
H=${CARGO_TARGET_DIR:-$ROOT/target}/debug/hsm-custody
D=$(mktemp -d "${TMPDIR:-/tmp}/hsm-custody-tpm.XXXXXX")
trap '"$ROOT/backends/tpm2.sh" stop "$D"; rm -rf "$D"' EXIT
eval "$("$ROOT/backends/tpm2.sh" start "$D")"
pass=0
ok() { pass=$((pass + 1)); printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*" >&2; exit 1; }
expect_fail() {  # expect_fail WHAT PATTERN CMD...: CMD must fail with PATTERN in its stderr
  local what=$1 pattern=$2; shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then fail "$what: succeeded"; fi
  grep -q -- "$pattern" <<<"$err" || fail "$what: expected /$pattern/, got: $err"
  # tpm2-pkcs11 logs its own refusals ("ERROR: ...", e.g. of the connect-time custody probe's
  # throwaway key) to stderr: show the crate's message.
  ok "$what (refused: $(grep -v '^ERROR:\|^WARNING:' <<<"$err" | head -c 160))"
}
echo "tpm2-check: $HSM_CUSTODY_MODULE, token $HSM_CUSTODY_TOKEN"

# 1. Importing an HMAC secret: tpm2-pkcs11 accepts no secret key through C_CreateObject.
expect_fail "key import (C_CreateObject of a secret key)" "key adopt" \
  sh -c "printf 'AnyExchangeSecret0123456789abcdefAnyExchangeSecret0123456789abcd' | '$H' key import --name imported --exchange binance"

# 2. Adopting the key tpm2_ptool provisioned (hardened flags, HMAC-SHA256 proven in the TPM).
out=$("$H" key adopt --name "$TPM2_TEST_KEY" --exchange binance) || fail "key adopt: $out"
grep -q "adopted \`$TPM2_TEST_KEY\`" <<<"$out" || fail "key adopt: $out"
ok "key adopt --exchange binance: $out"
"$H" key list | grep -E "^$TPM2_TEST_KEY +hmac +v1 +binance .* yes +no +yes" >/dev/null ||
  fail "key list: $("$H" key list)"
ok "key list: managed hmac key, sensitive, not extractable, hardened"

# 3. Binance request signed in the TPM = HMAC-SHA256 of the same secret in software.
#    The timestamp is now: the crate holds a caller's timestamp to its clock (±5 s).
q="symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=$(date +%s%3N)"
printf '{"method":"POST","path":"/api/v3/order","query":"%s"}\n' "$q" > "$D/req.json"
sig=$("$H" sign-request --key "$TPM2_TEST_KEY" --exchange binance --request "$D/req.json" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["signature"])')
want=$(/usr/bin/python3 - "$TPM2_TEST_SECRET_FILE" "$q" <<'PY'
import hashlib, hmac, sys
print(hmac.new(open(sys.argv[1], "rb").read(), sys.argv[2].encode(), hashlib.sha256).hexdigest())
PY
)
[ "$sig" = "$want" ] || fail "binance signature $sig != software $want"
ok "sign-request binance: $sig (= software HMAC-SHA256)"

# 3b. The extraction-attack list against the adopted TPM key (tests/integration/tpm.rs): the
#     exact set tpm2-pkcs11 lets through, and the key still signs afterwards.
(cd "$ROOT" && cargo test -q --test integration tpm:: -- --ignored --nocapture) > "$D/attacks.log" 2>&1 ||
  { cat "$D/attacks.log" >&2; fail "attack list on the TPM key"; }
ok "attack list on the TPM key: $(grep -o 'backend-table: .*' "$D/attacks.log")"

# 4. The key's algorithms bind; the TPM key is bound to SHA-256 anyway.
expect_fail "sign with HMAC-SHA512 (key adopted for SHA-256)" "hmac-sha512" \
  sh -c "printf x | '$H' sign --key '$TPM2_TEST_KEY' --alg hmac-sha512"

# 5. Key pairs: tpm2-pkcs11 rejects the crate's hardened P-256/RSA templates.
expect_fail "key generate --type p256" "C_GenerateKeyPair" \
  "$H" key generate --name tpm-p256 --type p256 --exchange coinbase-advanced
expect_fail "key generate --type ed25519 (no CKM_EDDSA)" "EDDSA\|Ed25519\|ed25519" \
  "$H" key generate --name tpm-ed --type ed25519 --exchange binance

# 6. Revoke destroys the TPM key object.
"$H" key revoke --name "$TPM2_TEST_KEY" --all >/dev/null
q="symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=0.1&timestamp=$(date +%s%3N)"
printf '{"method":"POST","path":"/api/v3/order","query":"%s"}\n' "$q" > "$D/req.json"
expect_fail "sign after revoke" "revoked\|no active\|not found" \
  "$H" sign-request --key "$TPM2_TEST_KEY" --exchange binance --request "$D/req.json"
if "$H" key list | grep -E "^$TPM2_TEST_KEY +foreign" >/dev/null; then fail "revoked key object still in the token"; fi
ok "key revoke: the TPM object is destroyed"
echo "tpm2-check: $pass checks passed"
