# Shared by scripts/overfit_table.sh, scripts/distill_table.sh and scripts/label_fraction.sh (sourced, not run):
# resumable training runs, JOBS at a time. The sourcing script sets SCRIPT (its name, for errors), BIN, OUT,
# EPOCHS, JOBS and COMMON; the row helpers also use ROWS, SEEDS and COLS.
# shellcheck shell=bash

check_jobs_and_bin() {  # the knobs every such script takes; a bad value: one line, exit 2
  if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then echo "$SCRIPT: JOBS must be a positive integer, got '$JOBS'" >&2; exit 2; fi
  if [ ! -x "$BIN" ]; then echo "$SCRIPT: $BIN not found (build first, or set BIN)" >&2; exit 2; fi
}

check_rows() {  # check_rows ALLOWED...: every word of ROWS must be one of them; otherwise one line, exit 2
  local r
  for r in $ROWS; do
    if [[ " $* " != *" $r "* ]]; then
      echo "$SCRIPT: unknown row '$r' in ROWS (expected any of: $*)" >&2
      exit 2
    fi
  done
}

want() { [[ " $ROWS " == *" $1 "* ]]; }  # want ROW: ROWS asks for it

# The overfitting regime (docs/experiments.md) of overfit_table.sh and distill_table.sh, without the architecture:
# the CDS reference's step schedule (lr / 10 at 90, 180 and 280 of 300 epochs) as fractions of EPOCHS, weight
# decay 5e-4, two views of the preset $1. Uses DATASET, EPOCHS and SUBSET.
overfit_regime() {
  echo "--dataset $DATASET --width 16 --epochs $EPOCHS --train-subset $SUBSET --schedule step \
--milestones 0.3,0.6,0.9333 --weight-decay 5e-4 --augment $1 --views 2 --knn-every 0"
}

summary_row() {  # summary_row LABEL NAME: one table row over the runs OUT/NAME-s<seed> of SEEDS
  # shellcheck disable=SC2046  # the run directories are split into arguments on purpose
  python3 scripts/summarize.py --cols "$COLS" "$1" $(for s in $SEEDS; do echo "$OUT/$2-s$s"; done)
}

report_failures() {  # report_failures WHAT: exit 1 with one line if some run left OUT/*.failed
  local failed
  failed=$(find "$OUT" -maxdepth 1 -name '*.failed' | wc -l)
  if [ "$failed" -gt 0 ]; then
    echo "$SCRIPT: $failed run(s) failed (OUT/*.failed); $1" >&2
    exit 1
  fi
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
# A SIGTERM to the script reaches the runs too: each writes its checkpoint and stops (a rerun resumes it). Each
# background job is a subshell whose `contrastive train` is a child of its own, so the signal goes to those
# children (pkill -P) and then to the subshells; signalling the subshells alone left the trainings running.
stop_runs() {
  local p
  for p in $(jobs -rp); do
    pkill -TERM -P "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
  done
}
trap 'stop_runs; wait; exit 143' TERM
