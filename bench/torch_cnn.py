"""The cases of bench_cnn.cpp with PyTorch: ResNet-20 (tests/parity/runestone_torch.py's ResNet,
torchvision's basic blocks) on batches of 128 1x28x28 and 3x32x32 images, SGD with Nesterov
momentum, cross-entropy. Output as bench/timing.py. Run by bench/run.sh with Debian's
python3-torch at 2 threads."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import runestone_torch  # noqa: E402  (the twin of nn/resnet.hpp)
from timing import median_seconds, report  # noqa: E402  bench/timing.py, beside this script

torch.set_num_threads(2)
torch.manual_seed(0)
B = 128


def run(channels, size, name):
    model = runestone_torch.ResNet({"in_chans": channels, "num_classes": 10, "widths": "16,32,64", "blocks": "3,3,3"})
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "bn" in n or "downsample.1" in n)]
    rest = [p for n, p in model.named_parameters() if n.endswith(".bias") or "bn" in n or "downsample.1" in n]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}], lr=0.1,
                          momentum=0.9, nesterov=True)
    images, labels = torch.randn(B, channels, size, size), torch.randint(0, 10, (B,))
    model.train()

    def step():
        F.cross_entropy(model(images), labels).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    s = median_seconds(step)
    report(f"resnet20 train step (128x{name})", s, B / s, "img/s", rss=True)
    model.eval()

    def infer():
        with torch.no_grad():
            model(images)

    s = median_seconds(infer)
    report(f"resnet20 inference (128x{name})", s, B / s, "img/s")


def conv3x3(c, o, h, stride):
    """One 3x3 convolution (padding 1, no bias), forward and backward: bench_cnn.cpp's conv3x3."""
    torch.manual_seed(1)
    x = torch.randn(B, c, h, h, requires_grad=True)
    w = torch.randn(o, c, 3, 3, requires_grad=True)
    p = (h - 1) // stride + 1
    flops = 3 * 2.0 * B * o * p * p * c * 9
    s = median_seconds(lambda: F.conv2d(x, w, None, stride, 1).sum().backward())
    report(f"conv3x3 fwd+bwd {c}->{o} {h}x{h}" + (" stride 2" if stride > 1 else ""), s, flops / s * 1e-9, "GFLOP/s",
           flops=flops)


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    run(1, 28, "1x28x28")
    run(3, 32, "3x32x32")
    conv3x3(16, 16, 28, 1)
    conv3x3(32, 32, 14, 1)
    conv3x3(64, 64, 7, 1)
    conv3x3(16, 32, 28, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
