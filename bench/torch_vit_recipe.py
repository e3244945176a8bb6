"""The PyTorch twin of Runestone's Fashion-MNIST ViT recipe, for a time-to-accuracy comparison.

It trains what `build/rune train examples/vit/fashion_mnist.toml` trains, with Debian's
python3-torch, and after every epoch measures top-1 accuracy on the validation split and on the
10,000 test images, outside the training clock. Run it on an otherwise idle machine:

    /usr/bin/python3 bench/torch_vit_recipe.py                       # the full recipe (20 epochs)
    /usr/bin/python3 bench/torch_vit_recipe.py --limit-steps 30      # a quick check of the speed
    /usr/bin/python3 bench/torch_vit_recipe.py --config X.toml --epochs N --target 0.91 --out F.json
    /usr/bin/python3 bench/torch_vit_recipe.py --log-every 10     # progress every 10 steps

--epochs N is train.epochs = N (the schedule's length follows, as in Runestone); --limit-steps N
stops after N steps of the full run's schedule and evaluates there (a partial epoch's record).

One line per epoch on stdout (`epoch E  train_seconds S  loss L  val_acc V  test_acc T
eval_seconds X`: loss is the mean training loss of the epoch's batches, eval_seconds the time of
the two evaluations, off the clock), a progress line every train.log_every steps
on stderr, and a JSON file (--out, default runs/vit-torch/time_to_accuracy.json, rewritten after
every epoch) with the per-epoch records and the summary: the training seconds until the test
accuracy first reached --target (null if never), the final test accuracy, the total training
seconds, torch's version, the threads and the BLAS library. Runestone's side of the comparison is
the run folder's metrics.jsonl: its elapsed_s includes the validations, whose seconds are the
records' eval_s (and it evaluates the test split only afterwards, with `rune eval`).

BLAS and threads. Debian's torch links the generic libblas.so.3, which may be the reference BLAS
(20-40x slower). Like bench/run.sh, this script puts the OpenMP build of OpenBLAS first on
LD_LIBRARY_PATH (/usr/lib/<multiarch>/openblas-openmp, or $RUNE_OPENBLAS_DIR) by re-executing
itself once before torch is imported (with OPENBLAS_CORETYPE set as Runestone's programs set it,
autograd/blas.cpp, when that OpenBLAS would pick kernels older than the CPU), and prints the BLAS
libraries the process really mapped. It runs torch.set_num_threads(OMP_NUM_THREADS), 2 when
OMP_NUM_THREADS is unset (and then sets it, so that OpenBLAS's OpenMP threads agree).

What is the same as Runestone's recipe (the files named are Runestone's):
- The data: the IDX files of data.dir, gzipped or not (examples/vit/image_data.cpp read_idx: the
  .gz file first, else the plain one, with the same header checks). Pixels v in 0..255 become
  (v / 255 - mean) / std with the per-channel mean and population std of the training split
  (channel_stats), computed in float64 exactly as Runestone does, and applied as it is compiled
  there (-march=x86-64-v3, so GCC fuses `v * scale - shift` into one FMA with float32 scale and
  shift, and the variance's `q - mean * mean` into one FMA in float64): the normalised inputs are
  bit-identical to Runestone's. data.image_size / data.resize = "pad" centre on black as
  resize_to does (before normalisation, as there).
- The split (vit_task.cpp): iota(60000) shuffled by Generator(seed * 31 + 5); the last val_size
  are validation; both sides sorted.
- The epoch order and the augmentation, drawn by a Python port of autograd/random.cpp
  (xoshiro256** seeded by splitmix64; below(n) rejects r < (2^64 - n) mod n and returns r mod n)
  and of vit_task.cpp's Fisher-Yates shuffle: the order of epoch e is iota(train size) shuffled by
  Generator(seed * 1000003 + e * 7919 + 17); batch i takes positions [i * B, (i + 1) * B) of it and
  draws, image by image, dy = below(2P + 1) - P, dx = below(2P + 1) - P (when P = crop_padding > 0)
  and then flip = below(2) == 1 (when hflip) from Generator(seed * 1000003 + e * 7919 + i * 104729
  + 29), all in uint64 arithmetic; the output pixel (y, x) is the source pixel (y + dy, x' + dx)
  with x' = W - 1 - x if flipped else x, or black outside the image (crop_and_flip). Batches per
  epoch = train size // B (55000 // 128 = 429: the partial batch is dropped). Runestone reshuffles
  the epoch's order for every batch; this script shuffles once per epoch and keeps it (the same
  order). As there, the next batch is prepared on another thread while the model trains on this one.
- The model (nn/vit.cpp): a Conv2d patch embedding (kernel = stride = patch_size), a class token
  before the patches, a learned position embedding, depth pre-LN nn.TransformerEncoderLayer
  (exact GELU, LayerNorm eps 1e-5, batch_first, dropout model.dropout everywhere Runestone puts
  it, pos_drop included), a final LayerNorm, the class token's row (pool = "cls") or the mean of
  the patch rows (pool = "mean"), a Linear head. Parameter names are Runestone's (patch_embed.proj.*,
  cls_token, pos_embed, encoder.layers.N.*, encoder.norm.*, head.*): 456,394 parameters for the
  recipe.
- The initialisation's distributions: every Linear weight (MLP, attention out_proj, head)
  trunc_normal(0, 0.02, [-2, 2]) with zero bias; in_proj_weight xavier_uniform with zero
  in_proj_bias (nn/attention.cpp, as torch's MultiheadAttention); pos_embed trunc_normal(0, 0.02);
  cls_token N(0, 1e-6); the patch Conv2d torch's default (kaiming_uniform(a = sqrt 5), bias
  U(+-1/sqrt(fan_in))); LayerNorm ones and zeros.
- The optimizer: AdamW (or Adam) with train.lr, beta1, beta2, eps, weight_decay, in two groups
  made as optim/optimizer.cpp's param_groups_by_weight_decay does: no decay for the names matching
  the task's patterns "*.bias", "*_bias", "*norm*", "pos_embed", "cls_token" by Runestone's glob
  (every bias, self_attn.in_proj_bias included, is left undecayed). torch's AdamW
  arithmetic is the one optim/adam.cpp copies.
- The schedule (optim/schedule.cpp), as a factor of lr set before each step s (0-based):
  warmup_cosine = (s + 1) / warmup while s < warmup, then min_factor + (1 - min_factor)(1 +
  cos(pi p)) / 2 with p = clamp((s + 1 - warmup) / (total - warmup), 0, 1), total = epochs *
  batches per epoch (8580 for the recipe); constant and warmup_inverse_sqrt too. The loss is
  cross-entropy with train.label_smoothing; gradients are clipped to the global norm
  train.clip_norm (max_norm / (norm + 1e-6), as optim/clip.cpp); train.epochs epochs.
- Evaluation: eval mode, batches of data.eval_batch_size, no augmentation, top-1 by argmax.

What is not the same:
- The initial parameters are other draws (torch's generator, torch.manual_seed(seed)) from the
  same distributions; dropout masks (none in the recipe: dropout 0) likewise.
- Floating-point order of the kernels (torch's against Runestone's fused ones): the trajectories
  agree only statistically, not bit for bit.
- The clock: this script stops it during the per-epoch evaluations; Runestone's elapsed_s counts
  its per-epoch validation (subtract its eval_s). No checkpoints are written here (Runestone writes
  one per epoch, inside its clock).
- Config keys that only concern Runestone's run folder or its MPI runs (run.dir, run.name,
  train.keep_last, train.bucket_mb) are accepted and have no effect; a key this twin cannot honour
  (train.init_from, data.resize = "upsample", CIFAR-10, DropHead, SGD, train.eval_every other
  than one epoch, or any unknown key) is refused.
"""
import argparse
import gzip
import json
import math
import os
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _reexec_with_openblas():
    """Before torch loads: OpenBLAS's OpenMP build first on LD_LIBRARY_PATH, OMP_NUM_THREADS set."""
    arch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    blas_dir = os.environ.get("RUNE_OPENBLAS_DIR", f"/usr/lib/{arch}/openblas-openmp")
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "2"  # read by OpenBLAS (OpenMP) when it loads, so set it first
    if not os.path.exists(os.path.join(blas_dir, "libblas.so.3")):
        print(f"# WARNING: no {blas_dir}/libblas.so.3 (apt-get install libopenblas0-openmp): torch uses "
              "whatever libblas.so.3 the system selects", file=sys.stderr, flush=True)
        return
    if blas_dir in paths or os.environ.get("RUNE_TWIN_REEXEC"):
        return
    os.environ["LD_LIBRARY_PATH"] = ":".join([blas_dir] + paths)
    if "OPENBLAS_CORETYPE" not in os.environ:  # the kernels Runestone's side runs, as bench/run.sh does
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from timing import better_openblas_core
        core = better_openblas_core(os.path.join(blas_dir, "libblas.so.3"))
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
    os.environ["RUNE_TWIN_REEXEC"] = "1"
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)


if __name__ == "__main__":
    _reexec_with_openblas()

import numpy as np  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.nn as nn  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
except ImportError:
    sys.exit(f"torch_vit_recipe.py: {sys.executable} has no torch; run it with Debian's /usr/bin/python3 "
             "(python3-torch)")

from timing import loaded_blas  # noqa: E402  (bench/timing.py, beside this script)

MASK64 = (1 << 64) - 1
TWO64 = 1 << 64


# ------------------------------------------------------------------------- Runestone's generator

def _splitmix_state(seed):
    """The four xoshiro256** words of Generator(seed) (autograd/random.cpp manual_seed)."""
    x, s = seed & MASK64, []
    for _ in range(4):
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        s.append(z ^ (z >> 31))
    return s


class Generator:
    """autograd/random.cpp's Generator: xoshiro256** seeded by splitmix64; below(n) as written there."""

    def __init__(self, seed):
        self.s = _splitmix_state(seed)

    def next_u64(self):
        s0, s1, s2, s3 = self.s
        x = (s1 * 5) & MASK64
        result = ((((x << 7) | (x >> 57)) & MASK64) * 9) & MASK64
        t = (s1 << 17) & MASK64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = ((s3 << 45) | (s3 >> 19)) & MASK64
        self.s = [s0, s1, s2, s3]
        return result

    def below(self, n):
        if n <= 0:
            raise ValueError("Generator.below: n must be positive")
        threshold = (TWO64 - n) % n  # (0 - n) % n in uint64
        while True:
            r = self.next_u64()
            if r >= threshold:
                return r % n


def shuffled_iota(n, seed):
    """vit_task.cpp's shuffle(iota(n), Generator(seed)): Fisher-Yates, v[i-1] <-> v[below(i)] for
    i = n .. 2. The generator is inlined (this runs 55,000 times per epoch)."""
    s0, s1, s2, s3 = _splitmix_state(seed)
    v = list(range(n))
    for i in range(n, 1, -1):
        threshold = (TWO64 - i) % i
        while True:
            x = (s1 * 5) & MASK64
            r = ((((x << 7) | (x >> 57)) & MASK64) * 9) & MASK64
            t = (s1 << 17) & MASK64
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = ((s3 << 45) | (s3 >> 19)) & MASK64
            if r >= threshold:
                break
        j = r % i
        v[i - 1], v[j] = v[j], v[i - 1]
    return v


def order_seed(seed, epoch):
    return (seed * 1000003 + epoch * 7919 + 17) & MASK64


def augment_seed(seed, epoch, index):
    return (seed * 1000003 + epoch * 7919 + index * 104729 + 29) & MASK64


def split_seed(seed):
    return (seed * 31 + 5) & MASK64


# ------------------------------------------------------------------------- config

def _parse_toml_minimal(text, path):
    """Enough TOML for a Runestone recipe: [tables], key = string | integer | float | boolean, comments."""
    out = {}
    table = out
    for lineno, raw in enumerate(text.splitlines(), 1):
        line, quoted = "", None
        for ch in raw:  # strip a comment outside strings
            if quoted:
                quoted = None if ch == quoted else quoted
            elif ch in "\"'":
                quoted = ch
            elif ch == "#":
                break
            line += ch
        line = line.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            table = out
            for part in line[1:-1].strip().split("."):
                table = table.setdefault(part.strip(), {})
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{lineno}: cannot parse '{raw}'")
        key, value = (s.strip() for s in line.split("=", 1))
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            parsed = value[1:-1]
        elif value in ("true", "false"):
            parsed = value == "true"
        else:
            try:
                parsed = int(value.replace("_", ""))
            except ValueError:
                try:
                    parsed = float(value.replace("_", ""))
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: cannot parse the value of '{key}': {value}") from None
        target = table
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part.strip(), {})
        target[parts[-1].strip()] = parsed
    return out


def load_toml(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        import tomllib
        return tomllib.loads(data.decode("utf-8"))
    except ImportError:
        return _parse_toml_minimal(data.decode("utf-8"), path)


def _flatten(d, prefix=""):
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, prefix + k + "."))
        else:
            flat[prefix + k] = v
    return flat


class Recipe:
    """The config's keys, with Runestone's defaults (vit_task.cpp, train/trainer.cpp, optim/adam.cpp);
    every key is checked, and one not understood is refused."""

    # Keys of Runestone's that only concern its run folder or MPI: accepted, no effect here.
    NO_EFFECT = {"run.dir", "run.name", "train.keep_last", "train.bucket_mb"}

    def __init__(self, path, epochs_override=None):
        self.path = path
        self.raw = _flatten(load_toml(path))
        self.used = set()
        g = self.get
        self.seed = g("seed", 0, int, lo=0)
        task = g("task.name", None, str)
        if task != "vit":
            self.fail("task.name", f"'{task}': this twin trains the 'vit' task only")
        self.dataset = g("data.dataset", "fashion_mnist", str)
        if self.dataset not in ("fashion_mnist", "mnist"):
            self.fail("data.dataset", f"'{self.dataset}': this twin reads the IDX data sets only "
                      "(fashion_mnist, mnist)")
        self.dir = g("data.dir", "/usr/share/datasets/fashion-mnist" if self.dataset == "fashion_mnist" else "", str)
        if not self.dir:
            self.fail("data.dir", f"data.dataset = \"{self.dataset}\" needs the folder of its files")
        self.val_size = g("data.val_size", 5000, int, lo=1)
        self.batch_size = g("data.batch_size", 128, int, lo=1)
        self.eval_batch_size = g("data.eval_batch_size", 500, int, lo=1)
        self.image_size = g("data.image_size", 0, int, lo=0)
        self.resize = g("data.resize", "none", str)
        if self.resize not in ("none", "pad"):
            self.fail("data.resize", f"'{self.resize}': this twin does 'none' and 'pad' only")
        self.crop_padding = g("data.crop_padding", 2, int, lo=0, hi=64)
        self.hflip = g("data.hflip", False, bool)
        self.patch_size = g("model.patch_size", 4, int, lo=1)
        self.embed_dim = g("model.embed_dim", 128, int, lo=1)
        self.depth = g("model.depth", 6, int, lo=1)
        self.num_heads = g("model.num_heads", 8, int, lo=1)
        self.mlp_dim = g("model.mlp_dim", 4 * self.embed_dim, int, lo=1)
        self.dropout = g("model.dropout", 0.0, float, lo=0.0, hi=1.0, hi_open=True)
        self.pool = g("model.pool", "cls", str)
        if self.pool not in ("cls", "mean"):
            self.fail("model.pool", f"'{self.pool}' is not one of cls, mean")
        if self.embed_dim % self.num_heads:
            self.fail("model.num_heads", f"{self.num_heads} does not divide model.embed_dim {self.embed_dim}")
        self.label_smoothing = g("train.label_smoothing", 0.1, float, lo=0.0, hi=1.0)
        self.epochs = g("train.epochs", 10, int, lo=1)
        if epochs_override is not None:
            self.epochs = epochs_override
        self.optimizer = g("train.optimizer", "adamw", str)
        if self.optimizer not in ("adamw", "adam"):
            self.fail("train.optimizer", f"'{self.optimizer}': this twin does adamw and adam only")
        self.lr = g("train.lr", 1e-3, float, lo=0.0)
        self.weight_decay = g("train.weight_decay", 0.01, float, lo=0.0)
        self.clip_norm = g("train.clip_norm", 1.0, float, lo=0.0)
        self.schedule = g("train.schedule", "warmup_cosine", str)
        if self.schedule not in ("constant", "warmup_cosine", "warmup_inverse_sqrt"):
            self.fail("train.schedule", f"'{self.schedule}' is not one of constant, warmup_cosine, "
                      "warmup_inverse_sqrt")
        self._warmup = g("train.warmup_steps", None, int, lo=0)  # default needs the steps: resolve()
        self.min_lr_factor = g("train.min_lr_factor", 0.0, float, lo=0.0, hi=1.0)
        self.beta1 = g("train.beta1", 0.9, float, lo=0.0, hi=1.0, hi_open=True)
        self.beta2 = g("train.beta2", 0.98, float, lo=0.0, hi=1.0, hi_open=True)
        self.eps = g("train.eps", 1e-9, float, lo=0.0)
        self.log_every = g("train.log_every", 10, int, lo=1)
        self._eval_every = g("train.eval_every", None, int, lo=1)
        if g("train.drophead", 0.0, float, lo=0.0, hi=1.0, hi_open=True) != 0.0:
            self.fail("train.drophead", "DropHead is not reproduced by this twin")
        g("train.drophead_schedule", "constant", str)
        g("train.drophead_warmup_steps", 0, int, lo=0)
        if g("train.init_from", "", str):
            self.fail("train.init_from", "fine-tuning from a Runestone checkpoint is not reproduced by this twin")
        for key in self.NO_EFFECT:
            if key in self.raw:
                self.used.add(key)
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            self.fail(", ".join(unknown), "not a key this twin knows (Recipe lists the Runestone keys it "
                      "reproduces or refuses): refused rather than ignored")

    def fail(self, key, message):
        raise SystemExit(f"{self.path}: {key}: {message}")

    def get(self, key, default, kind, lo=None, hi=None, hi_open=False):
        self.used.add(key)
        if key not in self.raw:
            return default
        v = self.raw[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            self.fail(key, f"{v!r} is not a {kind.__name__}")
        if lo is not None and v < lo or hi is not None and (v >= hi if hi_open else v > hi):
            self.fail(key, f"{v!r} is outside [{lo}, {hi}{')' if hi_open else ']'}")
        return v

    def resolve(self, batches_per_epoch):
        """The defaults that depend on the data, as train/trainer.cpp computes them."""
        self.batches_per_epoch = batches_per_epoch
        self.total_steps = self.epochs * batches_per_epoch
        self.warmup_steps = self._warmup if self._warmup is not None else min(100, self.total_steps // 10)
        if self._eval_every is not None and self._eval_every != batches_per_epoch:
            self.fail("train.eval_every", "this twin evaluates once per epoch "
                      f"({batches_per_epoch} steps) only")
        if self.schedule == "warmup_cosine" and self.total_steps <= self.warmup_steps:
            self.fail("train.warmup_steps", f"warmup_cosine needs total_steps ({self.total_steps}) above "
                      f"warmup_steps ({self.warmup_steps})")
        if self.schedule == "warmup_inverse_sqrt" and self.warmup_steps < 1:
            self.fail("train.warmup_steps", "warmup_inverse_sqrt needs warmup_steps >= 1")

    def lr_factor(self, step):
        """optim/schedule.cpp's factor for the 0-based step."""
        w = self.warmup_steps
        if self.schedule == "warmup_inverse_sqrt":
            s = step + 1.0
            return min(s / w, math.sqrt(w / s))
        if step < w:
            return (step + 1.0) / w
        if self.schedule == "constant":
            return 1.0
        p = min(max((step + 1.0 - w) / (self.total_steps - w), 0.0), 1.0)
        return self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * p))


# ------------------------------------------------------------------------- data

def _read_maybe_gzipped(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # zlib's gzread reads both


def _find_idx(folder, name):
    for p in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
        if os.path.exists(p):
            return p
    raise SystemExit(f"{os.path.join(folder, name)}[.gz]: missing")


def _read_idx_file(path, dims):
    data = _read_maybe_gzipped(path)
    header = 4 + 4 * dims
    if len(data) < header:
        raise SystemExit(f"{path}: {len(data)} bytes, shorter than an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != (0x0800 | dims):
        raise SystemExit(f"{path}: magic number 0x{magic:08X}, expected 0x{0x0800 | dims:08X}")
    sizes = [int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(dims)]
    if len(data) - header != math.prod(sizes):
        raise SystemExit(f"{path}: {len(data) - header} bytes of data where the header promises {math.prod(sizes)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(sizes)


def read_idx(folder, train):
    """(images (N, 1, H, W) uint8, labels (N,) int64), as read_idx in examples/vit/image_data.cpp."""
    prefix = "train" if train else "t10k"
    images = _read_idx_file(_find_idx(folder, prefix + "-images-idx3-ubyte"), 3)
    labels = _read_idx_file(_find_idx(folder, prefix + "-labels-idx1-ubyte"), 1)
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise SystemExit(f"{folder}: {images.shape[0]} {prefix} images and {labels.shape[0]} labels")
    if labels.max() >= 10:
        raise SystemExit(f"{folder}: a {prefix} label is outside the 10 classes")
    return images[:, None, :, :].copy(), labels.astype(np.int64)


def _fma(a, b, c):
    """a * b + c rounded once (math.fma is Python 3.13+)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def channel_stats(images):
    """Per-channel (mean, std) of the pixels scaled to [0, 1], population std, as channel_stats in
    image_data.cpp: exact integer sums, then float64; its `q - mean * mean` is one FMA in the build."""
    means, stds = [], []
    for c in range(images.shape[1]):
        p = images[:, c].astype(np.int64)
        s, q = float(int(p.sum())), float(int((p * p).sum()))
        n = float(p.size)
        mean = s / n / 255.0
        var = _fma(-mean, mean, q / n / (255.0 * 255.0))
        means.append(mean)
        stds.append(math.sqrt(max(var, 1e-12)))
    return means, stds


class Transform:
    """make_batch's pixels: crop and flip at the native size, centre-pad to S, normalise."""

    def __init__(self, means, stds, native, size, crop_padding, hflip):
        self.native, self.size, self.P, self.hflip = native, size, crop_padding, hflip
        # float32 scale and shift (make_batch), applied in float64 and rounded once to float32: the
        # same as the build's fused multiply-subtract, since v * scale - shift (an 8-bit v, 24-bit
        # scale and shift of similar magnitude) is exact in float64
        self.scale = np.array([float(np.float32(1.0 / (255.0 * s))) for s in stds]).reshape(1, -1, 1, 1)
        self.shift = np.array([float(np.float32(m / s)) for m, s in zip(means, stds)]).reshape(1, -1, 1, 1)

    def __call__(self, images, dy=None, dx=None, flip=None):
        """images (B, C, H, W) uint8 -> (B, C, S, S) float32; dy, dx, flip per image (or none)."""
        B, C, H, W = images.shape
        if dy is not None:
            P = self.P
            padded = np.pad(images, ((0, 0), (0, 0), (P, P), (P, P)))
            xs = np.where(flip[:, None], W - 1 - np.arange(W)[None, :], np.arange(W)[None, :])
            rows = np.arange(H)[None, :] + dy[:, None] + P  # (B, H)
            cols = xs + dx[:, None] + P  # (B, W)
            images = padded[np.arange(B)[:, None, None, None], np.arange(C)[None, :, None, None],
                            rows[:, None, :, None], cols[:, None, None, :]]
        S = self.size
        if S != H:
            top, left = (S - H) // 2, (S - W) // 2
            out = np.zeros((B, C, S, S), dtype=np.uint8)
            out[:, :, top:top + H, left:left + W] = images
            images = out
        return (images.astype(np.float64) * self.scale - self.shift).astype(np.float32)


class TrainBatches:
    """ViTTask::prepare for (epoch, index), and the next batch on another thread as train_batch does."""

    def __init__(self, recipe, images, labels, transform):
        self.r, self.images, self.labels, self.t = recipe, images, labels, transform
        self.n = images.shape[0]
        self.per_epoch = self.n // recipe.batch_size  # the last partial batch is dropped
        self._orders, self._lock = {}, threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._next, self._next_key = None, None

    def order(self, epoch):
        with self._lock:
            if epoch not in self._orders:
                self._orders = {epoch: shuffled_iota(self.n, order_seed(self.r.seed, epoch))}  # keep one
            return self._orders[epoch]

    def indices(self, epoch, index):
        B = self.r.batch_size
        return self.order(epoch)[index * B:(index + 1) * B]

    def draws(self, epoch, index):
        """Each image's (dy, dx, flip), drawn in crop_and_flip's order from the batch's generator."""
        B, P = self.r.batch_size, self.r.crop_padding
        gen = Generator(augment_seed(self.r.seed, epoch, index))
        dy, dx, flip = np.zeros(B, np.int64), np.zeros(B, np.int64), np.zeros(B, bool)
        for b in range(B):
            if P > 0:
                dy[b] = gen.below(2 * P + 1) - P
                dx[b] = gen.below(2 * P + 1) - P
            if self.r.hflip:
                flip[b] = gen.below(2) == 1
        return dy, dx, flip

    def prepare(self, epoch, index):
        idx = np.array(self.indices(epoch, index), dtype=np.int64)
        x = self.t(self.images[idx], *self.draws(epoch, index))
        return torch.from_numpy(x), torch.from_numpy(self.labels[idx])

    def get(self, epoch, index):
        if self._next is not None and self._next_key == (epoch, index):
            batch = self._next.result()
        else:
            if self._next is not None:
                self._next.result()
            batch = self.prepare(epoch, index)
        nxt = (epoch, index + 1) if index + 1 < self.per_epoch else (epoch + 1, 0)
        self._next_key, self._next = nxt, self._pool.submit(self.prepare, *nxt)
        return batch

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------- model

class PatchEmbedding(nn.Module):
    def __init__(self, in_chans, embed_dim, patch_size):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)  # torch's default init

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, C), patches row by row


class VisionTransformer(nn.Module):
    """nn/vit.cpp's VisionTransformer, with its parameter names."""

    def __init__(self, image_size, in_chans, num_classes, r):
        super().__init__()
        C, grid = r.embed_dim, image_size // r.patch_size
        self.pool = r.pool
        self.patch_embed = PatchEmbedding(in_chans, C, r.patch_size)
        self.cls_token = nn.Parameter(torch.empty(1, 1, C))
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + grid * grid, C))
        self.pos_drop = nn.Dropout(r.dropout)
        layer = nn.TransformerEncoderLayer(C, r.num_heads, r.mlp_dim, dropout=r.dropout, activation="gelu",
                                           layer_norm_eps=1e-5, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, r.depth, norm=nn.LayerNorm(C, eps=1e-5),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(C, num_classes)
        # timm's init, as nn/vit.cpp: in_proj_weight keeps MultiheadAttention's xavier_uniform and zero
        # in_proj_bias (nn/attention.cpp does the same); every Linear (out_proj included) trunc_normal
        with torch.no_grad():
            nn.init.trunc_normal_(self.pos_embed, 0.0, 0.02, -2.0, 2.0)
            nn.init.normal_(self.cls_token, 0.0, 1e-6)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, 0.0, 0.02, -2.0, 2.0)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)

    def forward(self, images):
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = self.encoder(self.pos_drop(x))
        pooled = x[:, 0] if self.pool == "cls" else x[:, 1:].mean(1)
        return self.head(pooled)


def glob_match(pattern, name):
    """optim/optimizer.cpp's glob_match: '*' matches any run of characters, nothing else is special."""
    p = n = 0
    star, resume = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, n
            p += 1
        elif p < len(pattern) and pattern[p] == name[n]:
            p += 1
            n += 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            n = resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


NO_DECAY_PATTERNS = ["*.bias", "*_bias", "*norm*", "pos_embed", "cls_token"]  # ViTTask::no_decay_patterns


def param_groups(model, lr, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if any(glob_match(pat, name) for pat in NO_DECAY_PATTERNS) else decay).append((name, p))
    groups = []
    if decay:
        groups.append({"params": [p for _, p in decay], "names": [n for n, _ in decay], "lr": lr,
                       "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "lr": lr,
                       "weight_decay": 0.0})
    return groups


# ------------------------------------------------------------------------- run



def evaluate(model, images, labels, batch_size):
    """(accuracy, mean cross-entropy without smoothing) over a split, as ViTTask::evaluate."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x, y = images[start:start + batch_size], labels[start:start + batch_size]
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
    model.train()
    return correct / images.shape[0], loss / images.shape[0]


def duration(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def write_json(path, doc):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=os.path.join(REPO, "examples/vit/fashion_mnist.toml"))
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the config's)")
    ap.add_argument("--limit-steps", type=int, default=None, help="stop after this many steps (a quick check)")
    ap.add_argument("--target", type=float, default=0.91, help="test accuracy whose first reach is timed")
    ap.add_argument("--log-every", type=int, default=None, help="train.log_every (default: the config's)")
    ap.add_argument("--out", default=os.path.join(REPO, "runs/vit-torch/time_to_accuracy.json"))
    args = ap.parse_args()
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.limit_steps is not None and args.limit_steps < 1:
        ap.error("--limit-steps must be at least 1")
    if args.log_every is not None and args.log_every < 1:
        ap.error("--log-every must be at least 1")

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    r = Recipe(args.config, args.epochs)
    if args.log_every is not None:
        r.log_every = args.log_every
    torch.manual_seed(r.seed)

    # data, split and statistics as ViTTask's constructor
    t_load = time.perf_counter()
    all_images, all_labels = read_idx(r.dir, True)
    test_images, test_labels = read_idx(r.dir, False)
    if r.val_size >= all_images.shape[0]:
        r.fail("data.val_size", f"{r.val_size} leaves no training images of the {all_images.shape[0]}")
    order = shuffled_iota(all_images.shape[0], split_seed(r.seed))
    cut = len(order) - r.val_size
    train_idx, val_idx = np.sort(np.array(order[:cut])), np.sort(np.array(order[cut:]))
    train_images, train_labels = all_images[train_idx], all_labels[train_idx]
    val_images, val_labels = all_images[val_idx], all_labels[val_idx]
    if train_images.shape[0] < r.batch_size:
        r.fail("data.batch_size", f"{r.batch_size} is more than the {train_images.shape[0]} training images")
    native = train_images.shape[2]
    size = r.image_size or native
    if size != native and r.resize == "none":
        r.fail("data.resize", f"data.image_size = {size} differs from the data's {native}: choose \"pad\"")
    if size < native:
        r.fail("data.image_size", f"{size} is smaller than the data's {native}")
    if size % r.patch_size:
        r.fail("model.patch_size", f"{r.patch_size} does not divide the image size {size}")
    means, stds = channel_stats(train_images)
    transform = Transform(means, stds, native, size, r.crop_padding, r.hflip)
    batches = TrainBatches(r, train_images, train_labels, transform)
    r.resolve(batches.per_epoch)
    # the evaluation splits, normalised once (no augmentation: a function of the split alone)
    val_x, val_y = torch.from_numpy(transform(val_images)), torch.from_numpy(val_labels)
    test_x, test_y = torch.from_numpy(transform(test_images)), torch.from_numpy(test_labels)
    load_s = time.perf_counter() - t_load

    model = VisionTransformer(size, train_images.shape[1], 10, r)
    n_params = sum(p.numel() for p in model.parameters())
    groups = param_groups(model, r.lr, r.weight_decay)
    opt_class = torch.optim.AdamW if r.optimizer == "adamw" else torch.optim.Adam
    opt = opt_class([{k: v for k, v in g.items() if k != "names"} for g in groups], lr=r.lr,
                    betas=(r.beta1, r.beta2), eps=r.eps, weight_decay=r.weight_decay)
    params = [p for p in model.parameters()]

    with torch.no_grad():
        torch.randn(256, 256) @ torch.randn(256, 256)  # so that the BLAS is loaded before we look
    blas = loaded_blas()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, BLAS: {blas}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}", flush=True)
    print(f"# {args.config}: {n_params:,} parameters; {train_images.shape[0]} train / {val_images.shape[0]} val / "
          f"{test_images.shape[0]} test images (data ready in {load_s:.1f} s); mean {means} std {stds}; "
          f"{r.epochs} epochs of {r.batches_per_epoch} batches of {r.batch_size} = {r.total_steps} steps; "
          f"{r.optimizer} lr {r.lr} betas ({r.beta1}, {r.beta2}) eps {r.eps} weight_decay {r.weight_decay} "
          f"(not on {len(groups[-1]['names'])} tensors); {r.schedule} warmup {r.warmup_steps}; "
          f"label_smoothing {r.label_smoothing}; clip_norm {r.clip_norm}", flush=True)

    doc = {"twin_of": "build/rune train " + os.path.relpath(os.path.abspath(args.config), REPO),
           "config": args.config, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "blas": blas, "parameters": n_params, "batches_per_epoch": r.batches_per_epoch,
           "total_steps": r.total_steps, "epochs": r.epochs, "limit_steps": args.limit_steps,
           "target": args.target, "seconds_to_target": None, "final_test_accuracy": None,
           "total_train_seconds": 0.0, "records": []}
    records = doc["records"]

    last = r.total_steps if args.limit_steps is None else min(r.total_steps, args.limit_steps)
    train_s, epoch_loss, epoch_steps = 0.0, 0.0, 0
    window_t, window_steps = 0.0, 0
    first_step_s = None
    model.train()
    seg = time.perf_counter()  # the training clock runs from here, stopped during evaluations
    try:
        for step in range(last):
            epoch, index = divmod(step, r.batches_per_epoch)
            factor = r.lr_factor(step)
            for g in opt.param_groups:
                g["lr"] = r.lr * factor
            x, y = batches.get(epoch, index)
            loss = F.cross_entropy(model(x), y, label_smoothing=r.label_smoothing)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                print(f"loss is {loss_value} at step {step + 1}: stopping", file=sys.stderr)
                return 1
            loss.backward()
            if r.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, r.clip_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            epoch_loss += loss_value
            epoch_steps += 1
            done = step + 1
            if first_step_s is None:
                first_step_s = time.perf_counter() - seg
            if done % r.log_every == 0 or done == last:
                now = time.perf_counter()
                elapsed = train_s + (now - seg)
                rate = (done - window_steps) * r.batch_size / max(elapsed - window_t, 1e-9)
                left = elapsed / done * (r.total_steps - done)
                print(f"step {done}/{r.total_steps}  epoch {epoch + 1}  loss {loss_value:.4f}  "
                      f"lr {r.lr * factor:.3e}  {rate:.0f} img/s  {elapsed / done:.3f} s/step  "
                      f"train {duration(elapsed)}  left {duration(left)}", file=sys.stderr, flush=True)
                window_t, window_steps = elapsed, done
            if done % r.batches_per_epoch == 0 or done == last:
                stop = time.perf_counter()
                train_s += stop - seg  # the clock stops
                val_acc, val_loss = evaluate(model, val_x, val_y, r.eval_batch_size)
                test_acc, test_loss = evaluate(model, test_x, test_y, r.eval_batch_size)
                eval_s = time.perf_counter() - stop
                partial = done % r.batches_per_epoch != 0
                e = done / r.batches_per_epoch if partial else done // r.batches_per_epoch
                rec = {"epoch": e, "step": done, "train_seconds": round(train_s, 3),
                       "loss": epoch_loss / epoch_steps, "val_accuracy": val_acc, "test_accuracy": test_acc,
                       "val_loss": val_loss, "test_loss": test_loss, "lr": r.lr * factor,
                       "eval_seconds": round(eval_s, 3)}
                if partial:
                    rec["partial_epoch"] = True
                records.append(rec)
                epoch_text = f"{e:.3f}" if partial else f"{e}"
                print(f"epoch {epoch_text}  train_seconds {train_s:.1f}  loss {rec['loss']:.4f}  "
                      f"val_acc {val_acc:.4f}  test_acc {test_acc:.4f}  eval_seconds {eval_s:.1f}", flush=True)
                if doc["seconds_to_target"] is None and test_acc >= args.target:
                    doc["seconds_to_target"] = rec["train_seconds"]
                    doc["epoch_at_target"] = e
                doc["final_test_accuracy"] = test_acc
                doc["total_train_seconds"] = round(train_s, 3)
                doc["steps_run"] = done
                doc["seconds_per_step"] = train_s / done
                doc["images_per_second"] = done * r.batch_size / train_s
                write_json(args.out, doc)
                epoch_loss, epoch_steps = 0.0, 0
                seg = time.perf_counter()  # and runs again
                window_t = train_s
    finally:
        batches.close()

    steady = (train_s - first_step_s) / (last - 1) if last > 1 else train_s
    reached = "never" if doc["seconds_to_target"] is None else f"{doc['seconds_to_target']:.1f} s"
    print(f"# {last} steps in {train_s:.2f} s of training: {train_s / last:.3f} s/step, "
          f"{last * r.batch_size / train_s:.0f} img/s (the first step, with its synchronous batch, "
          f"{first_step_s:.3f} s; the others {steady:.3f} s/step, {r.batch_size / steady:.0f} img/s); "
          f"time to test accuracy >= {args.target}: "
          f"{reached}; "
          f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
