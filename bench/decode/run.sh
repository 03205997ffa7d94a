#!/usr/bin/env bash
# stb_image against libjpeg-turbo, libspng and libpng (bench/decode/decode_bench.cpp), on JPEG and PNG files made
# from Fashion-MNIST at 64 and 224 px. Needs libturbojpeg0-dev, libspng-dev, libpng-dev, libstb-dev and python3-pil.
#
#   bench/decode/run.sh [OUT_DIR] [COUNT]      (default: bench/results/decode-<date>, 1000 files per folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/results/decode-$(date -u +%F)}
COUNT=${2:-1000}
WORK=$(mktemp -d /tmp/contrastive-decode-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
g++ -O2 -std=c++17 -I/usr/include/stb bench/decode/decode_bench.cpp -o "$WORK/decode_bench" \
  $(pkg-config --cflags --libs libturbojpeg spng libpng)
dirs=()
for size in 64 224; do
  for fmt in jpg png; do
    /usr/bin/python3 bench/pipeline/make_folder.py "$WORK/$fmt$size" --count "$COUNT" --size "$size" --format "$fmt" \
      --flat >/dev/null
    dirs+=("$WORK/$fmt$size")
  done
done
{
  echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs;" \
    "flags: $(grep -m1 -owE 'avx2' /proc/cpuinfo || true) $(grep -m1 -owE 'avx512f' /proc/cpuinfo || true);" \
    "libjpeg-turbo $(dpkg-query -W -f '${Version}' libturbojpeg0-dev), libspng $(dpkg-query -W -f '${Version}' libspng-dev)," \
    "libpng $(dpkg-query -W -f '${Version}' libpng-dev), stb $(dpkg-query -W -f '${Version}' libstb-dev)"
  "$WORK/decode_bench" --rounds 5 "${dirs[@]}" | sed "s|$WORK/||"
} | tee "$OUT/decode.txt"
