#!/usr/bin/env bash
# Installs SoftHSM2 if missing and creates a project-local development token.
#
#   ./softhsm-setup/setup.sh            # idempotent: a second run keeps the existing token
#   source target/softhsm/env           # the variables below, for shells outside cargo
#
# Everything lives under target/softhsm/ (override with HSM_CUSTODY_SETUP_DIR):
#   softhsm2.conf  tokens/  user.pin (0600, random)  so.pin (0600, random)  env
# `.cargo/config.toml` points `cargo run` / `cargo test` at the same files, so nothing needs to
# be exported for the README commands. The token stays in <repo>/target/softhsm even when
# CARGO_TARGET_DIR moves cargo's build outputs elsewhere: it is not a build output, and
# `.cargo/config.toml` (paths relative to the repository) expects it there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${HSM_CUSTODY_SETUP_DIR:-$ROOT/target/softhsm}
LABEL=${HSM_CUSTODY_DEV_TOKEN:-hsm-custody-dev}
MODULE=${HSM_CUSTODY_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup.sh: need root (or sudo) to run: $*" >&2; exit 1; fi
}

if ! command -v softhsm2-util >/dev/null || [ ! -e "$MODULE" ]; then
  echo "setup.sh: installing SoftHSM2 (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends softhsm2 opensc >/dev/null
fi
[ -e "$MODULE" ] || { echo "setup.sh: PKCS#11 module not found at $MODULE; set HSM_CUSTODY_MODULE" >&2; exit 1; }

mkdir -p "$DIR/tokens"
chmod 700 "$DIR" "$DIR/tokens"
cat > "$DIR/softhsm2.conf" <<CONF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF="$DIR/softhsm2.conf"

umask 077
random_pin() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
[ -s "$DIR/user.pin" ] || random_pin > "$DIR/user.pin"
[ -s "$DIR/so.pin" ] || random_pin > "$DIR/so.pin"
chmod 600 "$DIR/user.pin" "$DIR/so.pin"

if softhsm2-util --show-slots 2>/dev/null | grep -Eq "Label:[[:space:]]+$LABEL[[:space:]]*$"; then
  echo "setup.sh: token '$LABEL' already present in $DIR/tokens" >&2
else
  softhsm2-util --init-token --free --label "$LABEL" \
    --so-pin "$(cat "$DIR/so.pin")" --pin "$(cat "$DIR/user.pin")" >/dev/null
  echo "setup.sh: created token '$LABEL' in $DIR/tokens" >&2
fi

cat > "$DIR/env" <<ENV
export SOFTHSM2_CONF=$DIR/softhsm2.conf
export HSM_CUSTODY_MODULE=$MODULE
export HSM_CUSTODY_TOKEN=$LABEL
export HSM_CUSTODY_PIN_FILE=$DIR/user.pin
ENV
cat "$DIR/env"
