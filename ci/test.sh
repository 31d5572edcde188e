#!/usr/bin/env bash
# Every test of the project, in the order a failure is cheapest to see:
# format, lints, docs, unit and integration tests, model checks, scenario gate,
# bench smoke. Run from anywhere: `bash ci/test.sh`.
#
#   bash ci/test.sh           everything (what CI runs)
#   bash ci/test.sh --quick   the inner loop: format, clippy, unit and integration
#                             tests (no docs, models, scenario gate or benches)
#
# Each dependency tree is built once per profile, and every later step reuses it:
# `cargo test` builds the binaries the scenario gate runs (test profile), and the
# loom/shuttle models are cargo features built in release, where the bench smoke
# test builds too.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
quick=false
case "${1:-}" in
    --quick) quick=true ;;
    "") ;;
    *) echo "usage: bash ci/test.sh [--quick]" >&2; exit 3 ;;
esac

section() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)
logs=$(mktemp -d "${TMPDIR:-/tmp}/clobber-ci.XXXXXX")
trap 'rm -rf "$logs"' EXIT

section "format"
cargo fmt --all -- --check

section "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if ! $quick; then
    section "docs"
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
fi

# Also builds both binaries into target/debug, which the scenario gate runs.
section "tests"
cargo test --workspace --locked 2>&1 | tee "$logs/tests.log"

if $quick; then
    printf '\nquick checks passed in %ss (the full run adds docs, models, gate, benches)\n' "$(( $(date +%s) - start ))"
    exit 0
fi

section "models (loom, shuttle)"
bash ci/models.sh 2>&1 | tee "$logs/models.log"

section "scenario gate"
CLOBBER=target/debug/clobber bash ci/gate.sh

section "bench smoke"
cargo bench -p clobber-benches --locked -- --test

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
# One closing line over every Rust test that ran (unit, integration, loom, shuttle).
count() { grep -h 'test result:' "$logs"/*.log | grep -oE "[0-9]+ $1" | awk '{ s += $1 } END { print s + 0 }'; }
echo "tests: $(count passed) passed, $(count failed) failed"
