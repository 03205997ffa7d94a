#!/usr/bin/env bash
# Semi-supervised curve (docs/experiments.md): test top-1 against the fraction of training images that keep their
# labels. CE on the labelled images only (--method ce --labeled-fraction f) vs CDS (--method cds --labeled-fraction
# f: CE and SupCon on the labelled images, SimCLR on the unlabelled ones), each with its own default augmentation,
# over seeds. Writes OUT/table.md, OUT/label_fraction.dat (the numbers of the picture) and PNG (gnuplot): mean with
# std error bars, x = labelled images (%), y = last-epoch test top-1 (%).
# Knobs (environment):
#   FRACTIONS  label fractions (default "0.01 0.05 0.10 0.25")
#   SUBSET     training images (default 10000)        EPOCHS  epochs (default 5)
#   SEEDS      seeds (default "0 1 2")                JOBS    runs at a time, each with --threads 1 (default 2)
#   EXTRA      flags added to every run               DATASET (default fashion-mnist)
#   OUT        (default runs/label-fraction)          BIN     (default build/contrastive)
#   PNG        (default docs/label_fraction.png)
# Rerunning continues: a finished run (EPOCHS records in metrics.jsonl) is skipped, an unfinished one is started
# again with the same command, which resumes it from its checkpoint (automatic resume, docs/usage.md "Long jobs").
# shellcheck disable=SC2046  # lists of run directories are split into arguments on purpose
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/contrastive}
OUT=${OUT:-runs/label-fraction}
FRACTIONS=${FRACTIONS:-0.01 0.05 0.10 0.25}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-5}
SEEDS=${SEEDS:-0 1 2}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
DATASET=${DATASET:-fashion-mnist}
PNG=${PNG:-docs/label_fraction.png}
for f in $FRACTIONS; do
  if ! python3 -c 'import sys; f = float(sys.argv[1]); sys.exit(0 if 0 < f <= 1 else 1)' "$f" 2>/dev/null; then
    echo "label_fraction.sh: FRACTIONS holds '$f' (each must be a number in (0, 1])" >&2
    exit 2
  fi
done
SCRIPT=label_fraction.sh
# shellcheck source=scripts/runs_lib.sh
source scripts/runs_lib.sh  # run, launch, check_jobs_and_bin; the TERM trap
check_jobs_and_bin
COMMON="--dataset $DATASET --arch resnet18 --width 16 --epochs $EPOCHS --train-subset $SUBSET --knn-every 0 \
--threads 1 $EXTRA"
mkdir -p "$OUT"


for s in $SEEDS; do
  for f in $FRACTIONS; do
    launch ce-f"$f"-s"$s" --method ce --labeled-fraction "$f" --seed "$s"
    launch cds-f"$f"-s"$s" --method cds --labeled-fraction "$f" --seed "$s"
  done
done
wait

percent() { python3 -c 'import sys; print(f"{100 * float(sys.argv[1]):g}")' "$1"; }
dirs() { for s in $SEEDS; do echo "$OUT/$1-s$s"; done; }
COLS=best,last,ece,seconds,seeds
{
  echo "Semi-supervised: $DATASET, $SUBSET training images, $EPOCHS epochs; the labelled images are a stratified,"
  echo "seeded choice (labeled_indices.txt in each run); mean ± std over seeds $SEEDS."
  echo
  python3 scripts/summarize.py --cols $COLS --header
  for f in $FRACTIONS; do
    p=$(percent "$f")
    python3 scripts/summarize.py --cols $COLS "CE, $p% labels" $(dirs ce-f"$f")
    python3 scripts/summarize.py --cols $COLS "CDS, $p% labels" $(dirs cds-f"$f")
  done
} | tee "$OUT/table.md"

# The picture's data: one line per fraction, test top-1 in %.
DAT="$OUT/label_fraction.dat"
{
  echo "# labels_percent ce_last_mean ce_last_std cds_last_mean cds_last_std ce_best_mean ce_best_std cds_best_mean cds_best_std"
  for f in $FRACTIONS; do
    ce=$(python3 scripts/summarize.py --tsv --cols last,best $(dirs ce-f"$f") 2>/dev/null || true)
    cds=$(python3 scripts/summarize.py --tsv --cols last,best $(dirs cds-f"$f") 2>/dev/null || true)
    read -r ce_l ce_ls ce_b ce_bs _ <<< "$ce" || true
    read -r cds_l cds_ls cds_b cds_bs _ <<< "$cds" || true
    echo "$(percent "$f") ${ce_l:-nan} ${ce_ls:-nan} ${cds_l:-nan} ${cds_ls:-nan} ${ce_b:-nan} ${ce_bs:-nan}" \
      "${cds_b:-nan} ${cds_bs:-nan}"
  done
} > "$DAT"

if command -v gnuplot > /dev/null; then
  mkdir -p "$(dirname "$PNG")"
  xtics=$(for f in $FRACTIONS; do percent "$f"; done | paste -sd, -)
  gnuplot <<GP
set terminal pngcairo noenhanced size 900,600 font ',11'
set output '$PNG.tmp.png'
set title 'Semi-supervised: $DATASET, $SUBSET training images, $EPOCHS epochs (mean and std over seeds $SEEDS)'
set xlabel 'labelled training images (%)'
set ylabel 'last-epoch test top-1 (%)'
set logscale x
set xtics ($xtics)
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
set grid
set key bottom right box
set datafile missing 'nan'
plot '$DAT' using 1:2:3 with yerrorlines lw 2 pt 7 ps 1.2 lc rgb '#1f77b4' title 'CE on the labelled images', \
     '$DAT' using 1:4:5 with yerrorlines lw 2 pt 5 ps 1.2 lc rgb '#d62728' title 'CDS (SupCon labelled, SimCLR unlabelled)'
unset output
GP
  mv "$PNG.tmp.png" "$PNG"
  echo "wrote $PNG"
else
  echo "label_fraction.sh: gnuplot not found: $PNG not drawn ($DAT has the numbers)" >&2
fi

report_failures "the table and the curve leave them out"
