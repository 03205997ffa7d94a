#!/usr/bin/env bash
# Installs every system package the project needs (Debian bookworm) and builds Release into build/.
set -euo pipefail
cd "$(dirname "$0")"
PKGS=(cmake g++ make libtorch-dev libgloo-dev libfmt-dev libopenblas0-pthread zlib1g-dev
      libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libstb-dev gnuplot-nox
      libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist python3-torch python3-numpy python3-pil)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build build -j "$JOBS"
