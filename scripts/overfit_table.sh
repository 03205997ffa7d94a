#!/usr/bin/env bash
# The overfitting regime (docs/experiments.md): few training images, many epochs, the CDS reference's step schedule
# (lr / 10 at 90, 180 and 280 of 300 epochs) scaled to EPOCHS, weight decay 5e-4 and the `cds` augmentation (view 1
# with Cutout) for every row. Rows: CE, CDS (SupCon), CDS (SimCLR) and DSN (deep supervision by cross-entropy,
# --cds-loss ce), over seeds. Writes OUT/table.md: best and last test top-1, last test ECE, last clean train top-1.
# Knobs (environment):
#   SUBSET   training images (default 2000)          EPOCHS  epochs (default 100)
#   SEEDS    seeds (default "0 1 2")                 JOBS    runs at a time, each with --threads 1 (default 2)
#   ROWS     any of "ce cds-supcon cds-simclr dsn" (default all)
#   EXTRA    flags added to every run                DATASET (default fashion-mnist)
#   OUT      (default runs/overfit)                  BIN     (default build/contrastive)
#   AUGMENT  the augmentation preset of every row (default cds: Cutout on view 1; supervised: crop + flip only,
#            a regime that overfits sooner)
# Rerunning continues: a finished run (EPOCHS records in metrics.jsonl) is skipped, an unfinished one is started
# again with the same command, which resumes it from its checkpoint (automatic resume, docs/usage.md "Long jobs").
# shellcheck disable=SC2046  # lists of run directories are split into arguments on purpose
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/contrastive}
OUT=${OUT:-runs/overfit}
SUBSET=${SUBSET:-2000}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
DATASET=${DATASET:-fashion-mnist}
AUGMENT=${AUGMENT:-cds}
ROWS=${ROWS:-ce cds-supcon cds-simclr dsn}
SCRIPT=overfit_table.sh
# shellcheck source=scripts/runs_lib.sh
source scripts/runs_lib.sh  # run, launch, check_jobs_and_bin; the TERM trap
check_jobs_and_bin
check_rows ce cds-supcon cds-simclr dsn
# overfit_regime (runs_lib.sh): the step schedule, wd 5e-4 and `--views 2`. The cds preset makes two views; CE
# trains on the first (crop, flip, Cutout), the view CDS's own cross-entropy sees.
COMMON="$(overfit_regime "$AUGMENT") --arch resnet18 --threads 1 $EXTRA"
mkdir -p "$OUT"


for s in $SEEDS; do
  want ce && launch ce-s"$s" --method ce --seed "$s"
  want cds-supcon && launch cds-supcon-s"$s" --method cds --seed "$s"
  want cds-simclr && launch cds-simclr-s"$s" --method cds --cds-loss simclr --seed "$s"
  want dsn && launch dsn-s"$s" --method cds --cds-loss ce --seed "$s"
done
wait

COLS=best,last,ece,train,seconds,seeds
{
  echo "Overfitting regime: $DATASET, $SUBSET training images, $EPOCHS epochs (step schedule at 30/60/93% of them),"
  echo "weight decay 5e-4, $AUGMENT augmentation for every row; mean ± std over seeds $SEEDS."
  echo
  python3 scripts/summarize.py --cols $COLS --header
  want ce && summary_row "CE" ce
  want cds-supcon && summary_row "CDS (SupCon)" cds-supcon
  want cds-simclr && summary_row "CDS (SimCLR)" cds-simclr
  want dsn && summary_row "DSN (CE on the heads)" dsn
  true  # the group's status is not that of the last `want`
} | tee "$OUT/table.md"

report_failures "the table leaves them out or shows them partly"
