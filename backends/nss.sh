#!/usr/bin/env bash
# NSS softokn (Debian 12: libnss3 3.87) as a stand-alone PKCS#11 module, and the variables that
# point hsm-custody (and its tests) at it.
#
#   ./backends/nss.sh [DIR]            # idempotent: installs libnss3 + libnss3-tools if missing,
#                                      # makes an NSS database in DIR (default: a new temp dir)
#   eval "$(./backends/nss.sh)"        # then: cargo test --test integration   (HSM_CUSTODY_TEST_BACKEND=nss)
#
# softokn refuses C_Initialize without its parameter string in CK_C_INITIALIZE_ARGS.pReserved;
# hsm-custody passes `module_init_params` (TOML) / HSM_CUSTODY_MODULE_INIT_PARAMS there. The
# database password is the user PIN of its one token ("NSS User Private Key and Certificate
# Services", labelled here `hsm-custody`). The test fixture makes its own databases (see
# tests/integration/common.rs); DIR is for the CLI and the library.
#
# softokn is NOT custody-grade (it wraps a non-extractable key with an AES key the caller made,
# and copies it with CKA_EXTRACTABLE=true): Custody::connect refuses it unless
# danger_accept_non_custody_module is set. See docs/backends.md.
set -euo pipefail
SOFTOKN=/usr/lib/x86_64-linux-gnu/libsoftokn3.so

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "nss.sh: need root (or sudo) to run: $*" >&2; exit 1; fi
}

missing=()
for pkg in libnss3 libnss3-tools; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e "$SOFTOKN" ] || { echo "nss.sh: $SOFTOKN not found after installing libnss3" >&2; exit 1; }

D=${1:-$(mktemp -d /tmp/hsm-custody-nss.XXXXXX)}
PIN=${NSS_PIN:-1234}
TOKEN=hsm-custody
mkdir -p "$D/db"
if ! [ -e "$D/db/key4.db" ]; then
  umask 077
  printf '%s\n' "$PIN" > "$D/pw"
  certutil -N -d "sql:$D/db" -f "$D/pw" >/dev/null
  rm -f "$D/pw"
fi
PARAMS="configdir='sql:$D/db' certPrefix='' keyPrefix='' secmod='secmod.db' flags='' dbTokenDescription='$TOKEN'"
echo "export HSM_CUSTODY_TEST_BACKEND=nss"
echo "export HSM_CUSTODY_TEST_MODULE=$SOFTOKN"
echo "export HSM_CUSTODY_MODULE=$SOFTOKN"
echo "export HSM_CUSTODY_TOKEN=$TOKEN"
printf 'export HSM_CUSTODY_MODULE_INIT_PARAMS=%q\n' "$PARAMS"
echo "# user PIN of $TOKEN: $PIN (the NSS database password); NSS softokn is not custody-grade" >&2
