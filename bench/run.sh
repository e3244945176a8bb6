#!/usr/bin/env bash
# Runs bench_ops (ours) and torch_ops.py (PyTorch) at the same thread count and prints one table:
# each case's rate on both sides and the speedup (PyTorch's time / ours).
#   bash bench/run.sh [path/to/bench_ops]     (make bench builds it and calls this)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../build/bench_ops}"
[[ -x "$bin" ]] || { echo "run.sh: no benchmark binary at $bin (run 'make bench')" >&2; exit 1; }

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# Debian's PyTorch loads the generic libblas.so.3, which may be the reference BLAS: put the
# OpenMP build of OpenBLAS first so that both sides run the same library.
openblas_dir="/usr/lib/$(gcc -dumpmachine)/openblas-openmp"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "# $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
"$bin" > "$tmp/ours.tsv"
LD_LIBRARY_PATH="$openblas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" /usr/bin/python3 "$here/torch_ops.py" > "$tmp/torch.tsv"
grep '^#' "$tmp/ours.tsv" "$tmp/torch.tsv" | sed 's/^[^:]*://'

awk -F'\t' '
  FNR == NR { if ($0 !~ /^#/) { ts[$1] = $2; tr[$1] = $3 } next }
  $0 !~ /^#/ {
    if (!header++) printf "%-38s %12s %12s %9s %9s\n", "case", "runestone", "pytorch", "unit", "speedup"
    printf "%-38s %12.2f %12.2f %9s %8.2fx\n", $1, $3, tr[$1], $4, ts[$1] / $2
  }' "$tmp/torch.tsv" "$tmp/ours.tsv"
