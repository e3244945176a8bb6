"""The cases of bench_translation.cpp with torch.nn.Transformer: same shapes, vocabularies and
rates ('#' comments, then case, median seconds, rate, unit). Greedy decoding here is the usual
loop without a cache (nn.Transformer has none): the decoder re-runs over the whole prefix at each
step. Run by bench/run.sh with Debian's python3-torch at 2 threads."""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import median_seconds, report  # bench/timing.py, beside this script

torch.set_num_threads(2)
torch.manual_seed(0)
B, L, V, C = 64, 24, 200, 128


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embed, self.tgt_embed = nn.Embedding(V, C, padding_idx=0), nn.Embedding(V, C, padding_idx=0)
        pe = torch.zeros(64, C)
        pos = torch.arange(64).unsqueeze(1)
        div = torch.exp(torch.arange(0, C, 2) * (-math.log(10000.0) / C))
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe)
        self.transformer = nn.Transformer(C, 8, 2, 2, 512, dropout=0.1, activation="relu", batch_first=True)
        self.generator = nn.Linear(C, V)

    def embed(self, e, x):
        return e(x) * math.sqrt(C) + self.pe[: x.shape[1]]

    def forward(self, src, tgt):
        mask = self.transformer.generate_square_subsequent_mask(tgt.shape[1])
        return self.generator(self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt), tgt_mask=mask))


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    src, tgt_in, tgt_out = (torch.randint(4, V, (B, L)) for _ in range(3))

    def step():
        logits = model(src, tgt_in)
        F.cross_entropy(logits.reshape(B * L, V), tgt_out.reshape(B * L), label_smoothing=0.1).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    s = median_seconds(step)
    report("translation train step (64x24, 2+2 layers, d128)", s, B / s, "seq/s", rss=True)
    model.eval()

    def greedy():
        with torch.no_grad():
            memory = model.transformer.encoder(model.embed(model.src_embed, src))
            out = torch.ones(B, 1, dtype=torch.long)
            for _ in range(L):
                mask = model.transformer.generate_square_subsequent_mask(out.shape[1])
                h = model.transformer.decoder(model.embed(model.tgt_embed, out), memory, tgt_mask=mask)
                out = torch.cat([out, model.generator(h[:, -1]).argmax(-1, keepdim=True)], 1)

    s = median_seconds(greedy)
    report("greedy decode 64x24 (ours: kv cache)", s, B / s, "seq/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
