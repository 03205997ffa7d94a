#!/usr/bin/env bash
# Reproduces the CDS tables of the README on Fashion-MNIST (resnet18, width 16): CE vs CDS (SupCon) vs CDS
# (SimCLR) over seeds, semi-supervised with 10% labels, and distillation from a resnet34 CDS teacher.
# Budget knobs (environment): SUBSET (training images, default 10000; 0 = all 60,000), EPOCHS (default 5),
# SEEDS (default "0 1 2"), EXTRA (flags added to every run, e.g. "--bf16 --channels-last"), ROWS (which rows:
# any of "ce cds-supcon cds-simclr semi kd", default all).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/contrastive
OUT=${OUT:-runs/cds-table}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-5}
SEEDS=${SEEDS:-0 1 2}
EXTRA=${EXTRA:-}
ROWS=${ROWS:-ce cds-supcon cds-simclr semi kd}
COMMON="--dataset fashion-mnist --width 16 --epochs $EPOCHS --train-subset $SUBSET --knn-every 0 $EXTRA"
want() { [[ " $ROWS " == *" $1 "* ]]; }
for r in $ROWS; do
  case "$r" in
    ce | cds-supcon | cds-simclr | semi | kd) ;;
    *) echo "cds_table.sh: unknown row '$r' in ROWS (expected any of: ce cds-supcon cds-simclr semi kd)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
run() {  # run NAME ARGS...: skips runs that already finished
  local name=$1; shift
  if [ -f "$OUT/$name/metrics.jsonl" ] && [ "$(wc -l < "$OUT/$name/metrics.jsonl")" -ge "$EPOCHS" ]; then return; fi
  rm -rf "${OUT:?}/$name"
  $BIN train "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1
}
for s in $SEEDS; do
  want ce && run ce-s$s --method ce --arch resnet18 $COMMON --seed "$s"
  want cds-supcon && run cds-supcon-s$s --method cds --arch resnet18 $COMMON --seed "$s"
  want cds-simclr && run cds-simclr-s$s --method cds --cds-loss simclr --arch resnet18 $COMMON --seed "$s"
  want semi && run semi-ce-s$s --method ce --labeled-fraction 0.1 --arch resnet18 $COMMON --seed "$s"
  want semi && run semi-cds-s$s --method cds --labeled-fraction 0.1 --arch resnet18 $COMMON --seed "$s"
done
if want kd; then
  run teacher-r34 --method cds $COMMON --arch resnet34 --seed 0
  for s in $SEEDS; do
    run kd-cds-s$s --method cds --arch resnet18 $COMMON --seed "$s" --teacher "$OUT/teacher-r34/best.ckpt"
  done
fi
sum() { python3 scripts/summarize.py "$1" $(for s in $SEEDS; do echo "$OUT/$2-s$s"; done); }
{
  echo "| run | best test top-1 (%) | last test top-1 (%) | kNN | seconds | seeds |"
  echo "|---|---|---|---|---|---|"
  want ce && sum "CE" ce
  want cds-supcon && sum "CDS (SupCon)" cds-supcon
  want cds-simclr && sum "CDS (SimCLR)" cds-simclr
  want semi && sum "CE, 10% labels" semi-ce
  want semi && sum "CDS, 10% labels" semi-cds
  if want kd; then
    python3 scripts/summarize.py "resnet34 CDS teacher" "$OUT/teacher-r34"
    sum "resnet18 CDS student alone" cds-supcon
    sum "resnet18 CDS + KD from resnet34" kd-cds
  fi
} | tee "$OUT/table.md"
