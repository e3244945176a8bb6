"""Rebuilds a trained checkpoint in PyTorch with runestone_torch.py (from the checkpoint alone) and
checks that it computes what the `rune` binary computes. Run by hand (CI has no PyTorch):

    /usr/bin/python3 tests/parity/check_checkpoint.py CKPT [--rune build/rune] [--count 300] [--set KEY=VALUE]

By the checkpoint's task (the `[task] name` of its config):
  translation  `--count` number sentences (0..99, then drawn up to 999,999; needs python3-num2words),
               or the lines of --sentences FILE: PyTorch's greedy translations against
               `rune translate`'s, and log P(rune's translation | sentence) against
               `rune translate --scores` (max |difference| at most 1e-4);
  reverse      `--count` random digit sequences of data.min_len..data.max_len digits, the same two checks;
  lm           the lines of --sentences FILE, or a dozen built-in prompts: PyTorch's greedy continuations
               (200 characters, the KV cache) against `rune generate --temperature 0`'s, character for character;
  vit          the test split (read from the config's data.dir, IDX or CIFAR-10 files): PyTorch's
               logits and predictions against `rune eval --split test --predictions`'s (max |difference|
               of the logits at most 1e-4).
--set KEY=VALUE replaces an architecture fact before the model is built (norm_first=0, say), to
see what a wrong fact costs: the check must then fail. Exit 0 when everything agrees. Needs
Debian's python3-torch and python3-h5py.
"""
import argparse
import csv
import gzip
import os
import random
import subprocess
import sys
import tempfile
import tomllib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runestone_torch as rt  # noqa: E402

TOLERANCE = 1e-4


def rune_translate(rune, path, sentences):
    """(translation, log-probability) per sentence, from `rune translate --scores` over stdin."""
    lines = subprocess.run([rune, "translate", path, "--scores"], input="".join(s + "\n" for s in sentences),
                           capture_output=True, text=True, check=True).stdout.splitlines()
    return [(line.rsplit("\t", 1)[0], float(line.rsplit("\t", 1)[1])) for line in lines]


def check_text(rune, path, ckpt, model, sentences):
    ours = rune_translate(rune, path, sentences)
    theirs = rt.translate(model, ckpt, sentences)
    scores = rt.log_probability(model, ckpt, [(s, t) for s, (t, _) in zip(sentences, ours)])
    same = sum(t == o for t, (o, _) in zip(theirs, ours))
    worst = max(abs(s - lp) for s, (_, lp) in zip(scores, ours))
    for s, t, (o, _) in zip(sentences, theirs, ours):
        if t != o:
            print(f"differs: {s!r}: rune {o!r}, torch {t!r}")
    print(f"translations equal: {same}/{len(sentences)}; log-probability max |difference| {worst:.2e}")
    return same == len(sentences) and worst <= TOLERANCE


PROMPTS = ["In the beginning", "And God said", "The LORD is my shepherd", "Blessed are", "Then Jesus",
           "He said to them, “", "Now the king", "Behold,", "For God so loved", "The children of Israel",
           "After these things", "Paul, an apostle"]


def check_lm(rune, path, ckpt, model, prompts, new_tokens=200):
    same = 0
    for prompt in prompts:
        ours = subprocess.run([rune, "generate", path, "--prompt", prompt, "-n", str(new_tokens), "-t", "0"],
                              capture_output=True, text=True, check=True).stdout
        theirs = prompt + rt.continue_greedy(model, ckpt, prompt, new_tokens)[0] + "\n"
        same += ours == theirs
        if ours != theirs:
            at = next(i for i, (a, b) in enumerate(zip(ours + "\0", theirs + "\1")) if a != b)
            print(f"differs: {prompt!r} from character {at}: rune {ours[at:at + 40]!r}, torch {theirs[at:at + 40]!r}")
    print(f"greedy continuations equal: {same}/{len(prompts)} ({new_tokens} tokens each)")
    return same == len(prompts)


def number_sentences(count):
    from num2words import num2words
    rng = random.Random(0)
    numbers = list(range(min(count, 100))) + [rng.randrange(1000000) for _ in range(count - min(count, 100))]
    return [num2words(n, lang="en") for n in numbers]


def digit_sequences(count, config, ckpt):
    data = config.get("data", {})
    digits = len(ckpt.meta["vocabulary"]) - 3  # <pad> <bos> <eos>, then the digits
    rng = random.Random(0)
    return [" ".join(str(rng.randrange(digits)) for _ in range(rng.randint(data.get("min_len", 2),
                                                                            data.get("max_len", 8))))
            for _ in range(count)]


def idx(path):
    """An IDX file (gzipped or not) as a uint8 tensor of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).view(shape)


def test_images(config):
    """The test split as (uint8 images (N, C, H, W), labels), read as the ViT task reads it."""
    data = config.get("data", {})
    folder = data.get("dir", "/usr/share/datasets/fashion-mnist")
    if data.get("dataset", "fashion_mnist") == "cifar10":
        with open(os.path.join(folder, "test_batch.bin"), "rb") as f:
            records = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).view(-1, 1 + 3 * 32 * 32)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].long()
    find = [n for n in sorted(os.listdir(folder))]
    images = next(n for n in find if n.startswith("t10k-images-idx3-ubyte"))
    labels = next(n for n in find if n.startswith("t10k-labels-idx1-ubyte"))
    return idx(os.path.join(folder, images)).unsqueeze(1), idx(os.path.join(folder, labels)).long()


def check_vit(rune, path, ckpt, model, config):
    with tempfile.TemporaryDirectory() as tmp:
        predictions = os.path.join(tmp, "predictions.csv")
        subprocess.run([rune, "eval", path, "--split", "test", "--out", tmp, "--predictions", predictions],
                       check=True, capture_output=True)
        with open(predictions) as f:
            rows = list(csv.DictReader(f))
    K = ckpt.arch["num_classes"]
    our_logits = torch.tensor([[float(r[f"logit_{k}"]) for k in range(K)] for r in rows])
    our_pred = torch.tensor([int(r["predicted"]) for r in rows])
    images, labels = test_images(config)
    with torch.no_grad():
        logits = torch.cat([model(rt.preprocess(images[i:i + 500], ckpt)) for i in range(0, len(images), 500)])
    same = int((logits.argmax(-1) == our_pred).sum())
    worst = float((logits - our_logits).abs().max())
    accuracy = float((logits.argmax(-1) == labels).float().mean())
    print(f"test images: {len(rows)}; predictions equal: {same}/{len(rows)}; logits max |difference| {worst:.2e} "
          f"(logits up to {float(our_logits.abs().max()):.1f}); torch's accuracy {accuracy:.4f}")
    return same == len(rows) and worst <= TOLERANCE


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--rune", default="build/rune")
    p.add_argument("--count", type=int, default=300, help="sentences or sequences (text checkpoints)")
    p.add_argument("--sentences", help="a file of source sentences (translation) or prompts (lm), one a line")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace an architecture fact (an integer, a float or text)")
    args = p.parse_args()
    torch.set_num_threads(2)
    ckpt = rt.read(args.checkpoint)
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in ckpt.arch:
            sys.exit(f"--set {item}: the checkpoint has no architecture fact {key!r}")
        ckpt.arch[key] = type(ckpt.arch[key])(value)
        print(f"architecture fact replaced: {key} = {ckpt.arch[key]!r}")
    config = tomllib.loads(ckpt.config)
    task = config["task"]["name"]
    model = rt.build(ckpt)  # load_state_dict(strict=True): raises on any missing or unexpected name
    print(f"{args.checkpoint}: {task}, {ckpt.arch['model']}, {sum(t.numel() for t in ckpt.params.values())} "
          f"parameters loaded strictly")
    if task == "translation":
        if args.sentences:
            with open(args.sentences, encoding="utf-8") as f:
                sentences = [line.rstrip("\n") for line in f]
        else:
            sentences = number_sentences(args.count)
        ok = check_text(args.rune, args.checkpoint, ckpt, model, sentences)
    elif task == "reverse":
        ok = check_text(args.rune, args.checkpoint, ckpt, model, digit_sequences(args.count, config, ckpt))
    elif task == "lm":
        if args.sentences:
            with open(args.sentences, encoding="utf-8") as f:
                prompts = [line.rstrip("\n") for line in f]
        else:
            prompts = PROMPTS
        ok = check_lm(args.rune, args.checkpoint, ckpt, model, prompts)
    elif task == "vit":
        ok = check_vit(args.rune, args.checkpoint, ckpt, model, config)
    else:
        sys.exit(f"{args.checkpoint}: no check for task {task!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
