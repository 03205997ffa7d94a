#!/usr/bin/env bash
# Reproduces the per-method table of the README on Fashion-MNIST: every method with the same backbone (resnet18,
# width 16; AMDIM uses its own encoder), epochs and training images; kNN (k=200, t=0.1) and a linear probe on the
# frozen backbone, plus wall time. Budget knobs: SUBSET (default 10000), EPOCHS (default 5), SEED (default 0);
# METHODS (default: every registered method, `contrastive methods --json`). Finished runs are kept: rerunning the
# script continues with the missing ones.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/contrastive
OUT=${OUT:-runs/methods-table}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-5}
SEED=${SEED:-0}
COMMON="--dataset fashion-mnist --width 16 --epochs $EPOCHS --train-subset $SUBSET --knn-every $EPOCHS --seed $SEED"
mkdir -p "$OUT"
echo "| method | kNN top-1 (%) | linear top-1 best / last (%) | train seconds |" | tee "$OUT/table.md"
echo "|---|---|---|---|" | tee -a "$OUT/table.md"
METHODS=${METHODS:-$($BIN methods --json | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')}
for m in $METHODS; do
  arch=resnet18; [ "$m" = amdim ] && arch=amdim
  if [ ! -f "$OUT/$m/last.ckpt" ] || [ "$(wc -l < "$OUT/$m/metrics.jsonl")" -lt "$EPOCHS" ]; then
    rm -rf "${OUT:?}/$m"
    $BIN train --method "$m" --arch $arch $COMMON --out "$OUT/$m" > "$OUT/$m.log" 2>&1
  fi
  knn=$($BIN knn --checkpoint "$OUT/$m/last.ckpt" --json | tail -1)
  lin=$($BIN linear --checkpoint "$OUT/$m/last.ckpt" --json | tail -1)
  python3 - "$m" "$OUT/$m" "$knn" "$lin" <<'PY' | tee -a "$OUT/table.md"
import json, sys
m, run, knn, lin = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
secs = sum(json.loads(l)["train_seconds"] for l in open(f"{run}/metrics.jsonl") if l.strip())
print(f"| {m} | {100*knn['top1']:.2f} | {100*lin['top1_best']:.2f} / {100*lin['top1_last']:.2f} | {secs:.0f} |")
PY
done
