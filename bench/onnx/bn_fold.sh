#!/usr/bin/env bash
# Folded BatchNorm or BatchNormalization nodes: which ONNX export is closer to LibTorch's own features?
#
#   bench/onnx/bn_fold.sh [OUT_DIR]      (default /tmp/onnx-bn-fold; needs build/ and the .venv of setup.sh)
#
# Trains CE for one epoch at widths 4, 16 and 64 on a slice of Fashion-MNIST (BN statistics and weights away from
# their initial values), exports each both ways, and prints onnxruntime's max |features - embed's features| over
# the 2,000 test images for each. The result is in docs/deploy.md, "Folded or not".
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/onnx-bn-fold}
mkdir -p "$OUT"
PY=.venv/bin/python
for w in 4 16 64; do
  run=$OUT/ce-w$w
  [ -f "$run/last.ckpt" ] || build/contrastive train --method ce --width "$w" --epochs 1 --train-subset 5000 \
    --test-subset 2000 --batch-size 128 --seed 0 --out "$run" >/dev/null 2>&1
  build/contrastive embed --checkpoint "$run/last.ckpt" --out "$run/emb" >/dev/null 2>&1
  for mode in nodes folded; do
    flag=""; [ "$mode" = folded ] && flag="--fold-bn"
    build/contrastive export --format onnx $flag --checkpoint "$run/last.ckpt" --out "$run/$mode.onnx" >/dev/null 2>&1
    echo "width $w, BatchNorm $mode: $("$PY" bench/onnx/max_abs.py "$run/$mode.onnx" "$run/emb.npy")"
  done
done
