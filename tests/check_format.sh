#!/usr/bin/env bash
# The C++ sources are as clang-format (.clang-format, Debian's clang-format 14) leaves them:
# prints the files that differ and fails. Fix with: git ls-files '*.cpp' '*.hpp' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format is not installed (scripts/install-deps.sh installs it)"; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.hpp')
if ! report=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
  echo "not formatted:"
  grep -oE '^[^:]+\.(cpp|hpp)' <<<"$report" | sort -u
  exit 1
fi
echo "${#files[@]} files formatted"
