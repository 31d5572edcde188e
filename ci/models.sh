#!/usr/bin/env bash
# Model checks of the store's locking protocol (see store/MODELS.md): loom explores
# every interleaving of up to 4 processes, shuttle samples schedules of 8-32; both
# run the production protocol engine on the inode-level model file system, and both
# must find every faulty protocol. The checkers are cargo features of clobber-store,
# built in release in the shared target directory: every other dependency is the
# release build's, so only clobber-store and the checker crate are compiled here.
#
#   bash ci/models.sh                          # ~3-4 min on 2 cores, builds included
#   LOOM_MAX_PREEMPTIONS=3 bash ci/models.sh   # bound every loom model (see MODELS.md)
#   CLOBBER_SHUTTLE_ITERATIONS=5000 CLOBBER_SHUTTLE_SEED=42 bash ci/models.sh
#
# Prints one line per model: processes, bound or scheduler, iterations, time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never RUST_BACKTRACE=0

log=$(mktemp -d "${TMPDIR:-/tmp}/clobber-models.XXXXXX")
trap 'rm -rf "$log"' EXIT
start=$(date +%s)

run() { # name feature test
    local name=$1 feature=$2 test=$3 t0 t1
    t0=$(date +%s)
    echo "-- $name: build (--features $feature, release)"
    cargo test -p clobber-store --release --locked --features "$feature" --test "$test" --no-run
    t1=$(date +%s)
    echo "-- $name: built in $((t1 - t0))s; running"
    if ! cargo test -p clobber-store --release --locked --features "$feature" \
        --test "$test" -- --nocapture --test-threads=1 \
        >"$log/$name.out" 2>&1; then
        cat "$log/$name.out"
        echo "models: $name FAILED" >&2
        exit 1
    fi
    grep -E '^test result' "$log/$name.out"
    echo "-- $name: ran in $(($(date +%s) - t1))s"
}

run loom loom loom_protocol
run shuttle shuttle shuttle_protocol

echo
echo "== per model (VIOLATION is expected, and asserted, for every faulty protocol)"
grep -ho 'MODEL .*' "$log/loom.out" "$log/shuttle.out" | sed 's/^MODEL //'
grep -ho -E '(loom|shuttle \(\w+\)) found .*' "$log/loom.out" "$log/shuttle.out"
echo
echo "models passed in $(($(date +%s) - start))s"
