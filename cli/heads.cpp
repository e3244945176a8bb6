#include "cli/heads.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace rune::cli {

void HeadAccumulator::add(const float* weights, std::int64_t valid_q, std::int64_t valid_k, std::int64_t row_stride) {
  if (valid_q < 0 || valid_k <= 0 || row_stride < valid_k)
    throw std::invalid_argument("HeadAccumulator: " + std::to_string(valid_q) + " rows of " + std::to_string(valid_k) +
                                " keys with a stride of " + std::to_string(row_stride) + " do not describe a matrix");
  for (std::int64_t i = 0; i < valid_q; ++i) {
    const float* p = weights + i * row_stride;
    double h = 0, d = 0, top = 0;
    for (std::int64_t j = 0; j < valid_k; ++j) {
      const double w = p[j];
      if (w > 0) h -= w * std::log(w);  // 0 ln 0 = 0
      d += w * static_cast<double>(std::llabs(i - j));
      top = std::max(top, w);
    }
    entropy_ += h;
    distance_ += d;
    confidence_ += top;
  }
  rows_ += valid_q;
}

HeadStatistics HeadAccumulator::result() const {
  HeadStatistics s;
  s.rows = rows_;
  if (rows_ == 0) return s;
  const double n = static_cast<double>(rows_);
  s.entropy = entropy_ / n;
  s.distance = distance_ / n;
  s.confidence = confidence_ / n;
  return s;
}

double js_divergence(const float* p, const float* q, std::int64_t n) {
  double js = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    const double a = p[j], b = q[j], m = 0.5 * (a + b);
    if (a > 0) js += 0.5 * a * std::log(a / m);
    if (b > 0) js += 0.5 * b * std::log(b / m);
  }
  return std::max(js, 0.0);  // rounding can leave -1e-17
}

}  // namespace rune::cli
