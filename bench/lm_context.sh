#!/usr/bin/env bash
# The long-context table of docs/lm.md: one training step of the language model on one sequence
# of T tokens, plain and tiled attention, each case in a process of its own (peak memory is the
# process's). Prints a Markdown table. A case the plain kernel cannot fit is reported as such.
#   bash bench/lm_context.sh [T ...]     (default: 256 1024 4096 8192)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${BENCH_LM_CONTEXT:-$here/../build/bench_lm_context}"
[[ -x "$bin" ]] || { echo "lm_context.sh: no $bin (make build)" >&2; exit 1; }
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
lengths=("$@")
(( ${#lengths[@]} )) || lengths=(256 1024 4096 8192)
echo "| T | plain: step | plain: peak RSS | tiled: step | tiled: peak RSS | tiled / plain time |"
echo "|---|---|---|---|---|---|"
for T in "${lengths[@]}"; do
  row="| $T |"
  declare -A secs=()
  for kernel in plain tiled; do
    if line="$("$bin" "$T" "$kernel" 2>/dev/null)"; then
      read -r _ _ _ s rss <<<"$line"
      secs[$kernel]=$s
      row+=" $(awk -v s="$s" 'BEGIN { printf "%.3f s", s }') | $(awk -v m="$rss" 'BEGIN { printf "%.0f MiB", m }') |"
    else
      secs[$kernel]=""
      row+=" did not fit | |"
    fi
  done
  if [[ -n "${secs[plain]}" && -n "${secs[tiled]}" ]]; then
    row+=" $(awk -v a="${secs[tiled]}" -v b="${secs[plain]}" 'BEGIN { printf "%.2f", a / b }') |"
  else
    row+=" |"
  fi
  echo "$row"
done
