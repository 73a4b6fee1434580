#!/usr/bin/env bash
# Builds the Kryoptic PKCS#11 module (Rust crate `kryoptic`, with a vendored OpenSSL 3.5 so that
# Ed25519 works) and prints the variables that point hsm-custody's tests at it.
#
#   ./backends/kryoptic.sh            # idempotent; the build is cached under target/kryoptic/
#   eval "$(./backends/kryoptic.sh)"  # then: HSM_CUSTODY_TEST_BACKEND=kryoptic cargo test
#
# The cold build takes about 4 minutes on 2 cores; later runs reuse target/kryoptic/ (under
# $CARGO_TARGET_DIR when set; KRYOPTIC_BUILD overrides). Kryoptic's own build output stays in
# that directory whatever CARGO_TARGET_DIR says.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KVER=${KRYOPTIC_VERSION:-1.5.4}
B=${KRYOPTIC_BUILD:-${CARGO_TARGET_DIR:-$ROOT/target}/kryoptic}
mkdir -p "$B" && B=$(cd "$B" && pwd)
SO="$B/src/target/release/libkryoptic_pkcs11.so"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "kryoptic.sh: need root (or sudo) to run: $*" >&2; exit 1; fi
}

if ! [ -e "$SO" ]; then
  missing=()
  for pkg in libclang-dev libsqlite3-dev pkg-config gcc make perl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  mkdir -p "$B/fetch/src"
  cat > "$B/fetch/Cargo.toml" <<TOML
[package]
name = "kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
kryoptic = { version = "=$KVER", default-features = false }
openssl-src = "~300.5"
TOML
  echo 'fn main() {}' > "$B/fetch/src/main.rs"
  (cd "$B/fetch" && cargo fetch -q)
  srcdir() {
    (cd "$B/fetch" && cargo metadata --format-version 1) | python3 -c \
      'import json,sys; print([p for p in json.load(sys.stdin)["packages"] if p["name"]==sys.argv[1]][0]["manifest_path"].rsplit("/",1)[0])' "$1"
  }
  if ! [ -e "$B/src/Cargo.toml" ]; then
    cp -r "$(srcdir kryoptic)" "$B/src"
  fi
  # target/ lies inside this repository's workspace: make Kryoptic its own workspace root.
  grep -q '^\[workspace\]' "$B/src/Cargo.toml" || printf '\n[workspace]\n' >> "$B/src/Cargo.toml"
  echo "kryoptic.sh: building OpenSSL 3.5 (static) and Kryoptic $KVER, about 4 minutes" >&2
  # ossl-sys skips its own Configure/make when libcrypto.a exists; its Configure call fails on
  # openssl-src's trimmed tree, so libcrypto.a is built here first.
  if ! [ -e "$B/openssl/libcrypto.a" ]; then
    rm -rf "$B/openssl"
    cp -r "$(srcdir openssl-src)/openssl" "$B/openssl"
    (cd "$B/openssl" && ./Configure no-shared no-module no-legacy no-deprecated no-docs no-tests \
        no-aria no-des no-dsa no-cast no-mdc2 no-ec2m no-rc2 no-rc4 no-rc5 no-rmd160 no-seed no-sm2 \
        no-sm3 no-sm4 enable-ec_nistp_64_gcc_128 >/dev/null 2>&1 &&
      make -s -j"$(nproc)" build_generated >/dev/null 2>&1 &&
      make -s -j"$(nproc)" libcrypto.a >/dev/null 2>&1)
  fi
  (cd "$B/src" && KRYOPTIC_OPENSSL_SOURCES="$B/openssl" cargo build -q --release --locked \
    --target-dir "$B/src/target" \
    --no-default-features --features "kryoptic-lib/standard ossl/ossl-sys")
fi
[ -e "$SO" ] || { echo "kryoptic.sh: build did not produce $SO" >&2; exit 1; }
echo "export HSM_CUSTODY_TEST_BACKEND=kryoptic"
echo "export HSM_CUSTODY_TEST_MODULE=$SO"
