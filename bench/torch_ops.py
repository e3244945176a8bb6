"""The cases of bench_ops.cpp in PyTorch: same names, shapes, flop and byte models (see the header
of bench_ops.cpp), same output format: '#' comment lines, then one tab-separated line per case
(case, median seconds, rate, unit).

How: 3 warm-up runs, then repeated runs for about 0.4 s (at least 5, at most 500), each
timed with time.perf_counter; the median is reported. Forward-only cases run under
torch.no_grad(); forward+backward cases make a fresh leaf per run and call backward, as ours do.

Run by bench/run.sh with Debian's python3-torch (/usr/bin/python3) at 2 threads, with the OpenMP
build of OpenBLAS first on LD_LIBRARY_PATH. Debian's torch links the generic libblas.so.3, which
may be the reference BLAS: after the first matmul the script reads /proc/self/maps and prints
every BLAS library the process really loaded, and warns when matmul runs at reference-BLAS speed.
"""
import os
import sys

import torch
import torch.nn.functional as F

from timing import loaded_blas, median_seconds, report  # bench/timing.py, beside this script

torch.set_num_threads(2)
torch.manual_seed(0)

# Below this at 512^3 the matmul is almost surely the reference BLAS (OpenBLAS does ~180 here).
REFERENCE_BLAS_GFLOPS = 10.0




def torch_build_lines():
    """The BLAS and CPU-capability facts from torch.__config__.show()."""
    items = torch.__config__.show().replace("\n", ",").split(",")
    facts = [item.strip(" -") for item in items if "CPU capability" in item]
    facts += [item.split(":")[-1].strip() for item in items if "BLAS_INFO=" in item or "LAPACK_INFO=" in item]
    return "; ".join(facts)


def bench_matmul(name, a_shape, b_shape):
    a, b = torch.randn(a_shape), torch.randn(b_shape)
    with torch.no_grad():
        probe = torch.matmul(a, b)
        flops = 2.0 * probe.numel() * a_shape[-1]  # numel(out) * K products, two flops each
        s = median_seconds(lambda: torch.matmul(a, b))
    gflops = flops / s * 1e-9
    report(name, s, gflops, "GFLOP/s", flops)
    return gflops


def main():
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {torch_build_lines()}",
          flush=True)

    bench_matmul("matmul 256^3", (256, 256), (256, 256))
    gflops_512 = bench_matmul("matmul 512^3", (512, 512), (512, 512))
    print(f"# torch BLAS (from /proc/self/maps after matmul): {loaded_blas()}", flush=True)
    if gflops_512 < REFERENCE_BLAS_GFLOPS:
        print(f"# WARNING: PyTorch matmul 512^3 runs at {gflops_512:.1f} GFLOP/s (< "
              f"{REFERENCE_BLAS_GFLOPS:.0f}): it is probably the REFERENCE BLAS, not OpenBLAS; "
              "every matmul ratio below is unfair", flush=True)
    bench_matmul("matmul 1024^3", (1024, 1024), (1024, 1024))
    bench_matmul("matmul 2048x128x384", (2048, 128), (128, 384))
    bench_matmul("matmul batched 256x(64x16@16x64)", (256, 64, 16), (256, 16, 64))
    bench_matmul("matmul linear (32,64,128)@(128,384)", (32, 64, 128), (128, 384))

    n = 4096 * 1024
    x, gy = torch.randn(4096, 1024), torch.randn(4096, 1024)
    with torch.no_grad():
        s = median_seconds(lambda: torch.softmax(x, -1))
    report("softmax fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s")

    def softmax_fwd_bwd():
        xi = x.detach().requires_grad_()
        torch.softmax(xi, -1).backward(gy)
    s = median_seconds(softmax_fwd_bwd)
    report("softmax fwd+bwd (4096,1024)", s, 5 * 4 * n / s * 1e-9, "GB/s")

    w, b = torch.randn(1024), torch.randn(1024)
    with torch.no_grad():
        s = median_seconds(lambda: F.layer_norm(x, (1024,), w, b))
    report("layer_norm fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s")

    def layer_norm_fwd_bwd():
        xi, wi, bi = (t.detach().requires_grad_() for t in (x, w, b))
        F.layer_norm(xi, (1024,), wi, bi).backward(gy)
    s = median_seconds(layer_norm_fwd_bwd)
    report("layer_norm fwd+bwd (4096,1024)", s, 6 * 4 * n / s * 1e-9, "GB/s")

    m = 4 * 1024 * 1024
    v = torch.randn(m)
    with torch.no_grad():
        s = median_seconds(lambda: F.gelu(v))  # approximate='none': the exact erf form
    report("gelu fwd 4M", s, 2 * 4 * m / s * 1e-9, "GB/s")

    target = torch.randint(0, 1024, (4096,))  # int64

    def cross_entropy_fwd_bwd():
        xi = x.detach().requires_grad_()
        F.cross_entropy(xi, target).backward()
    s = median_seconds(cross_entropy_fwd_bwd)
    report("cross_entropy fwd+bwd (4096,1024)", s, 3 * 4 * n / s * 1e-9, "GB/s")


if __name__ == "__main__":
    sys.exit(main())
