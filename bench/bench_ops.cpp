// Micro-benchmarks of the hot ops, Runestone's side. bench/torch_ops.py runs the same cases in
// PyTorch (same names, shapes, flop and byte models) and bench/run.sh joins both into one table.
//
// How: each case runs 3 times as warm-up (page faults, OpenBLAS thread start, the caching
// allocator filling up), then repeatedly for about 0.4 s (at least 5, at most 500 runs),
// timed one run at a time with std::chrono::steady_clock; the median is reported. Forward-only
// cases run under NoGradGuard so nothing is recorded on the tape; forward+backward cases make a
// fresh leaf per run (x.detach().requires_grad_()) and call backward, so .grad is allocated anew
// each time, as in the PyTorch script. Threads: OMP_NUM_THREADS (run.sh sets 2) drives both our
// OpenMP loops and the OpenMP build of OpenBLAS.
//
// Output: '#' lines are comments (the BLAS we link); every other line is one case,
// tab-separated: case, median seconds, rate, unit.
//
// Rates. matmul: 2*M*N*K flops per product (times the batch). Memory-bound kernels: the bytes one
// pass over float32 data must move, n = numel of the (4096, 1024) input:
//   softmax, layer_norm, gelu forward      read x, write y                          2 * 4n
//   softmax forward+backward               read x, write y, read y, read gy, write gx  5 * 4n
//   layer_norm forward+backward            the same plus one more read of x         6 * 4n
//   cross_entropy forward+backward         read x (loss), read x, write gx          3 * 4n
// (weights, biases, per-row statistics and targets are a row's worth and left out).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "bench/timing.hpp"

using namespace rune;
using bench::median_seconds;
using bench::report;

namespace {

void bench_matmul(const std::string& name, const Shape& a_shape, const Shape& b_shape) {
  Generator g(0);
  const Tensor a = randn(a_shape, g), b = randn(b_shape, g);
  NoGradGuard no_grad;
  const Tensor probe = matmul(a, b);
  // numel(out) * K products, two flops each.
  const double flops = 2.0 * static_cast<double>(probe.numel()) * static_cast<double>(a_shape.back());
  const double s = median_seconds([&] { (void)matmul(a, b); });
  report(name, s, flops / s * 1e-9, "GFLOP/s", {flops});
}

}  // namespace

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench::print_sgemm_peak();

  bench_matmul("matmul 256^3", {256, 256}, {256, 256});
  bench_matmul("matmul 512^3", {512, 512}, {512, 512});
  bench_matmul("matmul 1024^3", {1024, 1024}, {1024, 1024});
  bench_matmul("matmul 2048x128x384", {2048, 128}, {128, 384});
  // Attention scores: B*H = 32*8 products of (T=64, D=16) @ (D=16, T=64).
  bench_matmul("matmul batched 256x(64x16@16x64)", {256, 64, 16}, {256, 16, 64});
  // Linear layer: (B=32, T=64, C=128) @ (C=128, 384).
  bench_matmul("matmul linear (32,64,128)@(128,384)", {32, 64, 128}, {128, 384});

  Generator g(1);
  const Shape rows{4096, 1024};  // (N, C)
  const double n = 4096.0 * 1024.0;
  const Tensor x = randn(rows, g), gy = randn(rows, g);
  {
    NoGradGuard no_grad;
    const double s = median_seconds([&] { (void)softmax(x, -1); });
    report("softmax fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s");
  }
  {
    const double s = median_seconds([&] {
      const Tensor xi = x.detach().requires_grad_();
      softmax(xi, -1).backward(gy);
    });
    report("softmax fwd+bwd (4096,1024)", s, 5 * 4 * n / s * 1e-9, "GB/s");
  }

  const Tensor w = randn({1024}, g), b = randn({1024}, g);
  {
    NoGradGuard no_grad;
    const double s = median_seconds([&] { (void)layer_norm(x, {1024}, w, b); });
    report("layer_norm fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s");
  }
  {
    const double s = median_seconds([&] {
      const Tensor xi = x.detach().requires_grad_();
      const Tensor wi = w.detach().requires_grad_(), bi = b.detach().requires_grad_();
      layer_norm(xi, {1024}, wi, bi).backward(gy);
    });
    report("layer_norm fwd+bwd (4096,1024)", s, 6 * 4 * n / s * 1e-9, "GB/s");
  }

  {
    const double m = 4.0 * 1024 * 1024;
    const Tensor v = randn({4 * 1024 * 1024}, g);
    NoGradGuard no_grad;
    const double s = median_seconds([&] { (void)gelu(v); });  // exact erf form (the default)
    report("gelu fwd 4M", s, 2 * 4 * m / s * 1e-9, "GB/s");
  }

  {
    const Tensor target = randint(0, 1024, {4096}, g);  // int64 class indices
    const double s = median_seconds([&] {
      const Tensor xi = x.detach().requires_grad_();
      cross_entropy(xi, target).backward();  // mean reduction: a scalar loss
    });
    report("cross_entropy fwd+bwd (4096,1024)", s, 3 * 4 * n / s * 1e-9, "GB/s");
  }
  return 0;
}
