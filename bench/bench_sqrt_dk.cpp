// Why attention divides the logits by sqrt(d_k), measured at initialisation
// (docs/experiments/sqrt-dk.md). Queries, keys and values of unit-variance normal entries, T = 64
// keys, 16 x 4 heads of 64 queries each, for d_k = 16 .. 1024, with the scale 1/sqrt(d_k) and
// without it (scale 1). For each: the variance of the logits scale q.k, the mean entropy of a
// query's softmax (nats; log 64 = 4.16 is uniform), the mean largest weight, the share of queries
// whose largest weight passes 0.99, and the mean norm of the gradient that reaches a row of
// weights, a row of logits (their ratio: what the softmax lets through), a query row and a key row
// through softmax(scale q k^T) v from a unit-normal upstream gradient (at a query row also the
// median: saturated queries get almost none, the others carry the mean). Float64 throughout, so that saturation is the
// softmax's, not rounding's. Prints a Markdown table; with an argument, writes the plot there.
//   bench_sqrt_dk [plot.png]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "report/plot.hpp"

using namespace rune;

namespace {

struct Row {
  double variance, entropy, max_weight, saturated, grad_weights, grad_logits, grad_q, grad_q_median, grad_k;
};

// The Euclidean norms of the last-dim rows of t.
std::vector<double> row_norms(const Tensor& t) {
  const Tensor c = t.contiguous();
  const double* p = c.data<double>();
  const std::int64_t n = t.size(-1), rows = t.numel() / n;
  std::vector<double> out(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i) s += p[r * n + i] * p[r * n + i];
    out[static_cast<std::size_t>(r)] = std::sqrt(s);
  }
  return out;
}
double mean_row_norm(const Tensor& t) {
  const std::vector<double> norms = row_norms(t);
  return std::accumulate(norms.begin(), norms.end(), 0.0) / static_cast<double>(norms.size());
}
double median_row_norm(const Tensor& t) {
  std::vector<double> norms = row_norms(t);
  std::nth_element(norms.begin(), norms.begin() + static_cast<std::ptrdiff_t>(norms.size() / 2), norms.end());
  return norms[norms.size() / 2];
}

Row measure(std::int64_t d, bool scaled, Generator& g) {
  constexpr std::int64_t B = 16, H = 4, T = 64;
  const Tensor q = randn({B, H, T, d}, g, DType::float64).requires_grad_();
  const Tensor k = randn({B, H, T, d}, g, DType::float64).requires_grad_();
  const Tensor v = randn({B, H, T, d}, g, DType::float64);
  const Tensor upstream = randn({B, H, T, d}, g, DType::float64);
  const double scale = scaled ? 1.0 / std::sqrt(static_cast<double>(d)) : 1.0;
  Row r{};
  {
    NoGradGuard no_grad;
    const Tensor logits = matmul(q, transpose(k, -1, -2)) * scale;  // (B, H, T, T)
    const double mean_logit = mean(logits).item();
    r.variance = mean((logits - mean_logit) * (logits - mean_logit)).item();
    const Tensor p = softmax(logits, -1);
    // entropy -sum p log p, with 0 log 0 = 0 (a saturated softmax underflows to exact zeros)
    const Tensor plogp = where(gt(p, zeros({}, DType::float64)), p * log(p), zeros({}, DType::float64));
    r.entropy = -sum(plogp).item() / static_cast<double>(B * H * T);
    const Tensor largest = max(p, -1);
    r.max_weight = mean(largest).item();
    r.saturated = mean(to_dtype(gt(largest, full({}, 0.99, DType::float64)), DType::float64)).item();
  }
  {
    // the gradient at the (scaled) logits: what the softmax's Jacobian lets through
    const Tensor logits = (matmul(q, transpose(k, -1, -2)) * scale).detach().requires_grad_();
    sum(matmul(softmax(logits, -1), v) * upstream).backward();
    r.grad_logits = mean_row_norm(logits.grad());
    NoGradGuard no_grad;
    r.grad_weights = mean_row_norm(matmul(upstream, transpose(v, -1, -2)));  // at the weights: dP = dO v^T
  }
  sum(attention(q, k, v, {}, scale) * upstream).backward();
  r.grad_q = mean_row_norm(q.grad());
  r.grad_q_median = median_row_norm(q.grad());
  r.grad_k = mean_row_norm(k.grad());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Generator g(0);
  const std::vector<std::int64_t> dims{16, 32, 64, 128, 256, 512, 1024};
  std::vector<report::Series> variance(2), entropy(2), max_weight(2), grad_logits(2), grad_q(2);
  std::printf(
      "| d_k | scale | logit variance | softmax entropy (nats) | largest weight | queries with a weight > 0.99 | "
      "gradient norm at a row of weights | at a row of logits | logits / weights | at a query row (mean) | "
      "(median) | at a key row |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int s = 0; s < 2; ++s) {
    const bool scaled = s == 0;
    const std::string name = scaled ? "q.k / sqrt(d_k)" : "q.k (no scale)";
    for (auto* series : {&variance, &entropy, &max_weight, &grad_logits, &grad_q}) (*series)[s].name = name;
    for (const std::int64_t d : dims) {
      const Row r = measure(d, scaled, g);
      std::printf("| %lld | %s | %.3g | %.3f | %.3f | %.1f%% | %.3g | %.3g | %.4f | %.3g | %.3g | %.3g |\n",
                  static_cast<long long>(d), scaled ? "1/sqrt(d_k)" : "1", r.variance, r.entropy, r.max_weight,
                  100 * r.saturated, r.grad_weights, r.grad_logits, r.grad_logits / r.grad_weights, r.grad_q,
                  r.grad_q_median, r.grad_k);
      const double x = std::log2(static_cast<double>(d));
      variance[s].points.emplace_back(x, std::log2(r.variance));
      entropy[s].points.emplace_back(x, r.entropy);
      max_weight[s].points.emplace_back(x, r.max_weight);
      grad_logits[s].points.emplace_back(x, r.grad_logits / r.grad_weights);
      grad_q[s].points.emplace_back(x, std::log2(r.grad_q_median));
    }
  }
  std::printf("\n(log 64 = %.3f nats: the entropy of uniform weights over the 64 keys)\n", std::log(64.0));
  if (argc > 1)
    report::plot_panels(argv[1], "Attention at initialisation: unit-variance q, k, v over 64 keys", "log2 d_k",
                        {{"log2 logit variance", variance},
                         {"softmax entropy (nats)", entropy},
                         {"largest weight", max_weight},
                         {"gradient at the logits / at the weights", grad_logits},
                         {"log2 median gradient norm at a query", grad_q}});
  return 0;
}
