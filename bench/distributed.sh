#!/usr/bin/env bash
# Data-parallel training steps on this machine (bench/bench_distributed.cpp): 1 rank x 2 threads,
# 2 ranks x 1 thread (mpirun) and 1 rank x 1 thread, run alternately ROUNDS times (default 3); per
# case, each setup's fastest median. Prints the table and the allreduce lines of the 2-rank runs.
#   bash bench/distributed.sh [path/to/bench_distributed]    (`make bench-distributed` builds and runs it)
# speedup: 1 rank x 2 threads' time / 2 ranks x 1 thread's (above 1: two ranks are faster);
# efficiency: 1 rank x 1 thread's time / (2 x 2 ranks' time), the share of perfect 2-rank scaling.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../build/bench_distributed}"
[[ -x "$bin" ]] || { echo "distributed.sh: no benchmark binary at $bin (run 'make bench-distributed')" >&2; exit 1; }
# as root, in a container: what Open MPI needs (docs/distributed.md)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
rounds="${ROUNDS:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "# $(nproc) cores, $rounds alternating rounds per setup"
for ((r = 1; r <= rounds; r++)); do
  OMP_NUM_THREADS=2 "$bin" > "$tmp/1x2.$r.tsv"
  OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none -x OMP_NUM_THREADS "$bin" > "$tmp/2x1.$r.tsv"
  OMP_NUM_THREADS=1 "$bin" > "$tmp/1x1.$r.tsv"
done
python3 - "$tmp" "$rounds" <<'PY'
import re, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
best, notes = {}, {}
for setup in ("1x2", "2x1", "1x1"):
    for r in range(1, rounds + 1):
        for line in open(f"{tmp}/{setup}.{r}.tsv"):
            if line.startswith("#"):
                if setup == "2x1" and "allreduce" in line:
                    notes.setdefault(line.split(":")[0], []).append(line.strip())
                continue
            name, seconds, _, unit = line.rstrip("\n").split("\t")
            m = re.match(r"(.*?)(, buckets (.*) MB)?$", name)
            key = (m.group(1), m.group(3) or "")
            s = float(seconds)
            if key not in best.setdefault(setup, {}) or s < best[setup][key]:
                best[setup][key] = s
print(f"{'case':62} {'buckets':>8} {'1x2 ms':>8} {'2x1 ms':>8} {'1x1 ms':>8} {'speedup':>8} {'efficiency':>10}")
for (case, mb), t2 in sorted(best.get("2x1", {}).items()):
    t12, t11 = best["1x2"][(case, "")], best["1x1"][(case, "")]
    print(f"{case:62} {mb + ' MB':>8} {1e3 * t12:8.1f} {1e3 * t2:8.1f} {1e3 * t11:8.1f} {t12 / t2:8.2f} "
          f"{100 * t11 / (2 * t2):9.0f}%")
for key in sorted(notes):  # the last round's allreduce line per case
    print(notes[key][-1])
PY
