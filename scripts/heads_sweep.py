#!/usr/bin/env python3
"""The heads of every run of a sweep folder (rune sweep --out DIR), as a Markdown table per value of
the grid (mean and sample standard deviation over the seeds): the run's best validation value of
the primary metric, the test value (eval-test.json, from `rune sweep --summarize DIR --split test`),
the step time, the redundant head pairs and the heads that can be pruned (heads.json of
`rune heads --prune`, run here for each run that has none yet).

    scripts/heads_sweep.py runs/heads --rune build/rune --limit 300 --time-steps 100

--time-steps N also times each grid value: a fresh `rune train` of the sweep's config with that value
for 20 + N steps, the time of the last N read from its metrics log (the machine's load at the time
goes into the figure: run it on an idle machine). Standard library only."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def cell(values, digits):
    m, s = mean_std(values)
    if m is None:
        return ""
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s is not None else "")


def read_log(path):
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line being written
    return records


def best_val(records, metric, higher):
    values = [r[f"val_{metric}"] for r in records if r.get(f"val_{metric}") is not None]
    if not values:
        return None
    return max(values) if higher else min(values)


def step_ms(rune, config, sets, key, value, steps):
    """Milliseconds per training step of a fresh run with key = value, over steps after 20 of warm-up."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [rune, "train", config, "--no-progress", "--set", f"{key}={value}", "--set", "train.epochs=1",
                "--set", f"data.batches_per_epoch={20 + steps}", "--set", "train.log_every=10", "--set",
                "train.warmup_steps=10", "--set", f"run.dir={tmp}", "--set", "run.name=timing"]
        for s in sets:
            args += ["--set", s]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        at = {int(r["step"]): r["elapsed_s"] for r in read_log(os.path.join(tmp, "timing", "metrics.jsonl"))
              if "elapsed_s" in r and "loss" in r}
        return 1000.0 * (at[20 + steps] - at[20]) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep")
    p.add_argument("--rune", default="build/rune", help="the rune executable")
    p.add_argument("--split", default="val", help="the split rune heads analyses and prunes on")
    p.add_argument("--limit", type=int, default=0, help="rune heads --limit: the split's first N examples (0: all)")
    p.add_argument("--time-steps", type=int, default=0, help="time this many steps per grid value (0: no timing)")
    a = p.parse_args()
    with open(os.path.join(a.sweep, "sweep.json")) as f:
        manifest = json.load(f)
    if len(manifest["grid"]) != 1:
        sys.exit(f"{a.sweep}: a sweep over one key is expected, this one has {len(manifest['grid'])}")
    key, values = manifest["grid"][0]["key"], manifest["grid"][0]["values"]
    metric, higher = manifest["metric"], manifest["higher_is_better"]
    rows = {v: [] for v in values}
    for run in manifest["runs"]:
        if run["status"] != "done":
            print(f"{run['name']}: {run['status']}, left out", file=sys.stderr)
            continue
        folder = os.path.join(a.sweep, run["name"])
        value = next(v for v in values if run["name"].startswith(f"{key}={v},"))
        heads_dir = os.path.join(folder, f"heads-{a.split}")
        summary = os.path.join(heads_dir, "heads.json")
        if not os.path.exists(summary):
            print(f"{run['name']}: rune heads --prune", file=sys.stderr, flush=True)
            args = [a.rune, "heads", os.path.join(folder, "checkpoints", "best.h5"), "--prune", "--split", a.split,
                    "--no-progress", "--out", heads_dir]
            if a.limit > 0:
                args += ["--limit", str(a.limit)]
            subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        with open(summary) as f:
            heads = json.load(f)
        test = None
        if os.path.exists(os.path.join(folder, "eval-test.json")):
            with open(os.path.join(folder, "eval-test.json")) as f:
                test = json.load(f).get(metric)
        rows[value].append({
            "val": best_val(read_log(os.path.join(folder, "metrics.jsonl")), metric, higher),
            "test": test,
            "heads": heads["heads"],
            "pairs": heads["pairs"],
            "redundant": heads["redundant_pairs"],
            "prunable": heads["prunable"][heads["primary_metric"]],
            "examples": heads["examples"],
            "js": heads["redundant_js"],
        })
    timing = {v: step_ms(a.rune, manifest["config"], manifest["sets"], key, v, a.time_steps) for v in values} \
        if a.time_steps > 0 else {}
    print(f"| {key} | seeds | best val {metric} | test {metric} | ms / step | heads | redundant pairs | "
          f"prunable heads |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in values:
        r = rows[v]
        if not r:
            print(f"| {v} | 0 | | | | | | |")
            continue
        ms = f"{timing[v]:.1f}" if v in timing else ""
        print(f"| {v} | {len(r)} | {cell([x['val'] for x in r], 4)} | {cell([x['test'] for x in r], 4)} | {ms} | "
              f"{r[0]['heads']} | {cell([x['redundant'] for x in r], 1)} of {r[0]['pairs']} | "
              f"{cell([x['prunable'] for x in r], 1)} |")
    first = next((r[0] for r in rows.values() if r), None)
    if first:
        print(f"\nRedundant: a pair of heads of one module whose attention differs by a mean Jensen-Shannon divergence "
              f"below {first['js']} nats. Prunable: heads masked in increasing order of importance before {metric} "
              f"falls by more than 0.01, on the first {first['examples']} examples of the {a.split} split.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
