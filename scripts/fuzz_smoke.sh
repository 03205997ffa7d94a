#!/usr/bin/env bash
# CI smoke test of the fuzz targets: builds them and runs each for FUZZ_SECONDS (default 25) from its seed
# corpus and regression inputs; exits non-zero on any crash. See scripts/fuzz_nightly.sh for the knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_SECONDS=${FUZZ_SECONDS:-25}
export FUZZ_OUT=${FUZZ_OUT:-fuzz-out/smoke}
rm -rf "$FUZZ_OUT"
exec scripts/fuzz_nightly.sh
