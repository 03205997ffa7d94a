#!/usr/bin/env bash
# Installs what the project needs (Debian bookworm) and builds Release.
#
#   ./setup.sh              Debian's LibTorch 1.13 (CPU) from libtorch-dev, into build/       (the quick default)
#   TORCH=pip ./setup.sh    LibTorch 2.x from the pip torch wheel (CUDA-enabled) in the project's .venv/,
#                           into build-pip/ (needs the CUDA toolkit's nvcc: CUDA_HOME, default /usr/local/cuda)
#
# CMAKE_ARGS adds configure flags, JOBS sets the parallel build jobs, BUILD_DIR the build directory.
# Building against a LibTorch zip you downloaded: docs/building.md.
set -euo pipefail
cd "$(dirname "$0")"
TORCH=${TORCH:-debian}
case "$TORCH" in
  debian | pip) ;;
  *) echo "setup.sh: TORCH must be 'debian' or 'pip', not '$TORCH'" >&2; exit 2 ;;
esac

PKGS=(cmake g++ make libgloo-dev libfmt-dev zlib1g-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libstb-dev
      gnuplot-nox libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist clang-format ccache ninja-build
      libonnx-dev libprotobuf-dev protobuf-compiler libboost-dev libturbojpeg0-dev)
# Debian's LibTorch and the Python that matches it (the fixtures and interop reference of that build).
# The pip build uses Debian's Gloo headers too: the wheel ships Gloo inside libtorch_cpu but not its headers.
PKGS+=(libtorch-dev libopenblas0-pthread python3-torch python3-torchvision python3-numpy python3-pil)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The verifiers of the export and logging tests (onnx, onnxruntime, tensorboard; no torch) in the project's .venv,
# for either build's suite. PYTHON: the Python that makes the .venv.
PYTHON=${PYTHON:-python3}
VENV=$PWD/.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || { echo "setup.sh: could not create $VENV with $PYTHON (needs Python >= 3.10 with venv)" >&2; exit 1; }
fi
if ! "$VENV/bin/python" -c 'import onnx, onnxruntime, tensorboard, PIL' 2>/dev/null; then
  "$VENV/bin/pip" install -q -r requirements/verify.txt ||
    { echo "setup.sh: pip install -r requirements/verify.txt into $VENV failed" >&2; exit 1; }
fi
JOBS=${JOBS:-$(nproc)}
# Ninja for a new build dir (its .ninja_log keeps every compile's time: scripts/compile_times.sh); a build dir
# configured before keeps its generator.
generator() { GEN=(); [ -f "$1/CMakeCache.txt" ] || GEN=(-G Ninja); }

if [ "$TORCH" = debian ]; then
  BUILD_DIR=${BUILD_DIR:-build}
  generator "$BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
  cmake --build "$BUILD_DIR" -j "$JOBS"
  exit 0
fi

# --- LibTorch 2.x from PyPI ---------------------------------------------------------------------------------
if ! "$VENV/bin/python" - requirements/torch-pip.txt <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        if version(name).split("+")[0] != want:
            sys.exit(1)
PY
then
  "$VENV/bin/pip" install -q -r requirements/torch-pip.txt
fi
# lightly, for the loss parity tests (tests/test_peer_parity.cpp) and the peer benchmark (bench/peers/).
bench/peers/setup_peers.sh
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "setup.sh: $CUDA_HOME/bin/nvcc not found; the pip torch wheel is a CUDA build and its CMake files need the" \
       "CUDA toolkit's nvcc to configure (set CUDA_HOME)" >&2
  exit 1
fi
TORCH_CMAKE=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
TORCH_DIR=$(dirname "$(dirname "$TORCH_CMAKE")")
BUILD_DIR=${BUILD_DIR:-build-pip}
# TORCH_DIR first: TorchConfig's find_library would otherwise take Debian's /usr/lib/libtorch.so when both exist.
generator "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_DIR;$TORCH_CMAKE" \
  -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME" \
  -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
  -DCONTRASTIVE_PYTHON="$VENV/bin/python" -DCONTRASTIVE_TORCHRUN="$VENV/bin/torchrun" -DCONTRASTIVE_TORCHRUN_DASH=ON \
  -DCONTRASTIVE_PEER_PYTHON="$VENV/bin/python" \
  ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
