"""Writes the PyTorch parity fixtures of tests/parity/fixtures/ (small HDF5 files, committed, so the
C++ suite needs no PyTorch) and the text fixtures of the translation example. Rebuild them all with

    /usr/bin/python3 tests/parity/make_fixtures.py     (`make fixtures` installs the packages, then runs it)

Debian's python3-torch (1.13), python3-h5py, python3-numpy, python3-num2words and python3-nltk are
needed: use /usr/bin/python3, the python3 on PATH may not see them. The output is deterministic
(byte for byte): every fixture seeds torch from its own file name, so adding a case leaves the
others unchanged. One line per file with its size is printed, then the total (kept under 5 MB).

Every module fixture (written by write()) has the same layout:
    /                   attributes: the case's configuration: ints as int64, floats as float64,
                        strings, bools as int64 0/1; and torch_version
    /inputs/<name>      exactly what both sides are fed: float32, int64, or bool masks stored as
                        uint8 0/1 with the attribute dtype="bool"
    /params/<name>      the module's state_dict, float32, under PyTorch's dotted names (flat)
    /loss_weights/<o>   float64, one per output entering the loss, the output's shape
    /outputs/<o>        float64 reference outputs
    /grads/inputs/<n>   float64 d loss / d input for each float input
    /grads/params/<n>   float64 d loss / d parameter
The loss is sum over outputs o of sum(o * loss_weights[o]) with fixed N(0, 1) weights, so every
output element sends a distinct gradient. The reference runs in float64 from the float32 inputs
and parameters; the C++ side runs float32 and compares relative to the reference's magnitude.
Modules run in train mode with dropout 0 (PyTorch 1.13's fast inference paths stay out of the
way), batch_first everywhere. No dataset holds a NaN (checked as it is written); the only
infinities are the -inf entries of sdpa_float_mask.h5's additive input attn_bias.

Mask conventions, as in PyTorch: a bool mask is True where attention is NOT allowed
(key_padding_mask: True = padding key; blocked_mask / tgt_blocked_mask: True = this query may not
see this key). Causal attention with Tq < Tk is aligned to the end of the keys (the KV-cache
decoding convention): query i sits at absolute position Tk - Tq + i and sees keys j <= Tk - Tq + i.

Other files: reader_check.h5 (closed-form values of every dtype and datasets of types the reader
must refuse, for the reader's own tests; see reader_check()), the optimizer trajectories
(optim_fixtures(), their own layout), number_words.tsv and bleu_cases.tsv.
"""
import math
import os
import sys
import zlib

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import runestone_torch  # the PyTorch twins of the models (nn/resnet.hpp: ResNet)

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
written = []


def write(name, attrs, inputs, module, outputs_fn):
    """Runs outputs_fn(float64 inputs) -> {name: tensor} with `module` in float64 and writes the file.

    inputs: {name: tensor} (float32, int64 or bool); float ones get gradients. module may be None.
    Returns the float64 outputs and inputs (with their .grad) for the caller's own checks.
    """
    gen = torch.Generator().manual_seed(name_seed("loss_weights:" + name))
    ref_inputs = {}
    for k, v in inputs.items():
        if v.dtype == torch.float32:
            ref_inputs[k] = v.double().requires_grad_()
        else:
            ref_inputs[k] = v
    params = {}
    if module is not None:
        params = {k: v.detach().float().clone() for k, v in module.state_dict().items()}
        module.double().train()
    outputs = outputs_fn(ref_inputs)
    weights = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in outputs.items()}
    loss = sum((outputs[k] * weights[k]).sum() for k in outputs)
    loss.backward()
    path = os.path.join(OUT, name)
    with h5py.File(path + ".tmp", "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["torch_version"] = str(torch.__version__)
        for k, v in inputs.items():
            put(f, name, f"inputs/{k}", v)
        f.create_group("params")
        for k, v in params.items():
            put(f, name, f"params/{k}", v)
        for k, v in outputs.items():
            put(f, name, f"outputs/{k}", v)
            put(f, name, f"loss_weights/{k}", weights[k])
        for k, v in ref_inputs.items():
            if v.dtype == torch.float64 and v.grad is not None:  # None: an input the outputs do not differentiate
                put(f, name, f"grads/inputs/{k}", v.grad)
        if module is not None:
            for k, p in module.named_parameters():
                put(f, name, f"grads/params/{k}", p.grad)
    finish(path)
    return outputs, ref_inputs


def put(f, file, dataset, t):
    """Writes tensor t as `dataset`, refusing NaN; a bool tensor becomes uint8 0/1 with dtype="bool"."""
    t = t.detach()
    if t.is_floating_point():
        assert not torch.isnan(t).any(), f"{file}: NaN in {dataset}"
    if t.dtype == torch.bool:
        f.create_dataset(dataset, data=t.numpy().astype(np.uint8)).attrs["dtype"] = "bool"
    else:
        f.create_dataset(dataset, data=t.numpy())


def finish(path):
    """Moves the finished `path`.tmp into place and records its size."""
    os.replace(path + ".tmp", path)
    written.append((os.path.basename(path), os.path.getsize(path)))


def name_seed(name):
    """A seed that depends only on the fixture's name, so fixtures do not depend on each other."""
    return zlib.crc32(name.encode())


def seed(name):
    torch.manual_seed(name_seed(name))


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


def padding_mask(batch, length, pads):
    """(batch, length) bool, True on the last pads[b] positions of row b (True = padding)."""
    m = torch.zeros(batch, length, dtype=torch.bool)
    for b, p in enumerate(pads):
        if p:
            m[b, length - p:] = True
    return m


def causal_blocked(t):
    return torch.triu(torch.ones(t, t, dtype=torch.bool), 1)  # True = may not attend


# ----------------------------------------------------------------------------- the reader's own file

def reader_check():
    """reader_check.h5, for the reader's tests (test_fixture_reader.cpp): values given by formulas
    the C++ test recomputes, element by element, and datasets of types the reader must refuse."""
    path = os.path.join(OUT, "reader_check.h5")
    with h5py.File(path + ".tmp", "w") as f:
        f.attrs["count"] = 42                 # int64
        f.attrs["ratio"] = 0.125              # float64
        f.attrs["word"] = "rune"              # variable-length UTF-8, as h5py writes a str
        f.attrs["fixed_word"] = np.bytes_("stone")  # fixed-length ASCII
        f.attrs["pair"] = np.array([1, 2])    # not a scalar: attr_int refuses it
        file = "reader_check.h5"
        put(f, file, "inputs/f32", torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3)  # i/2 - 3
        put(f, file, "inputs/f64", torch.arange(6, dtype=torch.float64).reshape(3, 2) / 3)  # i/3
        put(f, file, "inputs/i64", (torch.arange(7) - 3) * 10**12)  # (i - 3) 10^12: needs all 64 bits
        put(f, file, "inputs/mask", (torch.arange(12) % 3 == 0).reshape(3, 4))  # True where i % 3 == 0
        put(f, file, "inputs/scalar", torch.tensor(2.5, dtype=torch.float64))  # shape ()
        f.create_dataset("inputs/int32", data=np.arange(4, dtype=np.int32))  # no such dtype in the layout
        f.create_dataset("inputs/uint8", data=np.arange(4, dtype=np.uint8))  # uint8 without dtype="bool"
        f.create_dataset("inputs/not_bool", data=np.array([0, 1, 2], dtype=np.uint8)).attrs["dtype"] = "bool"
        f.create_group("params")
    finish(path)


# ----------------------------------------------------------------------------- basic layers

def basic_layers():
    seed("linear.h5")
    lin = nn.Linear(16, 12)
    write("linear.h5", {}, {"x": randn(4, 5, 16)}, lin, lambda i: {"y": lin(i["x"])})
    seed("linear_nobias.h5")
    lin = nn.Linear(16, 12, bias=False)
    write("linear_nobias.h5", {}, {"x": randn(4, 5, 16)}, lin, lambda i: {"y": lin(i["x"])})

    seed("layer_norm.h5")
    ln = nn.LayerNorm(24, eps=1e-5)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    write("layer_norm.h5", {"eps": 1e-5}, {"x": randn(3, 7, 24, scale=3.0) + 1.0}, ln, lambda i: {"y": ln(i["x"])})
    seed("layer_norm_noaffine.h5")
    ln = nn.LayerNorm(24, eps=1e-6, elementwise_affine=False)
    write("layer_norm_noaffine.h5", {"eps": 1e-6}, {"x": randn(3, 7, 24)}, ln, lambda i: {"y": ln(i["x"])})

    seed("embedding.h5")
    emb = nn.Embedding(20, 8, padding_idx=0)  # row 0 starts at zero and never gets a gradient
    ids = torch.tensor([[0, 3, 3, 7, 0, 19], [1, 0, 5, 5, 5, 2], [9, 9, 0, 11, 4, 3]])
    write("embedding.h5", {"padding_idx": 0}, {"ids": ids}, emb, lambda i: {"y": emb(i["ids"])})
    assert not emb.weight.grad[0].any(), "embedding.h5: the padding row has a gradient"

    seed("gelu.h5")  # both GELUs on the same points, spread over [-8, 8]
    x = torch.linspace(-8, 8, 2000) + randn(2000, scale=0.01)
    write("gelu.h5", {}, {"x": x}, None, lambda i: {"y": F.gelu(i["x"])})
    write("gelu_tanh.h5", {"approximate": "tanh"}, {"x": x}, None,
          lambda i: {"y": F.gelu(i["x"], approximate="tanh")})
    seed("softmax.h5")  # logits over about [-20, 20]
    write("softmax.h5", {}, {"x": randn(4, 7, 33, scale=7.0)}, None, lambda i: {"y": torch.softmax(i["x"], -1)})

    seed("cross_entropy.h5")
    target = torch.randint(0, 17, (12,))
    target[[2, 5, 9]] = -100
    write("cross_entropy.h5", {"label_smoothing": 0.1, "ignore_index": -100, "reduction": "mean"},
          {"logits": randn(12, 17, scale=2.0), "target": target}, None,
          lambda i: {"loss": F.cross_entropy(i["logits"], i["target"], ignore_index=-100, label_smoothing=0.1)})
    seed("cross_entropy_sum.h5")
    target = torch.randint(0, 17, (12,))
    target[[0, 4]] = 3
    write("cross_entropy_sum.h5", {"label_smoothing": 0.0, "ignore_index": 3, "reduction": "sum"},
          {"logits": randn(12, 17, scale=2.0), "target": target}, None,
          lambda i: {"loss": F.cross_entropy(i["logits"], i["target"], ignore_index=3, reduction="sum")})


# ----------------------------------------------------------------------------- attention

def reference_sdpa(q, k, v, scale, causal=False, key_padding=None, blocked=None, bias=None):
    """softmax(q k^T scale + mask) v in float64, kv heads repeated for grouped queries. A query
    with every key blocked gets zero weights (PyTorch would give NaN): the safe softmax."""
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = q @ k.transpose(-1, -2) * scale
    if bias is not None:
        s = s + bias
    block = torch.zeros(B, H, Tq, Tk, dtype=torch.bool)
    if causal:  # aligned to the end of the keys: query i sits at position Tk - Tq + i
        block |= torch.ones(Tq, Tk, dtype=torch.bool).triu(Tk - Tq + 1)
    if key_padding is not None:
        block |= key_padding[:, None, None, :]
    if blocked is not None:
        block |= blocked
    s = s.masked_fill(block, float("-inf"))
    empty = torch.isinf(s).all(-1, keepdim=True)  # no key left (blocked or -inf bias)
    s = s.masked_fill(empty, 0.0)
    w = torch.softmax(s, -1).masked_fill(empty, 0.0)
    return w @ v, w


def attention_fixtures():
    def sdpa(name, Tq, Tk, Hkv=4, causal=False, key_padding=None, blocked=None, bias=None):
        seed(name)
        B, H, D = 2, 4, 8
        scale = 1.0 / math.sqrt(D)
        inputs = {"q": randn(B, H, Tq, D), "k": randn(B, Hkv, Tk, D), "v": randn(B, Hkv, Tk, D)}
        if key_padding is not None:
            inputs["key_padding_mask"] = key_padding
        if blocked is not None:
            inputs["blocked_mask"] = blocked
        if bias is not None:
            inputs["attn_bias"] = bias

        def run(i):
            out, w = reference_sdpa(i["q"], i["k"], i["v"], scale, causal, i.get("key_padding_mask"),
                                    i.get("blocked_mask"), i.get("attn_bias"))
            return {"out": out, "weights": w}
        return write(name, {"scale": scale, "is_causal": int(causal)}, inputs, None, run)

    sdpa("sdpa_plain.h5", 5, 7)
    sdpa("sdpa_causal.h5", 6, 6, causal=True)
    sdpa("sdpa_causal_offset.h5", 3, 7, causal=True)
    sdpa("sdpa_key_padding.h5", 5, 7, key_padding=padding_mask(2, 7, [2, 4]))
    seed("sdpa_blocked_mask.h5:mask")
    blocked = torch.rand(5, 7) < 0.4
    blocked[:, 0] = False  # every query keeps key 0
    sdpa("sdpa_blocked_mask.h5", 5, 7, blocked=blocked)
    seed("sdpa_float_mask.h5:bias")
    bias = torch.randn(2, 4, 5, 7)
    bias[0, 1, 2, 3] = bias[1, 3, 0, 6] = bias[1, 0, 4, 0] = float("-inf")
    sdpa("sdpa_float_mask.h5", 5, 7, bias=bias)
    all_blocked = torch.zeros(2, 4, 5, 7, dtype=torch.bool)
    all_blocked[0, :, 2, :] = True  # query 2 of batch 0, every head: no key at all
    outputs, inputs = sdpa("sdpa_all_masked_row.h5", 5, 7, blocked=all_blocked)
    # the safe softmax: that row's weights, output and query gradient are exactly zero
    for t in (outputs["out"], outputs["weights"], inputs["q"].grad):
        assert not t[0, :, 2].any(), "sdpa_all_masked_row.h5: the fully masked row is not zero"
    sdpa("sdpa_gqa.h5", 5, 7, Hkv=2, causal=False)
    sdpa("sdpa_mqa.h5", 5, 7, Hkv=1, causal=False)

    # nn.MultiheadAttention: PyTorch zero-initialises in_proj_bias and out_proj.bias; they get
    # random values here so that a wrong bias shows in the outputs.
    C, H = 32, 4

    def mha(name, **options):
        seed(name)
        m = nn.MultiheadAttention(C, H, batch_first=True, dropout=0.0, **options)
        with torch.no_grad():
            for b in (m.in_proj_bias, m.out_proj.bias):
                if b is not None:
                    b.normal_(0, 0.1)
        return m

    def attend(m, query, memory, attn_mask=None, key_padding_mask=None):
        out, w = m(query, memory, memory, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=True,
                   average_attn_weights=False)
        return {"out": out, "weights": w}  # (B, T, C) and (B, H, Tq, Tk)

    m = mha("mha_self.h5")
    write("mha_self.h5", {"embed_dim": C, "num_heads": H},
          {"x": randn(2, 6, C), "key_padding_mask": padding_mask(2, 6, [0, 2])}, m,
          lambda i, m=m: attend(m, i["x"], i["x"], key_padding_mask=i["key_padding_mask"]))
    m = mha("mha_causal.h5")
    write("mha_causal.h5", {"embed_dim": C, "num_heads": H, "is_causal": 1},
          {"x": randn(2, 6, C), "blocked_mask": causal_blocked(6)}, m,
          lambda i, m=m: attend(m, i["x"], i["x"], attn_mask=i["blocked_mask"]))

    def cross(name, kdim):
        m = mha(name, kdim=kdim, vdim=kdim)  # kdim != embed_dim: q/k/v_proj_weight instead of in_proj_weight
        attrs = {"embed_dim": C, "num_heads": H, "kdim": kdim, "vdim": kdim}
        inputs = {"query": randn(2, 5, C), "memory": randn(2, 7, kdim), "key_padding_mask": padding_mask(2, 7, [3, 0])}
        write(name, attrs, inputs, m,
              lambda i: attend(m, i["query"], i["memory"], key_padding_mask=i["key_padding_mask"]))
    cross("mha_cross.h5", C)
    cross("mha_cross_kdim.h5", 20)

    m = mha("mha_bias_false.h5", bias=False)  # no in_proj_bias, no out_proj.bias
    write("mha_bias_false.h5", {"embed_dim": C, "num_heads": H, "bias": 0}, {"x": randn(2, 6, C)}, m,
          lambda i, m=m: attend(m, i["x"], i["x"]))

    for name, hkv in (("gqa.h5", 2), ("mqa.h5", 1)):
        seed(name)
        m = GQAttention(C, H, hkv)
        write(name, {"embed_dim": C, "num_heads": H, "num_kv_heads": hkv, "is_causal": 1}, {"x": randn(2, 6, C)}, m,
              lambda i, m=m: dict(zip(("out", "weights"), m(i["x"], causal=True))))


class GQAttention(nn.Module):
    """Grouped-query attention (multi-query when num_kv_heads = 1) with Runestone's parameter layout:
    q_proj_weight (C, C), k_proj_weight and v_proj_weight (Hkv D, C), in_proj_bias (C + 2 Hkv D) as
    [q; k; v], out_proj. Query head h reads key/value head h // (H / Hkv)."""

    def __init__(self, embed_dim, num_heads, num_kv_heads):
        super().__init__()
        self.C, self.H, self.Hkv, self.D = embed_dim, num_heads, num_kv_heads, embed_dim // num_heads
        kv = num_kv_heads * self.D
        self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim))
        self.k_proj_weight = nn.Parameter(torch.empty(kv, embed_dim))
        self.v_proj_weight = nn.Parameter(torch.empty(kv, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.randn(embed_dim + 2 * kv) * 0.1)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            nn.init.xavier_uniform_(w)

    def forward(self, x, causal=False):
        B, T, _ = x.shape
        kv = self.Hkv * self.D
        bq, bk, bv = self.in_proj_bias.split([self.C, kv, kv])
        q = F.linear(x, self.q_proj_weight, bq).view(B, T, self.H, self.D).transpose(1, 2)
        k = F.linear(x, self.k_proj_weight, bk).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = F.linear(x, self.v_proj_weight, bv).view(B, T, self.Hkv, self.D).transpose(1, 2)
        out, w = reference_sdpa(q, k, v, 1.0 / math.sqrt(self.D), causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.C)), w


# ----------------------------------------------------------------------------- Transformer

def reference_rope(x, offset, base, rotary_dim):
    """Rotary embedding as the Hugging Face LLaMA code writes it, in float64: inv_freq =
    1 / base^(arange(0, r, 2) / r), emb = cat(freqs, freqs), x * cos + rotate_half(x) * sin on the
    first r features, rotate_half(x) = cat(-x2, x1); the other features pass through."""
    T, r = x.shape[2], rotary_dim
    inv_freq = 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.float64) / r))
    freqs = torch.outer(torch.arange(offset, offset + T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    rot, rest = x[..., :r], x[..., r:]
    x1, x2 = rot[..., : r // 2], rot[..., r // 2:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat((rot * emb.cos() + rotated * emb.sin(), rest), dim=-1)


def rope_fixtures():
    def one(name, shape, offset, base, rotary_dim):
        seed(name)
        inputs = {"x": randn(*shape)}
        attrs = {"offset": offset, "base": base, "rotary_dim": rotary_dim}
        return write(name, attrs, inputs, None,
                     lambda i: {"out": reference_rope(i["x"], offset, base, rotary_dim)})

    one("rope_full.h5", (2, 3, 7, 8), 0, 10000.0, 8)
    one("rope_partial_offset.h5", (1, 2, 5, 12), 9, 500.0, 8)


def conv_fixtures():
    """torch.nn.functional's conv2d, batch_norm and pools; weights and statistics as inputs."""
    name = "conv2d_groups.h5"
    seed(name)
    attrs = {"stride_h": 2, "stride_w": 1, "padding_h": 1, "padding_w": 2, "dilation_h": 1, "dilation_w": 2, "groups": 2}
    write(name, attrs, {"x": randn(2, 4, 7, 6), "weight": randn(6, 2, 3, 3), "bias": randn(6)}, None,
          lambda i: {"out": F.conv2d(i["x"], i["weight"], i["bias"], (2, 1), (1, 2), (1, 2), 2)})
    name = "conv2d_resnet.h5"
    seed(name)
    attrs = {"stride_h": 1, "stride_w": 1, "padding_h": 1, "padding_w": 1, "dilation_h": 1, "dilation_w": 1, "groups": 1}
    write(name, attrs, {"x": randn(3, 5, 8, 8), "weight": randn(4, 5, 3, 3) * 0.2, "bias": randn(4)}, None,
          lambda i: {"out": F.conv2d(i["x"], i["weight"], i["bias"], 1, 1)})

    for name, training in (("batch_norm_train.h5", True), ("batch_norm_eval.h5", False)):
        seed(name)
        mean, var = randn(3).double(), (torch.rand(3) + 0.5).double()
        inputs = {"x": randn(4, 3, 5, 5) * 2 + 1, "weight": randn(3), "bias": randn(3),
                  "running_mean_in": mean.float(), "running_var_in": var.float()}

        def bn(i, training=training):
            rm, rv = i["running_mean_in"].detach().clone(), i["running_var_in"].detach().clone()
            out = F.batch_norm(i["x"], rm, rv, i["weight"], i["bias"], training, 0.1, 1e-5)
            return {"out": out, "running_mean": rm, "running_var": rv}

        write(name, {"training": int(training), "momentum": 0.1, "eps": 1e-5}, inputs, None, bn)

    name = "pooling.h5"
    seed(name)
    write(name, {}, {"x": randn(2, 3, 7, 9)}, None, lambda i: {
        "max": F.max_pool2d(i["x"], 3, 2, 1),
        "max_dilated_ceil": F.max_pool2d(i["x"], (2, 3), 2, 0, (2, 1), ceil_mode=True),
        "avg": F.avg_pool2d(i["x"], 3, 2, 1, ceil_mode=True),
        "avg_exclude_pad": F.avg_pool2d(i["x"], (2, 3), (1, 2), 1, count_include_pad=False),
        "adaptive": F.adaptive_avg_pool2d(i["x"], (3, 4)),
        "adaptive_global": F.adaptive_avg_pool2d(i["x"], 1),
    })


def cnn_module_fixtures():
    """torch.nn.Conv2d and BatchNorm2d (a training step, then evaluation, with the buffers the
    step moved), and a small block of every CNN module in a Sequential."""
    name = "conv2d_module.h5"
    seed(name)
    conv = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    write(name, {}, {"x": randn(2, 4, 7, 6)}, conv, lambda i: {"out": conv(i["x"])})

    name = "batch_norm2d_module.h5"
    seed(name)
    bn = nn.BatchNorm2d(3, eps=1e-4, momentum=0.2)
    with torch.no_grad():
        bn.weight.copy_(randn(3)), bn.bias.copy_(randn(3))
        bn.running_mean.copy_(randn(3)), bn.running_var.copy_(torch.rand(3) + 0.5)
        bn.num_batches_tracked.fill_(5)

    def train_then_eval(i):
        out = {"train": bn(i["x"])}
        out.update(running_mean=bn.running_mean.clone(), running_var=bn.running_var.clone(),
                   num_batches_tracked=bn.num_batches_tracked.double().clone())
        bn.eval()
        out["eval"] = bn(i["x_eval"])
        return out

    write(name, {"eps": 1e-4, "momentum": 0.2}, {"x": randn(4, 3, 5, 5) * 2 + 1, "x_eval": randn(2, 3, 4, 4)}, bn,
          train_then_eval)

    name = "cnn_block.h5"
    seed(name)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, stride=1, padding=1), nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d(1))
    write(name, {}, {"x": randn(4, 3, 12, 12)}, block, lambda i: {"out": block(i["x"])})

    # nn/resnet.hpp against runestone_torch.ResNet (torchvision's names): a training step's logits
    # and every gradient, the running statistics it moved, then evaluation by them
    name = "resnet_module.h5"
    seed(name)
    a = {"in_chans": 3, "num_classes": 5, "widths": "4,8", "blocks": "2,1"}
    net = runestone_torch.ResNet(a)
    with torch.no_grad():  # batch norms away from their initial 1 and 0, so that a mix-up shows
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.3 * randn(m.num_features)), m.bias.copy_(0.3 * randn(m.num_features))

    def resnet_train_then_eval(i):
        out = {"train": net(i["x"])}
        out.update(running_mean=net.layer2[0].downsample[1].running_mean.clone(),
                   running_var=net.layer1[1].bn2.running_var.clone())
        net.eval()
        out["eval"] = net(i["x_eval"])
        return out

    write(name, a, {"x": randn(4, 3, 8, 8), "x_eval": randn(2, 3, 8, 8)}, net, resnet_train_then_eval)


def transformer_fixtures():
    d, h, ff = 32, 4, 64
    for name, norm_first, act in (("encoder_layer_post.h5", False, "relu"), ("encoder_layer_pre.h5", True, "gelu")):
        seed(name)
        layer = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first)
        attrs = {"d_model": d, "nhead": h, "dim_feedforward": ff, "activation": act, "norm_first": int(norm_first),
                 "layer_norm_eps": 1e-5}
        write(name, attrs, {"src": randn(2, 6, d), "src_key_padding_mask": padding_mask(2, 6, [0, 2])}, layer,
              lambda i, layer=layer: {"out": layer(i["src"], src_key_padding_mask=i["src_key_padding_mask"])})
    for name, norm_first, act in (("decoder_layer_post.h5", False, "relu"), ("decoder_layer_pre.h5", True, "gelu")):
        seed(name)
        layer = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first)
        attrs = {"d_model": d, "nhead": h, "dim_feedforward": ff, "activation": act, "norm_first": int(norm_first),
                 "layer_norm_eps": 1e-5}
        inputs = {"tgt": randn(2, 5, d), "memory": randn(2, 7, d), "tgt_blocked_mask": causal_blocked(5),
                  "memory_key_padding_mask": padding_mask(2, 7, [3, 0])}
        write(name, attrs, inputs, layer,
              lambda i, layer=layer: {"out": layer(i["tgt"], i["memory"], tgt_mask=i["tgt_blocked_mask"],
                                                   memory_key_padding_mask=i["memory_key_padding_mask"])})
    seed("transformer.h5")
    model = nn.Transformer(d_model=d, nhead=h, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=ff,
                           dropout=0.0, batch_first=True)
    attrs = {"d_model": d, "nhead": h, "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": ff}
    src_pad = padding_mask(2, 7, [0, 3])
    inputs = {"src": randn(2, 7, d), "tgt": randn(2, 5, d), "src_key_padding_mask": src_pad,
              "tgt_blocked_mask": causal_blocked(5)}
    write("transformer.h5", attrs, inputs, model,
          lambda i: {"out": model(i["src"], i["tgt"], tgt_mask=i["tgt_blocked_mask"],
                                  src_key_padding_mask=i["src_key_padding_mask"],
                                  memory_key_padding_mask=i["src_key_padding_mask"])})


# ----------------------------------------------------------------------------- decoder-only LM

class RotaryAttention(nn.Module):
    """Causal self-attention with rotary queries and keys (reference_rope, offset 0) and Runestone's
    packed layout: in_proj_weight (3C, C) as [q; k; v], in_proj_bias, out_proj."""

    def __init__(self, C, H, base):
        super().__init__()
        self.C, self.H, self.D, self.base = C, H, C // H, base
        self.in_proj_weight = nn.Parameter(torch.randn(3 * C, C) * 0.2)
        self.in_proj_bias = nn.Parameter(torch.randn(3 * C) * 0.1)
        self.out_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(self.C, dim=-1)
        q, k, v = (t.view(B, T, self.H, self.D).transpose(1, 2) for t in (q, k, v))
        q, k = reference_rope(q, 0, self.base, self.D), reference_rope(k, 0, self.base, self.D)
        out, _ = reference_sdpa(q, k, v, 1.0 / math.sqrt(self.D), causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.C))


class RotaryBlock(nn.Module):
    """A pre-LN block as nn.TransformerEncoderLayer(norm_first=True, activation="gelu") names it."""

    def __init__(self, C, H, ff, base):
        super().__init__()
        self.self_attn = RotaryAttention(C, H, base)
        self.linear1, self.linear2 = nn.Linear(C, ff), nn.Linear(ff, C)
        self.norm1, self.norm2 = nn.LayerNorm(C), nn.LayerNorm(C)

    def forward(self, x):
        x = x + self.self_attn(self.norm1(x))
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class Stack(nn.Module):
    def __init__(self, blocks, C):
        super().__init__()
        self.layers, self.norm = nn.ModuleList(blocks), nn.LayerNorm(C)

    def forward(self, x):
        for block in self.layers:
            x = block(x)
        return self.norm(x)


class CausalLM(nn.Module):
    """A GPT-style decoder-only model with Runestone's CausalLM names: embed, positions (learned:
    a (max_len, C) table added to the tokens; sinusoidal: Vaswani's, not a parameter; rotary: none),
    decoder.layers.N (nn.TransformerEncoderLayer, pre-LN, GELU, causal; or RotaryBlock),
    decoder.norm, lm_head (no bias) unless tied to embed.weight."""

    def __init__(self, V, C, H, ff, layers, max_len, positions, tie, base=10000.0):
        super().__init__()
        self.kind, self.tie = positions, tie
        self.embed = nn.Embedding(V, C)
        if positions == "learned":
            self.positions = nn.Embedding(max_len, C)
        elif positions == "sinusoidal":
            pe = torch.zeros(max_len, C, dtype=torch.float64)
            t = torch.arange(max_len, dtype=torch.float64)[:, None]
            div = torch.pow(10000.0, torch.arange(0, C, 2, dtype=torch.float64) / C)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(t / div), torch.cos(t / div)
            self.register_buffer("pe", pe.float(), persistent=False)
        if positions == "rotary":
            self.decoder = Stack([RotaryBlock(C, H, ff, base) for _ in range(layers)], C)
        else:
            layer = nn.TransformerEncoderLayer(C, H, ff, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.decoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(C), enable_nested_tensor=False)
        if not tie:
            self.lm_head = nn.Linear(C, V, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed(ids)
        if self.kind == "learned":
            x = x + self.positions.weight[:T]
        elif self.kind == "sinusoidal":
            x = x + self.pe[:T].to(x.dtype)
        if self.kind == "rotary":
            h = self.decoder(x)
        else:
            h = self.decoder(x, mask=causal_blocked(T))
        return F.linear(h, self.embed.weight) if self.tie else self.lm_head(h)


def causal_lm_fixtures():
    V, C, H, ff, L, max_len = 11, 16, 2, 32, 2, 12
    for name, positions, tie in (("causal_lm_learned_tied.h5", "learned", True),
                                 ("causal_lm_sinusoidal.h5", "sinusoidal", False),
                                 ("causal_lm_rotary.h5", "rotary", False)):
        seed(name)
        model = CausalLM(V, C, H, ff, L, max_len, positions, tie, base=100.0)
        attrs = {"vocab": V, "d_model": C, "nhead": H, "dim_feedforward": ff, "num_layers": L, "max_len": max_len,
                 "positions": positions, "tie_output": int(tie), "rope_base": 100.0}
        ids = torch.randint(0, V, (2, 7))
        write(name, attrs, {"ids": ids}, model, lambda i, model=model: {"logits": model(i["ids"])})


# ----------------------------------------------------------------------------- ViT

def resample_abs_pos_embed(pos, old, new):
    """timm's resize of a (1, 1 + gh gw, C) position embedding: class-token row kept, the grid resized
    bicubically (align_corners=False, no antialias)."""
    cls, grid = pos[:, :1], pos[:, 1:]
    C = pos.shape[-1]
    grid = grid.reshape(1, old[0], old[1], C).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], C)], 1)


class ViT(nn.Module):
    def __init__(self, image_size, patch, in_chans, dim, depth, heads, mlp_dim, classes, pool):
        super().__init__()
        n = (image_size // patch) ** 2
        self.pool = pool
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = self.encoder(x)
        return self.head(x[:, 0] if self.pool == "cls" else x[:, 1:].mean(1))


def vit_fixtures():
    for name, old, new in (("interpolate_up.h5", (4, 4), (6, 6)), ("interpolate_down.h5", (6, 6), (3, 3)),
                           ("interpolate_nonsquare.h5", (2, 3), (5, 4)),
                           ("interpolate_nonsquare_mixed.h5", (4, 4), (3, 5))):  # height shrinks, width grows
        seed(name)
        attrs = {"old_h": old[0], "old_w": old[1], "new_h": new[0], "new_w": new[1]}
        write(name, attrs, {"pos_embed": randn(1, 1 + old[0] * old[1], 8)}, None,
              lambda i, old=old, new=new: {"out": resample_abs_pos_embed(i["pos_embed"], old, new)})
    for name, size in (("interpolate_image_up.h5", (7, 6)), ("interpolate_image_down.h5", (3, 2))):
        seed(name)
        write(name, {"out_h": size[0], "out_w": size[1]}, {"x": randn(2, 3, 5, 4)}, None,
              lambda i, size=size: {"out": F.interpolate(i["x"], size=size, mode="bicubic", align_corners=False)})
    for pool in ("cls", "mean"):
        seed(f"vit_{pool}.h5")
        cfg = dict(image_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=4, mlp_dim=64,
                   num_classes=10, pool=pool)
        model = ViT(16, 4, 3, 32, 2, 4, 64, 10, pool)
        write(f"vit_{pool}.h5", cfg, {"x": randn(2, 3, 16, 16)}, model, lambda i, model=model: {"logits": model(i["x"])})


# ----------------------------------------------------------------------------- optimizers

def optim_fixtures():
    """20 steps of torch.optim from one start on fixed gradients, in float32 as we run them.
    Layout (not the module one): /params/<p> the start, /grads/<p> (steps, ...) the gradient fed
    at each step, /trajectory/<p> (steps, ...) the parameter after each step; attributes hold
    the options. Two groups: "w" with weight decay, "b" without."""
    cases = (("adam.h5", torch.optim.Adam, {"amsgrad": False}),
             ("adamw.h5", torch.optim.AdamW, {"amsgrad": False}),
             ("adamw_amsgrad.h5", torch.optim.AdamW, {"amsgrad": True}),
             ("sgd_nesterov.h5", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}))
    for name, cls, extra in cases:
        seed(name)
        steps, lr, wd = 20, 0.01, 0.1
        w, b = torch.randn(5, 4), torch.randn(4)
        grads = {"w": torch.randn(steps, 5, 4), "b": torch.randn(steps, 4) * 0.01}
        pw, pb = w.clone().requires_grad_(), b.clone().requires_grad_()
        kwargs = dict(lr=lr, **extra)
        if cls is not torch.optim.SGD:
            kwargs.update(betas=(0.9, 0.98), eps=1e-6)
        opt = cls([{"params": [pw], "weight_decay": wd}, {"params": [pb], "weight_decay": 0.0}], **kwargs)
        traj = {"w": [], "b": []}
        for t in range(steps):
            pw.grad, pb.grad = grads["w"][t].clone(), grads["b"][t].clone()
            opt.step()
            traj["w"].append(pw.detach().clone())
            traj["b"].append(pb.detach().clone())
        path = os.path.join(OUT, name)
        with h5py.File(path + ".tmp", "w") as f:
            f.attrs.update({"optimizer": cls.__name__, "lr": lr, "weight_decay": wd, "steps": steps,
                            "amsgrad": int(extra.get("amsgrad", False)), "momentum": extra.get("momentum", 0.0),
                            "nesterov": int(extra.get("nesterov", False)), "beta1": 0.9, "beta2": 0.98, "eps": 1e-6,
                            "torch_version": str(torch.__version__)})
            for k, v in (("w", w), ("b", b)):
                f.create_dataset(f"params/{k}", data=v.numpy())
                f.create_dataset(f"grads/{k}", data=grads[k].numpy())
                f.create_dataset(f"trajectory/{k}", data=torch.stack(traj[k]).numpy())
        finish(path)


# ----------------------------------------------------------------------------- number words

def number_words_fixture():
    """number_words.tsv: n, English, French as num2words spells them (python3-num2words), for the
    translation example's corpus: every n up to 1100 and 2000 more drawn over [0, 999999]."""
    from num2words import num2words
    import random
    rng = random.Random(0)
    numbers = sorted(set(range(1101)) | {rng.randrange(1000000) for _ in range(2000)} | {999999, 100000, 200000, 80000,
                                                                                      80001, 71071, 1200, 1080})
    path = os.path.join(OUT, "number_words.tsv")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(f"# num2words {getattr(sys.modules['num2words'], '__version__', '0.5.10')}: n, lang='en', lang='fr'\n")
        for n in numbers:
            f.write(f"{n}\t{num2words(n, lang='en')}\t{num2words(n, lang='fr')}\n")
    finish(path)


# ----------------------------------------------------------------------------- BLEU

def bleu_fixture():
    """bleu_cases.tsv: corpora scored by NLTK's corpus_bleu (python3-nltk, default weights, no
    smoothing). Lines "case<TAB>hypothesis<TAB>reference[<TAB>reference...]" give a corpus; a line
    "=case<TAB>score" gives NLTK's score for it."""
    import random
    import warnings
    from nltk.translate.bleu_score import corpus_bleu
    from num2words import num2words
    rng = random.Random(1)

    def noisy(words):  # drop, repeat or replace a word now and then
        out = []
        for w in words:
            r = rng.random()
            if r < 0.1:
                continue
            out.append(w if r < 0.85 else rng.choice(["et", "cent", "mille", "vingt", "deux"]))
            if rng.random() < 0.05:
                out.append(w)
        return out

    numbers = [rng.randrange(1000000) for _ in range(40)]
    french = [num2words(n, lang="fr").split() for n in numbers]
    cases = {
        "identical": [(f, [f]) for f in french],
        "noisy": [(noisy(f), [f]) for f in french],
        "short_sentences": [(f[:2], [f]) for f in french[:10]],
        "brevity": [(f[: max(1, len(f) // 2)], [f]) for f in french],
        "two_references": [(noisy(f), [f, num2words(n, lang="en").split()]) for f, n in zip(french, numbers)],
        "ties_in_length": [(["a"] * 12, [["a"] * 13, ["a"] * 11]), (["a", "b", "c", "d", "e"], [["a", "b", "c", "d"]])],
        "with_empty_hypothesis": [([], [french[0]])] + [(noisy(f), [f]) for f in french[1:8]],
        "no_match": [(["x", "y", "z", "w"], [["a", "b", "c", "d"]])],
    }
    path = os.path.join(OUT, "bleu_cases.tsv")
    with open(path + ".tmp", "w", encoding="utf-8") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns when an n-gram order has no match
        for name, corpus in cases.items():
            for hyp, refs in corpus:
                f.write("\t".join([name, " ".join(hyp)] + [" ".join(r) for r in refs]) + "\n")
            score = corpus_bleu([refs for _, refs in corpus], [hyp for hyp, _ in corpus])
            f.write(f"={name}\t{score!r}\n")
    finish(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    reader_check()
    basic_layers()
    attention_fixtures()
    rope_fixtures()
    conv_fixtures()
    cnn_module_fixtures()
    transformer_fixtures()
    causal_lm_fixtures()
    vit_fixtures()
    optim_fixtures()
    number_words_fixture()
    bleu_fixture()
    total = 0
    for name, size in written:
        print(f"{name:32s} {size / 1024:8.1f} KiB")
        total += size
    print(f"{'total':32s} {total / 1024:8.1f} KiB in {len(written)} files")
    assert total < 5 * 1024 * 1024, "fixtures must stay under 5 MB"
    return 0


if __name__ == "__main__":
    sys.exit(main())
