#!/usr/bin/env bash
# The one virtualenv the Python checks share: pinned ccxt and this repository's package.
# Creates it on first use, brings it up to date, prints its path.
#
#   VENV=$(./python/venv.sh)      # target/py-venv, or $HSM_CUSTODY_PY_VENV
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CCXT_VERSION=4.5.90   # the ccxt the oracle compares against (docs/ccxt-oracle.md)
VENV=${HSM_CUSTODY_PY_VENV:-$ROOT/target/py-venv}
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "ccxt==$CCXT_VERSION" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT/python" >&2
echo "$VENV"
