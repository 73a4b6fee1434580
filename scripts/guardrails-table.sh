#!/usr/bin/env bash
# Regenerates the exchange table of docs/guardrails.md from the registry
# (hsm_custody::exchanges::ALL); the unit test `the_guardrails_doc_shows_the_registry` fails
# when they differ.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
table=$(cargo test -q --lib the_guardrails_doc_shows_the_registry -- --nocapture 2>/dev/null |
  sed -n '/^| exchange id/,/^[^|]/p' | grep '^|' || true)
[ -n "$table" ] || { echo "the table is up to date"; exit 0; }
python3 - "$table" <<'PY'
import sys
p = "docs/guardrails.md"
s = open(p).read()
b, e = "<!-- exchange-table:begin -->\n", "<!-- exchange-table:end -->"
i, j = s.index(b) + len(b), s.index(e)
open(p, "w").write(s[:i] + sys.argv[1] + "\n" + s[j:])
PY
echo "docs/guardrails.md updated"
