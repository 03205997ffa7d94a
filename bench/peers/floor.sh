#!/usr/bin/env bash
# The untrained floor of the peers table (bench/peers/README.md, "The floor"): our network at its initialisation
# (one step at lr 1e-8), exported and scored by the same bench/peers/eval.py as the trained rows. SimSiam has its
# own floor, because it initialises the last BN of every residual block to zero (zero_init_residual); SimCLR's
# initialisation is the one of MoCo and BYOL too.
#
#   bench/peers/floor.sh [--methods "simclr simsiam"] [--subset 10000] [--width 16] [--threads 2] [--seed 0]
#                        [--out runs/peers]
#
# Writes OUT/floor-METHOD/eval.json and prints one line per method. Needs build/contrastive and the .venv of
# bench/peers/setup_peers.sh (VENV=... for another).
set -euo pipefail
cd "$(dirname "$0")/../.."
METHODS="simclr simsiam" SUBSET=10000 WIDTH=16 THREADS=2 SEED=0 OUT=runs/peers
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --methods) METHODS=$2; shift 2 ;;
    --subset) SUBSET=$2; shift 2 ;;
    --width) WIDTH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "floor.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
BIN=build/contrastive
PY=${VENV:-.venv}/bin/python
[ -x "$BIN" ] || { echo "floor.sh: $BIN is missing: build the project first (./setup.sh)" >&2; exit 1; }
[ -x "$PY" ] || { echo "floor.sh: $PY is missing: run bench/peers/setup_peers.sh first" >&2; exit 1; }
for m in $METHODS; do
  d=$OUT/floor-$m-s$SEED-n$SUBSET-w$WIDTH
  rm -rf "$d"
  mkdir -p "$d"
  # --stop-after-steps ends the run after its first step with exit 130 (like SIGINT) and a checkpoint.
  rc=0
  "$BIN" train --method "$m" --dataset fashion-mnist --arch resnet18 --width "$WIDTH" --epochs 1 \
    --train-subset "$SUBSET" --batch-size 256 --threads "$THREADS" --seed "$SEED" --knn-every 0 \
    --stop-after-steps 1 --lr 1e-8 --out "$d/run" >"$d/train.log" 2>&1 || rc=$?
  if [ "$rc" -ne 130 ] && [ "$rc" -ne 0 ]; then
    echo "floor.sh: $m failed (exit $rc); see $d/train.log" >&2
    exit 1
  fi
  "$BIN" export --checkpoint "$d/run/last.ckpt" --out "$d/backbone.pt" >>"$d/train.log" 2>&1 ||
    { echo "floor.sh: export failed; see $d/train.log" >&2; exit 1; }
  "$PY" bench/peers/eval.py --state "$d/backbone.pt" --train-subset "$SUBSET" --threads "$THREADS" --json \
    >"$d/eval.json" 2>"$d/eval.log" || { echo "floor.sh: eval.py failed; see $d/eval.log" >&2; exit 1; }
  "$PY" - "$m" "$d/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print("%s untrained: kNN %.2f%%, linear %.2f%% (epoch %d, chosen on validation)"
      % (sys.argv[1], 100 * r["knn_top1"], 100 * r["linear_top1"], r["linear_epoch"]))
PY
done
