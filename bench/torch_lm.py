"""The PyTorch twin of a Runestone `lm` run (examples/lm/): the same model (torch.nn.TransformerEncoder
layers, built by tests/parity/runestone_torch.py from the run's checkpoint), the same token streams
and the very windows the run trained on, step by step (both written by build/bench_lm_twin from the
run's checkpoint), the same initialisation scheme (GPT-2's), dropout, AdamW, no-decay names,
schedule, clipping and evaluation. Only the initial weights and the dropout masks differ (PyTorch
draws its own).

    /usr/bin/python3 bench/torch_lm.py train runs/web/checkpoints/best.h5 [--out runs/web-torch]
        trains the twin for the run's steps, validating where the run validated; writes into --out
        log.jsonl (step, loss, lr, elapsed_s; val_loss, val_bits_per_char at each validation),
        summary.json and the twin's weights (model.pt)
    /usr/bin/python3 bench/torch_lm.py step runs/web/checkpoints/best.h5
        the median time of one training step on the run's first batches
    /usr/bin/python3 bench/torch_lm.py eval runs/web/checkpoints/best.h5 [--split val]
        Runestone's trained weights scored by this script's evaluation (it equals `rune eval`'s)
    /usr/bin/python3 bench/torch_lm.py generate runs/web/checkpoints/best.h5 --prompt TEXT [-n 1000]
        greedy continuation of the prompt with Runestone's weights and a KV cache, as `rune generate
        --temperature 0` decodes it; prints the text and tokens/s

bench/lm_reference.sh runs `step` and `generate` beside Runestone's own (docs/lm.md). Threads:
OMP_NUM_THREADS (default 2). Needs Debian's python3-torch, python3-h5py and python3-numpy.
"""
import argparse
import fnmatch
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import tomllib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
import runestone_torch as rt  # noqa: E402

PAD = 0  # text/tokens.hpp's Vocabulary::pad
NO_DECAY = ["*.bias", "*_bias", "*norm*", "embed.weight", "positions.weight"]  # LmTask::no_decay_patterns


def setting(cfg, key, default):
    section, name = key.split(".")
    return cfg.get(section, {}).get(name, default)


def streams(checkpoint, folder, twin):
    """The run's token streams and training windows, written by bench_lm_twin into folder."""
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists(os.path.join(folder, "offsets.npy")):
        subprocess.run([twin, "data", checkpoint, folder], check=True)
    return {name: np.load(os.path.join(folder, name + ".npy"))
            for name in ("train", "val", "test", "val_chars", "test_chars", "offsets")}


def twin_model(a, dropout):
    """A fresh model with Runestone's CausalLM initialisation (GPT-2's): N(0, 0.02) for the
    embeddings and projections, N(0, 0.02 / sqrt(2 L)) for each block's two residual projections
    (attention's out_proj, the MLP's linear2), biases zero, LayerNorms one and zero."""
    model = rt.CausalLM(a, dropout)
    residual = 0.02 / math.sqrt(2 * a["num_layers"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                std = residual if name.endswith(("out_proj.weight", "linear2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
    return model


@torch.no_grad()
def evaluate(model, ids, chars, T, batch):
    """LmTask::evaluate: every token after the first predicted once, from consecutive windows of T
    tokens, batch windows at a time: loss (nats per token) and bits per character."""
    model.eval()
    n = len(ids) - 1
    windows = (n + T - 1) // T
    nats = 0.0
    for first in range(0, windows, batch):
        B = min(batch, windows - first)
        inp = torch.full((B, T), PAD, dtype=torch.long)
        out = torch.full((B, T), -1, dtype=torch.long)
        for b in range(B):
            start = (first + b) * T
            length = min(T, n - start)
            inp[b, :length] = torch.from_numpy(ids[start:start + length].astype(np.int64))
            out[b, :length] = torch.from_numpy(ids[start + 1:start + length + 1].astype(np.int64))
        logits = model(inp)
        nats += F.cross_entropy(logits.reshape(B * T, -1), out.reshape(-1), ignore_index=-1, reduction="sum").item()
    model.train()
    return {"loss": nats / n, "bits_per_char": nats / (float(chars[1:n + 1].sum()) * math.log(2))}


class Trainer:
    """The run's optimizer, schedule, clipping and batches (the trainer's step, train/trainer.cpp)."""

    def __init__(self, model, cfg, data, T):
        self.model, self.data, self.T = model, data, T
        self.offsets = data["offsets"]
        self.total = len(self.offsets)
        decay = [p for n, p in model.named_parameters() if not any(fnmatch.fnmatchcase(n, g) for g in NO_DECAY)]
        keep = [p for n, p in model.named_parameters() if any(fnmatch.fnmatchcase(n, g) for g in NO_DECAY)]
        self.lr = setting(cfg, "train.lr", 1e-3)
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": setting(cfg, "train.weight_decay", 0.01)},
                                      {"params": keep, "weight_decay": 0.0}], lr=self.lr,
                                     betas=(setting(cfg, "train.beta1", 0.9), setting(cfg, "train.beta2", 0.98)),
                                     eps=setting(cfg, "train.eps", 1e-9))
        if setting(cfg, "train.schedule", "warmup_cosine") != "warmup_cosine":
            raise SystemExit("this twin writes the warmup_cosine schedule only")
        self.warmup = setting(cfg, "train.warmup_steps", min(100, self.total // 10))
        self.min_factor = setting(cfg, "train.min_lr_factor", 0.0)
        self.clip = setting(cfg, "train.clip_norm", 1.0)
        train = data["train"].astype(np.int64)
        self.train = torch.from_numpy(train)
        self.rows = torch.arange(T + 1)

    def factor(self, step):  # optim/schedule.cpp's warmup_cosine
        if step < self.warmup:
            return (step + 1) / self.warmup
        p = min(max((step + 1 - self.warmup) / (self.total - self.warmup), 0.0), 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * p))

    def step(self, step):
        for g in self.opt.param_groups:
            g["lr"] = self.lr * self.factor(step)
        windows = self.train[torch.from_numpy(self.offsets[step])[:, None] + self.rows]  # (B, T + 1)
        inp, out = windows[:, :-1], windows[:, 1:]
        logits = self.model(inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), out.reshape(-1))
        loss.backward()
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()


def train(args, ckpt, cfg, data):
    a = ckpt.arch
    T, batch = a["max_positions"], setting(cfg, "data.batch_size", 32)
    torch.manual_seed(cfg.get("seed", 0))
    model = twin_model(a, setting(cfg, "model.dropout", 0.1))
    model.train()
    trainer = Trainer(model, cfg, data, T)
    total = trainer.total
    eval_every = setting(cfg, "train.eval_every", total // setting(cfg, "train.epochs", 10))
    log_every = setting(cfg, "train.log_every", 10)
    out = args.out
    os.makedirs(out, exist_ok=True)
    log = open(os.path.join(out, "log.jsonl"), "w")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; {len(data['train'])} training tokens, "
          f"{total} steps of {batch} x {T}", flush=True)
    t0, eval_s, best = time.perf_counter(), 0.0, None
    for step in range(total):
        loss = trainer.step(step)
        elapsed = time.perf_counter() - t0
        if (step + 1) % log_every == 0 or step + 1 == total:
            log.write(json.dumps({"step": step + 1, "loss": loss, "lr": trainer.lr * trainer.factor(step),
                                  "elapsed_s": elapsed}) + "\n")
            log.flush()
            left = (elapsed - eval_s) / (step + 1) * (total - step - 1)
            print(f"step {step + 1}/{total} loss {loss:.4f} ({elapsed:.0f} s, {left:.0f} s left)", flush=True)
        if (step + 1) % eval_every == 0 or step + 1 == total:
            e0 = time.perf_counter()
            m = evaluate(model, data["val"], data["val_chars"], T, batch)
            eval_s += time.perf_counter() - e0
            best = m if best is None or m["bits_per_char"] < best["bits_per_char"] else best
            log.write(json.dumps({"step": step + 1, "val_loss": m["loss"], "val_bits_per_char": m["bits_per_char"],
                                  "elapsed_s": time.perf_counter() - t0}) + "\n")
            log.flush()
            print(f"step {step + 1}: val loss {m['loss']:.4f}, {m['bits_per_char']:.4f} bits/char", flush=True)
    train_s = time.perf_counter() - t0 - eval_s
    test = evaluate(model, data["test"], data["test_chars"], T, batch)
    torch.save(model.state_dict(), os.path.join(out, "model.pt"))
    summary = {"train_seconds": train_s, "eval_seconds": eval_s, "steps": total, "final_val": m, "best_val": best,
               "test": test, "threads": torch.get_num_threads(), "torch": torch.__version__}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"trained {total} steps in {train_s:.0f} s (+ {eval_s:.0f} s validating); val loss {m['loss']:.4f}, "
          f"{m['bits_per_char']:.4f} bits/char; test {test['bits_per_char']:.4f} bits/char", flush=True)


def step_time(args, ckpt, cfg, data):
    a = ckpt.arch
    torch.manual_seed(cfg.get("seed", 0))
    model = twin_model(a, setting(cfg, "model.dropout", 0.1))
    model.train()
    trainer = Trainer(model, cfg, data, a["max_positions"])
    times = []
    for step in range(3 + args.steps):  # as bench/timing.hpp: 3 warm-up steps, then the median
        t0 = time.perf_counter()
        trainer.step(step)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times[3:])
    tokens = trainer.offsets.shape[1] * a["max_positions"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    print(f"lm train step\t{s:.6e}\t{tokens / s:.3f}\ttokens/s\t0\t{rss:.1f}", flush=True)  # bench/timing.hpp's


def generate(args, ckpt):
    """Greedy continuation with Runestone's weights (runestone_torch.continue_greedy, a KV cache);
    the cache checked against the full forward first."""
    model = rt.build(ckpt)
    with torch.no_grad():
        ids = torch.randint(3, ckpt.arch["vocab"], (1, 64))
        cache = []
        cached = torch.cat([model.forward_cached(ids[:, t:t + 1], cache) for t in range(ids.shape[1])], 1)
        err = (model(ids) - cached).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"the cached decoding differs from the full forward by {err}")
    text, s = rt.continue_greedy(model, ckpt, args.prompt, args.max_new_tokens)
    print(args.prompt + text, flush=True)
    print(f"torch generate: {args.max_new_tokens} new tokens in {s:.3f} s: {args.max_new_tokens / s:.1f} tokens/s",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["train", "step", "eval", "generate"])
    ap.add_argument("checkpoint", help="a checkpoint of the Runestone lm run (its config, architecture, vocabulary)")
    ap.add_argument("--out", help="train: the twin's folder (default: the run folder's name + '-torch' beside it)")
    ap.add_argument("--data", help="the run's token streams (default: OUT/data, or a temporary folder)")
    ap.add_argument("--twin", default=os.path.join(HERE, "..", "build", "bench_lm_twin"),
                    help="the bench_lm_twin binary, which writes the data")
    ap.add_argument("--steps", type=int, default=20, help="step: steps timed after 3 warm-up steps")
    ap.add_argument("--split", default="val", choices=["val", "test"], help="eval: the split")
    ap.add_argument("--prompt", "-p", default="In the beginning", help="generate: the prompt")
    ap.add_argument("--max-new-tokens", "-n", type=int, default=1000, help="generate: tokens after the prompt")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ckpt = rt.read(args.checkpoint)
    cfg, a = tomllib.loads(ckpt.config), ckpt.arch
    if a["model"] != "causal_lm" or a["tokenization"] != "char":
        raise SystemExit(f"{args.checkpoint}: this twin reads character-level lm checkpoints")
    if args.mode == "generate":
        return generate(args, ckpt)
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
    args.out = args.out or run_dir + "-torch"
    data = streams(args.checkpoint, args.data or os.path.join(args.out, "data"), args.twin)
    if args.mode == "train":
        train(args, ckpt, cfg, data)
    elif args.mode == "step":
        step_time(args, ckpt, cfg, data)
    else:
        m = evaluate(rt.build(ckpt), data[args.split], data[args.split + "_chars"], a["max_positions"],
                     setting(cfg, "data.batch_size", 32))
        print(f"{args.split}: loss {m['loss']:.6f}, {m['bits_per_char']:.6f} bits/char")


if __name__ == "__main__":
    main()
