#!/bin/bash
# How tests/data/audit-v1 was made: an audit log and a SoftHSM2 token written by the CLI as it
# was before the audit and key data became typed (commit ef0d9fc, built with
# `cargo build --features cli,test-util --bin hsm-custody` and copied to /tmp/old-hsm-custody).
# The token directory, audit.jsonl, audit.jsonl.000000000001 and audit.jsonl.head were copied
# from $D; list.json, versions.json and summary.json are what that CLI printed for them
# (`key list --json`, `key versions --json bn`, `audit summary --json --per-minute FILES`).
# The PIN is a test PIN for this fixture only.
set -euo pipefail
B=/tmp/old-hsm-custody
D=/tmp/fixgen/work
rm -rf $D; mkdir -p $D/tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' $D > $D/softhsm2.conf
export SOFTHSM2_CONF=$D/softhsm2.conf
softhsm2-util --init-token --free --label audit-fixture --pin 1234-fixture --so-pin 5678-fixture >/dev/null
export HSM_CUSTODY_PIN=1234-fixture
unset HSM_CUSTODY_PIN_FILE HSM_CUSTODY_CONFIG
cat > $D/config.toml <<T
module = '/usr/lib/softhsm/libsofthsm2.so'
token = 'audit-fixture'
pin_env = 'HSM_CUSTODY_PIN'
[audit]
path = '$D/audit.jsonl'
fsync = 'always'
[keys.bn]
exchange = 'binance'
allow = ['POST /api/v3/order']
T
C="$B --config $D/config.toml"
printf 'secret-one-0123456789abcdef' | $C key import --name bn --exchange binance
printf '{"method":"POST","path":"/api/v3/order","query":"a=1"}' > $D/order.json
printf '{"method":"POST","path":"/sapi/v1/capital/withdraw/apply","query":"a=1"}' > $D/withdraw.json
$C sign-request --key bn --exchange binance --request $D/order.json >/dev/null
$C sign-request --key bn --exchange binance --request $D/withdraw.json >/dev/null 2>&1 || true
$C key generate --name pair --type ed25519
printf 'secret-two-0123456789abcdef' | $C key rotate begin --name bn
$C key rotate promote --name bn
$C key rotate retire --name bn
$C key revoke --name pair --all
HSM_CUSTODY_PIN=wrong-pin $C sign-request --key bn --exchange binance --request $D/order.json >/dev/null 2>&1 || true
$C sign-request --key bn --exchange binance --request $D/order.json >/dev/null
$C audit reset --reason "fixture: a reset on the record"
$C sign-request --key bn --exchange binance --request $D/order.json >/dev/null
$C audit verify --accept-resets $D/audit.jsonl* 2>&1 | tail -3 || true
ls -la $D $D/tokens/*
