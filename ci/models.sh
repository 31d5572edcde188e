#!/usr/bin/env bash
# Model checks of the store's locking protocol (see store/MODELS.md): loom explores
# every interleaving of up to 4 processes, shuttle samples schedules of 8-32; both
# run the production protocol engine on the inode-level model file system, and both
# must find every faulty protocol. Each build has its own target directory (other
# cfg flags would otherwise rebuild the main one).
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

run() { # name cfg target-dir test
    local name=$1 cfg=$2 dir=$3 test=$4 t0 t1
    t0=$(date +%s)
    echo "-- $name: build (RUSTFLAGS=\"--cfg $cfg\", release, $dir)"
    RUSTFLAGS="--cfg $cfg" cargo test -p clobber-store --release --locked \
        --target-dir "$dir" --test "$test" --no-run
    t1=$(date +%s)
    echo "-- $name: built in $((t1 - t0))s; running"
    if ! RUSTFLAGS="--cfg $cfg" cargo test -p clobber-store --release --locked \
        --target-dir "$dir" --test "$test" -- --nocapture --test-threads=1 \
        >"$log/$name.out" 2>&1; then
        cat "$log/$name.out"
        echo "models: $name FAILED" >&2
        exit 1
    fi
    grep -E '^test result' "$log/$name.out"
    echo "-- $name: ran in $(($(date +%s) - t1))s"
}

run loom loom target-loom loom_protocol
run shuttle shuttle target-shuttle shuttle_protocol

echo
echo "== per model (VIOLATION is expected, and asserted, for every faulty protocol)"
grep -ho 'MODEL .*' "$log/loom.out" "$log/shuttle.out" | sed 's/^MODEL //'
grep -ho -E '(loom|shuttle \(\w+\)) found .*' "$log/loom.out" "$log/shuttle.out"
echo
echo "models passed in $(($(date +%s) - start))s"
