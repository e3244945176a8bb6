// Head statistics (analysis/head_statistics): entropy, attention distance and confidence on attention matrices
// built by hand with known values, their averaging over rows of several matrices, the pattern
// classifier on matrices of each known pattern, and the Jensen-Shannon divergence.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "analysis/head_statistics.hpp"

namespace rune::analysis {
namespace {

TEST(HeadStatistics, AOneHotDiagonalHasNoEntropyNoDistanceFullConfidence) {
  std::vector<float> a(16, 0.0f);
  for (int i = 0; i < 4; ++i) a[i * 4 + i] = 1.0f;
  HeadAccumulator acc;
  acc.add(a.data(), 4, 4, 4);
  const HeadStatistics s = acc.result();
  EXPECT_EQ(s.rows, 4);
  EXPECT_DOUBLE_EQ(s.entropy, 0.0);
  EXPECT_DOUBLE_EQ(s.distance, 0.0);
  EXPECT_DOUBLE_EQ(s.confidence, 1.0);
}

TEST(HeadStatistics, UniformRowsOverValidKeysOnly) {
  // 3 valid keys of a row stride of 5: the two padding columns hold garbage that must not count
  std::vector<float> a(15, 9.0f);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) a[i * 5 + j] = 1.0f / 3.0f;
  HeadAccumulator acc;
  acc.add(a.data(), 3, 3, 5);
  const HeadStatistics s = acc.result();
  EXPECT_NEAR(s.entropy, std::log(3.0), 1e-6);
  EXPECT_NEAR(s.distance, (1.0 + 2.0 / 3.0 + 1.0) / 3.0, 1e-6);  // rows 0, 1, 2: mean |i - j|
  EXPECT_NEAR(s.confidence, 1.0 / 3.0, 1e-6);
}

TEST(HeadStatistics, RowsOfSeveralMatricesAreAveragedTogether) {
  // a previous-token head on 4 tokens (row 0 attends itself) and a one-row matrix split 50/50
  std::vector<float> prev(16, 0.0f);
  prev[0] = 1.0f;
  for (int i = 1; i < 4; ++i) prev[i * 4 + i - 1] = 1.0f;
  const std::vector<float> half{0.5f, 0.5f};
  HeadAccumulator acc;
  acc.add(prev.data(), 4, 4, 4);
  acc.add(half.data(), 1, 2, 2);
  const HeadStatistics s = acc.result();
  EXPECT_EQ(s.rows, 5);
  EXPECT_NEAR(s.entropy, std::log(2.0) / 5.0, 1e-9);
  EXPECT_NEAR(s.distance, (0.0 + 1 + 1 + 1 + 0.5) / 5.0, 1e-9);
  EXPECT_NEAR(s.confidence, (4.0 + 0.5) / 5.0, 1e-9);
  EXPECT_EQ(HeadAccumulator().result().rows, 0);
  EXPECT_THROW(acc.add(half.data(), 1, 3, 2), std::invalid_argument);
  EXPECT_THROW(acc.add(half.data(), 1, 0, 2), std::invalid_argument);
}

// An n x n attention matrix: weight `peak` spread over the keys where hot(i, j), the rest evenly
// over the other keys; rows sum to 1.
std::vector<float> pattern(int n, double peak, const std::function<bool(int, int)>& hot) {
  std::vector<float> a(static_cast<std::size_t>(n * n));
  for (int i = 0; i < n; ++i) {
    int hits = 0;
    for (int j = 0; j < n; ++j) hits += hot(i, j);
    for (int j = 0; j < n; ++j)
      a[static_cast<std::size_t>(i * n + j)] =
          static_cast<float>(hot(i, j) ? peak / hits : (hits == n ? 0.0 : (1.0 - peak) / (n - hits)));
  }
  return a;
}

HeadStatistics classify(const std::vector<float>& a, int n) {
  HeadAccumulator acc;
  acc.add(a.data(), n, n, n);
  return acc.result();
}

TEST(HeadPatterns, EachHandBuiltPatternIsNamed) {
  const int n = 10;
  HeadStatistics s = classify(pattern(n, 0.9, [](int i, int j) { return i == j; }), n);
  EXPECT_EQ(s.pattern, Pattern::diagonal);
  EXPECT_NEAR(s.diagonal, 0.9, 1e-6);
  EXPECT_NEAR(s.pattern_score, 0.9, 1e-6);

  // previous token (row 0, with no previous token, attends itself)
  s = classify(pattern(n, 0.85, [](int i, int j) { return j == std::max(i - 1, 0); }), n);
  EXPECT_EQ(s.pattern, Pattern::offset);
  EXPECT_EQ(s.best_offset, -1);
  EXPECT_NEAR(s.offset, 0.85, 1e-6);
  s = classify(pattern(n, 0.8, [](int i, int j) { return j == std::min(i + 2, n - 1); }), n);
  EXPECT_EQ(s.pattern, Pattern::offset);
  EXPECT_EQ(s.best_offset, 2);

  // every row on the first key (<bos>, the class token) and some on the last
  s = classify(pattern(n, 0.9, [](int, int j) { return j == 0 || j == n - 1; }), n);
  EXPECT_EQ(s.pattern, Pattern::vertical);
  EXPECT_NEAR(s.vertical, 0.9, 1e-6);

  // segments {0,1,2} {3,4,5,6} {7,8,9}: each row attends within its own
  const auto segment = [](int i) { return i < 3 ? 0 : i < 7 ? 1 : 2; };
  s = classify(pattern(n, 0.96, [&](int i, int j) { return segment(i) == segment(j); }), n);
  EXPECT_EQ(s.pattern, Pattern::block) << s.diagonal << " " << s.offset << " " << s.vertical << " " << s.block;
  EXPECT_GT(s.block, 0.9);

  // uniform attention and a spread-out irregular one are neither
  s = classify(pattern(n, 1.0, [](int, int) { return true; }), n);
  EXPECT_EQ(s.pattern, Pattern::heterogeneous);
  EXPECT_NEAR(s.entropy, std::log(double(n)), 1e-5);
  s = classify(pattern(n, 0.6, [](int i, int j) { return (i * 7 + j * 3) % 5 == 0 || (i + j) % 4 == 1; }), n);
  EXPECT_EQ(s.pattern, Pattern::heterogeneous) << s.diagonal << " " << s.offset << " " << s.vertical << " " << s.block;
  EXPECT_LT(s.pattern_score, 0.5);
  EXPECT_EQ(pattern_name(Pattern::offset), "offset");
}

// The scores of a head are means over the rows of every matrix, as the statistics are: a
// diagonal matrix and a uniform one of the same size average to a diagonal score in between.
TEST(HeadPatterns, ScoresAverageOverMatrices) {
  const int n = 6;
  const std::vector<float> diag = pattern(n, 1.0, [](int i, int j) { return i == j; });
  const std::vector<float> flat = pattern(n, 1.0, [](int, int) { return true; });
  HeadAccumulator acc;
  acc.add(diag.data(), n, n, n);
  acc.add(flat.data(), n, n, n);
  const HeadStatistics s = acc.result();
  EXPECT_NEAR(s.diagonal, (1.0 + 1.0 / n) / 2, 1e-6);
  EXPECT_EQ(s.pattern, Pattern::diagonal);
}

TEST(HeadStatistics, JensenShannonDivergence) {
  const std::vector<float> p{0.7f, 0.2f, 0.1f}, q{0.1f, 0.3f, 0.6f}, a{1, 0, 0}, b{0, 1, 0};
  EXPECT_NEAR(js_divergence(p.data(), p.data(), 3), 0.0, 1e-12);
  EXPECT_NEAR(js_divergence(a.data(), b.data(), 3), std::log(2.0), 1e-12);  // disjoint: the maximum
  EXPECT_NEAR(js_divergence(p.data(), q.data(), 3), js_divergence(q.data(), p.data(), 3), 1e-12);
  // by hand: m = (0.4, 0.25, 0.35)
  const double want = 0.5 * (0.7 * std::log(0.7 / 0.4) + 0.2 * std::log(0.2 / 0.25) + 0.1 * std::log(0.1 / 0.35)) +
                      0.5 * (0.1 * std::log(0.1 / 0.4) + 0.3 * std::log(0.3 / 0.25) + 0.6 * std::log(0.6 / 0.35));
  EXPECT_NEAR(js_divergence(p.data(), q.data(), 3), want, 1e-6);
}

// The accumulator's pair means against js_divergence row by row: three heads of which two are the
// same (divergence 0), over two examples of different valid sizes inside padded buffers.
TEST(HeadRedundancy, PairMeansAreTheRowsJensenShannonDivergences) {
  const std::int64_t H = 3, T = 5;  // buffers (H, T, T), padded
  std::vector<float> w(H * T * T, 0.0f);
  const auto fill = [&](std::int64_t vq, std::int64_t vk, unsigned seed) {
    std::fill(w.begin(), w.end(), 0.0f);
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < vq; ++i) {
        float total = 0;
        for (std::int64_t j = 0; j < vk; ++j) {
          // head 1 copies head 0; head 2 has its own rows
          const std::int64_t src = h == 1 ? 0 : h;
          const float v = 0.05f + static_cast<float>((seed * 7 + src * 13 + i * 5 + j * 3) % 11);
          w[(h * T + i) * T + j] = v;
          total += v;
        }
        for (std::int64_t j = 0; j < vk; ++j) w[(h * T + i) * T + j] /= total;
      }
  };
  RedundancyAccumulator acc(H);
  std::vector<double> want(H * H, 0.0);
  std::int64_t rows = 0;
  for (const auto& [vq, vk, seed] : {std::tuple<std::int64_t, std::int64_t, unsigned>{5, 5, 1}, {3, 4, 2}}) {
    fill(vq, vk, seed);
    acc.add(w.data(), vq, vk, T, T * T);
    for (std::int64_t a = 0; a < H; ++a)
      for (std::int64_t b = 0; b < H; ++b)
        for (std::int64_t i = 0; i < vq; ++i)
          want[a * H + b] += js_divergence(&w[(a * T + i) * T], &w[(b * T + i) * T], vk);
    rows += vq;
  }
  for (std::int64_t a = 0; a < H; ++a)
    for (std::int64_t b = 0; b < H; ++b) EXPECT_NEAR(acc.mean(a, b), want[a * H + b] / rows, 1e-7) << a << " " << b;
  EXPECT_NEAR(acc.mean(0, 1), 0.0, 1e-7);
  EXPECT_GT(acc.mean(0, 2), 0.01);
  EXPECT_THROW(acc.mean(0, 3), std::out_of_range);
  EXPECT_THROW(acc.add(w.data(), 2, 6, 5, 25), std::invalid_argument);  // 6 keys in rows of 5
}

}  // namespace
}  // namespace rune::analysis
