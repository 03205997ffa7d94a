#!/usr/bin/env bash
# Makes build-carry/, what a device call of bench/gpu/run.sh carries beside the working tree (run it here, once;
# build-carry/ is ignored by .gitignore's /build*/, so it never reaches a commit and travels only when a call
# names it in `carry`):
#
#   build-carry/fashion-mnist/   a copy of /usr/share/datasets/fashion-mnist (4 .gz files, 30 MB)
#   build-carry/deps/pkg/        Debian's yaml-cpp, nlohmann-json, CLI11 and GoogleTest/GMock (headers, CMake
#                                package files, libraries) in Debian's layout, so that their CMake files relocate
#   build-carry/deps/fallback/   Gloo and stb headers and zlib (header + libz.so): run.sh adds these only after
#                                every other include directory (-idirafter), and zlib only where the system has none
#
# The GPU image (CUDA, pip torch, CMake, ninja) is not Debian's, and nothing can be installed there: these are the
# libraries of setup.sh's package list that the build needs and that such an image may lack. About 40 MB in all
# (the device tool takes 64 MiB with the working tree). `bench/gpu/carry.sh --check` lists what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=build-carry
if [ "${1:-}" = "--check" ]; then
  du -sh "$DEST" "$DEST"/* "$DEST"/deps/* 2>/dev/null || echo "carry.sh: no $DEST yet" >&2
  exit 0
fi
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$FMNIST/$f" ] || { echo "carry.sh: $FMNIST/$f missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
rm -rf "$DEST"
mkdir -p "$DEST/fashion-mnist" "$DEST/deps/pkg" "$DEST/deps/fallback/include" "$DEST/deps/fallback/lib"
cp -L "$FMNIST"/*.gz "$DEST/fashion-mnist/"

# Debian-layout prefix: /usr/X -> deps/pkg/X, files and (dereferenced) links, no docs, sources or pkg-config.
copy_pkg() {  # $1: package
  dpkg -L "$1" >/dev/null 2>&1 || { echo "carry.sh: package $1 not installed (./setup.sh installs it)" >&2; exit 1; }
  dpkg -L "$1" | while read -r f; do
    case "$f" in /usr/share/doc/* | /usr/share/lintian/* | /usr/share/man/* | /usr/src/* | */pkgconfig/*) continue ;; esac
    [ -f "$f" ] || continue  # directories come with their files
    local rel=${f#/usr/}
    mkdir -p "$DEST/deps/pkg/$(dirname "$rel")"
    cp -L "$f" "$DEST/deps/pkg/$rel"
  done
}
for p in libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev; do copy_pkg "$p"; done
rm -f "$DEST"/deps/pkg/lib/x86_64-linux-gnu/libyaml-cpp.a  # the shared library is what the CMake files name

# Fallback headers: Gloo (ProcessGroupGloo.hpp includes them; the wheel has Gloo compiled in but, as of 2.15, not
# its headers), stb (the sources include <stb_image.h> from /usr/include/stb) and zlib.
cp -rL /usr/include/gloo "$DEST/deps/fallback/include/"
cp -rL /usr/include/stb "$DEST/deps/fallback/include/"
cp -L /usr/include/zlib.h /usr/include/zconf.h "$DEST/deps/fallback/include/"
cp -L /usr/lib/x86_64-linux-gnu/libz.so "$DEST/deps/fallback/lib/libz.so"
du -sh "$DEST" "$DEST/fashion-mnist" "$DEST/deps"
