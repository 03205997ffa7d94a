#!/usr/bin/env bash
# Where a build's time went: every compile and link of a Ninja build dir (setup.sh makes new build dirs with
# Ninja), from its .ninja_log, longest first, with the sum and the wall time of the build.
#
#   scripts/compile_times.sh [BUILD_DIR] [TOP]     (defaults: build, 25)
#
# The log keeps the last build of each target, so run it after a clean build for the whole picture.
set -euo pipefail
BUILD=${1:-build}
TOP=${2:-25}
LOG="$BUILD/.ninja_log"
if [ ! -f "$LOG" ]; then
  echo "compile_times: $LOG not found (a Ninja build dir is needed: setup.sh makes new ones with Ninja)" >&2
  exit 2
fi
# .ninja_log v5: start_ms end_ms mtime target hash, one line per target of its last build.
awk -F'\t' -v top="$TOP" '
  /^#/ { next }
  { t[$4] = ($2 - $1) / 1000.0; if (!started || $1 < first) first = $1; if ($2 > last) last = $2; started = 1 }
  END {
    n = 0; sum = 0
    for (k in t) { n++; sum += t[k]; if (t[k] > 20) slow++ }
    printf "%d targets, %.0f s of compile and link time in all, %.0f s wall (first start to last end); %d over 20 s\n",
           n, sum, (last - first) / 1000.0, slow
    for (k in t) printf "%8.1f s  %s\n", t[k], k | "sort -rn | head -" top
  }' "$LOG"
