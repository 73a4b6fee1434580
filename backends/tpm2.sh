#!/usr/bin/env bash
# A TPM 2.0 token for hsm-custody: swtpm (software TPM) + tpm2-abrmd (on a private D-Bus session
# bus) + tpm2-pkcs11, with one exchange HMAC secret provisioned by the TPM's own tool
# (`tpm2_ptool import`: tpm2-pkcs11 refuses secret keys through C_CreateObject) and hardened
# (its CKA_ENCRYPT/DECRYPT/EXTRACTABLE flags cleared) so that `hsm-custody key adopt` accepts it.
#
#   eval "$(./backends/tpm2.sh start DIR)"   # idempotent per DIR: restarts what DIR ran before
#   ./backends/tpm2.sh stop DIR              # stops the daemons this script started in DIR
#
# Prints: HSM_CUSTODY_MODULE, HSM_CUSTODY_TOKEN, HSM_CUSTODY_PIN_FILE, TPM2_PKCS11_TCTI,
# TPM2_PKCS11_STORE, DBUS_SESSION_BUS_ADDRESS, TPM2_TEST_KEY (label of the provisioned key) and
# TPM2_TEST_SECRET_FILE (the test secret, 0600: a real deployment deletes it after import).
set -euo pipefail
cmd=${1:-}; D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$D"; D=$(cd "$D" && pwd)

stop() {
  for f in abrmd swtpm dbus; do
    if [ -f "$D/$f.pid" ]; then kill "$(cat "$D/$f.pid")" 2>/dev/null || true; rm -f "$D/$f.pid"; fi
  done
}
if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "tpm2.sh: need root (or sudo) to run: $*" >&2; exit 1; fi
}
MODULE=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so
need=()
for pkg in swtpm tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtpm2-pkcs11-1 libtpm2-pkcs11-tools \
           python3-tpm2-pkcs11-tools python3-yaml dbus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "tpm2.sh: installing ${need[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

stop; sleep 0.2
rm -rf "$D/state" "$D/store"; mkdir -p "$D/state" "$D/store"; chmod 700 "$D"
# swtpm's TCP TCTI uses PORT for commands and PORT+1 for control: find two free ports.
PORT=$(/usr/bin/python3 - <<'PY'
import random, socket
while True:
    p = random.randint(20000, 60000)
    try:
        a = socket.socket(); a.bind(("127.0.0.1", p)); b = socket.socket(); b.bind(("127.0.0.1", p + 1))
        a.close(); b.close(); print(p); break
    except OSError:
        pass
PY
)
swtpm socket --tpm2 --tpmstate dir="$D/state" --server type=tcp,port="$PORT",bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
  --daemon --pid file="$D/swtpm.pid" --log file="$D/swtpm.log"
# The resource manager: without it tpm2_ptool runs out of TPM object slots (TPM_RC 0x902).
dbus-daemon --session --fork --address="unix:path=$D/dbus.sock" --print-pid=1 > "$D/dbus.pid"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$D/dbus.sock"
tpm2-abrmd --session --allow-root --flush-all --tcti="swtpm:host=127.0.0.1,port=$PORT" \
  >"$D/abrmd.log" 2>&1 &
echo $! > "$D/abrmd.pid"
export TPM2TOOLS_TCTI="tabrmd:bus_type=session" TPM2_PKCS11_TCTI="tabrmd:bus_type=session"
export TPM2_PKCS11_STORE="$D/store" TSS2_LOG="all+NONE"
for _ in $(seq 50); do tpm2_getcap properties-fixed >/dev/null 2>&1 && break; sleep 0.1; done
tpm2_getcap properties-fixed >/dev/null 2>&1 || { echo "tpm2.sh: the TPM did not come up (see $D/*.log)" >&2; exit 1; }

umask 077
TOKEN=hsm-custody-tpm
od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$D/user.pin"
od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$D/so.pin"
tpm2_ptool init --path "$D/store" >/dev/null
tpm2_ptool addtoken --pid=1 --sopin="$(cat "$D/so.pin")" --userpin="$(cat "$D/user.pin")" \
  --label="$TOKEN" --path "$D/store" >/dev/null
# The exchange secret as the exchange shows it (64 characters, Binance-like); its bytes are the
# HMAC key. Provisioned with the TPM's tool under the key's name and an id of the operator's.
KEY=binance-tpm
/usr/bin/python3 -c 'import secrets,string,sys; sys.stdout.write("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(64)))' > "$D/secret"
tpm2_ptool import --label="$TOKEN" --key-label="$KEY" --id=74706d2d30303031 \
  --userpin="$(cat "$D/user.pin")" --privkey="$D/secret" --algorithm=hmac:sha256 \
  --path "$D/store" >/dev/null
# tpm2_ptool marks imported keys extractable and usable to encrypt/decrypt (flags in its store;
# the TPM blob itself never leaves the TPM): clear them, as the crate's adoption requires.
for attr in CKA_EXTRACTABLE CKA_ENCRYPT CKA_DECRYPT; do
  tpm2_ptool objmod --id 74706d2d30303031 --key "$attr" --value false --type bool \
    --path "$D/store" >/dev/null 2>&1 ||
  tpm2_ptool objmod --id "$(tpm2_ptool listobjects --label="$TOKEN" --path "$D/store" |
      /usr/bin/python3 -c 'import sys,yaml; print([o["id"] for o in yaml.safe_load(sys.stdin) if o.get("CKA_LABEL")==sys.argv[1]][0])' "$KEY")" \
    --key "$attr" --value false --type bool --path "$D/store" >/dev/null
done
cat <<ENV
export HSM_CUSTODY_MODULE=$MODULE
export HSM_CUSTODY_TOKEN=$TOKEN
export HSM_CUSTODY_PIN_FILE=$D/user.pin
export TPM2_PKCS11_TCTI='tabrmd:bus_type=session'
export TPM2_PKCS11_STORE=$D/store
export DBUS_SESSION_BUS_ADDRESS=unix:path=$D/dbus.sock
export TSS2_LOG=all+NONE
export TPM2_TEST_KEY=$KEY
export TPM2_TEST_SECRET_FILE=$D/secret
ENV
