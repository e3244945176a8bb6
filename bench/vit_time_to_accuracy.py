"""Time to accuracy: Runestone's Fashion-MNIST ViT recipe against its PyTorch twin, one after the
other on the same machine, each to the recipe's end.

    /usr/bin/python3 bench/vit_time_to_accuracy.py [--target 0.91] [--epochs N] [--skip-torch]

Runestone's side: `build/rune train examples/vit/fashion_mnist.toml` with a numbered checkpoint
and a metrics record at the end of every epoch (train.keep_last and train.log_every set so), then
`rune eval` of each epoch's checkpoint on the test split. Its training seconds at the end of an
epoch are metrics.jsonl's elapsed_s there, less the seconds of the validations before it (eval_s).
PyTorch's side: bench/torch_vit_recipe.py, which stops its clock while it evaluates.

Prints one table (epoch, each side's training seconds and test accuracy) and the summary: each
side's training seconds to the first epoch at or above the target test accuracy, the ratio, and
the final accuracies; and writes it all to runs/time-to-accuracy/summary.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"  # Debian's, which sees python3-torch


def run(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def runestone(args, out_dir):
    rune = os.path.join(REPO, "build", "rune")
    config = os.path.join(REPO, "examples/vit/fashion_mnist.toml")
    runs = os.path.join(out_dir, "runs")
    name = "vit-rune"
    run([rune, "train", config, "--no-progress", "--set", f"run.dir={runs}", "--set", f"run.name={name}",
         "--set", "train.keep_last=1000", "--set", "train.log_every=429"]
        + (["--set", f"train.epochs={args.epochs}"] if args.epochs else []))
    folder = os.path.join(runs, name)
    records = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    evals, elapsed = {}, {}
    for r in records:
        if "eval_s" in r:
            evals[int(r["step"])] = r["eval_s"]
        if "elapsed_s" in r:
            elapsed[int(r["step"])] = r["elapsed_s"]
    per_epoch = min(evals)  # the first validation closes the first epoch
    rows = []
    for step in sorted(evals):
        checkpoint = os.path.join(folder, "checkpoints", f"step-{step:06d}.h5")
        said = run([rune, "eval", checkpoint, "--split", "test"], capture_output=True, text=True).stdout
        accuracy = float(re.search(r"accuracy\s+([0-9.]+)", said).group(1))
        before = sum(s for v, s in evals.items() if v < step)  # validations within elapsed_s
        rows.append({"epoch": step // per_epoch, "step": step, "train_seconds": elapsed[step] - before,
                     "test_accuracy": accuracy})
        print(f"runestone epoch {rows[-1]['epoch']}: {rows[-1]['train_seconds']:.1f} s, test {accuracy:.4f}",
              file=sys.stderr, flush=True)
    return rows


def torch_twin(args, out_dir):
    out = os.path.join(out_dir, "torch.json")
    run([PYTHON, os.path.join(REPO, "bench/torch_vit_recipe.py"), "--target", str(args.target), "--out", out]
        + (["--epochs", str(args.epochs)] if args.epochs else []))
    summary = json.load(open(out))
    return [{"epoch": r["epoch"], "step": r["step"], "train_seconds": r["train_seconds"],
             "test_accuracy": r["test_accuracy"]} for r in summary["records"]]


def reached(rows, target):
    return next((r["train_seconds"] for r in rows if r["test_accuracy"] >= target), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=float, default=0.91)
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs on both sides (default: the recipe's)")
    ap.add_argument("--out", default=os.path.join(REPO, "runs/time-to-accuracy"))
    ap.add_argument("--skip-torch", action="store_true", help="Runestone's side only")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ours = runestone(args, args.out)
    theirs = [] if args.skip_torch else torch_twin(args, args.out)
    print(f"{'epoch':>5} {'rune s':>9} {'rune test':>9} {'torch s':>9} {'torch test':>10}")
    for i in range(max(len(ours), len(theirs))):
        o = ours[i] if i < len(ours) else None
        t = theirs[i] if i < len(theirs) else None
        print(f"{(o or t)['epoch']:>5} "
              + (f"{o['train_seconds']:>9.1f} {o['test_accuracy']:>9.4f} " if o else f"{'':>9} {'':>9} ")
              + (f"{t['train_seconds']:>9.1f} {t['test_accuracy']:>10.4f}" if t else ""))
    mine, twin = reached(ours, args.target), reached(theirs, args.target)
    summary = {"target": args.target, "runestone": ours, "torch": theirs,
               "runestone_seconds_to_target": mine, "torch_seconds_to_target": twin,
               "ratio": mine / twin if mine and twin else None,
               "runestone_final_test_accuracy": ours[-1]["test_accuracy"],
               "torch_final_test_accuracy": theirs[-1]["test_accuracy"] if theirs else None}
    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"), indent=1)
    # lower marks too: a run that ends just short of the target still has a time to each of them
    marks = sorted({0.88, 0.89, 0.90, 0.905, args.target})
    summary["marks"] = []
    for mark in marks:
        a, b = reached(ours, mark), reached(theirs, mark)
        summary["marks"].append({"test_accuracy": mark, "runestone_seconds": a, "torch_seconds": b,
                                 "ratio": a / b if a and b else None})
        print(f"to {mark:.1%}: runestone " + (f"{a:.0f} s" if a else "never")
              + (f", torch {b:.0f} s" if b else ", torch never" if theirs else "")
              + (f", ratio {a / b:.2f}" if a and b else ""))
    json.dump(summary, open(os.path.join(args.out, "summary.json"), "w"), indent=1)
    print(f"to {args.target:.2%} test accuracy: runestone "
          + (f"{mine:.0f} s" if mine else "never")
          + (f", torch {twin:.0f} s" if twin else ", torch never" if theirs else "")
          + (f", ratio {summary['ratio']:.2f}" if summary["ratio"] else ""))
    print(f"final test accuracy: runestone {summary['runestone_final_test_accuracy']:.4f}"
          + (f", torch {summary['torch_final_test_accuracy']:.4f}" if theirs else ""))


if __name__ == "__main__":
    main()
