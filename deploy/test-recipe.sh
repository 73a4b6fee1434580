#!/usr/bin/env bash
# Runs deploy/README.md's install recipe as written, as root, on this (scratch) Debian 12 host,
# then what systemd would do with the unit, then a bot signs and an outsider is refused.
#
# The README's shell blocks are taken from the README itself and run with these substitutions
# only (each must match exactly once, so a README that drifts fails here):
#   - `cargo install ...`            -> install the CLI built here (CARGO_TARGET_DIR honoured)
#   - `softhsm2-util --init-token`   -> answers its two PIN prompts with --so-pin / --pin
#   - `systemd-ask-password ...`     -> prints the test PIN
#   - `systemctl ...` (last block)   -> not run: systemd is not PID 1 here; instead the unit's
#     LoadCredentialEncrypted=, RuntimeDirectory=, StateDirectory=, UMask= are done by hand and
#     its ExecStart= runs through setpriv as User=, Group=, the user's groups from the group
#     database plus SupplementaryGroups= (as systemd does), no new privileges, no capabilities.
# The bot user `alice` (named by the README) and the outsider `mallory` are made first.
# Everything made is removed at the end (HSM_CUSTODY_RECIPE_KEEP=1 keeps it for a look).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
README="$HERE/README.md"
UNIT="$HERE/systemd/hsm-custody-agent.service"
say() { echo "test-recipe: $*"; }
die() { echo "test-recipe: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it makes users, groups and system files)"
for tool in softhsm2-util systemd-creds setpriv runuser useradd python3; do
  command -v "$tool" >/dev/null || die "$tool missing (apt-get install softhsm2 systemd util-linux passwd python3)"
done
for user in hsm-custody alice mallory; do
  ! id "$user" >/dev/null 2>&1 || die "user $user exists: run this on a scratch host only"
done
! getent group trading-bots >/dev/null || die "group trading-bots exists: scratch host only"
! getent group 1500 >/dev/null || die "gid 1500 is taken (agent.toml names it): scratch host only"
for path in /etc/hsm-custody /etc/credstore.encrypted/hsm-custody-agent.pin /var/lib/hsm-custody \
  /run/hsm-custody /etc/systemd/system/hsm-custody-agent.service /usr/local/bin/hsm-custody; do
  [ ! -e "$path" ] || die "$path exists: scratch host only"
done
getent group softhsm >/dev/null || die "group softhsm missing (Debian's softhsm2 package makes it)"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build -q --manifest-path "$ROOT/Cargo.toml" --features cli --bin hsm-custody
BIN="$TARGET/debug/hsm-custody"
WORK=$(mktemp -d); chmod 0711 "$WORK"
TOKENS=/var/lib/softhsm/tokens
tokens_stat=$(stat -c '%u:%g %a' "$TOKENS")
tokens_before=$(ls -A "$TOKENS")
credstore_made=0; [ -d /etc/credstore.encrypted ] || credstore_made=1
agent_pid=""
creds_root_made=0
CREDS=/run/credentials/hsm-custody-agent.service

cleanup() {
  status=$?
  [ -z "$agent_pid" ] || { kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; }
  if [ "$status" != 0 ] && [ -f "$WORK/agent.log" ]; then echo "--- agent log"; cat "$WORK/agent.log"; fi
  if [ "${HSM_CUSTODY_RECIPE_KEEP:-}" = 1 ]; then say "kept everything (HSM_CUSTODY_RECIPE_KEEP=1)"; exit "$status"; fi
  for user in alice mallory hsm-custody; do userdel "$user" 2>/dev/null || true; done
  for group in alice mallory hsm-custody trading-bots; do groupdel "$group" 2>/dev/null || true; done
  rm -rf /etc/hsm-custody /etc/credstore.encrypted/hsm-custody-agent.pin /var/lib/hsm-custody \
    /run/hsm-custody /run/hsm-custody-provision "$CREDS" /etc/systemd/system/hsm-custody-agent.service \
    /usr/local/bin/hsm-custody "$WORK"
  [ "$credstore_made" = 0 ] || rmdir /etc/credstore.encrypted 2>/dev/null || true
  [ "$creds_root_made" = 0 ] || rmdir /run/credentials 2>/dev/null || true
  for entry in $(ls -A "$TOKENS" 2>/dev/null); do
    grep -qxF "$entry" <<<"$tokens_before" || rm -rf "${TOKENS:?}/$entry"
  done
  chown "${tokens_stat%% *}" "$TOKENS"; chmod "${tokens_stat##* }" "$TOKENS"
  exit "$status"
}
trap cleanup EXIT

PIN="recipe-pin-$$"; SO_PIN="recipe-so-pin-$$"
SECRET="NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
export PIN SO_PIN

# The README's ```sh blocks, in order: 1 install, 2 provision a key, 3 start (systemctl).
python3 - "$README" "$WORK" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
if len(blocks) != 3:
    sys.exit(f"expected 3 sh blocks in deploy/README.md, found {len(blocks)}")
install, provision, start = blocks
def sub(text, old, new):
    if text.count(old) != 1:
        sys.exit(f"deploy/README.md: {old!r} found {text.count(old)} times, expected once")
    return text.replace(old, new)
# The line that starts with `cargo install` (whatever its flags) installs the CLI built here.
cargo = [l for l in install.splitlines() if l.startswith("cargo install ")]
if len(cargo) != 1:
    sys.exit("deploy/README.md: no single `cargo install` line")
install = sub(install, cargo[0], 'install -m 0755 "$BIN" /usr/local/bin/hsm-custody')
install = sub(install, "softhsm2-util --init-token --free --label trading",
              'softhsm2-util --init-token --free --label trading --so-pin "$SO_PIN" --pin "$PIN"')
install = sub(install, 'systemd-ask-password -n "Token user PIN:"', 'printf %s "$PIN"')
if not start.strip().startswith("systemctl "):
    sys.exit("deploy/README.md: the third block should only start the unit with systemctl")
open(f"{sys.argv[2]}/install.sh", "w").write(install)
open(f"{sys.argv[2]}/provision.sh", "w").write(provision)
EOF

say "users: bot alice and outsider mallory (the README's usermod needs alice)"
useradd --no-create-home --shell /usr/sbin/nologin alice
useradd --no-create-home --shell /usr/sbin/nologin mallory

say "README install block"
(cd "$ROOT" && BIN="$BIN" bash -euo pipefail "$WORK/install.sh")
say "README provisioning block (the secret on stdin)"
(cd "$ROOT" && printf '%s' "$SECRET" | bash -euo pipefail "$WORK/provision.sh")

# What systemd does with the unit, from the unit's own lines.
unit() { sed -n "s/^$1=//p" "$UNIT"; }
user=$(unit User); group=$(unit Group)
groups=$( (id -G "$user" | tr ' ' '\n'; for g in $(unit SupplementaryGroups); do getent group "$g" | cut -d: -f3; done) | sort -un | paste -sd,)
exec_start=$(unit ExecStart)
[ "$(unit UMask)" = 0077 ] || die "the unit's UMask changed: update this script"
cred=$(unit LoadCredentialEncrypted)
[ -d /run/credentials ] || { creds_root_made=1; install -d -m 0755 /run/credentials; }
install -d -m 0500 -o "$user" -g "$group" "$CREDS"
systemd-creds decrypt --name="${cred%%:*}" "${cred#*:}" "$CREDS/${cred%%:*}"
chown "$user:$group" "$CREDS/${cred%%:*}"; chmod 0400 "$CREDS/${cred%%:*}"
install -d -m "$(unit RuntimeDirectoryMode)" -o "$user" -g "$group" "/run/$(unit RuntimeDirectory)"
install -d -m "$(unit StateDirectoryMode)" -o "$user" -g "$group" "/var/lib/$(unit StateDirectory)"
# The unit's user and groups, clean environment, umask of the unit; every step execs, so the
# pid of a background start is the agent's.
as_unit=(setpriv --reuid="$user" --regid="$group" --groups="$groups" --no-new-privs --inh-caps=-all
  --bounding-set=-all -- env -i PATH=/usr/local/bin:/usr/bin:/bin
  bash -c 'umask 0077 && exec "$@"' unit)
read -r -a argv <<<"${exec_start//%d/$CREDS}"   # split into words, as systemd does
say "ExecStart as $user (groups $groups): ${argv[*]}"
"${as_unit[@]}" "${argv[@]}" 2>"$WORK/agent.log" &
agent_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/agent.log" && break; sleep 0.1; done
grep -q "listening on /run/hsm-custody/agent.sock" "$WORK/agent.log" || die "the agent did not start"

client() {  # client USER: signs one Binance order query with binance-main through the socket
  setpriv --reuid="$1" --regid="$1" --init-groups -- env -i PYTHONPATH="$ROOT/python" \
    HSM_CUSTODY_AGENT_SOCKET=/run/hsm-custody/agent.sock python3 -c '
import hsm_custody, sys
try:
    with hsm_custody.AgentClient() as c:
        s = c.sign("binance-main", "binance", {"method": "GET", "path": "/api/v3/order",
                   "query": "symbol=BTCUSDT&orderId=1"})
        print("SIGNED", s.path_and_query())
except hsm_custody.AgentError as e:
    print("REFUSED", type(e).__name__, e)
'
}
say "alice (trading-bots as a supplementary group only) signs"
out=$(client alice)
echo "  $out"
# The signature is HMAC-SHA256 of the query the agent sent back (timestamp added by the crate).
python3 - "$SECRET" "$out" <<'EOF2' || die "alice: not a correct Binance signature: $out"
import hashlib, hmac, re, sys
m = re.fullmatch(r"SIGNED /api/v3/order\?(symbol=BTCUSDT&orderId=1&timestamp=\d+)&signature=([0-9a-f]{64})", sys.argv[2])
assert m, sys.argv[2]
assert hmac.new(sys.argv[1].encode(), m[1].encode(), hashlib.sha256).hexdigest() == m[2]
EOF2
id -gn alice | grep -qvx trading-bots || die "alice's primary group is trading-bots: not the case tested"

say "mallory (not in trading-bots) is refused"
out=$(client mallory)
echo "  $out"
case "$out" in "REFUSED AgentUnavailable"*"ermission denied"*) ;; *) die "mallory was not refused at the socket";; esac

say "the agent stops on SIGTERM with status 0"
kill -TERM "$agent_pid"; status=0; wait "$agent_pid" || status=$?; agent_pid=""
[ "$status" = 0 ] || die "agent exit status $status on SIGTERM"

prevent=" $(unit RestartPreventExitStatus) "
say "exit codes against the unit's RestartPreventExitStatus=$prevent"
printf '%s' "wrong-$PIN" > "$WORK/wrong.pin"; chown "$user" "$WORK/wrong.pin"; chmod 0400 "$WORK/wrong.pin"
status=0; "${as_unit[@]}" "${argv[@]/$CREDS\/pin/$WORK/wrong.pin}" 2>"$WORK/wrong.log" || status=$?
[ "$status" = 3 ] && [[ "$prevent" == *" 3 "* ]] || { cat "$WORK/wrong.log"; die "wrong PIN: exit $status, or 3 not in the unit's list"; }
sed 's/^\[pool\]$/[pool]\nsizee = 8/' /etc/hsm-custody/agent.toml > "$WORK/broken.toml"; chmod 0644 "$WORK/broken.toml"
status=0; "${as_unit[@]}" "${argv[@]/\/etc\/hsm-custody\/agent.toml/$WORK/broken.toml}" 2>"$WORK/broken.log" || status=$?
[ "$status" = 2 ] && [[ "$prevent" == *" 2 "* ]] || { cat "$WORK/broken.log"; die "bad config: exit $status, or 2 not in the unit's list"; }
say "without group softhsm the agent names the file it cannot read"
softhsm_gid=$(getent group softhsm | cut -d: -f3)
no_softhsm=$(tr , '\n' <<<"$groups" | grep -vx "$softhsm_gid" | paste -sd,)
status=0
setpriv --reuid="$user" --regid="$group" --groups="$no_softhsm" --no-new-privs --inh-caps=-all \
  --bounding-set=-all -- env -i PATH=/usr/local/bin:/usr/bin:/bin "${argv[@]}" 2>"$WORK/nogroup.log" || status=$?
grep -q "cannot read default SOFTHSM2_CONF \`/etc/softhsm/softhsm2.conf\`" "$WORK/nogroup.log" \
  || { cat "$WORK/nogroup.log"; die "without softhsm: exit $status, the file not named"; }
sed 's/^/  /' "$WORK/nogroup.log"
say "PASS: README recipe installs, alice signs, mallory is refused, exit codes match the unit"
