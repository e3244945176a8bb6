#!/usr/bin/env bash
# Runs check.mjs, or example.mjs after --example (the arguments after DIR are the script's), in
# Node.js with onnxruntime-node, whose npm packages are installed into DIR the first time, and
# again only when package-lock.json changes:
# `npm ci --ignore-scripts` installs the CPU build the package ships (its install script would
# only fetch an optional GPU build). npm's cache goes into DIR too, so a rerun needs no network.
#
#   tests/onnx/run_check.sh DIR vit|cnn --model M.onnx --images DIR --predictions P.csv
#   tests/onnx/run_check.sh DIR translation --encoder E.onnx --decoder D.onnx --sources S.txt --rune R.tsv
#   tests/onnx/run_check.sh DIR --example translate M.onnx "seventy-one"      (docs/onnx.md's example)
#
# The e2e tests use DIR = build/onnx-node. Exit codes: check.mjs's (0 equal, 1 different, 2
# usage); 3 without node or npm; 4 when npm ci fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 DIR vit|cnn|translation|tensors ARGS..." >&2; exit 2; }
dir="$1"
shift
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "run_check.sh: node and npm are not installed; scripts/install-deps.sh installs them (Debian's nodejs and npm)" >&2
  exit 3
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
(
  flock 9  # two tests (ctest -j2) may prepare DIR at once
  if ! cmp -s "$here/package-lock.json" "$dir/installed-lock.json" || [[ ! -d "$dir/node_modules/onnxruntime-node" ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    if ! (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --cache "$dir/npm-cache" >&2); then
      echo "run_check.sh: npm ci failed in $dir (the npm registry must be reachable the first time)" >&2
      exit 4
    fi
    cp "$here/package-lock.json" "$dir/installed-lock.json"
  fi
  for script in check.mjs metadata.mjs example.mjs; do  # a test running one meanwhile keeps its copy
    cp "$here/$script" "$dir/$script.tmp"
    mv "$dir/$script.tmp" "$dir/$script"
  done
) 9>"$dir/.lock"
script=check.mjs
if [[ "${1:-}" == "--example" ]]; then
  script=example.mjs
  shift
fi
exec node "$dir/$script" "$@"
