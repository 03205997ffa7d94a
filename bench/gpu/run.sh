#!/usr/bin/env bash
# bench/gpu/run.sh OUTDIR [PACKDIR] -- issue 39: build, test, train, resume and benchmark the CUDA build on one
# GPU machine (H100/H200, CUDA 13, pip torch 2.x, no network), in one device call.
#
# Carry: the working tree travels by itself; the call must also carry `build-carry` (ignored by /build*/), which
#   bench/gpu/carry.sh makes here: a copy of Fashion-MNIST (cp /usr/share/datasets/fashion-mnist/*.gz
#   build-carry/fashion-mnist/) and Debian's yaml-cpp, nlohmann-json, CLI11, GoogleTest, Gloo, stb and zlib
#   headers/libraries, which the GPU image may lack. Nothing else: the CUDA build is made from source there.
# Device call (the tool returns at most 8 files from $OUT, so PACKDIR gets one tarball plus the summary):
#   run(command="bash bench/gpu/run.sh /tmp/gpu $OUT", carry=["build-carry"], timeout_s=600)
# Dry run on a CPU machine (skips the CUDA build, uses BUILD_DIR, tiny budgets):
#   DEVICE=cpu BUILD_DIR=build PYTHON=/usr/bin/python3 nice -n 10 bench/gpu/run.sh /tmp/gpu_dry   (or --dry-run)
#
# Steps (each one's log is OUTDIR/<step>.log; OUTDIR/steps.tsv has its exit code and seconds; a failing step does
# not stop the others; steps that would start after BUDGET_S seconds are recorded as skipped):
#   env        OUTDIR/env.txt: nvidia-smi, torch/CUDA/cuDNN versions, C++11 ABI flag, nproc, CPU, compilers and
#              which build prerequisites the machine has (system or carried)
#   data       Fashion-MNIST from build-carry (linked to /usr/share/datasets/fashion-mnist where that is missing,
#              for the tests), and generated CIFAR-10-format binaries for the benchmark
#   configure, build   build-cuda/ against pip torch (setup.sh's pip flags: both torch prefixes, nvcc,
#              TORCH_CUDA_ARCH_LIST=9.0, the NCCL wheel's nccl.h, CONTRASTIVE_PYTHON/TORCHRUN of that python)
#   tests      the test binary's CUDA tests (--gtest_filter, CUDA_TESTS); FULL_TESTS=1 adds `ctest -L fast`
#   bench_cpp  contrastive bench: SimCLR, resnet18 width 64, 32x32 CIFAR-format, batch 512, bf16 + channels-last
#              (fp32 if this build refuses bf16 on CUDA), GPU augmentation flag if the CLI has one, --profile
#   bench_py_bf16, bench_py_fp32   bench/gpu/reference_gpu.py: bench/reference.py's step on the GPU, torchvision
#              transforms in DataLoader workers, same model, batch and data
#   profile    bench/profile_compare.py on the two traces
#   train_simclr, train_cds   1 epoch each on Fashion-MNIST, --device cuda, the CLI's defaults otherwise
#   resume_epoch, resume_mid  a CDS run written on the GPU (after epoch 1; stopped mid-epoch) resumed on the
#              CPU to epoch 2, then `eval` of its checkpoint on the CPU: OUTDIR/resume.txt says PASS or FAIL
#   summary    OUTDIR/summary.md: the table of rates and GPU memory, the goals, training and resume results
# Environment: DEVICE (cuda | cpu), BUILD_DIR, PYTHON, CUDA_HOME, BUDGET_S, WORK (scratch: data, run dirs),
# CUDA_TESTS, FULL_TESTS, BENCH_STEPS, BENCH_WARMUP, PY_WORKERS, CPP_BENCH_EXTRA (more flags for bench_cpp).
set -u

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)

if [ "${1:-}" != "--step" ]; then
  if [ "${1:-}" = "--dry-run" ]; then
    export DEVICE=cpu
    shift
  fi
  if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bench/gpu/run.sh [--dry-run] OUTDIR [PACKDIR]" >&2
    exit 2
  fi
  mkdir -p "$1" || exit 2
  OUTDIR=$(cd "$1" && pwd)
  PACKDIR=${2:-}
  export OUTDIR PACKDIR
fi

# ---- configuration (the same in the step processes, which inherit it) --------------------------------------
: "${DEVICE:=cuda}"
case "$DEVICE" in
  cuda)
    : "${BUILD_DIR:=$REPO/build-cuda}" "${PYTHON:=python3}" "${BUDGET_S:=500}"
    : "${BENCH_WIDTH:=64}" "${BENCH_BATCH:=512}" "${BENCH_STEPS:=30}" "${BENCH_WARMUP:=10}" "${CIFAR_N:=10000}"
    : "${PY_WORKERS:=12}"
    TRAIN_FLAGS=""
    RESUME_FLAGS="--train-subset 2048 --test-subset 1000 --batch-size 256"
    ;;
  cpu)
    : "${BUILD_DIR:=$REPO/build}" "${BUDGET_S:=3600}"
    if [ -z "${PYTHON:-}" ]; then
      PYTHON=python3
      [ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3  # Debian's: the torch of build/
    fi
    : "${BENCH_WIDTH:=16}" "${BENCH_BATCH:=64}" "${BENCH_STEPS:=2}" "${BENCH_WARMUP:=1}" "${CIFAR_N:=256}"
    : "${PY_WORKERS:=1}"
    TRAIN_FLAGS="--train-subset 512 --test-subset 256 --batch-size 64"
    RESUME_FLAGS="--train-subset 512 --test-subset 256 --batch-size 64"
    ;;
  *) echo "run.sh: DEVICE must be cuda or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac
: "${WORK:=/tmp/contrastive-gpu-work-$DEVICE}" "${CUDA_HOME:=/usr/local/cuda}" "${FULL_TESTS:=0}"
: "${CPP_BENCH_EXTRA:=}"
: "${CUDA_TESTS:=*Cuda*:*CUDA*:*Gpu*:*GPU*:Platform.BuildInfoNamesTheLibTorchVersion:PlatformCLI.VersionNamesLibTorchCudaAndTheCpu}"
CARRY=$REPO/build-carry
DEPS=$CARRY/deps
CLI=$BUILD_DIR/contrastive
TESTS=$BUILD_DIR/tests/contrastive_tests
CIFAR=$WORK/cifar10
if [ -z "${FMNIST:-}" ]; then
  FMNIST=/usr/share/datasets/fashion-mnist
  for d in "$CARRY/fashion-mnist" "$REPO/data/fashion-mnist"; do
    if [ -f "$d/train-images-idx3-ubyte.gz" ]; then FMNIST=$d; break; fi
  done
fi
export DEVICE BUILD_DIR PYTHON BUDGET_S BENCH_WIDTH BENCH_BATCH BENCH_STEPS BENCH_WARMUP CIFAR_N PY_WORKERS WORK
export CUDA_HOME FULL_TESTS CPP_BENCH_EXTRA CUDA_TESTS FMNIST
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
[ -d "$DEPS/pkg/lib/x86_64-linux-gnu" ] && export LD_LIBRARY_PATH="$DEPS/pkg/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

log() { echo "[$(date -u +%T)] $*"; }
have() { command -v "$1" >/dev/null 2>&1; }
need_cli() { [ -x "$CLI" ] || { echo "no $CLI (the build step failed or was skipped)"; exit 127; }; }

find_nvcc() {
  local c
  for c in "$CUDA_HOME/bin/nvcc" /usr/local/cuda/bin/nvcc "$(command -v nvcc 2>/dev/null)"; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

# GPU memory in use, sampled every 200 ms into a file while a benchmark runs (nothing on a machine without
# nvidia-smi).
SAMPLER_PID=""
start_gpu_sampler() {  # $1: file
  have nvidia-smi || return 0
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 200 >"$1" 2>/dev/null &
  SAMPLER_PID=$!
}
stop_gpu_sampler() {
  [ -n "$SAMPLER_PID" ] || return 0
  kill "$SAMPLER_PID" 2>/dev/null
  wait "$SAMPLER_PID" 2>/dev/null
  SAMPLER_PID=""
}

# ---- steps (each runs in its own process: `run.sh --step NAME`, under timeout) -------------------------------
step_env() {
  {
    echo "# date: $(date -u +%FT%TZ), host $(uname -n), $(uname -sr), DEVICE=$DEVICE"
    grep -E '^(PRETTY_NAME)=' /etc/os-release 2>/dev/null
    echo "# nproc: $(nproc)"
    if have lscpu; then
      echo "# lscpu: $(lscpu | grep -m1 'Model name' | sed 's/^[^:]*: *//')"
    fi
    echo "# cpuinfo model: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "# cpu flags: $(grep -m1 -owE 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    echo "# memory: $(grep -m1 MemTotal /proc/meminfo)"
    echo "# nvidia-smi"
    if have nvidia-smi; then
      nvidia-smi
      nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm,power.limit --format=csv
    else
      echo "(no nvidia-smi)"
    fi
    echo "# python: $PYTHON"
    "$PYTHON" - <<'PY'
import sys
print("python", sys.version.split()[0], sys.executable)
import torch
print("torch", torch.__version__)
print("torch.version.cuda", torch.version.cuda)
print("cudnn", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
print("_GLIBCXX_USE_CXX11_ABI", torch._C._GLIBCXX_USE_CXX11_ABI)
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, "cc %d.%d" % (p.major, p.minor), "SMs", p.multi_processor_count,
          "memory %.1f GiB" % (p.total_memory / 2**30))
print("cmake_prefix_path", getattr(torch.utils, "cmake_prefix_path", None))
try:
    import torchvision
    print("torchvision", torchvision.__version__)
except Exception as e:
    print("torchvision: not importable:", e)
PY
    echo "# nvcc: $(find_nvcc || echo none)"
    if find_nvcc >/dev/null; then "$(find_nvcc)" --version | tail -2; fi
    echo "# cmake: $(cmake --version 2>/dev/null | head -1), ninja: $(ninja --version 2>/dev/null || echo none)"
    echo "# c++: $(c++ --version 2>/dev/null | head -1)"
    echo "# build prerequisites: where each header is (system, torch, carried fallback, or missing)"
    local tinc h where d
    tinc=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))' 2>/dev/null)
    for h in yaml-cpp/yaml.h nlohmann/json.hpp CLI/CLI.hpp gtest/gtest.h gmock/gmock.h gloo/config.h \
             stb/stb_image.h zlib.h nccl.h; do
      where=""
      for d in /usr/include /usr/local/include "$CUDA_HOME/include" "$tinc" "$DEPS/pkg/include" "$DEPS/fallback/include"; do
        [ -n "$d" ] && [ -f "$d/$h" ] && where="$where $d"
      done
      echo "  $h:${where:- MISSING}"
    done
    echo "# Fashion-MNIST: $FMNIST"
  } >"$OUTDIR/env.txt" 2>&1
  cat "$OUTDIR/env.txt"
}

step_data() {
  local f
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "$FMNIST/$f" ] || { echo "Fashion-MNIST: $FMNIST/$f missing (carry build-carry, see the header)"; return 1; }
  done
  # The tests look for /usr/share/datasets/fashion-mnist; make it there when we may (root on the GPU machine).
  if [ ! -e /usr/share/datasets/fashion-mnist ]; then
    if mkdir -p /usr/share/datasets 2>/dev/null && ln -s "$FMNIST" /usr/share/datasets/fashion-mnist; then
      echo "linked /usr/share/datasets/fashion-mnist -> $FMNIST"
    else
      echo "could not link /usr/share/datasets/fashion-mnist: the tests that need it will skip"
    fi
  fi
  mkdir -p "$CIFAR"
  # CIFAR-10 binary format: 5 training batches and a test batch of 3073-byte records (label, 3x32x32 CHW).
  # Random 8x8 colour blocks scaled to 32x32, so that crops and colour jitter act on some structure.
  "$PYTHON" - "$CIFAR" "$CIFAR_N" <<'PY'
import os, sys
import numpy as np
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for name in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
    path = os.path.join(d, name)
    if os.path.exists(path) and os.path.getsize(path) == n * 3073:
        continue
    r = np.empty((n, 3073), np.uint8)
    r[:, 0] = rng.integers(0, 10, n)
    small = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    r[:, 1:] = small.repeat(4, axis=2).repeat(4, axis=3).reshape(n, -1)
    r.tofile(path)
print("CIFAR-format data: %s, %d images per batch file" % (d, n))
PY
}

step_configure() {
  local nvcc torch_cmake torch_dir site nccl="" gen=() prefix cxx="" extra=() torchrun py
  nvcc=$(find_nvcc) || { echo "no nvcc (CUDA_HOME=$CUDA_HOME): the wheel's CMake files need it"; return 1; }
  torch_cmake=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  torch_dir=$(dirname "$(dirname "$torch_cmake")")
  site=$(dirname "$torch_dir")
  for d in "$site"/nvidia/nccl/include "$site"/nvidia/*/include; do
    if [ -f "$d/nccl.h" ]; then nccl=$d; break; fi
  done
  # Torch's package directory first (docs/building.md, "Two prefixes"), then the carried Debian packages.
  prefix="$torch_dir;$torch_cmake"
  if [ -d "$DEPS/pkg" ]; then
    prefix="$prefix;$DEPS/pkg"
    extra+=("-Dyaml-cpp_DIR=$DEPS/pkg/lib/x86_64-linux-gnu/cmake/yaml-cpp"
            "-DGTest_DIR=$DEPS/pkg/lib/x86_64-linux-gnu/cmake/GTest"
            "-Dnlohmann_json_DIR=$DEPS/pkg/share/cmake/nlohmann_json"
            "-DCLI11_DIR=$DEPS/pkg/share/cmake/CLI11")
    cxx="-isystem $DEPS/pkg/include"
  fi
  if [ -d "$DEPS/fallback/include" ]; then
    # Only after every other include directory: the system's or the wheel's own copies win where they exist.
    cxx="$cxx -idirafter $DEPS/fallback/include -idirafter $DEPS/fallback/include/stb"
    if [ ! -f /usr/include/zlib.h ] && [ ! -f /usr/local/include/zlib.h ]; then
      extra+=("-DZLIB_INCLUDE_DIR=$DEPS/fallback/include" "-DZLIB_LIBRARY=$DEPS/fallback/lib/libz.so")
    fi
  fi
  [ -n "$nccl" ] && extra+=("-DCONTRASTIVE_NCCL_INCLUDE=$nccl")
  have ninja && gen=(-G Ninja)
  py=$(command -v "$PYTHON")
  torchrun="$(dirname "$py")/torchrun"
  [ -x "$torchrun" ] || torchrun="$py -m torch.distributed.run"
  echo "torch: $torch_dir; nvcc: $nvcc; nccl.h: ${nccl:-not in the wheel (CMake looks in the toolkit)}"
  # A build dir configured with another generator cannot be reused.
  if [ -f "$BUILD_DIR/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}" "$BUILD_DIR/CMakeCache.txt"; then
    rm -rf "$BUILD_DIR"
  fi
  set -x
  cmake -S "$REPO" -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc")")" \
    -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DCONTRASTIVE_PYTHON="$py" -DCONTRASTIVE_TORCHRUN="$torchrun" -DCONTRASTIVE_TORCHRUN_DASH=ON \
    -DCONTRASTIVE_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS="$cxx" "${extra[@]}"
}

step_build() {
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || { echo "not configured"; return 1; }
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target contrastive_cli contrastive_tests
}

step_version() {
  need_cli
  "$CLI" --version
  if have ldd; then ldd "$CLI" | grep -E 'torch|cuda|nccl|yaml|gomp' ; fi
  return 0
}

step_tests() {
  [ -x "$TESTS" ] || { echo "no $TESTS"; exit 127; }
  "$TESTS" --gtest_list_tests >"$OUTDIR/tests_list.txt" 2>&1
  echo "# CUDA tests (filter $CUDA_TESTS); sources that mention CUDA:"
  grep -l -i -E 'cuda' "$REPO"/tests/*.cpp | sed "s|$REPO/||"
  "$TESTS" --gtest_filter="$CUDA_TESTS" --gtest_output="xml:$OUTDIR/tests_cuda.xml"
}

step_tests_fast() {
  [ -x "$TESTS" ] || { echo "no $TESTS"; exit 127; }
  ctest --test-dir "$BUILD_DIR" -L fast -j "$(nproc)" --output-on-failure --timeout 300
}

# One training run: $1 method, the rest extra flags. The run directory is made anew (else auto-resume would
# find the last call's finished run and report it complete).
train_run() {
  local method=$1 dir="$WORK/runs/$1"
  shift
  need_cli
  rm -rf "$dir"
  # shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
  "$CLI" train --method "$method" --dataset fashion-mnist --data "$FMNIST" --epochs 1 --device "$DEVICE" \
    $TRAIN_FLAGS "$@" --out "$dir"
  local rc=$?
  for f in metrics.jsonl config.yaml; do [ -f "$dir/$f" ] && cp "$dir/$f" "$OUTDIR/train_$method.$f"; done
  return $rc
}
step_train_simclr() { train_run simclr; }
step_train_cds() { train_run cds; }

# A run written on $DEVICE, resumed on the CPU. $1: epoch (after epoch 1 of 2) | mid (stopped after 3 steps).
# CDS: it has a classifier, so `eval` on the CPU can read the resumed checkpoint too (SimCLR's has none).
resume_check() {
  local kind=$1 dir="$WORK/runs/resume-$1" rc1 rc2 rc3 n want verdict
  need_cli
  rm -rf "$dir"
  echo "## part 1 on $DEVICE"
  # shellcheck disable=SC2086  # RESUME_FLAGS is a list of flags
  if [ "$kind" = epoch ]; then
    "$CLI" train --method cds --data "$FMNIST" $RESUME_FLAGS --epochs 1 --device "$DEVICE" --out "$dir"
    rc1=$?; want=0
  else
    "$CLI" train --method cds --data "$FMNIST" $RESUME_FLAGS --epochs 2 --stop-after-steps 3 \
      --device "$DEVICE" --out "$dir"
    rc1=$?; want=130
  fi
  echo "## part 2 on the CPU: --resume $dir --epochs 2 --device cpu"
  "$CLI" train --resume "$dir" --epochs 2 --device cpu
  rc2=$?
  echo "## eval of the resumed checkpoint on the CPU"
  "$CLI" eval --checkpoint "$dir/last.ckpt" --device cpu --json
  rc3=$?
  n=$(grep -c '^{' "$dir/metrics.jsonl" 2>/dev/null)
  grep -h 'resumed from' "$dir/train.log" 2>/dev/null | tail -1
  cp "$dir/metrics.jsonl" "$OUTDIR/resume_$kind.metrics.jsonl" 2>/dev/null
  verdict=FAIL
  [ "$rc1" -eq "$want" ] && [ "$rc2" -eq 0 ] && [ "$rc3" -eq 0 ] && [ "${n:-0}" -ge 2 ] && verdict=PASS
  echo "resume_$kind: $verdict (part 1 on $DEVICE exit $rc1, want $want; resume on cpu exit $rc2; eval on cpu exit $rc3; $n epochs in metrics.jsonl, want 2)" \
    | tee -a "$OUTDIR/resume.txt"
  [ "$verdict" = PASS ]
}
step_resume_epoch() { resume_check epoch; }
step_resume_mid() { resume_check mid; }

step_bench_cpp() {
  need_cli
  local help extra=() prec=bf16 rc base
  help=$("$CLI" bench --help 2>&1)
  # Augmentation on the GPU: the views are made on the bench's device already (view_generator.cpp converts on the
  # target device); a flag for it is added if the CLI has one.
  if grep -q -- '--augment-device' <<<"$help"; then extra+=(--augment-device "$DEVICE"); fi
  if grep -q -- '--gpu-augment' <<<"$help"; then extra+=(--gpu-augment); fi
  # shellcheck disable=SC2206  # CPP_BENCH_EXTRA is a list of flags
  extra+=($CPP_BENCH_EXTRA)
  base=(bench --method simclr --arch resnet18 --width "$BENCH_WIDTH" --batch-size "$BENCH_BATCH"
        --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" --dataset cifar10 --data "$CIFAR" --device "$DEVICE"
        --memory-format channels-last --peak-size 0 --json)
  for prec in bf16 fp32; do
    echo "## contrastive ${base[*]} --precision $prec ${extra[*]} --profile $OUTDIR/bench_cpp_profile.json"
    start_gpu_sampler "$OUTDIR/bench_cpp.gpumem"
    "$CLI" "${base[@]}" --precision "$prec" "${extra[@]}" --profile "$OUTDIR/bench_cpp_profile.json" \
      >"$OUTDIR/bench_cpp.out" 2>"$OUTDIR/bench_cpp.err"
    rc=$?
    stop_gpu_sampler
    cat "$OUTDIR/bench_cpp.err" "$OUTDIR/bench_cpp.out"
    grep '^{' "$OUTDIR/bench_cpp.out" >"$OUTDIR/bench_cpp.json"
    # bf16 refused (a build whose bf16 autocast is CPU-only, or a CPU without native bf16): measure fp32.
    if [ "$prec" = bf16 ] && [ "$rc" -eq 2 ]; then
      echo "--precision bf16 refused (exit 2: $(grep -m1 -i 'error' "$OUTDIR/bench_cpp.err")); measured fp32" \
        | tee "$OUTDIR/bench_cpp.note"
      continue
    fi
    break
  done
  [ -s "$OUTDIR/bench_cpp.json" ] || return "$((rc == 0 ? 1 : rc))"
  return "$rc"
}

bench_py() {  # $1: name; the rest reference_gpu.py's precision/layout flags
  local name=$1 rc
  shift
  echo "## $PYTHON bench/gpu/reference_gpu.py ... $*"
  start_gpu_sampler "$OUTDIR/bench_$name.gpumem"
  "$PYTHON" "$REPO/bench/gpu/reference_gpu.py" --method simclr --width "$BENCH_WIDTH" --batch-size "$BENCH_BATCH" \
    --steps "$BENCH_STEPS" --warmup "$BENCH_WARMUP" --dataset cifar10 --data "$CIFAR" --device "$DEVICE" \
    --workers "$PY_WORKERS" "$@" >"$OUTDIR/bench_$name.out"
  rc=$?
  stop_gpu_sampler
  cat "$OUTDIR/bench_$name.out"
  grep '^{' "$OUTDIR/bench_$name.out" >"$OUTDIR/bench_$name.json"
  return "$rc"
}
step_bench_py_bf16() {
  bench_py py_bf16 --bf16 --channels-last --profile "$OUTDIR/bench_py_profile.json" --profile-steps "$BENCH_STEPS"
}
step_bench_py_fp32() { bench_py py_fp32 --channels-last; }

step_profile() {
  local f
  for f in bench_cpp_profile.json bench_py_profile.json; do
    [ -s "$OUTDIR/$f" ] || { echo "no $OUTDIR/$f"; return 1; }
  done
  "$PYTHON" "$REPO/bench/profile_compare.py" "$OUTDIR/bench_cpp_profile.json" "$OUTDIR/bench_py_profile.json" \
    --steps "$BENCH_STEPS" --top 40 | tee "$OUTDIR/profile_compare.txt"
}

step_summary() {
  "$PYTHON" - "$OUTDIR" "$DEVICE" "$BENCH_WIDTH" "$BENCH_BATCH" "$BENCH_STEPS" <<'PY'
import glob, json, os, re, sys
out, device, width, batch, steps = sys.argv[1:6]

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None

def gpumem(name):  # max memory.used (MiB) and max utilisation (%) sampled during a run
    try:
        rows = [l.split(",") for l in open(os.path.join(out, name)) if l.strip()]
        return max(float(r[0]) for r in rows), max(float(r[1]) for r in rows)
    except Exception:
        return None, None

def fmt(x, nd=0):
    return "n/a" if x is None else ("%.*f" % (nd, x))

L = ["# GPU check (issue 39): %s" % device, ""]
env = open(os.path.join(out, "env.txt")).read() if os.path.exists(os.path.join(out, "env.txt")) else ""
for key in ("torch ", "torch.version.cuda", "device ", "# nproc", "# lscpu", "# cpuinfo model", "_GLIBCXX"):
    m = [l for l in env.splitlines() if l.startswith(key)]
    if m:
        L.append("* " + m[0].lstrip("# "))
note = os.path.join(out, "bench_cpp.note")
L += ["", "## Benchmark: SimCLR, resnet18 width %s, 32x32 CIFAR-format (generated), batch %s, %s timed steps" %
      (width, batch, steps), ""]
if os.path.exists(note):
    L += ["C++: " + open(note).read().strip(), ""]
L.append("| impl | precision, layout | end to end img/s | model only img/s | augmentation only img/s | "
         "augmentation share | GPU memory used, max MiB (nvidia-smi) | GPU util max % | torch peak reserved MiB | host RSS MB |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
rows = [("C++ contrastive bench", load("bench_cpp.json"), "bench_cpp.gpumem")]
for n in ("py_bf16", "py_fp32"):
    rows.append(("Python reference_gpu.py", load("bench_%s.json" % n), "bench_%s.gpumem" % n))
res = {}
for label, r, mem in rows:
    if r is None:
        L.append("| %s | (no result) | | | | | | | | |" % label)
        continue
    e2e, model, aug = r.get("images_per_s"), r.get("model_images_per_s"), r.get("augment_images_per_s")
    share = e2e / aug if e2e and aug else None
    used, util = gpumem(mem)
    L.append("| %s | %s, %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        label, r.get("precision"), r.get("memory_format"), fmt(e2e), fmt(model), fmt(aug),
        "n/a" if share is None else "%.1f%%" % (100 * share), fmt(used), fmt(util),
        fmt(r.get("gpu_peak_reserved_mb")), fmt(r.get("peak_rss_mb"))))
    res[label if label.startswith("C++") else "py " + r.get("precision", "?")] = (r, share)
L += ["", "Augmentation share: augmentation-only time per image over end-to-end time per image "
      "(end-to-end rate / augmentation-only rate), i.e. the part of a step that augmentation would take if it "
      "ran serially; the C++ views are made on the bench's device, in the loader thread. The C++ bench reads its "
      "clock without a device synchronisation: its end-to-end and model-only steps synchronise anyway (the "
      "trainer's finiteness check reads the loss every step), but on a GPU its augmentation-only rate times "
      "kernel launches and can be overstated. The Python rates are read after torch.cuda.synchronize().", ""]
cpp = res.get("C++ contrastive bench")
pys = [v for k, v in res.items() if k.startswith("py ")]
L += ["## Goals", ""]
if cpp:
    c = cpp[0]
    e2e = c.get("images_per_s") or 0
    L.append("* end to end >= 10,000 img/s: %.0f -> %s" % (e2e, "met" if e2e >= 10000 else "NOT met"))
    if pys:
        same = [p for p in pys if p[0].get("precision") == c.get("precision")]
        best = max(pys, key=lambda p: p[0].get("images_per_s") or 0)[0]
        ratio = e2e / best["images_per_s"] if best.get("images_per_s") else None
        L.append("* >= 1.5x the Python reference's best (%s, %.0f img/s): %s -> %s" % (
            best.get("precision"), best.get("images_per_s") or 0, fmt(ratio, 2),
            "met" if ratio and ratio >= 1.5 else "NOT met"))
        if same:
            s = same[0][0]
            L.append("  (same precision, %s: %s; model only %s)" % (
                s.get("precision"), fmt(e2e / s["images_per_s"], 2) if s.get("images_per_s") else "n/a",
                fmt(c["model_images_per_s"] / s["model_images_per_s"], 2)
                if s.get("model_images_per_s") and c.get("model_images_per_s") else "n/a"))
    share = cpp[1]
    L.append("* augmentation <= 10%% of a step: %s -> %s" % (
        "n/a" if share is None else "%.1f%%" % (100 * share), "met" if share is not None and share <= 0.10 else "NOT met"))
else:
    L.append("* no C++ benchmark result")

L += ["", "## Training, 1 epoch on Fashion-MNIST (--device %s)" % device, ""]
for m in ("simclr", "cds"):
    p = os.path.join(out, "train_%s.metrics.jsonl" % m)
    if not os.path.exists(p):
        L.append("* %s: no metrics (see train_%s.log)" % (m, m))
        continue
    rows = [json.loads(l) for l in open(p) if l.startswith("{")]
    if not rows:
        L.append("* %s: empty metrics.jsonl" % m)
        continue
    r = rows[-1]
    keys = ["loss", "test_top1", "knn_top1", "images_per_s", "seconds"]
    L.append("* %s: " % m + ", ".join("%s %s" % (k, r[k] if not isinstance(r[k], float) else "%.4g" % r[k])
                                      for k in keys if k in r and r[k] is not None))

L += ["", "## Checkpoint written on %s, resumed on the CPU" % device, ""]
p = os.path.join(out, "resume.txt")
L += ["* " + l for l in open(p).read().splitlines()] if os.path.exists(p) else ["* no result"]

L += ["", "## Tests with a CUDA path", ""]
p = os.path.join(out, "tests.log")
if os.path.exists(p):
    t = open(p, errors="replace").read()
    for pat in (r"\[==========\] \d+ tests? from .* ran.*", r"\[  PASSED  \] \d+ tests?.*",
                r"\[  SKIPPED \] \d+ tests?.*", r"\[  FAILED  \] \d+ tests?.*"):
        L += ["* " + m for m in re.findall(pat, t)]
    L += ["* skipped: " + m for m in re.findall(r"\[  SKIPPED \] (\S+\.\S+) \(", t)]
    L += ["* failed: " + m for m in re.findall(r"\[  FAILED  \] (\S+\.\S+) \(", t)]
else:
    L.append("* no test log")

L += ["", "## Steps (exit code, seconds)", "", "| step | exit | seconds | note |", "|---|---|---|---|"]
p = os.path.join(out, "steps.tsv")
if os.path.exists(p):
    for line in open(p).read().splitlines()[1:]:
        f = (line.split("\t") + ["", "", "", ""])[:4]
        L.append("| %s |" % " | ".join(f))
L.append("| summary | (this file) | | |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
}

if [ "${1:-}" = "--step" ]; then
  "step_$2"
  exit $?
fi

# ---- driver ------------------------------------------------------------------------------------------------
T_START=$(date +%s)
DEADLINE=$((T_START + BUDGET_S))
STEPS_TSV=$OUTDIR/steps.tsv
printf 'step\texit\tseconds\tnote\n' >"$STEPS_TSV"
rm -f "$OUTDIR/resume.txt" "$OUTDIR/bench_cpp.note"

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STEPS_TSV"; }

run_step() {  # NAME LIMIT_S: runs step_NAME in its own process under timeout, logs to OUTDIR/NAME.log
  local name=$1 limit=$2 now left t0 secs rc note=""
  now=$(date +%s)
  left=$((DEADLINE - now))
  if [ "$left" -lt 20 ]; then
    log "$name: skipped (BUDGET_S=$BUDGET_S spent)"
    record "$name" skip 0 "time budget spent"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "$name (limit ${limit}s)"
  t0=$EPOCHREALTIME
  timeout -k 15 "$limit" bash "$SELF" --step "$name" >"$OUTDIR/$name.log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then note="timed out after ${limit}s"; fi
  record "$name" "$rc" "$secs" "$note"
  log "$name: exit $rc, ${secs}s${note:+ ($note)}"
  if [ "$rc" -ne 0 ]; then tail -n 8 "$OUTDIR/$name.log" | sed 's/^/    | /'; fi
}

log "run.sh: DEVICE=$DEVICE BUILD_DIR=$BUILD_DIR PYTHON=$PYTHON OUTDIR=$OUTDIR WORK=$WORK budget ${BUDGET_S}s"
mkdir -p "$WORK"
run_step env 60
run_step data 120
if [ "$DEVICE" = cuda ]; then
  run_step configure 180
  run_step build 480
else
  record configure skip 0 "DEVICE=cpu: uses the existing BUILD_DIR"
  record build skip 0 "DEVICE=cpu: uses the existing BUILD_DIR"
fi
run_step version 30
run_step tests 180
if [ "$FULL_TESTS" = 1 ]; then run_step tests_fast 600; fi
run_step bench_cpp 240
run_step bench_py_bf16 240
run_step bench_py_fp32 180
run_step profile 60
run_step train_simclr 300
run_step train_cds 300
run_step resume_epoch 300
run_step resume_mid 300
DEADLINE=$(($(date +%s) + 60))  # the summary always gets its turn
run_step summary 40

if [ -n "${PACKDIR:-}" ]; then
  mkdir -p "$PACKDIR"
  tgz=$WORK/results.tgz  # packed outside OUTDIR (PACKDIR may lie inside it), then moved
  tar -czf "$tgz" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")"
  if [ "$(stat -c %s "$tgz")" -gt $((15 * 1024 * 1024)) ]; then  # the device tool returns <= 16 MiB a file
    tar -czf "$tgz" --exclude='*_profile.json' -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")"
  fi
  mv -f "$tgz" "$PACKDIR/results.tgz"
  cp "$OUTDIR/summary.md" "$OUTDIR/steps.tsv" "$PACKDIR/" 2>/dev/null
  log "packed $OUTDIR into $PACKDIR/results.tgz"
fi
cat "$STEPS_TSV"
