#!/usr/bin/env bash
# The per-method table on Fashion-MNIST (docs/results.md): every method with the same backbone (resnet18, width
# 16; AMDIM uses its own encoder), epochs and training images; kNN (k=200, t=0.1) of last.ckpt and a linear probe
# on the frozen backbone whose epoch is chosen on a held-out tenth of the training features (`contrastive linear`),
# each reported on the test split once; plus the untrained floor, training seconds and the precision picked.
#
#   SUBSET (default 10000), EPOCHS (default 5), SEED (default 0), THREADS (default 2), OUT (default
#   runs/methods-table), METHODS (default: every registered method), EXTRA (flags added to every run),
#   ARGS_<method> (flags added to that method's run, e.g. ARGS_barlowtwins="--optimizer lars --lr 0.3").
#
# Finished runs are kept: rerunning the script continues with the missing ones (a run whose flags changed is
# redone). Each row is also appended to OUT/rows.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/contrastive}
OUT=${OUT:-runs/methods-table}
SUBSET=${SUBSET:-10000}
EPOCHS=${EPOCHS:-5}
SEED=${SEED:-0}
THREADS=${THREADS:-2}
EXTRA=${EXTRA:-}
COMMON="--dataset fashion-mnist --width 16 --epochs $EPOCHS --train-subset $SUBSET --knn-every $EPOCHS --seed $SEED --threads $THREADS"
BASE="--dataset fashion-mnist --width 16 --train-subset $SUBSET --seed $SEED --threads $THREADS"  # the floors
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mkdir -p "$OUT"
METHODS=${METHODS:-$($BIN methods --json | python3 -c 'import json, sys; print(" ".join(json.loads(l)["name"] for l in sys.stdin))')}

score() {  # $1 name, $2 run dir, $3 checkpoint, $4 flags: one JSON row on stdout
  local knn lin
  knn=$($BIN knn --checkpoint "$3" --threads "$THREADS" --json | tail -1)
  lin=$($BIN linear --checkpoint "$3" --threads "$THREADS" --json | tail -1)
  python3 - "$1" "$2" "$knn" "$lin" "$4" "$CPU" <<'PY'
import json, os, re, sys
name, run, knn, lin, flags, cpu = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5], sys.argv[6]
secs = sum(json.loads(l).get("train_seconds", 0) for l in open(f"{run}/metrics.jsonl") if l.strip()) if os.path.exists(f"{run}/metrics.jsonl") else 0
prec = ""
if os.path.exists(f"{run}/train.log"):
    m = re.search(r"precision (\w+)", open(f"{run}/train.log", errors="replace").read())
    prec = m.group(1) if m else ""
print(json.dumps({"row": name, "knn_top1": knn["top1"], "linear_top1": lin["top1"], "linear_epoch": lin["epoch"],
                  "linear_val_top1": lin["val_top1"], "train_seconds": secs, "precision": prec, "flags": flags, "cpu": cpu}))
PY
}

rows=()
for m in $METHODS; do
  arch=resnet18; [ "$m" = amdim ] && arch=amdim
  var="ARGS_$m"; flags="--method $m --arch $arch $COMMON $EXTRA ${!var:-}"
  d=$OUT/$m
  if [ ! -f "$d/last.ckpt" ] || [ "$(cat "$d/flags" 2>/dev/null)" != "$flags" ] ||
     [ "$(grep -c . "$d/metrics.jsonl" 2>/dev/null || echo 0)" -lt "$EPOCHS" ]; then
    rm -rf "${d:?}"
    mkdir -p "$d"
    # shellcheck disable=SC2086
    $BIN train $flags --out "$d" > "$d.log" 2>&1 || { echo "methods_table.sh: $m failed, see $d.log" >&2; continue; }
    cp "$d.log" "$d/train.log"
    echo "$flags" > "$d/flags"
  fi
  [ -s "$d/row.json" ] || { score "$m" "$d" "$d/last.ckpt" "$flags" > "$d/row.tmp" && mv "$d/row.tmp" "$d/row.json"; } ||
    { echo "methods_table.sh: scoring $m failed" >&2; continue; }
  cat "$d/row.json" >> "$OUT/rows.jsonl"
  rows+=("$d/row.json")
done
# The untrained floors: the usual initialisation (simclr's) and SimSiam's zero-initialised residual BN.
for f in simclr simsiam; do
  d=$OUT/floor-$f
  if [ ! -s "$d/row.json" ]; then
    rm -rf "${d:?}"; mkdir -p "$d"
    rc=0
    # shellcheck disable=SC2086
    $BIN train --method $f --arch resnet18 $BASE --epochs 1 --knn-every 0 --stop-after-steps 1 --lr 1e-8 \
      --out "$d" > "$d.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || { echo "methods_table.sh: floor $f failed, see $d.log" >&2; continue; }
    score "untrained ($f init)" "$d" "$d/last.ckpt" "one step at lr 1e-8" > "$d/row.tmp" && mv "$d/row.tmp" "$d/row.json"
  fi
  rows+=("$d/row.json")
done
python3 - "${rows[@]}" <<'PY' | tee "$OUT/table.md"
import json, sys
print("| method | kNN top-1 (%) | linear top-1 (%) (epoch chosen on validation) | train seconds | precision |")
print("|---|---|---|---|---|")
for p in sys.argv[1:]:
    r = json.load(open(p))
    print(f"| {r['row']} | {100*r['knn_top1']:.2f} | {100*r['linear_top1']:.2f} (epoch {r['linear_epoch']}) | {r['train_seconds']:.0f} | {r['precision']} |")
print(f"\nCPU: {json.load(open(sys.argv[1]))['cpu']}")
PY
