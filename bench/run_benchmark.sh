#!/usr/bin/env bash
# A/B benchmark: the product's default `contrastive bench` (no precision or layout flags: what `train` picks on
# this machine) against the Python reference (bench/reference.py) in each of its configurations, the best of
# which is the comparison. The configurations alternate within every repeat, in a rotating order, so that drift
# in a shared machine's load hits all alike; medians per configuration and the ratio C++ / best Python are
# printed at the end, the raw JSON lines are kept in $OUT (default: a temp file). docs/benchmarks.md explains it.
#
#   bench/run_benchmark.sh [--method simclr|cds] [--width 16] [--batch-size 256] [--steps 20] [--warmup 3]
#                          [--threads 2] [--repeats 3] [--cpp-flags ""] [--py-flags "--workers 2"]
#                          [--py-configs "fp32;fp32 --channels-last;--bf16 --channels-last"]
#                          [--cpp-alt "--fused-bn off"]
# Python's configurations default to fp32 contiguous, fp32 channels-last, and bf16 channels-last where the CPU
# has native bf16 (avx512_bf16 or amx_bf16 in /proc/cpuinfo). --cpp-alt adds a second C++ configuration (the
# default plus those flags) to every repeat, reported beside the default (an A/B of one product setting).
set -euo pipefail
cd "$(dirname "$0")/.."
METHOD=simclr WIDTH=16 BATCH=256 STEPS=20 WARMUP=3 THREADS=2 REPEATS=3 CPP_FLAGS="" PY_FLAGS="" PY_CONFIGS="" CPP_ALT=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "run_benchmark.sh: $1 needs a value" >&2; exit 2; }
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
    --py-configs) PY_CONFIGS=$2 ;;
    --cpp-alt) CPP_ALT=$2 ;;
    *) echo "run_benchmark.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
CLI=${CONTRASTIVE:-build/contrastive}
PY=/usr/bin/python3  # Debian's interpreter: the one with torch 1.13, as build/
OUT=${OUT:-$(mktemp /tmp/contrastive-bench-XXXXXX.jsonl)}
if [ -z "$PY_CONFIGS" ]; then
  PY_CONFIGS="fp32;fp32 --channels-last"
  grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && PY_CONFIGS="$PY_CONFIGS;--bf16 --channels-last"
fi
IFS=';' read -r -a CONFIGS <<<"$PY_CONFIGS"
COMMON="--method $METHOD --width $WIDTH --batch-size $BATCH --steps $STEPS --warmup $WARMUP --threads $THREADS"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
FEAT=$(grep -m1 -owE 'avx2' /proc/cpuinfo || true)
for f in avx512f avx512_bf16 amx_bf16; do grep -qw "$f" /proc/cpuinfo && FEAT="$FEAT $f"; done
echo "# $(date -u +%FT%TZ) $(uname -n): $CPU, $(nproc) logical CPUs, features: $FEAT; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# shellcheck disable=SC2016  # the quotes are literal: the whole line is in double quotes
echo "# config: $COMMON; C++ flags '${CPP_FLAGS}'${CPP_ALT:+, alternative '$CPP_ALT'}; Python configs: ${PY_CONFIGS}; repeats $REPEATS; raw in $OUT" >&2
run_cpp() {  # $1: extra flags of the alternative C++ configuration ("" = the default)
  local name=default
  [ -n "${1:-}" ] && name="alt $1"
  # shellcheck disable=SC2086
  "$CLI" bench $COMMON $CPP_FLAGS ${1:-} --json 2>/dev/null | grep '^{' | sed "s/^{/{\"impl\":\"cpp\",\"config\":\"$name\",/" >>"$OUT"
}
run_py() {  # $1: the configuration ("fp32" alone means no flags)
  local flags=${1#fp32}
  # shellcheck disable=SC2086
  "$PY" bench/reference.py $COMMON $flags $PY_FLAGS | grep '^{' | sed "s/^{/{\"config\":\"$1\",/" >>"$OUT"
}
# Every repeat runs each entry once; the order rotates from repeat to repeat (C++ first, then second, ...).
ENTRIES=("cpp:")
[ -n "$CPP_ALT" ] && ENTRIES+=("cpp:$CPP_ALT")
for cfg in "${CONFIGS[@]}"; do ENTRIES+=("py:$cfg"); done
n=${#ENTRIES[@]}
for r in $(seq 1 "$REPEATS"); do
  for i in $(seq 0 $((n - 1))); do
    e=${ENTRIES[$(( (i + r - 1) % n ))]}
    case "$e" in
      cpp:*) run_cpp "${e#cpp:}" ;;
      py:*) run_py "${e#py:}" ;;
    esac
  done
  echo "# repeat $r/$REPEATS done" >&2
done
"$PY" - "$OUT" "$CPU" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["images_per_s", "model_images_per_s", "augment_images_per_s", "peak_rss_mb", "fraction_of_peak"]
groups = {}
for r in rows:
    groups.setdefault((r["impl"], r["config"]), []).append(r)
med = {g: {k: statistics.median(x[k] for x in sel) for k in keys if all(k in x for x in sel)}
       for g, sel in groups.items()}
cpp = sorted((g for g in med if g[0] == "cpp"), key=lambda g: g[1] != "default")
py = sorted((g for g in med if g[0] == "python"), key=lambda g: -med[g]["images_per_s"])
if not cpp or not py:
    sys.exit("run_benchmark.sh: no results (see the runs' stderr above)")
c = cpp[0]
cr = groups[c][0]
print("CPU: %s; C++ default picked: %s, %s" % (sys.argv[2], cr.get("precision", "?"), cr.get("memory_format", "?")))
print("%-34s %6s %14s %14s %12s" % ("median over runs", "runs", "end-to-end/s", "model-only/s", "peak RSS MB"))
for g in cpp + py:
    m = med[g]
    print("%-34s %6d %14.1f %14.1f %12.0f" % ("%s %s" % g, len(groups[g]), m["images_per_s"],
                                              m["model_images_per_s"], m["peak_rss_mb"]))
b = py[0]
print("C++ default / best Python (%s): end to end %.2f, model only %.2f" % (
    b[1], med[c]["images_per_s"] / med[b]["images_per_s"],
    med[c]["model_images_per_s"] / max(med[g]["model_images_per_s"] for g in py)))
PYEOF
