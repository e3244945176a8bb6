#!/usr/bin/env bash
# Runestone against its PyTorch twin (bench/torch_lm.py) on a checkpoint of an `lm` run: one
# training step on the run's first batches (median, both on the same windows, the same threads)
# with each process's peak memory, and greedy decoding with the KV cache at batch 1 (the median
# of 3 runs of N new tokens each; both continue the same prompt with the same weights, so their
# texts must be equal). Prints a Markdown table, the ratios ours / theirs (below 1: faster).
#   bash bench/lm_reference.sh [CKPT] [N]     (default runs/web/checkpoints/best.h5, 1000)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ckpt="${1:-runs/web/checkpoints/best.h5}"
n="${2:-1000}"
twin="${BENCH_LM_TWIN:-$here/../build/bench_lm_twin}"
rune="${RUNE:-$here/../build/rune}"
[[ -x "$twin" && -x "$rune" ]] || { echo "lm_reference.sh: no $twin or $rune (make build)" >&2; exit 1; }
[[ -f "$ckpt" ]] || { echo "lm_reference.sh: no checkpoint $ckpt (make lm)" >&2; exit 1; }
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
data="$(mktemp -d)"
trap 'rm -rf "$data"' EXIT
"$twin" data "$ckpt" "$data" >/dev/null

read -r _ _ _ ours_step ours_tok _ _ ours_rss <<<"$("$twin" step "$ckpt")"
read -r _ _ _ theirs_step theirs_tok _ _ theirs_rss <<<"$(/usr/bin/python3 "$here/torch_lm.py" step "$ckpt" \
  --data "$data" --twin "$twin")"

median() { sort -g | sed -n 2p; }  # of 3
prompt="In the beginning"
ours_gen=$(for _ in 1 2 3; do
  "$rune" generate "$ckpt" -p "$prompt" -n "$n" -t 0 --tokens-per-s 2>&1 >"$data/rune.txt" |
    sed -n 's/.* s: \([0-9.]*\) tokens\/s.*/\1/p'
done | median)
theirs_gen=$(for _ in 1 2 3; do
  /usr/bin/python3 "$here/torch_lm.py" generate "$ckpt" -p "$prompt" -n "$n" 2>&1 >"$data/torch.txt" |
    sed -n 's/.* s: \([0-9.]*\) tokens\/s.*/\1/p'
done | median)
same=$(cmp -s "$data/rune.txt" "$data/torch.txt" && echo "equal" || echo "DIFFERENT")

echo "# $ckpt; $OMP_NUM_THREADS threads; greedy texts of $n tokens: $same"
echo "| | Runestone | PyTorch | Runestone / PyTorch |"
echo "|---|---|---|---|"
awk -v a="$ours_step" -v b="$theirs_step" -v ta="$ours_tok" -v tb="$theirs_tok" \
  'BEGIN { printf "| training step | %.3f s (%.0f tokens/s) | %.3f s (%.0f tokens/s) | %.2f |\n", a, ta, b, tb, a / b }'
awk -v a="$ours_rss" -v b="$theirs_rss" 'BEGIN { printf "| peak RSS of the step | %.0f MiB | %.0f MiB | %.2f |\n", a, b, a / b }'
awk -v a="$ours_gen" -v b="$theirs_gen" -v n="$n" \
  'BEGIN { printf "| greedy decoding, batch 1, %d tokens | %.0f tokens/s | %.0f tokens/s | %.2f (time) |\n", n, a, b, b / a }'
