"""The cases of bench_vit.cpp with a PyTorch ViT of the same shape: Conv2d patch embedding, class
token, learned position embedding, 6 nn.TransformerEncoderLayer (pre-LN, GELU, batch_first), final
LayerNorm and head; AdamW, label-smoothed cross-entropy. Output as bench/timing.py. Run by
bench/run.sh with Debian's python3-torch at 2 threads."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import median_seconds, report  # bench/timing.py, beside this script

torch.set_num_threads(2)
torch.manual_seed(0)
B, C, DEPTH, HEADS, MLP, P = 128, 128, 6, 8, 512, 4


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        n = (32 // P) ** 2
        self.patch = nn.Conv2d(3, C, P, stride=P)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, C) * 0.02)
        layer = nn.TransformerEncoderLayer(C, HEADS, MLP, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, DEPTH, norm=nn.LayerNorm(C))
        self.head = nn.Linear(C, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.encoder(x)[:, 0])


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    model = ViT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images, labels = torch.randn(B, 3, 32, 32), torch.randint(0, 10, (B,))

    def step():
        F.cross_entropy(model(images), labels, label_smoothing=0.1).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    s = median_seconds(step)
    report("vit train step (128x3x32x32, d128, depth 6)", s, B / s, "img/s", rss=True)
    model.eval()

    def infer():
        with torch.no_grad():
            model(images)

    s = median_seconds(infer)
    report("vit inference (128x3x32x32)", s, B / s, "img/s")

    # the patch embedding alone: PyTorch's Conv2d (kernel = stride = 4), flattened to (B, N, C), under
    # both of bench_vit.cpp's names (Runestone times its patchify path and its conv2d op)
    x, gy = images.clone().requires_grad_(), torch.randn(B, 64, C)

    def patch_step():
        (model.patch(x).flatten(2).transpose(1, 2) * gy).sum().backward()
        model.zero_grad(set_to_none=True)

    s = median_seconds(patch_step)
    report("vit patch embed fwd+bwd, patchify", s, B / s, "img/s")
    report("vit patch embed fwd+bwd, conv2d", s, B / s, "img/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
