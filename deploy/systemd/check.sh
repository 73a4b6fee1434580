#!/usr/bin/env bash
# Checks the shipped systemd unit without booting systemd: the unit parses (systemd-analyze
# verify), its exposure score stays at or below 1.0 (systemd-analyze security --offline), and the
# PIN credential round-trips through systemd-creds under the name the unit loads (`pin`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# verify needs ExecStart's binary to exist: check a copy pointing at the built CLI.
cargo build -q --manifest-path "$ROOT/Cargo.toml" --features cli --bin hsm-custody
sed "s#/usr/local/bin/hsm-custody#$ROOT/target/debug/hsm-custody#" \
  "$HERE/hsm-custody-agent.service" > "$WORK/hsm-custody-agent.service"
systemd-analyze verify "$WORK/hsm-custody-agent.service"
systemd-analyze security --offline=true --threshold=10 "$WORK/hsm-custody-agent.service" \
  | tee "$WORK/security" | tail -1
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WORK/security")
awk -v s="$score" 'BEGIN { exit !(s <= 1.0) }' || { echo "check.sh: exposure $score > 1.0" >&2; exit 1; }
grep -q '^LoadCredentialEncrypted=pin:' "$HERE/hsm-custody-agent.service"
grep -q -- '--pin-file %d/pin' "$HERE/hsm-custody-agent.service"

# The credential: encrypted with the host key here (CI has no TPM; production uses tpm2+host).
umask 077
printf '%s' "test-pin-$$" | systemd-creds encrypt --name=pin --with-key=host - "$WORK/pin.cred" 2>/dev/null
if grep -q "test-pin-$$" "$WORK/pin.cred"; then echo "check.sh: credential not encrypted" >&2; exit 1; fi
[ "$(systemd-creds decrypt --name=pin "$WORK/pin.cred" - 2>/dev/null)" = "test-pin-$$" ]
if systemd-creds decrypt --name=other "$WORK/pin.cred" - >/dev/null 2>&1; then
  echo "check.sh: a credential decrypted under another name" >&2; exit 1
fi
echo "deploy/systemd/check.sh: unit verifies, exposure $score, credential round-trips"
