#!/usr/bin/env bash
# SimCLR trained end to end on an image folder, ours against lightly's (bench/peers/lightly_train.py --folder:
# LightlyDataset + SimCLRTransform + lightly's head and NTXentLoss, in a DataLoader with 2 workers): the same
# folder, crop size, backbone (resnet18 width W, 3 channels), batch, epochs, normalisation and threads. lightly runs
# in two layouts (contiguous, its examples' way, and channels-last); the faster is its row. REPEATS rounds with
# the configurations alternated in a rotating order; the rate of a run is its images over its training seconds
# (both epochs), the figure the median of the rounds. Our runs also give data_wait_frac, the share of each epoch
# the training step waited for the loader.
#
#   bench/pipeline/train_e2e.sh DIR [OUT]      (DIR: e.g. bench/pipeline/make_folder.py --flat)
#
# Environment: REPEATS (2), EPOCHS (2), SIZE (32), WIDTH (16), THREADS (2), PY (.venv/bin/python with lightly).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?usage: bench/pipeline/train_e2e.sh DIR [OUT]}
OUT=${2:-bench/results/train-e2e-$(date +%Y-%m-%d)}
REPEATS=${REPEATS:-2} EPOCHS=${EPOCHS:-2} SIZE=${SIZE:-32} WIDTH=${WIDTH:-16} THREADS=${THREADS:-2}
PY=${PY:-.venv/bin/python}
BIN=${BIN:-build/contrastive}
MEAN="0.286 0.286 0.286" STD="0.353 0.353 0.353"  # Fashion-MNIST's, on both sides
"$PY" -c "import lightly" || { echo "train_e2e.sh: $PY lacks lightly (bench/peers/setup_peers.sh)" >&2; exit 2; }
mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: >"$RAW"
WORK=$(mktemp -d /tmp/contrastive-e2e-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
configs=("ours" "lightly" "lightly-cl")
run_one() {  # $1 config, $2 run dir: prints one JSON line
  local d=$2
  case "$1" in
    ours)
      /usr/bin/time -v "$BIN" train --method simclr --dataset folder --data "$DIR" --image-size "$SIZE" \
        --width "$WIDTH" --epochs "$EPOCHS" --threads "$THREADS" --mean $MEAN --std $STD --knn-every 0 \
        --tensorboard off --out "$d" >"$d.log" 2>"$d.time" || { cat "$d.log" >&2; return 1; }
      ;;
    lightly*)
      local cl=""; [ "$1" = lightly-cl ] && cl=--channels-last
      # shellcheck disable=SC2086
      /usr/bin/time -v "$PY" bench/peers/lightly_train.py --method simclr --folder "$DIR" --image-size "$SIZE" \
        --width "$WIDTH" --epochs "$EPOCHS" --threads "$THREADS" --workers 2 --mean $MEAN --std $STD $cl \
        --out "$d" >"$d.log" 2>"$d.time" || { cat "$d.log" "$d.time" >&2; return 1; }
      ;;
  esac
  python3 - "$1" "$d" <<'PY'
import json, os, re, sys
cfg, d = sys.argv[1], sys.argv[2]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(d + ".time").read()).group(1)) / 1024
if cfg == "ours":
    ep = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
    images = sum(e["images_per_s"] * e["train_seconds"] for e in ep)
    secs = sum(e["train_seconds"] for e in ep)
    extra = {"data_wait_frac": [e.get("data_wait_frac") for e in ep],
             "precision": re.search(r"precision (\w+)", open(d + ".log").read() + open(d + ".time").read()).group(1)}
else:
    r = json.load(open(os.path.join(d, "train.json")))
    images, secs = r["images"], r["train_seconds"]
    extra = {"memory_format": r["memory_format"], "precision": r["precision"]}
print(json.dumps({"config": cfg, "images": round(images), "train_seconds": secs, "images_per_s": images / secs,
                  "peak_rss_mb": rss, **extra}))
PY
}
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs;" \
  "$(find "$DIR" -type f | wc -l) files in $DIR; size $SIZE, width $WIDTH, epochs $EPOCHS, threads $THREADS" | tee "$OUT/summary.md"
for r in $(seq 0 $((REPEATS - 1))); do
  for k in $(seq 0 $((${#configs[@]} - 1))); do
    c=${configs[$(( (k + r) % ${#configs[@]} ))]}
    run_one "$c" "$WORK/$c-$r" | tee -a "$RAW"
  done
done
python3 - "$RAW" <<'PY' | tee -a "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {c: statistics.median(r["images_per_s"] for r in rows if r["config"] == c) for c in ("ours", "lightly", "lightly-cl")}
rss = {c: statistics.median(r["peak_rss_mb"] for r in rows if r["config"] == c) for c in med}
best = max(("lightly", "lightly-cl"), key=lambda c: med[c])
print("| side | images/s (median) | vs lightly's best | peak RSS MB |")
print("|---|---|---|---|")
for c in med:
    print(f"| {c} | {med[c]:.0f} | {med[c] / med[best]:.2f}x | {rss[c]:.0f} |")
waits = [w for r in rows if r["config"] == "ours" for w in r["data_wait_frac"]]
print(f"\nours: data_wait_frac per epoch {', '.join(f'{100 * w:.1f}%' for w in waits)}")
PY
