#!/usr/bin/env bash
# Distillation in the overfitting regime of scripts/overfit_table.sh (docs/experiments.md): a resnet34 CDS teacher
# trained for the whole schedule, then resnet18 students: CE alone, CDS alone, CE + KD on the teacher's logits
# (--method cds --cds-lambda 0 --feat-weight 0: the heads get no gradient) and CDS-KD (CDS + the teacher's
# embeddings + KD, --method cds --teacher). resnet34 and resnet18 have the same stage widths, so the student needs
# no adapters. Writes OUT/table.md: best and last test top-1, last test ECE, last clean train top-1.
# Knobs (environment):
#   SUBSET   training images (default 2000)          EPOCHS  epochs (default 100)
#   SEEDS    student seeds (default "0")             TEACHER_SEED  (default 0)
#   JOBS     runs at a time, each with --threads 1 (default 2)
#   ROWS     any of "ce cds kd cds-kd" (default all; the teacher is trained whenever kd or cds-kd is asked for)
#   EXTRA    flags added to every run                DATASET (default fashion-mnist)
#   OUT      (default runs/distill)                  BIN     (default build/contrastive)
# Rerunning continues: a finished run (EPOCHS records in metrics.jsonl) is skipped, an unfinished one is started
# again with the same command, which resumes it from its checkpoint (automatic resume, docs/usage.md "Long jobs").
# shellcheck disable=SC2046  # lists of run directories are split into arguments on purpose
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/contrastive}
OUT=${OUT:-runs/distill}
SUBSET=${SUBSET:-2000}
EPOCHS=${EPOCHS:-100}
SEEDS=${SEEDS:-0}
TEACHER_SEED=${TEACHER_SEED:-0}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
DATASET=${DATASET:-fashion-mnist}
ROWS=${ROWS:-ce cds kd cds-kd}
if ! [[ "$TEACHER_SEED" =~ ^[0-9]+$ ]]; then
  echo "distill_table.sh: TEACHER_SEED must be a non-negative integer, got '$TEACHER_SEED'" >&2
  exit 2
fi
SCRIPT=distill_table.sh
# shellcheck source=scripts/runs_lib.sh
source scripts/runs_lib.sh  # run, launch, check_jobs_and_bin; the TERM trap
check_jobs_and_bin
check_rows ce cds kd cds-kd
# The regime of overfit_table.sh (overfit_regime, runs_lib.sh); the architecture is given per row.
COMMON="$(overfit_regime cds) --threads 1 $EXTRA"
mkdir -p "$OUT"
TEACHER=teacher-r34-s$TEACHER_SEED
needs_teacher=0
if want kd || want cds-kd; then needs_teacher=1; fi

tpid=""
if [ "$needs_teacher" = 1 ]; then
  run "$TEACHER" --arch resnet34 --method cds --seed "$TEACHER_SEED" &
  tpid=$!
fi
for s in $SEEDS; do
  want ce && launch ce-s"$s" --arch resnet18 --method ce --seed "$s"
  want cds && launch cds-s"$s" --arch resnet18 --method cds --seed "$s"
done
if [ -n "$tpid" ]; then
  wait "$tpid" || true
  if [ -f "$OUT/$TEACHER.failed" ] || [ ! -f "$OUT/$TEACHER/last.ckpt" ]; then
    echo "distill_table.sh: the teacher run failed (see $OUT/$TEACHER.log); the kd rows are not run" >&2
  else
    for s in $SEEDS; do
      want kd && launch kd-s"$s" --arch resnet18 --method cds --seed "$s" --teacher "$OUT/$TEACHER/last.ckpt" \
        --cds-lambda 0 --feat-weight 0
      want cds-kd && launch cds-kd-s"$s" --arch resnet18 --method cds --seed "$s" --teacher "$OUT/$TEACHER/last.ckpt"
    done
  fi
fi
wait

COLS=best,last,ece,train,seconds,seeds
{
  echo "Distillation: $DATASET, $SUBSET training images, $EPOCHS epochs (step schedule at 30/60/93% of them),"
  echo "weight decay 5e-4, cds augmentation (Cutout) for every row; students resnet18 over seeds $SEEDS,"
  echo "teacher resnet34 CDS (seed $TEACHER_SEED, its last checkpoint); mean ± std over the student seeds."
  echo
  python3 scripts/summarize.py --cols $COLS --header
  [ "$needs_teacher" = 1 ] && python3 scripts/summarize.py --cols $COLS "resnet34 CDS teacher" "$OUT/$TEACHER"
  want ce && summary_row "resnet18 CE alone" ce
  want cds && summary_row "resnet18 CDS alone" cds
  want kd && summary_row "resnet18 CE + KD (logits)" kd
  want cds-kd && summary_row "resnet18 CDS-KD (embeddings + logits)" cds-kd
  true  # the group's status is not that of the last `want`
} | tee "$OUT/table.md"

report_failures "the table leaves them out or shows them partly"
