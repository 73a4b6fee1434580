#!/usr/bin/env bash
# Backend x feature table, generated from integration test results (issue 11).
#
#   scripts/backend-table.sh          # from the saved results in $TARGET/backend-results/*.log
#   scripts/backend-table.sh --run    # first runs the suite on every backend and saves them
#
# Writes the table to stdout and into README.md between <!-- backend-table:begin --> and
# <!-- backend-table:end -->. Each feature maps to named tests (FEATURES below): "yes" when all of
# them passed, "no" with the first failure's reason when one failed, "not run" when none ran
# (skipped: backends/<backend>.skip names why). The attack-suite and custody-grade cells quote
# what the tests printed (`backend-table:` lines, captured with --show-output).
#
# --run takes about 1 min for SoftHSM2, 1 min for Kryoptic (plus its one-time 4 min build), 10 s
# for NSS softokn and 10 s for the TPM (backends/tpm2-check.sh, whose checks are CLI runs and
# one ignored test, mapped by their names) on 2 cores. BACKENDS="softhsm kryoptic" limits the set.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# Build outputs and saved results live in cargo's target directory ($CARGO_TARGET_DIR if set).
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/backend-results
BACKENDS=${BACKENDS:-softhsm kryoptic nss tpm2}
mkdir -p "$OUT"

skips() { # --skip arguments from backends/<backend>.skip
  local f="backends/$1.skip"
  [ -e "$f" ] || return 0
  while IFS=$'\t' read -r name _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    printf -- '--skip\n%s\n' "$name"
  done < "$f"
}

if [ "${1:-}" = --run ]; then
  for b in $BACKENDS; do
    echo "backend-table: running the suite on $b" >&2
    mapfile -t skip_args < <(skips "$b")
    (
      case "$b" in
        softhsm) ./softhsm-setup/setup.sh >/dev/null ;;
        kryoptic) eval "$(./backends/kryoptic.sh)" ;;
        nss) eval "$(./backends/nss.sh "$(mktemp -d /tmp/hsm-custody-nss.XXXXXX)" 2>/dev/null)" ;;
        tpm2) ./backends/tpm2-check.sh > "$OUT/tpm2.log" 2>&1 || true; exit 0 ;;
      esac
      export HSM_CUSTODY_TEST_BACKEND=$b
      cargo test --test integration -- --show-output "${skip_args[@]}" > "$OUT/$b.log" 2>&1 || true
    )
  done
fi

python3 - "$OUT" $BACKENDS <<'PY'
import os, re, sys

out, backends = sys.argv[1], sys.argv[2:]
NAMES = {"softhsm": "SoftHSM2 2.6.1", "kryoptic": "Kryoptic 1.5.4", "nss": "NSS softokn 3.87",
         "tpm2": "TPM 2.0 (swtpm + tpm2-pkcs11 1.9)"}
# TPM: feature -> (start of a backends/tpm2-check.sh check name, what its passing means)
TPM = [
    ("import", "key import", "no, by design of the module (`key adopt` a `tpm2_ptool` key instead)"),
    ("HMAC-SHA256", "sign-request binance", "yes (adopted key)"),
    ("HMAC-SHA384", None, "not run (needs a key imported for that hash)"),
    ("HMAC-SHA512", None, "not run (needs a key imported for that hash)"),
    ("Ed25519", "key generate --type ed25519", "no: no CKM_EDDSA"),
    ("P-256", "key generate --type p256", "no: the module forces CKA_ENCRYPT/DECRYPT on pairs"),
    ("RSA-2048", None, "not run (refused like P-256, docs/tpm2.md)"),
    ("rotation", None, "not run (rotate by adopting a new key)"),
    ("attack suite", "attack list on the TPM key", None),
    ("custody grade", None, "not run: the connect probe can make no throwaway key there"),
]

def tpm_row(path):
    text = open(path, errors="replace").read()
    checks = re.findall(r"^  (ok|FAIL)  +(.*)$", text, re.M)
    cells = []
    for feature, prefix, meaning in TPM:
        hit = [(st, t) for st, t in checks if prefix and t.startswith(prefix)]
        if prefix is None:
            cell = meaning
        elif not hit:
            cell = "not run"
        elif hit[0][0] == "FAIL":
            cell = "check failed: " + hit[0][1][:60]
        elif meaning is None:
            m = re.search(r"backend-table: attack-suite (.*)", hit[0][1])
            cell = "pass: " + (m.group(1) if m else "")
        else:
            cell = meaning
        cells.append(cell.replace("|", "\\|"))
    m = re.search(r"tpm2-check: (\d+) checks passed", text)
    return cells + [f"tpm2-check: {m.group(1)} checks passed" if m else "tpm2-check failed"]
# feature -> tests that must pass for "yes"
FEATURES = [
    ("import", ["core::import_and_sign_match_software_for_all_hmacs",
                "core::duplicate_name_is_refused_and_the_original_survives",
                "bad_input::empty_and_undecodable_secrets_are_invalid_input_and_leave_nothing"]),
    ("HMAC-SHA256", ["core::rfc4231_test_case_2_in_the_token",
                     "exchanges::binance_spot_documented_vectors"]),
    ("HMAC-SHA384", ["core::rfc4231_test_case_2_in_the_token",
                     "exchanges::bitfinex_independent_vectors", "exchanges::gemini_documented_vector"]),
    ("HMAC-SHA512", ["core::rfc4231_test_case_2_in_the_token",
                     "exchanges::kraken_documented_vector",
                     "exchanges::gate_documented_vectors_and_encoded_query"]),
    ("Ed25519", ["lifecycle::rfc8032_test_1_with_an_imported_ed25519_key",
                 "exchanges_asym::exchanges_rfc8032_key_gives_known_answers_through_the_binance_ed25519_path"]),
    ("P-256", ["exchanges_asym::exchanges_coinbase_advanced_jwt_es256_and_eddsa_verify_with_the_exported_key"]),
    ("RSA-2048", ["exchanges_asym::exchanges_bybit_rsa_signature_verifies_with_the_exported_pem"]),
    ("rotation", ["lifecycle::full_rotation_cycle", "cli_lifecycle::rotate_and_revoke_through_the_cli"]),
    ("attack suite", ["attacks::suite::every_extraction_attempt_is_refused_on_every_crate_key",
                      "attacks::suite::the_attack_suite_detects_a_weak_key"]),
    ("custody grade", ["core::custody_probe_at_connect_matches_the_backend"]),
]

def reason(msg):
    m = re.search(r'function: "(\w+)", rv: "(\w+)"', msg)
    if m:
        return f"{m.group(1)} -> {m.group(2)}"
    # Typed since issue 27: `Pkcs11 { function: CreateObject, rv: GeneralError, .. }`.
    m = re.search(r'function: (\w+), rv: (\w+)', msg)
    if m:
        return f"C_{m.group(1)} -> {m.group(2)}"
    m = re.search(r"PKCS#11 (\w+) failed with (\w+)", msg)
    if m:
        return f"{m.group(1)} -> {m.group(2)}"
    m = re.search(r'mechanism: "(CKM_\w+)', msg) or re.search(r"support (CKM_\w+)", msg)
    if m:
        return f"no {m.group(1)}"
    if "NotCustodyGrade" in msg or "NOT custody-grade" in msg:
        return "refused: not custody-grade"
    return msg.strip()[:70]

def parse(path):
    status, why, lines = {}, {}, {}
    text = open(path, errors="replace").read()
    for m in re.finditer(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", text, re.M):
        status[m.group(1)] = m.group(2)
    for m in re.finditer(r"^thread '([^']+)'[^\n]*panicked at [^\n]*\n([^\n]*)", text, re.M):
        why.setdefault(m.group(1), reason(m.group(2)))
    for m in re.finditer(r"^backend-table: (\S+) (.*)$", text, re.M):
        lines.setdefault(m.group(1), m.group(2).strip())
    total = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored; \d+ measured; (\d+) filtered out", text)
    return status, why, lines, total

rows = []
for b in backends:
    path = os.path.join(out, f"{b}.log")
    if not os.path.exists(path):
        print(f"backend-table: no results for {b} ({path}); run with --run", file=sys.stderr)
        continue
    if b == "tpm2":
        rows.append([NAMES[b]] + tpm_row(path))
        continue
    status, why, lines, total = parse(path)
    cells = []
    for feature, tests in FEATURES:
        ran = [t for t in tests if t in status]
        failed = [t for t in ran if status[t] == "FAILED"]
        if not ran:
            cell = "not run"
        elif failed:
            cell = "no: " + why.get(failed[0], "failed")
        elif len(ran) < len(tests):
            cell = "partly run"
        else:
            cell = "yes"
        if feature == "attack suite" and not failed and ran:
            cell = "pass: " + lines.get("attack-suite", "")
        if feature == "custody grade" and not failed and ran:
            grade = lines.get("custody-grade", "unknown")
            cell = "yes" if grade == "yes" else (
                "**NO**: lets non-extractable keys out; connect refused without "
                "`danger_accept_non_custody_module`" if grade == "NO" else grade)
        cells.append(cell.replace("|", "\\|"))
    suite = (f"{total.group(1)} passed, {total.group(2)} failed, {total.group(4)} skipped"
             if total else "no summary")
    rows.append([NAMES.get(b, b)] + cells + [suite])

head = ["backend"] + [f for f, _ in FEATURES] + ["integration suite"]
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
table += ["| " + " | ".join(r) + " |" for r in rows]
block = "\n".join(
    ["**Backends x features**, generated by `scripts/backend-table.sh --run` from the integration",
     "suite's results on each backend (`target/backend-results/`); features map to named tests in",
     "the script. Skipped tests and the reasons: `backends/*.skip`, [docs/backends.md](docs/backends.md).",
     "The TPM row comes from `backends/tpm2-check.sh` ([docs/tpm2.md](docs/tpm2.md)).", ""] + table)
print(block)
readme = open("README.md").read()
begin, end = "<!-- backend-table:begin -->", "<!-- backend-table:end -->"
if begin in readme and end in readme:
    pre, rest = readme.split(begin, 1)
    _, post = rest.split(end, 1)
    open("README.md", "w").write(pre + begin + "\n" + block + "\n" + end + post)
    print("backend-table: README.md updated", file=sys.stderr)
else:
    print("backend-table: README.md has no backend-table markers; not written", file=sys.stderr)
PY
