#!/usr/bin/env bash
# Installs the peers the `sign` bench compares against (run once per machine, as root):
#   python-pkcs11 (PyPI) into target/bench/venv, and crypto11 (Go) from Debian's packages,
#   built offline against /usr/share/gocode into target/bench/crypto11-bench; matplotlib into the
#   same venv for benches/plot.py (BENCHMARKS.png).
# The bench binary runs whichever peer is present and reports the others as missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/bench
mkdir -p "$out"

# python-pkcs11: needs a C compiler only when no wheel fits this Python.
if [ ! -x "$out/venv/bin/python" ]; then
    python3 -m venv "$out/venv"
fi
"$out/venv/bin/pip" install --quiet --disable-pip-version-check 'python-pkcs11>=0.7' matplotlib
"$out/venv/bin/python" -c 'import importlib.metadata as m; print("python-pkcs11", m.version("python-pkcs11"))'

# crypto11: Debian ships the Go toolchain and the library's source (with its dependencies).
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/ThalesIgnite/crypto11 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-thalesignite-crypto11-dev >/dev/null
fi
gobuild=$(mktemp -d)
trap 'rm -rf "$gobuild"' EXIT
mkdir -p "$gobuild/src/crypto11bench"
cp benches/peers/crypto11/main.go "$gobuild/src/crypto11bench/"
GOPATH="$gobuild:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$PWD/$out/gocache" \
    go build -o "$out/crypto11-bench" crypto11bench
echo "built $out/crypto11-bench"
