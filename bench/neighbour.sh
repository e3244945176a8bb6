#!/usr/bin/env bash
# Training throughput under a busy neighbour: the Fashion-MNIST ViT recipe trained by `rune train`
# and by its PyTorch twin (bench/torch_vit_recipe.py), each for SECONDS seconds on an idle machine
# and then with another process spinning on core 0 (taskset), and `rune train` once more with
# train.adapt_threads = false. Prints images per second over each run's last half (the warm-up
# and the thread governor's first probe are in the first half) and each busy figure as a share of
# its idle one.
#   bash bench/neighbour.sh [SECONDS]       (default 90; the whole script takes about 6 x SECONDS)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
seconds="${1:-90}"
rune="$root/build/rune"
[[ -x "$rune" ]] || { echo "neighbour.sh: no $rune (make build)" >&2; exit 1; }
export OMP_NUM_THREADS=2
tmp="$(mktemp -d)"
spinner=""
trap '[[ -n "$spinner" ]] && kill "$spinner" 2>/dev/null; rm -rf "$tmp"' EXIT

# images/s of a rune run folder over its second half: from metrics.jsonl (log every 10 steps)
rune_rate() {
  /usr/bin/python3 - "$1/metrics.jsonl" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"elapsed_s"' in l]
a, b = r[len(r) // 2], r[-1]
print(f"{(b['step'] - a['step']) * 128 / (b['elapsed_s'] - a['elapsed_s']):.0f}")
EOF
}

rune_run() {  # name, extra --set ...
  local name="$1"; shift
  timeout -s INT "$seconds" "$rune" train "$root/examples/vit/fashion_mnist.toml" --no-progress \
    --set run.dir="$tmp/runs" --set run.name="$name" --set train.log_every=10 "$@" > "$tmp/$name.log" 2>&1 || true
  grep -h "^threads:" "$tmp/$name.log" | sed "s/^/# $name: /" >&2 || true
  rune_rate "$tmp/runs/$name"
}

# images/s of the twin over its second half: the mean of the rates its progress lines give (each
# over the steps since the line before)
torch_run() {
  timeout -s INT "$seconds" /usr/bin/python3 "$here/torch_vit_recipe.py" --out "$tmp/torch.json" --log-every 10 \
    > "$tmp/torch.log" 2>&1 || true
  /usr/bin/python3 - "$tmp/torch.log" <<'EOF'
import re, sys
rates = [float(m.group(1)) for m in re.finditer(r"step \d+/\d+ .*? ([0-9.]+) img/s", open(sys.argv[1]).read())]
half = rates[len(rates) // 2:]
print(f"{sum(half) / len(half):.0f}" if half else "n/a")
EOF
}

spin() { taskset -c 0 sh -c 'while :; do :; done' & spinner=$!; }
unspin() { kill "$spinner"; wait "$spinner" 2>/dev/null || true; spinner=""; }

echo "# $(nproc) cores, OMP_NUM_THREADS=2, $seconds s a run; images/s over each run's second half"
idle_rune="$(rune_run idle)"
idle_torch="$(torch_run)"
spin
busy_rune="$(rune_run busy)"
busy_fixed="$(rune_run busy-fixed --set train.adapt_threads=false)"
busy_torch="$(torch_run)"
unspin
share() { /usr/bin/python3 -c "print(f'{100 * $1 / $2:.0f}%' if '$1' != 'n/a' and '$2' != 'n/a' else 'n/a')"; }
printf "%-44s %8s %8s %8s\n" "run" "idle" "busy" "share"
printf "%-44s %8s %8s %8s\n" "rune train (train.adapt_threads = true)" "$idle_rune" "$busy_rune" "$(share "$busy_rune" "$idle_rune")"
printf "%-44s %8s %8s %8s\n" "rune train (train.adapt_threads = false)" "$idle_rune" "$busy_fixed" "$(share "$busy_fixed" "$idle_rune")"
printf "%-44s %8s %8s %8s\n" "PyTorch twin (bench/torch_vit_recipe.py)" "$idle_torch" "$busy_torch" "$(share "$busy_torch" "$idle_torch")"
