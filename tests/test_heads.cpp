// Head statistics (cli/heads): entropy, attention distance and confidence on attention matrices
// built by hand with known values, their averaging over rows of several matrices, and the
// Jensen-Shannon divergence.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "cli/heads.hpp"

namespace rune::cli {
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

}  // namespace
}  // namespace rune::cli
