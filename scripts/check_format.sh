#!/usr/bin/env bash
# Checks that the project's C++ sources match the repository's .clang-format (Debian bookworm's clang-format 14,
# which setup.sh installs); CI runs it first. FIX=1 rewrites the files in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find apps include src tests bench fuzz examples -type f \( -name '*.cpp' -o -name '*.h' \) \
                       -not -path 'tests/fixtures/*' 2>/dev/null | sort)
if [ "${FIX:-0}" = 1 ]; then
  clang-format -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2> /tmp/check_format.$$; then
  grep -E '^[^ ].*: (error|warning):' /tmp/check_format.$$ | cut -d: -f1 | sort -u | sed 's/^/  not formatted: /'
  rm -f /tmp/check_format.$$
  echo "check_format: run FIX=1 scripts/check_format.sh (clang-format $(clang-format --version | grep -o '[0-9.]*' | head -1))" >&2
  exit 1
fi
rm -f /tmp/check_format.$$
echo "check_format: ${#files[@]} files match .clang-format"
