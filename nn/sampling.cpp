#include "nn/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"

namespace rune::nn {
namespace {

void check(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
    throw std::invalid_argument("sampling: temperature must be finite and >= 0 (0: greedy), got " +
                                std::to_string(o.temperature));
  if (o.top_k < 0) throw std::invalid_argument("sampling: top_k must be >= 0 (0: all), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0.0 && o.top_p <= 1.0))
    throw std::invalid_argument("sampling: top_p must be in (0, 1], got " + std::to_string(o.top_p));
}

}  // namespace

std::vector<double> sampling_distribution(const std::vector<double>& logits, const SamplingOptions& o) {
  check(o);
  const std::size_t V = logits.size();
  if (V == 0) throw std::invalid_argument("sampling: no logits");
  std::vector<double> p(V, 0.0);
  if (o.temperature == 0.0) {  // greedy
    p[static_cast<std::size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())] = 1.0;
    return p;
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  if (!std::isfinite(top)) throw std::invalid_argument("sampling: the largest logit is not finite");
  for (std::size_t i = 0; i < V; ++i) p[i] = std::exp((logits[i] - top) / o.temperature);
  // tokens by probability, the most probable first (ties: the lower index first)
  std::vector<std::size_t> order(V);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
  std::size_t keep = o.top_k > 0 ? std::min<std::size_t>(V, static_cast<std::size_t>(o.top_k)) : V;
  double total = 0;
  for (std::size_t r = 0; r < keep; ++r) total += p[order[r]];
  if (o.top_p < 1.0) {  // the fewest tokens whose renormalised mass reaches top_p, at least one
    double mass = 0;
    std::size_t r = 0;
    while (r < keep) {
      mass += p[order[r++]] / total;
      if (mass >= o.top_p) break;
    }
    keep = r;
  }
  std::vector<double> out(V, 0.0);
  double kept = 0;
  for (std::size_t r = 0; r < keep; ++r) kept += p[order[r]];
  for (std::size_t r = 0; r < keep; ++r) out[order[r]] = p[order[r]] / kept;
  return out;
}

Tensor sample(const Tensor& logits, const SamplingOptions& o, Generator& gen) {
  check(o);
  if (!logits.defined() || logits.dim() != 2 || !is_floating(logits.dtype()))
    throw std::invalid_argument("sample: logits must be a floating (B, V) tensor; got " +
                                (logits.defined() ? shape_str(logits.shape()) : std::string("undefined")));
  const std::int64_t B = logits.size(0), V = logits.size(1);
  const std::vector<double> all = to_dtype(logits.detach(), DType::float64).contiguous().to_vector<double>();
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(B));
  for (std::int64_t b = 0; b < B; ++b) {
    const std::vector<double> row(all.begin() + b * V, all.begin() + (b + 1) * V);
    const std::vector<double> p = sampling_distribution(row, o);
    std::int64_t token = 0;
    if (o.temperature == 0.0) {
      token = std::max_element(p.begin(), p.end()) - p.begin();
    } else {  // inverse CDF of one uniform draw; the last kept token if rounding leaves u above the sum
      const double u = gen.uniform();
      double cdf = 0;
      token = -1;
      for (std::int64_t v = 0; v < V; ++v) {
        if (p[static_cast<std::size_t>(v)] == 0.0) continue;
        cdf += p[static_cast<std::size_t>(v)];
        token = v;
        if (u < cdf) break;
      }
    }
    tokens[static_cast<std::size_t>(b)] = token;
  }
  return from_vector(tokens, {B});
}

}  // namespace rune::nn
