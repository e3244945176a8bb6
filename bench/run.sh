#!/usr/bin/env bash
# Runs a Runestone benchmark (bench_X) and its PyTorch twin (torch_X.py) in one command, both at 2 threads, and
# prints one table: per case, the median time and the rate of each side, the ratio of the times
# (ours / PyTorch's: below 1 means we are faster), each side's share of the machine's sgemm peak
# and, for training steps, each side's peak resident memory. Builds nothing.
#   bash bench/run.sh [path/to/bench_X]    (default: build/bench_ops; `make bench` runs each benchmark)
#
# Both programs print '#' comment lines (which BLAS they really use) and tab-separated case lines
# (case, seconds, rate, unit); this script joins them on the case name with awk.
# ROUNDS=n (default 5) sets how many times each program runs; the whole script takes about 75 s.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../build/bench_ops}"
twin="$here/torch_$(basename "$bin" | sed 's/^bench_//').py"  # bench_ops -> torch_ops.py
[[ -f "$twin" ]] || { echo "run.sh: no PyTorch twin $twin for $bin" >&2; exit 1; }
[[ -x "$bin" ]] || { echo "run.sh: no benchmark binary at $bin (run 'make bench')" >&2; exit 1; }
python=/usr/bin/python3  # Debian's, which sees python3-torch (the python3 on PATH may not)

# The same thread count on both sides: our OpenMP loops and the OpenMP build of OpenBLAS read
# OMP_NUM_THREADS; the PyTorch scripts also call torch.set_num_threads(2).
export OMP_NUM_THREADS=2

# Debian's PyTorch loads the generic libblas.so.3, which may be the reference BLAS (20-40x slower):
# put the folder holding OpenBLAS's own libblas.so.3 first, so both sides run the same library.
openblas_dir="${RUNE_OPENBLAS_DIR:-/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp}"
if [[ ! -e "$openblas_dir/libblas.so.3" ]]; then
  echo "run.sh: WARNING: no $openblas_dir/libblas.so.3 (apt-get install libopenblas0-openmp):" \
       "PyTorch will use whatever libblas.so.3 the system selects" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# This machine is shared (a VM with neighbours we cannot see): its speed drifts by up to 1.8x over
# seconds even when nothing else runs in it. So the two programs run
# alternately, $rounds times each, and per case each side keeps its fastest median: a slow spell
# then penalises neither side alone. "spread" is the worst (slowest/fastest median - 1) of the two
# sides over the rounds: how far to trust the ratio.
rounds="${ROUNDS:-5}"
echo "# $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, $rounds alternating rounds per side"

# Percent of all CPUs busy over half a second (from /proc/stat), sampled before each round: other
# processes on these 2 cores (a build, a test run) slow both sides by up to 5x.
busy_percent() {
  local a b
  a="$(head -1 /proc/stat)"; sleep 0.5; b="$(head -1 /proc/stat)"
  awk -v a="$a" -v b="$b" 'BEGIN {
    na = split(a, x, " "); split(b, y, " ")
    for (i = 2; i <= na; i++) { total += y[i] - x[i]; if (i == 5 || i == 6) idle += y[i] - x[i] }
    printf "%d", (total > 0) ? 100 * (total - idle) / total : 0 }'
}
max_busy=0
for ((r = 1; r <= rounds; r++)); do
  busy="$(busy_percent)"
  if (( busy > max_busy )); then max_busy=$busy; fi
  "$bin" > "$tmp/ours.$r.tsv"
  # the kernels our side's OpenBLAS runs ("core SkylakeX" in its BLAS line: autograd/blas.cpp
  # chooses them on a CPU newer than OpenBLAS's tables), for PyTorch's copy of the same library
  core="$(sed -n 's/^# runestone BLAS:.*, core \([A-Za-z0-9]*\),.*/\1/p' "$tmp/ours.$r.tsv")"
  if ! OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-$core}" LD_LIBRARY_PATH="$openblas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      "$python" "$twin" > "$tmp/torch.$r.tsv"; then
    echo "run.sh: $(basename "$twin") failed in round $r; PyTorch columns may be incomplete" >&2
  fi
done
echo "# other load before the rounds: up to ${max_busy}% of the CPUs busy"
grep -h '^#' "$tmp/ours.1.tsv" "$tmp/torch.1.tsv" | grep -v '^# WARNING\|^# sgemm peak' || true
{
  grep -h '^# WARNING' "$tmp"/torch.*.tsv | sort -u || true
  if (( max_busy > 20 )); then
    echo "# WARNING: other processes were using up to ${max_busy}% of the CPUs: both sides ran" \
         "slower and noisier than on a quiet machine; rerun when it is idle"
  fi
} > "$tmp/warnings"
cat "$tmp/warnings"
echo

# The sgemm peak: the largest 1024^3 sgemm rate our benchmark measured over its rounds.
peak="$(grep -h '^# sgemm peak' "$tmp"/ours.*.tsv | cut -f2 | sort -g | tail -1)"
peak="${peak:-0}"
echo "# sgemm peak (1024^3, the largest over the rounds): $peak GFLOP/s = 100% in the peak columns"

# Input: lines "side<TAB>case<TAB>seconds<TAB>rate<TAB>unit<TAB>flops<TAB>rss MiB", ours first (sets
# the row order). Columns: each side's fastest median, rates, the ratio ours/torch of the times
# (below 1: we are faster), each side's share of the sgemm peak (model FLOPs of the case per
# second; blank where the case is not a compute case), each side's peak resident memory for the
# cases that report it (the process's, the case run first in it), and the spread.
for f in "$tmp"/ours.*.tsv; do grep -v '^#' "$f" | sed 's/^/ours\t/'; done > "$tmp/all.tsv"
for f in "$tmp"/torch.*.tsv; do grep -v '^#' "$f" | sed 's/^/torch\t/'; done >> "$tmp/all.tsv"
awk -F'\t' -v peak="$peak" '
  NF < 5 { next }
  {
    key = $1 SUBSEP $2
    if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2; unit[$2] = $5 }
    if (!(key in best) || $3 < best[key]) { best[key] = $3; rate[key] = $4 }
    if (!(key in worst) || $3 > worst[key]) worst[key] = $3
    if (NF >= 6 && $6 > flops[$2]) flops[$2] = $6
    if (NF >= 7 && $7 > rss[key]) rss[key] = $7
  }
  function spread(side, c,    k) { k = side SUBSEP c; return (k in best) ? worst[k] / best[k] - 1 : 0 }
  function ms(k) { return (k in best) ? sprintf("%.3f", best[k] * 1e3) : "n/a" }
  function rt(k) { return (k in best) ? sprintf("%.2f", rate[k]) : "n/a" }
  function share(c, k) { return (flops[c] > 0 && peak > 0 && (k in best)) ? sprintf("%.0f%%", 100 * flops[c] / best[k] * 1e-9 / peak) : "" }
  function mib(k) { return (rss[k] > 0) ? sprintf("%.0f", rss[k]) : "" }
  END {
    printf "%-44s %9s %9s %10s %10s %-8s %6s %6s %6s %7s %7s %7s\n", "case", "ours ms", "torch ms",
           "ours rate", "torch rate", "unit", "ratio", "ours%pk", "torch%pk", "ours MiB", "torch MiB", "spread"
    for (i = 1; i <= n; i++) {
      c = order[i]; o = "ours" SUBSEP c; t = "torch" SUBSEP c
      r = ((o in best) && (t in best)) ? sprintf("%.2f", best[o] / best[t]) : "n/a"
      s = spread("ours", c); if (spread("torch", c) > s) s = spread("torch", c)
      printf "%-44s %9s %9s %10s %10s %-8s %6s %7s %8s %8s %9s %6.0f%%\n", c, ms(o), ms(t), rt(o), rt(t), unit[c], r,
             share(c, o), share(c, t), mib(o), mib(t), s * 100
    }
  }' "$tmp/all.tsv"

# Repeat the warnings (reference BLAS, busy machine) under the table, where nobody can miss it.
if [[ -s "$tmp/warnings" ]]; then
  echo
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  sed 's/^# //' "$tmp/warnings"
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
