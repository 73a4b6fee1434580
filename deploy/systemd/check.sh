#!/usr/bin/env bash
# Checks the shipped systemd units without booting systemd: each parses (systemd-analyze
# verify), its exposure score stays at or below 1.0 (the TPM variant 1.5: it must see a device;
# systemd-analyze security --offline), the TPM variant differs only in its token lines, and the
# PIN credential round-trips through systemd-creds under the name the unit loads (`pin`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# verify needs ExecStart's binary to exist: check copies pointing at the built CLI. The TPM
# variant needs PrivateDevices=no (the TPM's device node), which costs exposure: its own bound.
cargo build -q --manifest-path "$ROOT/Cargo.toml" --features cli --bin hsm-custody
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/hsm-custody
score=""
for unit_bound in hsm-custody-agent.service:1.0 hsm-custody-agent-tpm.service:1.5; do
  unit=${unit_bound%%:*}; bound=${unit_bound##*:}
  sed "s#/usr/local/bin/hsm-custody#$BIN#" "$HERE/$unit" > "$WORK/$unit"
  systemd-analyze verify "$WORK/$unit"
  systemd-analyze security --offline=true --threshold=100 "$WORK/$unit" | tee "$WORK/security" | tail -1
  s=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WORK/security")
  awk -v s="$s" -v b="$bound" 'BEGIN { exit !(s <= b) }' || { echo "check.sh: $unit exposure $s > $bound" >&2; exit 1; }
  grep -q '^LoadCredentialEncrypted=pin:' "$HERE/$unit"
  grep -q -- '--pin-file %d/pin' "$HERE/$unit"
  score="$score $unit=$s"
done
# The TPM variant differs only in the token's lines: everything else is the same unit.
strip() { grep -v -e '^#' -e '^Description=' -e '^SupplementaryGroups=' -e '^Environment=TPM2_' \
  -e '^ExecStart=' -e '^ReadWritePaths=' -e '^PrivateDevices=' -e '^DevicePolicy=' -e '^DeviceAllow=' "$1"; }
diff <(strip "$HERE/hsm-custody-agent.service") <(strip "$HERE/hsm-custody-agent-tpm.service") \
  || { echo "check.sh: the TPM unit drifted from the main unit" >&2; exit 1; }

# The credential: encrypted with the host key here (CI has no TPM; production uses tpm2+host).
umask 077
printf '%s' "test-pin-$$" | systemd-creds encrypt --name=pin --with-key=host - "$WORK/pin.cred" 2>/dev/null
if grep -q "test-pin-$$" "$WORK/pin.cred"; then echo "check.sh: credential not encrypted" >&2; exit 1; fi
[ "$(systemd-creds decrypt --name=pin "$WORK/pin.cred" - 2>/dev/null)" = "test-pin-$$" ]
if systemd-creds decrypt --name=other "$WORK/pin.cred" - >/dev/null 2>&1; then
  echo "check.sh: a credential decrypted under another name" >&2; exit 1
fi
echo "deploy/systemd/check.sh: units verify, exposure$score, credential round-trips"
