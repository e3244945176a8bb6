// Micro-benchmarks of the hot ops; bench/torch_ops.py runs the same cases in PyTorch and
// bench/run.sh joins both into one table. Each case reports the median of repeated runs after
// warm-up, as one tab-separated line: case, seconds, rate, unit.
//
// Rates: matmul counts 2*M*N*K flops. Memory-bound kernels count the bytes a single pass must
// move: forward = read x + write y (+ weights, negligible); forward+backward of softmax =
// read x, write y, read y, read gy, write gx (5 * 4 bytes per element); layer_norm fwd+bwd the
// same plus one more read of x (6 * 4).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"

using namespace rune;

namespace {

double median_seconds(const std::function<void()>& fn, double budget = 0.4) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up: page faults, OpenBLAS thread start
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 5 ||
         (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < budget &&
          times.size() < 200)) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void report(const std::string& name, double seconds, double rate, const char* unit) {
  std::printf("%s\t%.6e\t%.3f\t%s\n", name.c_str(), seconds, rate, unit);
  std::fflush(stdout);
}

void bench_matmul(const std::string& name, const Shape& a_shape, const Shape& b_shape) {
  Generator g(0);
  const Tensor a = randn(a_shape, g), b = randn(b_shape, g);
  NoGradGuard no_grad;
  const Tensor probe = matmul(a, b);
  const double flops = 2.0 * static_cast<double>(probe.numel()) * static_cast<double>(a_shape.back());
  const double s = median_seconds([&] { (void)matmul(a, b); });
  report(name, s, flops / s * 1e-9, "GFLOP/s");
}

}  // namespace

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench_matmul("matmul 256^3", {256, 256}, {256, 256});
  bench_matmul("matmul 512^3", {512, 512}, {512, 512});
  bench_matmul("matmul 1024^3", {1024, 1024}, {1024, 1024});
  bench_matmul("matmul 2048x128x384", {2048, 128}, {128, 384});
  bench_matmul("matmul batched 256x(64x16@16x64)", {256, 64, 16}, {256, 16, 64});
  bench_matmul("matmul linear (32,64,128)@(128,384)", {32, 64, 128}, {128, 384});

  Generator g(1);
  const Shape rows{4096, 1024};
  const double n = 4096.0 * 1024.0;
  const Tensor x = randn(rows, g), gy = randn(rows, g);
  {
    NoGradGuard no_grad;
    const double s = median_seconds([&] { (void)softmax(x, -1); });
    report("softmax fwd (4096,1024)", s, 2 * 4 * n / s * 1e-9, "GB/s");
  }
  {
    const double s = median_seconds([&] {
      Tensor xi = x.detach().requires_grad_();
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
      Tensor xi = x.detach().requires_grad_(), wi = w.detach().requires_grad_(), bi = b.detach().requires_grad_();
      layer_norm(xi, {1024}, wi, bi).backward(gy);
    });
    report("layer_norm fwd+bwd (4096,1024)", s, 6 * 4 * n / s * 1e-9, "GB/s");
  }
  {
    const Tensor v = randn({4 * 1024 * 1024}, g);
    NoGradGuard no_grad;
    const double s = median_seconds([&] { (void)gelu(v); });
    report("gelu fwd 4M", s, 2 * 4 * 4.0 * 1024 * 1024 / s * 1e-9, "GB/s");
  }
  {
    const Tensor t = randint(0, 1024, {4096}, g);
    const double s = median_seconds([&] {
      Tensor xi = x.detach().requires_grad_();
      cross_entropy(xi, t).backward();
    });
    report("cross_entropy fwd+bwd (4096,1024)", s, 3 * 4 * n / s * 1e-9, "GB/s");
  }
  return 0;
}
