#!/usr/bin/env bash
# Bounded fuzzing run for CI (issue 6): builds the cargo-fuzz targets and runs each for
# FUZZ_SECONDS (default 30) seconds, starting from the committed seed corpus. Exits non-zero on a
# crash (the input is left in fuzz/artifacts/<target>/). Idempotent; new corpus entries go to a
# temporary directory, so the committed corpus is never modified.
#
#   bash fuzz/ci.sh                       # every target, 30 s each
#   FUZZ_SECONDS=10 bash fuzz/ci.sh       # shorter
#   bash fuzz/ci.sh config_parse          # one target
#
# Stable Rust only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags. No sanitizer by
# default (FUZZ_SANITIZER=address to try ASan): the code under test is safe Rust, and what we
# look for is panics.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(exchange_canonical config_parse)
fi

export RUSTC_BOOTSTRAP=1
# The fuzz crate's own target directory unless the caller chose one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/ci.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

for target in "${targets[@]}"; do
    cargo fuzz build -s "$sanitizer" "$target"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

status=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "$here/artifacts/$target"
    echo "fuzz/ci.sh: $target for ${seconds}s" >&2
    # The first corpus directory receives new inputs; the committed one is only read.
    if ! cargo fuzz run -s "$sanitizer" "$target" "$scratch/$target" "$here/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "fuzz/ci.sh: $target FAILED; reproduce with:" >&2
        echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer $target fuzz/artifacts/$target/<crash-file>" >&2
        status=1
    fi
done
exit "$status"
