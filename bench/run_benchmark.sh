#!/usr/bin/env bash
# A/B benchmark of the C++ `contrastive bench` against bench/reference.py (Python PyTorch) on one config.
# The two alternate R times so that drift in a shared machine's load hits both alike; medians and ratios
# (C++ / Python) are printed at the end, the raw JSON lines are kept in $OUT (default: a temp file).
#
#   bench/run_benchmark.sh [--method simclr|cds] [--width 16] [--batch-size 256] [--steps 20] [--warmup 3]
#                          [--threads 2] [--repeats 3] [--cpp-flags "--channels-last"] [--py-flags "--workers 2"]
set -euo pipefail
cd "$(dirname "$0")/.."
METHOD=simclr WIDTH=16 BATCH=256 STEPS=20 WARMUP=3 THREADS=2 REPEATS=3 CPP_FLAGS="" PY_FLAGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --method) METHOD=$2 ;;
    --width) WIDTH=$2 ;;
    --batch-size) BATCH=$2 ;;
    --steps) STEPS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --threads) THREADS=$2 ;;
    --repeats) REPEATS=$2 ;;
    --cpp-flags) CPP_FLAGS=$2 ;;
    --py-flags) PY_FLAGS=$2 ;;
    *) echo "run_benchmark.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
CLI=${CONTRASTIVE:-build/contrastive}
PY=/usr/bin/python3  # Debian's interpreter: the one with torch
OUT=${OUT:-$(mktemp /tmp/contrastive-bench-XXXXXX.jsonl)}
COMMON="--method $METHOD --width $WIDTH --batch-size $BATCH --steps $STEPS --warmup $WARMUP --threads $THREADS"
echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# config: $COMMON; repeats $REPEATS; raw results in $OUT" >&2
for r in $(seq 1 "$REPEATS"); do
  # shellcheck disable=SC2086
  "$CLI" bench $COMMON $CPP_FLAGS --json 2>/dev/null | grep '^{' | sed 's/^{/{"impl":"cpp",/' >>"$OUT"
  # shellcheck disable=SC2086
  "$PY" bench/reference.py $COMMON $PY_FLAGS | grep '^{' >>"$OUT"
  echo "# repeat $r/$REPEATS done" >&2
done
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["images_per_s", "model_images_per_s", "augment_images_per_s", "peak_rss_mb",
        "fwd_gflops_per_image", "model_gflops_per_s", "peak_gflops_measured", "fraction_of_peak"]
med = {}
for impl in ("cpp", "python"):
    sel = [r for r in rows if r.get("impl") == impl]
    med[impl] = {k: statistics.median(r[k] for r in sel) for k in keys if sel and all(k in r for r in sel)}
    med[impl]["n"] = len(sel)
print("%-24s %12s %12s %10s" % ("median of %d/%d runs" % (med["cpp"]["n"], med["python"]["n"]), "C++", "Python",
                                 "C++/Py"))
for k in keys:
    c, p = med["cpp"].get(k), med["python"].get(k)
    if c is None or p is None:
        continue
    print("%-24s %12.4g %12.4g %10.2f" % (k, c, p, c / p if p else float("nan")))
PYEOF
