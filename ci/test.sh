#!/usr/bin/env bash
# Every test of the project, in the order a failure is cheapest to see:
# format, lints, docs, unit and integration tests, model checks, scenario gate,
# bench smoke. Run from anywhere: `bash ci/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

section() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)
logs=$(mktemp -d "${TMPDIR:-/tmp}/clobber-ci.XXXXXX")
trap 'rm -rf "$logs"' EXIT

section "format"
cargo fmt --all -- --check

section "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

section "build"
cargo build --workspace --locked

section "tests"
cargo test --workspace --locked 2>&1 | tee "$logs/tests.log"

section "models (loom, shuttle)"
bash ci/models.sh 2>&1 | tee "$logs/models.log"

section "scenario gate"
bash ci/gate.sh

section "bench smoke"
cargo bench -p clobber-benches --locked -- --test

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
# One closing line over every Rust test that ran (unit, integration, loom, shuttle).
count() { grep -h 'test result:' "$logs"/*.log | grep -oE "[0-9]+ $1" | awk '{ s += $1 } END { print s + 0 }'; }
echo "tests: $(count passed) passed, $(count failed) failed"
