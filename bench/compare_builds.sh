#!/usr/bin/env bash
# LibTorch 1.13 (build/) against 2.x (build-pip/): `contrastive bench` of each configuration, the two builds
# alternated within each repeat, medians printed. Raw JSON lines go to runs/bench/builds-<time>.jsonl.
#   bench/compare_builds.sh [--methods "simclr cds"] [--width 16] [--steps 6] [--warmup 2] [--repeats 3]
#                           [--configs "fp32:contiguous fp32:channels-last"]
set -euo pipefail
cd "$(dirname "$0")/.."
METHODS="simclr cds"; WIDTH=16; STEPS=6; WARMUP=2; REPEATS=3; CONFIGS="fp32:contiguous fp32:channels-last"
while [ $# -gt 0 ]; do
  case "$1" in
    --methods) METHODS=$2; shift 2 ;; --width) WIDTH=$2; shift 2 ;; --steps) STEPS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;; --repeats) REPEATS=$2; shift 2 ;; --configs) CONFIGS=$2; shift 2 ;;
    *) echo "compare_builds.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for b in build build-pip; do
  [ -x "$b/contrastive" ] || { echo "compare_builds.sh: $b/contrastive missing (./setup.sh; TORCH=pip ./setup.sh)" >&2; exit 2; }
done
mkdir -p runs/bench
OUT=runs/bench/builds-$(date +%Y%m%d-%H%M%S).jsonl
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
for r in $(seq 1 "$REPEATS"); do
  for m in $METHODS; do
    for c in $CONFIGS; do
      prec=${c%%:*}; fmt=${c##*:}
      for b in build build-pip; do   # alternate which build goes first
        [ $((r % 2)) -eq 0 ] && b=$([ "$b" = build ] && echo build-pip || echo build)
        line=$("$b/contrastive" bench --method "$m" --width "$WIDTH" --steps "$STEPS" --warmup "$WARMUP" \
               --precision "$prec" --memory-format "$fmt" --peak-size 0 --json)
        echo "{\"build\": \"$b\", \"repeat\": $r, \"result\": $line}" >> "$OUT"
      done
    done
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line); r = d["result"]
    key = (r["method"], r["precision"], r["memory_format"])
    rows.setdefault(key, {}).setdefault(d["build"], []).append((r["images_per_s"], r["model_images_per_s"], r["peak_rss_mb"]))
print(f"| method, precision, layout | 1.13 img/s e2e (model) | 2.x img/s e2e (model) | 2.x / 1.13 | RSS MB 1.13 / 2.x |")
print("|---|---|---|---|---|")
for (m, p, f), b in sorted(rows.items()):
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    a, n = b.get("build", []), b.get("build-pip", [])
    if not a or not n: continue
    print(f"| {m}, {p}, {f} | {med(a,0):.0f} ({med(a,1):.0f}) | {med(n,0):.0f} ({med(n,1):.0f}) | "
          f"**{med(n,0)/med(a,0):.2f}** | {med(a,2):.0f} / {med(n,2):.0f} |")
print(f"(medians of {len(next(iter(rows.values()))['build'])} repeats; raw lines in {sys.argv[1]})")
PY
