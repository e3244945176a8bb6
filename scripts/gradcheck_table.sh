#!/usr/bin/env bash
# Regenerates the table of docs/gradcheck.md from the gradient-check coverage test.
#
#   scripts/gradcheck_table.sh [path/to/rune_unit_tests] [path/to/gradcheck.md]
#   (defaults: build/rune_unit_tests, docs/gradcheck.md; build first: cmake --build build)
#
# GradCheckCoverage (tests/test_gradcheck.cpp) runs every case of all_cases() and prints, per op of
# RUNE_DIFFERENTIABLE_OPS (autograd/tape.hpp), its number of cases and its worst Jacobian errors.
# This script runs that test, turns its printed table into a Markdown table and writes it between
# the markers "<!-- gradcheck-table:begin -->" and "<!-- gradcheck-table:end -->" of the doc,
# leaving the rest of the file as it is. It fails, and leaves the doc untouched, if the test fails
# or prints no table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tests="${1:-$root/build/rune_unit_tests}"
doc="${2:-$root/docs/gradcheck.md}"
[[ -x "$tests" ]] || { echo "gradcheck_table.sh: no test binary at $tests (cmake --build build)" >&2; exit 1; }
[[ -f "$doc" ]] || { echo "gradcheck_table.sh: no $doc" >&2; exit 1; }
grep -q '^<!-- gradcheck-table:begin -->$' "$doc" && grep -q '^<!-- gradcheck-table:end -->$' "$doc" ||
  { echo "gradcheck_table.sh: $doc lacks the gradcheck-table markers" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if ! "$tests" --gtest_filter='GradCheckCoverage*' > "$tmp/out" 2>&1; then
  cat "$tmp/out" >&2
  echo "gradcheck_table.sh: GradCheckCoverage failed; $doc left as it was" >&2
  exit 1
fi

# The printed table: the header line "op cases f64 abs err ..." and one line per op until the
# test's "[       OK ]" line. An op without float32 cases has four fields, one with them six.
awk '
  /^op +cases +f64 abs err/ { on = 1
    print "| op | cases | f64 abs err | f64 rel err | f32 abs err | f32 rel err |"
    print "|---|--:|--:|--:|--:|--:|"
    next }
  on && /^\[/ { exit }
  on && NF >= 4 { printf "| `%s` | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, (NF >= 6 ? $5 : ""), (NF >= 6 ? $6 : "") }
' "$tmp/out" > "$tmp/table"
ops="$(($(wc -l < "$tmp/table") - 2))"
if (( ops <= 0 )); then
  echo "gradcheck_table.sh: the test printed no table; $doc left as it was" >&2
  exit 1
fi

awk -v table="$tmp/table" '
  /^<!-- gradcheck-table:begin -->$/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
  /^<!-- gradcheck-table:end -->$/ { skip = 0 }
  !skip { print }
' "$doc" > "$tmp/doc"
cat "$tmp/doc" > "$doc"
echo "gradcheck_table.sh: $ops ops written to $doc"
