"""Loads a trained translation checkpoint into the equivalent PyTorch model and checks that PyTorch
translates like `rune translate` and gives its translations the same log-probabilities.

    /usr/bin/python3 tests/parity/check_translation_checkpoint.py runs/numbers-demo/checkpoints/best.h5 [build/rune]

The model is rebuilt from the checkpoint alone: its config (the root attribute `config`, TOML), its
vocabularies (/meta) and its parameters (/params, loaded with load_state_dict(strict=True): the
names are torch's). Checked on 200 number sentences (0..99 and 100 drawn over the range):
  - greedy translations, PyTorch's against `rune translate`'s, word for word;
  - log P(translation | sentence), the sum of the log-softmax of the teacher-forced logits over the
    translation's tokens and <eos>, PyTorch's against `rune translate --scores`, within 1e-4.
Needs Debian's python3-torch, python3-h5py and python3-num2words.
"""
import math
import random
import subprocess
import sys
import tomllib

import h5py
import torch
import torch.nn as nn
from num2words import num2words


class Seq2Seq(nn.Module):
    """nn/seq2seq.hpp in PyTorch, with its parameter names."""

    def __init__(self, cfg, src_vocab, tgt_vocab):
        super().__init__()
        m = cfg.get("model", {})
        C = m.get("d_model", 128)
        self.C = C
        self.src_embed = nn.Embedding(src_vocab, C, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, C, padding_idx=0)
        self.max_len = cfg.get("data", {}).get("max_len", 64) + 1
        self.learned = m.get("positions", "sinusoidal") == "learned"
        if self.learned:
            self.positions = nn.Module()
            self.positions.weight = nn.Parameter(torch.zeros(self.max_len, C))
        else:
            pe = torch.zeros(self.max_len, C, dtype=torch.float64)
            for t in range(self.max_len):
                for i in range(C):
                    angle = t * math.exp(-math.log(10000.0) * (i - i % 2) / C)
                    pe[t, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            self.register_buffer("pe", pe.float(), persistent=False)
        self.transformer = nn.Transformer(C, m.get("nhead", 8), m.get("num_encoder_layers", 2),
                                          m.get("num_decoder_layers", 2), m.get("dim_feedforward", 4 * C), dropout=0.0,
                                          activation=m.get("activation", "gelu"), batch_first=True,
                                          norm_first=m.get("norm_first", True))
        self.tied = m.get("tie_output", False)
        if self.tied:
            self.output_bias = nn.Parameter(torch.zeros(tgt_vocab))
        else:
            self.generator = nn.Linear(C, tgt_vocab)

    def embed(self, e, ids):
        pos = self.positions.weight if self.learned else self.pe
        return e(ids) * math.sqrt(self.C) + pos[: ids.shape[1]]

    def logits(self, src, tgt_in):
        memory = self.transformer.encoder(self.embed(self.src_embed, src), src_key_padding_mask=src == 0)
        mask = torch.triu(torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool), 1)
        h = self.transformer.decoder(self.embed(self.tgt_embed, tgt_in), memory, tgt_mask=mask,
                                     memory_key_padding_mask=src == 0)
        return h @ self.tgt_embed.weight.T + self.output_bias if self.tied else self.generator(h)


def main():
    ckpt = sys.argv[1]
    rune = sys.argv[2] if len(sys.argv) > 2 else "build/rune"
    with h5py.File(ckpt) as f:
        cfg = tomllib.loads(f.attrs["config"])
        src_vocab = [s.decode() if isinstance(s, bytes) else s for s in f["meta/source_vocabulary"][()]]
        tgt_vocab = [s.decode() if isinstance(s, bytes) else s for s in f["meta/target_vocabulary"][()]]
        state = {}
        f["params"].visititems(lambda n, o: state.__setitem__(n.replace("/", "."), torch.from_numpy(o[()]))
                               if isinstance(o, h5py.Dataset) else None)
    if cfg.get("data", {}).get("tokenization", "word") != "word":
        sys.exit("this check covers word-level checkpoints")
    model = Seq2Seq(cfg, len(src_vocab), len(tgt_vocab))
    print("load_state_dict(strict=True):", model.load_state_dict(state, strict=True))
    model.eval()
    sid = {t: i for i, t in enumerate(src_vocab)}
    rng = random.Random(0)
    numbers = list(range(100)) + [rng.randrange(1000000) for _ in range(100)]
    sentences = [num2words(n, lang="en") for n in numbers]

    lines = subprocess.run([rune, "translate", ckpt, "--scores"], input="\n".join(sentences) + "\n", capture_output=True,
                           text=True, check=True).stdout.splitlines()
    ours = [line.split("\t")[0] for line in lines]
    our_logp = [float(line.split("\t")[1]) for line in lines]
    same = 0
    worst = 0.0
    with torch.no_grad():
        for sentence, our, lp in zip(sentences, ours, our_logp):
            src = torch.tensor([[sid.get(w, 3) for w in sentence.split()] + [2]])
            out = [1]
            for _ in range(model.max_len - 1):
                nxt = int(model.logits(src, torch.tensor([out]))[0, -1].argmax())
                if nxt == 2:
                    break
                out.append(nxt)
            theirs = " ".join(tgt_vocab[i] for i in out[1:])
            same += theirs == our
            # log P(rune's translation) under PyTorch's copy of the model
            tid = {t: i for i, t in enumerate(tgt_vocab)}
            tgt = [tid.get(w, 3) for w in our.split()]
            logits = model.logits(src, torch.tensor([[1] + tgt])).double()
            torch_lp = float(torch.log_softmax(logits[0], -1)[torch.arange(len(tgt) + 1), torch.tensor(tgt + [2])].sum())
            worst = max(worst, abs(torch_lp - lp) / max(1.0, abs(torch_lp)))
            if theirs != our:
                print(f"differs: {sentence!r}: rune {our!r}, torch {theirs!r}")
    print(f"translations equal: {same}/{len(sentences)}; log-probabilities: worst difference {worst:.2e} "
          f"(relative, or absolute below 1)")
    return 0 if same == len(sentences) and worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
