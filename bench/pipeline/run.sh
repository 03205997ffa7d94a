#!/usr/bin/env bash
# The data pipeline alone (decode + two augmented views, no model), ours against torchvision's ImageFolder + PIL
# transforms and lightly's LightlyDataset + SimCLRTransform, on one folder, in one run: REPEATS rounds, the
# configurations alternated in a rotating order, medians. Results as JSON lines in OUT/raw.jsonl, a table in
# OUT/summary.md.
#
#   bench/pipeline/run.sh DIR [OUT]      (DIR: e.g. made by bench/pipeline/make_folder.py)
#
# Environment: REPEATS (5), BATCHES (40 timed batches of BATCH 256), SIZE (64), BUILD_DIR (build), PY (the
# project's .venv python, with torch, torchvision and lightly: TORCH=pip ./setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?usage: bench/pipeline/run.sh DIR [OUT]}
OUT=${2:-bench/results/pipeline-$(date +%Y-%m-%d)}
REPEATS=${REPEATS:-5}
BATCHES=${BATCHES:-40}
BATCH=${BATCH:-256}
SIZE=${SIZE:-64}
BUILD_DIR=${BUILD_DIR:-build}
PY=${PY:-.venv/bin/python}
BIN="$BUILD_DIR/bench/contrastive_pipeline_bench"
[ -x "$BIN" ] || { echo "run.sh: $BIN not built (cmake --build $BUILD_DIR --target contrastive_pipeline_bench)" >&2; exit 2; }
"$PY" -c "import torchvision, lightly" || { echo "run.sh: $PY lacks torchvision or lightly (TORCH=pip ./setup.sh)" >&2; exit 2; }
mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: >"$RAW"
common=(--data "$DIR" --size "$SIZE" --batch "$BATCH" --batches "$BATCHES")
# The Python pipelines with 2 and 3 worker processes (on 2 cores either can be the faster): the best is their row.
configs=("ours-decode" "ours-cached" "torchvision-w2" "torchvision-w3" "lightly-w2" "lightly-w3")
run_one() {
  case "$1" in
    ours-decode) "$BIN" "${common[@]}" --cache-mb 0 ;;
    # The cache filled by a first pass over the set, as from a run's second epoch on.
    ours-cached) "$BIN" "${common[@]}" --cache-mb 4096 --warmup $(( $(find "$DIR" -type f | wc -l) / BATCH + 1 )) ;;
    torchvision-w*|lightly-w*) "$PY" bench/pipeline/pipeline_py.py --impl "${1%-w*}" "${common[@]}" --workers "${1##*-w}" ;;
  esac
}
for r in $(seq 0 $((REPEATS - 1))); do
  for k in $(seq 0 $((${#configs[@]} - 1))); do
    c=${configs[$(( (k + r) % ${#configs[@]} ))]}
    line=$(run_one "$c" 2>>"$OUT/stderr.log" | tail -1)
    echo "{\"config\": \"$c\", \"round\": $r, \"result\": $line}" | tee -a "$RAW"
  done
done
python3 - "$RAW" >"$OUT/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["config"], []).append(r["result"]["images_per_s"])
cpu = rows[0]["result"].get("cpu", "?")
best_py = max(statistics.median(v) for c, v in by.items() if not c.startswith("ours"))
print(f"CPU: {cpu}\n")
print("| pipeline | images/s (median) | runs | vs the faster Python pipeline |")
print("|---|---|---|---|")
for c, v in by.items():
    m = statistics.median(v)
    print(f"| {c} | {m:.0f} | {', '.join(f'{x:.0f}' for x in v)} | {m / best_py:.2f}x |")
PY
cat "$OUT/summary.md"
