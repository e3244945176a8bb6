"""The cases of bench_ops.cpp in PyTorch, same shapes, same byte and flop models, same output
format (case, seconds, rate, unit, tab-separated). Run by bench/run.sh with Debian's python3-torch
and OpenBLAS put first on the library path; prints which BLAS library the process really loaded."""
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)


def median_seconds(fn, budget=0.4):
    for _ in range(3):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(name, seconds, rate, unit):
    print(f"{name}\t{seconds:.6e}\t{rate:.3f}\t{unit}", flush=True)


def loaded_blas():
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(paths)) or "no BLAS library mapped"


def bench_matmul(name, a_shape, b_shape):
    a, b = torch.randn(a_shape), torch.randn(b_shape)
    with torch.no_grad():
        probe = torch.matmul(a, b)
        flops = 2.0 * probe.numel() * a_shape[-1]
        s = median_seconds(lambda: torch.matmul(a, b))
    report(name, s, flops / s * 1e-9, "GFLOP/s")
    return flops / s * 1e-9


def main():
    gflops_512 = None
    bench_matmul("matmul 256^3", (256, 256), (256, 256))
    gflops_512 = bench_matmul("matmul 512^3", (512, 512), (512, 512))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, BLAS: {loaded_blas()}", flush=True)
    if gflops_512 < 10:
        print("# WARNING: PyTorch's matmul runs below 10 GFLOP/s at 512^3: it is probably using the "
              "reference BLAS, and the comparison below is not fair", flush=True)
    bench_matmul("matmul 1024^3", (1024, 1024), (1024, 1024))
    bench_matmul("matmul 2048x128x384", (2048, 128), (128, 384))
    bench_matmul("matmul batched 256x(64x16@16x64)", (256, 64, 16), (256, 16, 64))
    bench_matmul("matmul linear (32,64,128)@(128,384)", (32, 64, 128), (128, 384))

    n = 4096 * 1024
    x, gy = torch.randn(4096, 1024), torch.randn(4096, 1024)
    with torch.no_grad():
        s = median_seconds(lambda: torch.softmax(x, -1))
    report("softmax fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s")

    def softmax_fb():
        xi = x.detach().requires_grad_()
        torch.softmax(xi, -1).backward(gy)
    s = median_seconds(softmax_fb)
    report("softmax fwd+bwd (4096,1024)", s, 5 * 4 * n / s * 1e-9, "GB/s")

    w, b = torch.randn(1024), torch.randn(1024)
    with torch.no_grad():
        s = median_seconds(lambda: F.layer_norm(x, (1024,), w, b))
    report("layer_norm fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s")

    def layer_norm_fb():
        xi, wi, bi = (t.detach().requires_grad_() for t in (x, w, b))
        F.layer_norm(xi, (1024,), wi, bi).backward(gy)
    s = median_seconds(layer_norm_fb)
    report("layer_norm fwd+bwd (4096,1024)", s, 6 * 4 * n / s * 1e-9, "GB/s")

    v = torch.randn(4 * 1024 * 1024)
    with torch.no_grad():
        s = median_seconds(lambda: F.gelu(v))
    report("gelu fwd 4M", s, 2 * 4 * 4 * 1024 * 1024 / s * 1e-9, "GB/s")

    t = torch.randint(0, 1024, (4096,))

    def cross_entropy_fb():
        xi = x.detach().requires_grad_()
        F.cross_entropy(xi, t).backward()
    s = median_seconds(cross_entropy_fb)
    report("cross_entropy fwd+bwd (4096,1024)", s, 3 * 4 * n / s * 1e-9, "GB/s")


if __name__ == "__main__":
    sys.exit(main())
