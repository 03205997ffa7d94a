#!/usr/bin/env bash
# Side by side with the real peers (bench/peers/README.md): for every method, contrastive and lightly trained on
# the same data, network and budget, alternating the two, each under /usr/bin/time -v (peak RSS), both scored by
# the same bench/peers/eval.py (kNN k=200 t=0.1 on the training images, 30-epoch linear probe).
#
#   bench/peers/run.sh [--methods "simclr moco byol simsiam"] [--subset 10000] [--epochs 10] [--batch-size 256]
#                      [--threads 2] [--seeds "0"] [--width 16] [--workers 2] [--out runs/peers]
#                      [--sides "contrastive lightly"] [--ours-extra "FLAGS"] [--lightly-extra "FLAGS"]
#
# Resumable: a (method, side, seed, budget, extra flags) already in OUT/results.jsonl is not run again. Prints the
# CPU and the markdown tables (also written to OUT/table.md). --ours-extra adds flags to `contrastive train` (e.g.
# "--precision fp32"), --lightly-extra to lightly_train.py (e.g. "--joint-forward"). Needs build/contrastive
# (./setup.sh); installs lightly into .venv (bench/peers/setup_peers.sh) when it is not there.
set -euo pipefail
cd "$(dirname "$0")/../.."
METHODS="simclr moco byol simsiam"
SUBSET=10000 EPOCHS=10 BATCH=256 THREADS=2 SEEDS=0 WIDTH=16 WORKERS=2 OUT=runs/peers SIDES="contrastive lightly"
OURS_EXTRA="" LIGHTLY_EXTRA=""
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --methods) METHODS=$2; shift 2 ;;
    --subset) SUBSET=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --batch-size) BATCH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --width) WIDTH=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --sides) SIDES=$2; shift 2 ;;
    --ours-extra) OURS_EXTRA=$2; shift 2 ;;
    --lightly-extra) LIGHTLY_EXTRA=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
fail() { echo "run.sh: $*" >&2; exit 1; }
usage_error() { echo "run.sh: $*" >&2; exit 2; }
for m in $METHODS; do
  case "$m" in simclr|moco|byol|simsiam) ;; *) usage_error "--methods: '$m' is not one of simclr moco byol simsiam" ;; esac
done
for s in $SIDES; do
  case "$s" in contrastive|lightly) ;; *) usage_error "--sides: '$s' is not one of contrastive lightly" ;; esac
done
BIN=build/contrastive
PY=${VENV:-.venv}/bin/python
case " $SIDES " in
  *" contrastive "*) [ -x "$BIN" ] || fail "$BIN is missing: build the project first (./setup.sh)" ;;
esac
[ -x /usr/bin/time ] || fail "/usr/bin/time is missing (Debian: apt-get install time)"
bench/peers/setup_peers.sh || exit 1
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
CPU="$CPU, $(nproc) cores"
echo "CPU: $CPU"
echo "budget: methods '$METHODS', $SUBSET images, $EPOCHS epochs, batch $BATCH, width $WIDTH, $THREADS threads," \
  "seeds '$SEEDS', lightly DataLoader workers $WORKERS; results in $RESULTS"

key_json() {  # method side seed flags
  "$PY" bench/peers/report.py key --method "$1" --side "$2" --seed "$3" --train-subset "$SUBSET" --epochs "$EPOCHS" \
    --batch-size "$BATCH" --width "$WIDTH" --threads "$THREADS" --flags="$4"
}

run_side() {  # method side seed
  local m=$1 side=$2 seed=$3 key dir cmd flags tag
  if [ "$side" = contrastive ]; then flags=$OURS_EXTRA; else flags=$LIGHTLY_EXTRA; fi
  key=$(key_json "$m" "$side" "$seed" "$flags")
  if "$PY" bench/peers/report.py has "$RESULTS" --key "$key"; then
    echo "== $m / $side / seed $seed: in $RESULTS already, skipped"
    return 0
  fi
  tag=$(printf '%s' "$flags" | tr -c 'A-Za-z0-9.=_-' '_')
  dir=$OUT/$m-$side-s$seed-n$SUBSET-e$EPOCHS-b$BATCH-w$WIDTH-t$THREADS${tag:+-$tag}
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$side" = contrastive ]; then
    cmd="$BIN train --method $m --dataset fashion-mnist --arch resnet18 --width $WIDTH --epochs $EPOCHS"
    cmd+=" --train-subset $SUBSET --batch-size $BATCH --threads $THREADS --seed $seed --knn-every 0 --out $dir/run"
    cmd+="${flags:+ $flags}"
  else
    cmd="$PY bench/peers/lightly_train.py --method $m --train-subset $SUBSET --epochs $EPOCHS --batch-size $BATCH"
    cmd+=" --width $WIDTH --seed $seed --threads $THREADS --workers $WORKERS --out $dir${flags:+ $flags}"
  fi
  echo "== $m / $side / seed $seed: $cmd"
  local t0=$SECONDS
  # shellcheck disable=SC2086  # the command is a word list
  /usr/bin/time -v -o "$dir/time.txt" $cmd >"$dir/train.log" 2>&1 ||
    fail "$m / $side failed; see $dir/train.log: $(tail -n 3 "$dir/train.log" | tr '\n' ' ')"
  if [ "$side" = contrastive ]; then
    "$BIN" export --checkpoint "$dir/run/last.ckpt" --out "$dir/backbone.pt" >>"$dir/train.log" 2>&1 ||
      fail "export of $dir/run/last.ckpt failed; see $dir/train.log"
  fi
  "$PY" bench/peers/eval.py --state "$dir/backbone.pt" --train-subset "$SUBSET" --threads "$THREADS" --json \
    >"$dir/eval.json" 2>"$dir/eval.log" || fail "eval.py on $dir/backbone.pt failed; see $dir/eval.log"
  "$PY" bench/peers/report.py record --dir "$dir" --side "$side" --key "$key" --command "$cmd" --cpu "$CPU" \
    >>"$RESULTS" || fail "cannot record $dir"
  echo "   ($((SECONDS - t0)) s in all)"
}

for seed in $SEEDS; do
  i=0
  for m in $METHODS; do
    # Alternate which side goes first, so slow drift of the machine does not favour one side.
    if [ $((i % 2)) -eq 0 ]; then order="contrastive lightly"; else order="lightly contrastive"; fi
    for side in $order; do
      case " $SIDES " in *" $side "*) run_side "$m" "$side" "$seed" ;; esac
    done
    i=$((i + 1))
  done
done

BUDGET=$(printf '{"train_subset":%d,"epochs":%d,"batch_size":%d,"width":%d,"threads":%d}' \
  "$SUBSET" "$EPOCHS" "$BATCH" "$WIDTH" "$THREADS")
"$PY" bench/peers/report.py table "$RESULTS" --key "$BUDGET" | tee "$OUT/table.md"
