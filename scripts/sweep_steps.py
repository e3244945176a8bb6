#!/usr/bin/env python3
"""Each run of a sweep folder (rune sweep --out DIR) at chosen validation steps, as a Markdown table:
the validation metrics named, and the first step at which the first of them reaches a threshold.

    scripts/sweep_steps.py DIR --metrics val_loss,val_exact_match --steps 200,400,1000,2000 \\
        --reach val_exact_match=0.99

A run still going, or one without a step, shows a blank cell there. Standard library only."""
import argparse
import json
import os
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep")
    p.add_argument("--metrics", required=True, help="comma-separated keys of metrics.jsonl's validation lines")
    p.add_argument("--steps", required=True, help="comma-separated steps")
    p.add_argument("--reach", help="KEY=VALUE: also the first step at which KEY reaches VALUE")
    a = p.parse_args()
    metrics, steps = a.metrics.split(","), [int(s) for s in a.steps.split(",")]
    reach_key, reach_value = (a.reach.split("=")[0], float(a.reach.split("=")[1])) if a.reach else (None, None)
    with open(os.path.join(a.sweep, "sweep.json")) as f:
        runs = [r["name"] for r in json.load(f)["runs"]]
    header = ["run"] + [f"step {s}: " + " / ".join(metrics) for s in steps]
    if reach_key:
        header.append(f"first step with {reach_key} >= {reach_value:g}")
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for name in runs:
        path = os.path.join(a.sweep, name, "metrics.jsonl")
        at, first = {}, None
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line being written
                    if not any(k.startswith("val_") for k in r):
                        continue
                    at[int(r["step"])] = r
                    v = r.get(reach_key) if reach_key else None
                    if first is None and v is not None and v >= reach_value:
                        first = int(r["step"])
        cells = [name]
        for s in steps:
            r = at.get(s)
            cells.append(" / ".join(f"{r[m]:.3f}" if r and r.get(m) is not None else "" for m in metrics) if r else "")
        if reach_key:
            cells.append(str(first) if first is not None else "never")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
