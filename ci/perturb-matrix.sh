#!/usr/bin/env bash
# Catch rate and time to detect, without and with `--perturb`, side by side.
#
# For every store x scenario, RUNS runs per schedule (seeds SEED_BASE+1..), run
# interleaved (seed 1 under each schedule, then seed 2, ...), one row:
# how many runs caught a violation (exit 1), the median time to detect over all the
# runs (a missed run counts as slower than any catch: `never`, or `>t` when the
# middle pair is a catch and a miss) and the largest time to detect of a catch.
# Stores named `reference` or containing `correct` must PASS (exit 0) every run:
# for them the row counts passes (a false alarm would show as a missing pass).
# Each row ends with the 1-minute load average when it finished. Closing lines:
# catches per second of run time, per schedule (what picks the default). With
# STRICT=1 the script fails if any perturbed run of a faulty store is not caught, or
# any run of a correct store does not pass. With FLOOR=1 each caught cell also gives
# the median *floor*: the earliest moment the run's history could have proven any
# lost write (the first get that started after an acknowledged set of its key
# ended), so a time to detect can be read against what the scenario allowed
# (needs python3).
#
#   ci/perturb-matrix.sh                                    # the README's matrix
#   RUNS=3 STRICT=1 SCENARIOS=parallel-churn ci/perturb-matrix.sh   # a CI smoke
#
# Knobs (environment): RUNS (20), SCHEDULES ("off pct"; any --perturb value, `off`
# = no perturbation), SCENARIOS ("parallel-churn lock-storm"), STORES (every
# reference:<fault>, plus the reference), SEED_BASE (5000), CLOBBER (binary),
# MAX_MS (stop each run after this long: --max-duration-ms; default: the scenario's),
# CORRECT (more store names that must pass, e.g. "crudini sqlite3"), FLOOR (1: see
# above).
set -uo pipefail
cd "$(dirname "$0")/.."

CLOBBER=${CLOBBER:-}
if [[ -z "$CLOBBER" ]]; then
  for c in $(ls -t target/release/clobber target/debug/clobber 2>/dev/null); do
    if [[ -x "$c" && -x "$(dirname "$c")/clobber-store" ]]; then CLOBBER=$c; break; fi
  done
fi
[[ -x "$CLOBBER" ]] || { echo "perturb-matrix: no clobber binary; cargo build --release --workspace" >&2; exit 3; }
RUNS=${RUNS:-20}
SCHEDULES=${SCHEDULES:-off pct}
SCENARIOS=${SCENARIOS:-parallel-churn lock-storm}
STORES=${STORES:-reference:stale-snapshot reference:no-lock reference:in-place reference:unlink-lock reference:lock-data-file reference:unlink-lock-polling reference}
SEED_BASE=${SEED_BASE:-5000}
STRICT=${STRICT:-0}
LOG=$(mktemp -d "${TMPDIR:-/tmp}/clobber-perturb-matrix.XXXXXX")
declare -A CATCHES WALL
bad=0

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { sort -n | tail -1 | grep . || echo -; }
# The median over every run of a cell: the caught runs' times, then one `never` per
# missed run (a miss is slower than any catch), so misses are not dropped from it.
# An even count whose middle pair is (t, never) gives ">t".
median_all() { # MISSES, times on stdin
  { sort -n; for _ in $(seq 1 "$1"); do echo never; done; } | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) { print a[(NR + 1) / 2]; exit }
    lo = a[NR / 2]; hi = a[NR / 2 + 1]
    if (lo == "never") print "never"; else if (hi == "never") print ">" lo; else printf "%.2f\n", (lo + hi) / 2 }'
}
# A figure with its unit; `never`, `-` as they are.
secs() { [[ $1 =~ [0-9]$ ]] && echo "${1}s" || echo "$1"; }
# Seconds from the history's first invocation to the end of the first get that
# began after an acknowledged set of its key had ended.
floor() {
  python3 - "$1" <<'PY'
import json, sys
ops = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
t0 = min(o["invoke_ns"] for o in ops)
acked = {}
for o in ops:
    if o["op"] == "set" and o.get("outcome") == "ok" and o.get("complete_ns"):
        acked[o["key"]] = min(acked.get(o["key"], o["complete_ns"]), o["complete_ns"])
ends = [o["complete_ns"] for o in ops if o["op"] == "get" and o.get("complete_ns")
        and o.get("key") in acked and o["invoke_ns"] > acked[o["key"]]]
print(f"{(min(ends) - t0) / 1e9:.2f}" if ends else "")
PY
}

echo "perturb-matrix: $CLOBBER, $RUNS runs per cell, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
header=$(printf '%-34s %-15s' store scenario)
for s in $SCHEDULES; do header+=$(printf ' | %-27s' "$s: caught median max"); done
echo "$header"
for store in $STORES; do
  correct=0
  [[ $store == reference || $store == *correct* ]] && correct=1
  for c in ${CORRECT:-}; do [[ $(basename "$store" .toml) == "$c" ]] && correct=1; done
  for scen in $SCENARIOS; do
    row=$(printf '%-34s %-15s' "$(basename "$store" .toml)" "$scen")
    declare -A OK=() TIMES=() FLOORS=() MISSED=()
    # Interleaved: seed 1 under every schedule, then seed 2, ... so that a change in
    # the machine's load during the cell weighs on every column alike.
    for i in $(seq 1 "$RUNS"); do
      for sched in $SCHEDULES; do
        out="$LOG/$(basename "$store" .toml)-$scen-$sched-$i.txt"
        args=(run "scenarios/$scen.toml" --store "$store" --mode cli --seed $((SEED_BASE + i)) --quiet)
        [[ $sched != off ]] && args+=(--perturb "$sched")
        [[ -n ${MAX_MS:-} ]] && args+=(--max-duration-ms "$MAX_MS")
        [[ ${FLOOR:-0} == 1 ]] && args+=(--history "$out.history.jsonl")
        t0=$(date +%s%N)
        "$CLOBBER" "${args[@]}" >"$out" 2>&1
        code=$?
        WALL[$sched]=$(( ${WALL[$sched]:-0} + ($(date +%s%N) - t0) / 1000000 ))
        if [[ $correct == 1 ]]; then
          if [[ $code == 0 ]]; then OK[$sched]=$(( ${OK[$sched]:-0} + 1 )); else
            echo "  FALSE ALARM or error (exit $code): $store $scen $sched seed $((SEED_BASE + i)); log $out" >&2; bad=1; fi
        elif [[ $code == 1 ]]; then
          OK[$sched]=$(( ${OK[$sched]:-0} + 1 ))
          TIMES[$sched]+="$(grep -oP 'time to detect: \K[0-9.]+' "$out" | head -1) "
          CATCHES[$sched]=$(( ${CATCHES[$sched]:-0} + 1 ))
          [[ ${FLOOR:-0} == 1 ]] && FLOORS[$sched]+="$(floor "$out.history.jsonl") "
        else
          MISSED[$sched]=$(( ${MISSED[$sched]:-0} + 1 ))
        fi
        if [[ $correct == 0 && $code != 1 && $sched != off && $STRICT == 1 ]]; then
          echo "  MISSED (exit $code): $store $scen $sched seed $((SEED_BASE + i)); log $out" >&2; bad=1
        fi
      done
    done
    for sched in $SCHEDULES; do
      ok=${OK[$sched]:-0}
      if [[ $correct == 1 ]]; then
        cell="passed $ok/$RUNS"
      else
        med=$(printf '%s\n' ${TIMES[$sched]:-} | grep . | median_all "${MISSED[$sched]:-0}")
        mx=$(printf '%s\n' ${TIMES[$sched]:-} | grep . | maxof)
        cell="$ok/$RUNS $(secs "$med") $(secs "$mx")"
        if [[ ${FLOOR:-0} == 1 ]]; then
          cell+=" floor $(printf '%s\n' ${FLOORS[$sched]:-} | grep . | median)s"
        fi
      fi
      row+=$(printf ' | %-27s' "$cell")
    done
    unset OK TIMES FLOORS MISSED
    row+="  (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$row"
  done
done
for sched in $SCHEDULES; do
  w=${WALL[$sched]:-0}
  awk -v s="$sched" -v c="${CATCHES[$sched]:-0}" -v w="$w" \
    'BEGIN { printf "%s: %d catches in %.0f s of runs (%.2f catches/s)\n", s, c, w / 1000, (w > 0 ? c / (w / 1000) : 0) }'
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $bad != 0 ]]; then echo "perturb-matrix: FAILED (logs kept in $LOG)" >&2; exit 1; fi
rm -rf "$LOG"
