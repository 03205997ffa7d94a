#!/usr/bin/env bash
# Builds the libFuzzer targets (clang; ASan + UBSan) in a separate build dir and runs each one for a fixed
# time from its seed corpus (fuzz/corpus/<target>) and the kept crash inputs (fuzz/regressions/<target>).
# Writes a summary (executions, new corpus inputs, crashes per target) and exits 1 if any target crashed,
# 2 if the build failed. scripts/fuzz_smoke.sh is the same with a short budget.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 600)
#   FUZZ_TARGETS    targets to run (default "idx cifar checkpoint config")
#   FUZZ_BUILD_DIR  build dir (default build-fuzz)
#   FUZZ_OUT        output dir: per target the grown corpus, crash inputs and libFuzzer's log, plus
#                   summary.txt (default fuzz-out/<UTC date-time>)
#   FUZZ_JOBS       build jobs (default: nproc)
#   CXX             clang++ by default (a build dir configured before keeps its compiler)
# Reproduce a crash: build-fuzz/fuzz/fuzz_<target> <crash file>; then keep the file under
# fuzz/regressions/<target>/ (the gtest FuzzRegressions.* runs it in the normal suite).
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-600}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-idx cifar checkpoint config}"
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
OUT=${FUZZ_OUT:-fuzz-out/$(date -u +%Y%m%d-%H%M%S)}
JOBS=${FUZZ_JOBS:-$(nproc)}

# clang with libFuzzer and its sanitizer runtimes; the rest comes from setup.sh's packages.
missing=()
for p in clang libclang-rt-14-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

start=$(date +%s)
if ! CXX=${CXX:-clang++} cmake -S . -B "$BUILD" -DCONTRASTIVE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
   ! cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]/#/fuzz_}"; then
  echo "fuzz: build failed" >&2
  exit 2
fi
build_s=$(( $(date +%s) - start ))

mkdir -p "$OUT"
# abort_on_error/halt_on_error: a sanitizer report is a crash that libFuzzer saves. Leak detection stays on
# (no false reports from LibTorch in these targets), except for checkpoint_payload: LibTorch's zip reader leaks
# on some damaged archives (fuzz/known-crashes/README.md).
ASAN_DEFAULT=${ASAN_OPTIONS:-abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary="$OUT/summary.txt"
printf '%-11s %12s %10s %8s %8s  %s\n' target executions exec/s corpus crashes status >"$summary"
failed=0
for t in "${TARGETS[@]}"; do
  dir="$OUT/$t"
  mkdir -p "$dir/corpus" "$dir/crashes"
  args=(-max_total_time="$SECONDS_EACH" -timeout=20 -print_final_stats=1 -artifact_prefix="$dir/crashes/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  asan=$ASAN_DEFAULT
  [ "$t" = checkpoint_payload ] && asan="detect_leaks=0:$asan"
  ASAN_OPTIONS=$asan "$BUILD/fuzz/fuzz_$t" "${args[@]}" "$dir/corpus" "${seeds[@]}" >"$dir/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  per_s=$(grep -o 'exec/s: [0-9]*' "$dir/log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "$dir/crashes" -type f | wc -l)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  status=ok
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    status="FAILED (exit $rc; see $dir/log)"
    failed=1
  fi
  printf '%-11s %12s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${per_s:-?}" "$corpus" "$crashes" "$status" >>"$summary"
done
echo "build ${build_s}s, ${SECONDS_EACH}s per target, total $(( $(date +%s) - start ))s" >>"$summary"
cat "$summary"
exit "$failed"
