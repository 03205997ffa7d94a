# Shared by scripts/overfit_table.sh and scripts/label_fraction.sh (sourced, not run): resumable training runs,
# JOBS at a time. The sourcing script sets SCRIPT (its name, for errors), BIN, OUT, EPOCHS, JOBS and COMMON.
# shellcheck shell=bash

check_jobs_and_bin() {  # the knobs every such script takes; a bad value: one line, exit 2
  if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then echo "$SCRIPT: JOBS must be a positive integer, got '$JOBS'" >&2; exit 2; fi
  if [ ! -x "$BIN" ]; then echo "$SCRIPT: $BIN not found (build first, or set BIN)" >&2; exit 2; fi
}

run() {  # run NAME ARGS...: skips a finished run, resumes an unfinished one; a failure leaves OUT/NAME.failed
  local name=$1
  shift
  local metrics="$OUT/$name/metrics.jsonl"
  rm -f "$OUT/$name.failed"
  if [ -f "$metrics" ] && [ "$(grep -c . "$metrics")" -ge "$EPOCHS" ]; then
    echo "$name: finished earlier"
    return 0
  fi
  echo "$name: training (log $OUT/$name.log)"
  local rc=0
  # shellcheck disable=SC2086  # COMMON holds several flags
  "$BIN" train "$@" $COMMON --out "$OUT/$name" >> "$OUT/$name.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "$name: failed (exit $rc), see $OUT/$name.log" >&2
    echo "$rc" > "$OUT/$name.failed"
  else
    echo "$name: done"
  fi
}

launch() {  # launch NAME ARGS...: run in the background, at most JOBS at a time
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run "$@" &
}
# A SIGTERM to the script reaches the runs too: each writes its checkpoint and stops (a rerun resumes it).
trap 'kill -TERM $(jobs -rp) 2>/dev/null; wait; exit 143' TERM
