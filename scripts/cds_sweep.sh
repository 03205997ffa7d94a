#!/usr/bin/env bash
# CDS variants in the overfitting regime of overfit_table.sh (docs/experiments.md, "scripts/cds_sweep.sh"): each
# variant is CDS with some extra flags (λ, stage weights, head, temperature, ...), run over SEEDS with the same
# regime flags as overfit_table.sh, so its rows compare with that script's table for the same SUBSET, EPOCHS,
# AUGMENT and EXTRA. Writes OUT/table.md: one row per variant (mean ± std over seeds), then one per variant and seed.
# Knobs (environment), as overfit_table.sh's (SUBSET, EPOCHS, SEEDS, JOBS, EXTRA, DATASET, BIN, AUGMENT) plus:
#   VARIANTS  "name=flags;name=flags;..." (default: "lambda0.5=--cds-lambda 0.5;mlp=--cds-head mlp;
#             t0.2=--temperature 0.2 --base-temperature 0.2;late=--cds-weights 0 0 1 1"); a name is a run
#             directory's prefix: letters, digits, '.', '_' or '-'
#   OUT       (default runs/cds-sweep)
# Rerunning continues: finished runs are skipped, unfinished ones resume from their checkpoints (runs_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/contrastive}
OUT=${OUT:-runs/cds-sweep}
SUBSET=${SUBSET:-2000}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
DATASET=${DATASET:-fashion-mnist}
AUGMENT=${AUGMENT:-cds}
VARIANTS=${VARIANTS:-lambda0.5=--cds-lambda 0.5;mlp=--cds-head mlp;t0.2=--temperature 0.2 --base-temperature 0.2;late=--cds-weights 0 0 1 1}
SCRIPT=cds_sweep.sh
# shellcheck source=scripts/runs_lib.sh
source scripts/runs_lib.sh  # run, launch, check_jobs_and_bin; the TERM trap
check_jobs_and_bin
IFS=';' read -r -a ENTRIES <<<"$VARIANTS"
for e in "${ENTRIES[@]}"; do
  name=${e%%=*}
  if [[ "$e" != *=* || ! "$name" =~ ^[A-Za-z0-9._-]+$ ]]; then
    echo "$SCRIPT: bad variant '$e' in VARIANTS (expected name=flags, the name of letters, digits, '.', '_', '-')" >&2
    exit 2
  fi
done
COMMON="$(overfit_regime "$AUGMENT") --arch resnet18 --threads 1 $EXTRA"
mkdir -p "$OUT"

for s in $SEEDS; do
  for e in "${ENTRIES[@]}"; do
    # shellcheck disable=SC2086  # the variant's flags are split into arguments on purpose
    launch "${e%%=*}-s$s" --method cds --seed "$s" ${e#*=}
  done
done
wait

COLS=best,last,ece,train,seconds,seeds
{
  echo "CDS variants in the overfitting regime: $DATASET, $SUBSET training images, $EPOCHS epochs (step schedule at"
  echo "30/60/93% of them), weight decay 5e-4, $AUGMENT augmentation; extra flags '$EXTRA'; mean ± std over seeds $SEEDS."
  echo
  python3 scripts/summarize.py --cols $COLS --header
  for e in "${ENTRIES[@]}"; do summary_row "CDS ${e#*=}" "${e%%=*}"; done
  for e in "${ENTRIES[@]}"; do
    for s in $SEEDS; do SEEDS=$s summary_row "CDS ${e#*=}, seed $s" "${e%%=*}"; done
  done
} | tee "$OUT/table.md"
report_failures "rerun the script to retry them"
