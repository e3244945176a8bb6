"""Runestone checkpoints as PyTorch models, rebuilt from the checkpoint alone: its /architecture
attributes, its /meta lists and its /params, loaded with load_state_dict(strict=True).

    ckpt = read("runs/numbers/checkpoints/best.h5")
    model = build(ckpt)                                   # a Seq2Seq, a ViT, a ResNet or a CausalLM, in eval mode
    translate(model, ckpt, ["seventy-one"])               # as `rune translate`
    log_probability(model, ckpt, [("seventy-one", "soixante et onze")])  # as `rune translate --scores`
    model(preprocess(images, ckpt)).argmax(-1)            # a ViT's or ResNet's predictions, as `rune eval --predictions`

Needs torch (1.13 or later) and h5py, and python3-sentencepiece for checkpoints in SentencePiece
subwords. docs/checkpoints.md explains every attribute used here.
"""
import math
import re
import time
from types import SimpleNamespace

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


def read(path):
    """The checkpoint as .arch (dict), .meta (lists), .params (state dict), .config (TOML text)."""
    def value(v):
        return v.item() if hasattr(v, "item") else v  # numpy int64 / float64 -> int / float

    with h5py.File(path, "r") as f:
        arch = {k: value(v) for k, v in f["architecture"].attrs.items()}
        meta = {k: list(d.asstr()[()]) if h5py.check_string_dtype(d.dtype) else d[()].tolist()
                for k, d in f["meta"].items()}
        params = {}
        f["params"].visititems(lambda name, d: params.__setitem__(name.replace("/", "."), torch.from_numpy(d[()]))
                               if isinstance(d, h5py.Dataset) else None)
        return SimpleNamespace(arch=arch, meta=meta, params=params, config=f.attrs["config"])


def layer_options(a, d_model, nhead, dim_feedforward):
    """torch.nn.Transformer*Layer's arguments for the facts in `a` (dropout off: inference)."""
    if a.get("num_kv_heads", nhead) != nhead:
        raise NotImplementedError("grouped-query attention: torch.nn.MultiheadAttention has no num_kv_heads")
    if not a["bias"]:
        raise NotImplementedError("bias = 0: Runestone's LayerNorms keep their bias, torch's bias=False drops it")
    return dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=0.0,
                activation=a["activation"], layer_norm_eps=a["layer_norm_eps"], batch_first=True,
                norm_first=bool(a["norm_first"]))


def final_norm(a, key, width):
    return nn.LayerNorm(width, eps=a["layer_norm_eps"]) if a[key] else None


class Seq2Seq(nn.Module):
    """nn/seq2seq.hpp: embeddings * embedding_scale + positions, a Transformer, an output projection."""

    def __init__(self, a, src_vocab, tgt_vocab):
        super().__init__()
        self.a = a
        C, pad, n = a["d_model"], a["pad_id"], a["max_positions"]
        self.src_embed = nn.Embedding(src_vocab, C, padding_idx=pad)
        self.tgt_embed = nn.Embedding(tgt_vocab, C, padding_idx=pad)
        if a["positions"] == "learned":
            self.positions = nn.Embedding(n, C)  # positions.weight
        else:
            self.register_buffer("pe", sinusoids(n, C), persistent=False)  # not in the checkpoint
        kw = layer_options(a, C, a["nhead"], a["dim_feedforward"])
        self.transformer = nn.Module()
        self.transformer.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), a["num_encoder_layers"],
                                                         final_norm(a, "encoder_final_norm", C),
                                                         enable_nested_tensor=False)
        self.transformer.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), a["num_decoder_layers"],
                                                         final_norm(a, "decoder_final_norm", C))
        if a["tie_output"]:
            self.output_bias = nn.Parameter(torch.zeros(tgt_vocab))
        else:
            self.generator = nn.Linear(C, tgt_vocab)

    def embed(self, e, ids):  # (B, T) -> (B, T, C), positions from 0
        table = self.positions.weight if self.a["positions"] == "learned" else self.pe
        return e(ids) * self.a["embedding_scale"] + table[: ids.shape[1]]

    def encode(self, src):  # (B, S) -> memory (B, S, C) and its padding mask (True = pad)
        pad = src == self.a["pad_id"]
        return self.transformer.encoder(self.embed(self.src_embed, src), src_key_padding_mask=pad), pad

    def decode(self, tgt_in, memory, pad):  # (B, T) -> logits (B, T, V), causal
        T = tgt_in.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)  # True: may not attend
        h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory, tgt_mask=causal,
                                     memory_key_padding_mask=pad)
        return h @ self.tgt_embed.weight.T + self.output_bias if self.a["tie_output"] else self.generator(h)

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, *self.encode(src))


class CausalLM(nn.Module):
    """nn/causal_lm.hpp: token embedding + learned or sinusoidal positions, pre-LN causal blocks
    (nn.TransformerEncoder, named decoder), a final LayerNorm, lm_head or the embedding tied.
    dropout as Runestone places it: after the embedding, on the attention weights, on each
    residual branch and after the MLP's activation (0: inference)."""

    def __init__(self, a, dropout=0.0):
        super().__init__()
        if a["positions"] not in ("learned", "sinusoidal"):
            raise NotImplementedError(f"positions {a['positions']!r}: torch.nn.MultiheadAttention has no rotary")
        self.a = a
        C, n = a["d_model"], a["max_positions"]
        self.embed = nn.Embedding(a["vocab"], C)
        if a["positions"] == "learned":
            self.positions = nn.Embedding(n, C)
        else:
            self.register_buffer("pe", sinusoids(n, C), persistent=False)
        kw = layer_options(a, C, a["nhead"], a["dim_feedforward"])
        kw["dropout"] = dropout
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), a["num_layers"],
                                             nn.LayerNorm(C, eps=a["layer_norm_eps"]), enable_nested_tensor=False)
        if not a["tie_output"]:
            self.lm_head = nn.Linear(C, a["vocab"], bias=False)

    def embed_at(self, ids, start):  # (B, T) -> (B, T, C), positions from start
        table = self.positions.weight if self.a["positions"] == "learned" else self.pe
        return self.embed(ids) + table[start:start + ids.shape[1]]

    def head(self, h):
        return F.linear(h, self.embed.weight) if self.a["tie_output"] else self.lm_head(h)

    def forward(self, ids):  # (B, T) -> logits (B, T, V), causal
        T = ids.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)  # True: may not attend
        return self.head(self.decoder(self.dropout(self.embed_at(ids, 0)), mask=causal))

    def forward_cached(self, ids, cache):
        """Logits of ids (B, T) read after the cache's keys and values (a list per block of
        (k, v), each (B, H, t, d), or [] at the start), which it extends: nn.TransformerEncoderLayer's
        arithmetic with the keys and values kept, in eval mode."""
        H = self.a["nhead"]
        start = cache[0][0].shape[2] if cache else 0
        x = self.embed_at(ids, start)
        B, T, C = x.shape
        for i, layer in enumerate(self.decoder.layers):
            att = layer.self_attn
            q, k, v = F.linear(layer.norm1(x), att.in_proj_weight, att.in_proj_bias).split(C, -1)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            if len(cache) > i:
                k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
                cache[i] = (k, v)
            else:
                cache.append((k, v))
            scores = q @ k.transpose(-1, -2) / math.sqrt(C // H)  # (B, H, T, start + T)
            if T > 1:
                blocked = torch.triu(torch.ones(T, start + T, dtype=torch.bool), start + 1)
                scores = scores.masked_fill(blocked, float("-inf"))
            o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
            x = x + att.out_proj(o)
            x = x + layer.linear2(F.gelu(layer.linear1(layer.norm2(x))))
        return self.head(self.decoder.norm(x))


def sinusoids(n, C):
    """PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(same): interleaved, float64 then float32."""
    t = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(C, dtype=torch.float64)[None, :]
    angle = t * torch.exp(-math.log(10000.0) * (i - i % 2) / C)
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle)).float()


class ViT(nn.Module):
    """nn/vit.hpp: patches + class token + pos_embed, a Transformer encoder, a pooled row, a head."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        C, p = a["embed_dim"], a["patch_size"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(a["in_chans"], C, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + a["grid"] ** 2, C))
        kw = layer_options(a, C, a["num_heads"], a["mlp_dim"])
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), a["depth"],
                                             final_norm(a, "encoder_final_norm", C), enable_nested_tensor=False)
        self.head = nn.Linear(C, a["num_classes"])

    def forward(self, images):  # (B, in_chans, image_size, image_size), normalised -> logits (B, K)
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2)  # (B, N, C), patches row by row
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos_embed
        x = self.encoder(x)
        return self.head(x[:, 0] if self.a["pool"] == "cls" else x[:, 1:].mean(1))


class BasicBlock(nn.Module):
    """nn/resnet.hpp: torchvision's BasicBlock (conv1, bn1, conv2, bn2, downsample = (conv, bn))."""

    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + shortcut)


class ResNet(nn.Module):
    """nn/resnet.hpp: a 3x3 stem (no max-pool), stages of basic blocks, global mean, fc."""

    def __init__(self, a):
        super().__init__()
        widths = [int(w) for w in str(a["widths"]).split(",")]
        blocks = [int(b) for b in str(a["blocks"]).split(",")]
        self.conv1 = nn.Conv2d(a["in_chans"], widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for s, (c, n) in enumerate(zip(widths, blocks)):
            stage = []
            for b in range(n):
                stage.append(BasicBlock(cin, c, 2 if s > 0 and b == 0 else 1))
                cin = c
            setattr(self, f"layer{s + 1}", nn.Sequential(*stage))
        self.stages = len(widths)
        self.fc = nn.Linear(cin, a["num_classes"])

    def forward(self, images):  # (B, in_chans, H, W), normalised -> logits (B, K)
        x = F.relu(self.bn1(self.conv1(images)))
        for s in range(self.stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(x.mean((2, 3)))


def build(ckpt):
    """The model the checkpoint describes, its parameters loaded strictly, in eval mode."""
    a = ckpt.arch
    if a["model"] == "seq2seq_transformer":
        model = Seq2Seq(a, len(ckpt.meta[a["source_vocabulary"]]), len(ckpt.meta[a["target_vocabulary"]]))
    elif a["model"] == "vision_transformer":
        model = ViT(a)
    elif a["model"] == "causal_lm":
        model = CausalLM(a)
    elif a["model"] == "resnet":
        model = ResNet(a)
    else:
        raise ValueError(f"unknown model {a['model']!r}")
    model.load_state_dict(ckpt.params, strict=True)
    if "attention_scale" in a:  # scores s q.k instead of q.k / sqrt(d_k): torch 1.13 has no scale
        # argument, so the query projections carry the factor s sqrt(d_k) (exact in real numbers)
        factor = a["attention_scale"] * math.sqrt(a["d_model"] / a["nhead"])
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.MultiheadAttention):
                    m.in_proj_weight[: m.embed_dim] *= factor
                    m.in_proj_bias[: m.embed_dim] *= factor
    return model.eval()


# ---------------------------------------------------------------- text (seq2seq checkpoints)

def subwords(ckpt, side):
    """The SentencePiece model of `side` ("source" or "target") a sentencepiece checkpoint holds
    (/meta/<side>_subwords), through python3-sentencepiece; piece ids are token ids."""
    import sentencepiece  # only sentencepiece checkpoints need it

    models = ckpt.__dict__.setdefault("subword_models", {})
    if side not in models:
        models[side] = sentencepiece.SentencePieceProcessor(model_proto=bytes(ckpt.meta[side + "_subwords"]))
    return models[side]


def tokenize(text, a):
    if a["tokenization"] == "char":
        return list(text)  # code points
    return [t for t in re.split(r"[ \t\n\v\f\r]+", text) if t]


def token_ids(text, ckpt, side, limit):
    """The first `limit` token ids of text on `side`; unknown tokens are unk_id, or refused."""
    a = ckpt.arch
    if a["tokenization"] == "sentencepiece":
        return subwords(ckpt, side).encode(text)[:limit]
    index = {t: i for i, t in enumerate(ckpt.meta[a[side + "_vocabulary"]])}
    ids = []
    for t in tokenize(text, a)[:limit]:
        if t not in index and a["unknown_tokens"] != "unk_id":
            raise ValueError(f"{t!r} is not in the vocabulary")
        ids.append(index.get(t, a.get("unk_id")))
    return ids


def detokenize(ids, ckpt):
    """The target text of output token ids (no specials)."""
    a = ckpt.arch
    if a["tokenization"] == "sentencepiece":
        return subwords(ckpt, "target").decode(ids)
    tokens = [ckpt.meta[a["target_vocabulary"]][i] for i in ids]
    return ("" if a["tokenization"] == "char" else " ").join(tokens)


def frame(framing, ids, a):
    """A framing such as "<bos> tokens" or "tokens <eos>" applied to ids."""
    special = {"<bos>": a["bos_id"], "<eos>": a["eos_id"]}
    return [i for part in framing.split() for i in (ids if part == "tokens" else [special[part]])]


def source_tensor(text, ckpt):
    a = ckpt.arch
    ids = token_ids(text, ckpt, "source", a["max_source_tokens"])
    return torch.tensor([frame(a["source_framing"], ids, a)])


@torch.no_grad()
def translate(model, ckpt, sentences):
    """Greedy decoding, one sentence at a time, detokenized: `rune translate`'s output."""
    a = ckpt.arch
    if a["decoding"] != "greedy":
        raise NotImplementedError(f"decoding {a['decoding']!r}: only greedy is written here")
    out = []
    for sentence in sentences:
        memory, pad = model.encode(source_tensor(sentence, ckpt))
        ids = [a["bos_id"]]
        for _ in range(a["max_decode_steps"]):
            ids.append(int(model.decode(torch.tensor([ids]), memory, pad)[0, -1].argmax()))
            if ids[-1] in (a["eos_id"], a["pad_id"]):
                break
        out.append(detokenize([i for i in ids[1:] if i not in (a["eos_id"], a["pad_id"])], ckpt))
    return out


@torch.no_grad()
def log_probability(model, ckpt, pairs):
    """log P(target | source): the sum of the natural-log probabilities of the target's tokens and
    <eos>, teacher-forced: `rune translate --scores`."""
    a, out = ckpt.arch, []
    for source, target in pairs:
        ids = token_ids(target, ckpt, "target", a["max_target_tokens"])
        tgt_in = torch.tensor([frame(a["decoder_input_framing"], ids, a)])
        tgt_out = frame(a["target_framing"], ids, a)
        lp = torch.log_softmax(model(source_tensor(source, ckpt), tgt_in)[0], -1).double()  # (T, V)
        out.append(sum(float(lp[t, y]) for t, y in enumerate(tgt_out) if y != a["pad_id"]))
    return out


# ---------------------------------------------------------------- text (causal_lm checkpoints)

@torch.no_grad()
def continue_greedy(model, ckpt, prompt, max_new_tokens):
    """`rune generate --temperature 0` of a character-level checkpoint: <eos> then the prompt
    (its last max_positions - 1 tokens) read in one pass, then the most probable token at each
    step (never <pad> or <bos>) read by the KV cache; a full context is read again from its last
    half. Returns the new text (<eos> a newline) and the seconds the new tokens took."""
    a = ckpt.arch
    if a["tokenization"] != "char":
        raise NotImplementedError(f"tokenization {a['tokenization']!r}: only characters are written here")
    vocab = ckpt.meta[a["vocabulary"]]
    index = {t: i for i, t in enumerate(vocab)}
    eos, limit = a["eos_id"], a["max_positions"]
    window = ([eos] + [index.get(c, a["unk_id"]) for c in prompt])[-(limit - 1):]

    def most_probable(logits):
        x = logits[0, -1].clone()
        x[0] = x[1] = float("-inf")  # <pad>, <bos>
        return int(x.argmax())

    cache = []
    next_id = most_probable(model.forward_cached(torch.tensor([window]), cache))
    new, t0 = [], time.perf_counter()
    for i in range(max_new_tokens):
        new.append(next_id)
        if i + 1 == max_new_tokens:
            break
        window.append(next_id)
        if cache[0][0].shape[2] < limit:
            next_id = most_probable(model.forward_cached(torch.tensor([[next_id]]), cache))
        else:
            window, cache = window[-(limit // 2):], []
            next_id = most_probable(model.forward_cached(torch.tensor([window]), cache))
    seconds = time.perf_counter() - t0
    return "".join("\n" if t == eos else vocab[t] for t in new), seconds


# ---------------------------------------------------------------- images (ViT and ResNet checkpoints)

def preprocess(images, ckpt):
    """uint8 images (B, in_chans, native_image_size, native_image_size) -> the model's input:
    resized as the checkpoint says, then (v / 255 - mean[c]) / std[c] in float32 as rune computes it."""
    a = ckpt.arch
    x = torch.as_tensor(images).float()
    S, H = a["image_size"], x.shape[-1]
    if S != H and a["resize"] == "pad":  # centred on black
        lo = (S - H) // 2
        x = F.pad(x, (lo, S - H - lo, lo, S - H - lo))
    elif S != H and a["resize"] == "upsample":
        x = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False)
    elif S != H:
        raise ValueError(f"images of {H} pixels for a model of {S} without a resize")
    mean = torch.tensor(ckpt.meta[a["normalization_mean"]], dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(ckpt.meta[a["normalization_std"]], dtype=torch.float64).view(1, -1, 1, 1)
    return x * (1.0 / (255.0 * std)).float() - (mean / std).float()
