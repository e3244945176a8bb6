#include "analysis/head_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

namespace rune::analysis {

std::string pattern_name(Pattern p) {
  switch (p) {
    case Pattern::diagonal:
      return "diagonal";
    case Pattern::offset:
      return "offset";
    case Pattern::vertical:
      return "vertical";
    case Pattern::block:
      return "block";
    case Pattern::heterogeneous:
      return "heterogeneous";
  }
  return "heterogeneous";
}

void HeadAccumulator::add(const float* weights, std::int64_t valid_q, std::int64_t valid_k, std::int64_t row_stride) {
  if (valid_q < 0 || valid_k <= 0 || row_stride < valid_k)
    throw std::invalid_argument("HeadAccumulator: " + std::to_string(valid_q) + " rows of " + std::to_string(valid_k) +
                                " keys with a stride of " + std::to_string(row_stride) + " do not describe a matrix");
  if (valid_q == 0) return;
  columns_.assign(static_cast<std::size_t>(valid_k), 0.0);
  span_lo_.resize(static_cast<std::size_t>(valid_q));
  span_hi_.resize(static_cast<std::size_t>(valid_q));
  span_mass_.resize(static_cast<std::size_t>(valid_q));
  for (std::int64_t i = 0; i < valid_q; ++i) {
    const float* p = weights + i * row_stride;
    double h = 0, d = 0, top = 0, total = 0;
    for (std::int64_t j = 0; j < valid_k; ++j) {
      const double w = p[j];
      if (w > 0) h -= w * std::log(w);  // 0 ln 0 = 0
      d += w * static_cast<double>(std::llabs(i - j));
      top = std::max(top, w);
      total += w;
      columns_[static_cast<std::size_t>(j)] += w;
    }
    entropy_ += h;
    distance_ += d;
    confidence_ += top;
    if (i < valid_k) {
      diagonal_ += p[i];
      ++diagonal_rows_;
    }
    for (int k = -kMaxOffset; k <= kMaxOffset; ++k)
      if (k != 0 && i + k >= 0 && i + k < valid_k) {
        offset_[static_cast<std::size_t>(k + kMaxOffset)] += p[i + k];
        ++offset_rows_[static_cast<std::size_t>(k + kMaxOffset)];
      }
    // the span: from key min(i, Tk - 1), the heavier neighbour first, until 90% of the row
    std::int64_t lo = std::min(i, valid_k - 1), hi = lo;
    double mass = p[lo];
    while (mass < 0.9 * total && (lo > 0 || hi + 1 < valid_k)) {
      const double left = lo > 0 ? p[lo - 1] : -1.0, right = hi + 1 < valid_k ? p[hi + 1] : -1.0;
      if (left >= right)
        mass += p[--lo];
      else
        mass += p[++hi];
    }
    span_lo_[static_cast<std::size_t>(i)] = lo;
    span_hi_[static_cast<std::size_t>(i)] = hi;
    span_mass_[static_cast<std::size_t>(i)] = mass;
  }
  // vertical: the two largest column means, counted once per row of this matrix
  std::partial_sort(columns_.begin(), columns_.begin() + std::min<std::int64_t>(2, valid_k), columns_.end(),
                    std::greater<>());
  const double two = columns_[0] + (valid_k > 1 ? columns_[1] : 0.0);
  vertical_ += two;  // = valid_q * (sum of the two column means)
  // block: a row counts its span's mass if the span is a segment its rows share
  for (std::int64_t i = 0; i < valid_q; ++i) {
    const std::int64_t lo = span_lo_[static_cast<std::size_t>(i)], hi = span_hi_[static_cast<std::size_t>(i)];
    const std::int64_t width = hi - lo + 1;
    if (width < 2 || 2 * width > valid_k) continue;
    bool shared = true;
    for (std::int64_t q = lo; q <= hi && q < valid_q && shared; ++q)
      shared = span_lo_[static_cast<std::size_t>(q)] == lo && span_hi_[static_cast<std::size_t>(q)] == hi;
    if (shared) block_ += span_mass_[static_cast<std::size_t>(i)];
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
  s.diagonal = diagonal_rows_ ? diagonal_ / static_cast<double>(diagonal_rows_) : 0.0;
  for (int k = -kMaxOffset; k <= kMaxOffset; ++k) {
    const auto at = static_cast<std::size_t>(k + kMaxOffset);
    if (k == 0 || offset_rows_[at] == 0) continue;
    const double score = offset_[at] / static_cast<double>(offset_rows_[at]);
    if (score > s.offset) {
      s.offset = score;
      s.best_offset = k;
    }
  }
  s.vertical = vertical_ / n;
  s.block = block_ / n;
  const std::pair<Pattern, double> scores[] = {{Pattern::diagonal, s.diagonal},
                                               {Pattern::offset, s.offset},
                                               {Pattern::vertical, s.vertical},
                                               {Pattern::block, s.block}};
  for (const auto& [pattern, score] : scores)
    if (score > s.pattern_score) {
      s.pattern_score = score;
      s.pattern = pattern;
    }
  if (s.pattern_score < 0.5) s.pattern = Pattern::heterogeneous;
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

RedundancyAccumulator::RedundancyAccumulator(std::int64_t heads)
    : heads_(heads), sums_(static_cast<std::size_t>(heads * heads), 0.0) {
  if (heads < 1) throw std::invalid_argument("RedundancyAccumulator: " + std::to_string(heads) + " heads");
}

void RedundancyAccumulator::add(const float* weights, std::int64_t valid_q, std::int64_t valid_k,
                                std::int64_t row_stride, std::int64_t head_stride) {
  if (valid_q < 0 || valid_k <= 0 || row_stride < valid_k || head_stride < valid_q * row_stride)
    throw std::invalid_argument("RedundancyAccumulator: " + std::to_string(valid_q) + " rows of " +
                                std::to_string(valid_k) + " keys with strides " + std::to_string(row_stride) + " and " +
                                std::to_string(head_stride) + " do not describe one matrix per head");
  if (valid_q == 0) return;
  const std::int64_t H = heads_;
  const auto entropy = [valid_k](const float* p, const float* q) {  // of (p + q) / 2; of p when q is null
    double h = 0;
    for (std::int64_t j = 0; j < valid_k; ++j) {
      const double m = q ? 0.5 * (static_cast<double>(p[j]) + static_cast<double>(q[j])) : static_cast<double>(p[j]);
      if (m > 0) h -= m * std::log(m);
    }
    return h;
  };
  entropy_.resize(static_cast<std::size_t>(H * valid_q));
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t i = 0; i < valid_q; ++i)
      entropy_[static_cast<std::size_t>(h * valid_q + i)] =
          entropy(weights + h * head_stride + i * row_stride, nullptr);
  const std::int64_t pairs = H * (H - 1) / 2;
#pragma omp parallel for schedule(dynamic) if (pairs * valid_q * valid_k > 20000)
  for (std::int64_t n = 0; n < pairs; ++n) {
    std::int64_t a = 0, rest = n;  // the n-th pair (a, b), a < b, in row order
    while (rest >= H - 1 - a) rest -= H - 1 - a++;
    const std::int64_t b = a + 1 + rest;
    double js = 0;
    for (std::int64_t i = 0; i < valid_q; ++i) {
      const double hm = entropy(weights + a * head_stride + i * row_stride, weights + b * head_stride + i * row_stride);
      js += std::max(0.0, hm - 0.5 * (entropy_[static_cast<std::size_t>(a * valid_q + i)] +
                                      entropy_[static_cast<std::size_t>(b * valid_q + i)]));
    }
    sums_[static_cast<std::size_t>(a * H + b)] += js;
  }
  rows_ += valid_q;
}

double RedundancyAccumulator::mean(std::int64_t a, std::int64_t b) const {
  if (a < 0 || b < 0 || a >= heads_ || b >= heads_)
    throw std::out_of_range("RedundancyAccumulator: no head pair (" + std::to_string(a) + ", " + std::to_string(b) +
                            ")");
  if (a == b || rows_ == 0) return 0.0;
  return sums_[static_cast<std::size_t>(std::min(a, b) * heads_ + std::max(a, b))] / static_cast<double>(rows_);
}

}  // namespace rune::analysis
