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
# test builds too. The release side (models, then the bench build) runs in the
# background, niced, while the tests and the scenario gate run: those mostly wait
# on store processes, and cargo locks target/debug and target/release separately.
# Its output is printed when it is waited for; its failure fails the script.
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
background=""
cleanup() {
    if [[ -n $background ]]; then kill -- "-$background" 2>/dev/null || true; fi
    rm -rf "$logs"
}
trap cleanup EXIT

section "format"
cargo fmt --all -- --check

section "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

if ! $quick; then
    section "docs"
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
fi

# Also builds both binaries into target/debug, which the scenario gate runs.
section "tests: build"
cargo test --workspace --locked --no-run

if ! $quick; then
    # The release side: model checks, then the benches' build (see the header).
    # Its own process group (setsid), so that an early exit stops all of it.
    setsid nice -n 10 bash -c 'bash ci/models.sh && cargo bench -p clobber-benches --locked --no-run' \
        >"$logs/models.log" 2>&1 &
    background=$!
    echo "(models and the bench build run in the background: $logs/models.log)"
fi

# Four test threads on two cores: most integration tests wait on store processes
# and fsyncs (the harness binary: 242 s with two threads, 154 s with four, idle).
# RUST_TEST_THREADS, if set, still wins.
section "tests: run"
cargo test --workspace --locked -- --test-threads "${RUST_TEST_THREADS:-4}" 2>&1 | tee "$logs/tests.log"

if $quick; then
    printf '\nquick checks passed in %ss (the full run adds docs, models, gate, benches)\n' "$(( $(date +%s) - start ))"
    exit 0
fi

section "scenario gate"
CLOBBER=target/debug/clobber bash ci/gate.sh

section "models (loom, shuttle), run in the background since the tests began"
models_ok=true
wait "$background" || models_ok=false
background=""
cat "$logs/models.log"
$models_ok || { echo "models: FAILED (output above)" >&2; exit 1; }

section "bench smoke"
cargo bench -p clobber-benches --locked -- --test

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - start ))"
# One closing line over every Rust test that ran (unit, integration, loom, shuttle).
count() { grep -h 'test result:' "$logs"/*.log | grep -oE "[0-9]+ $1" | awk '{ s += $1 } END { print s + 0 }'; }
echo "tests: $(count passed) passed, $(count failed) failed"
