// rope: against the Hugging Face formula written as a plain loop (reference::rope), and the
// properties that make it a position embedding: a rotation (norms kept), scores that depend on
// the distance between positions only, an offset equal to the same positions of a longer
// sequence (what a cached decoder relies on), features past rotary_dim untouched. Its gradient is
// in tests/test_gradcheck.cpp; PyTorch parity in tests/parity/.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/reference.hpp"

namespace rune {
namespace {

std::vector<double> values(const Tensor& t) { return to_dtype(t.detach(), DType::float64).to_vector<double>(); }

double max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = values(a), vb = values(b);
  EXPECT_EQ(va.size(), vb.size());
  double worst = 0;
  for (std::size_t i = 0; i < va.size() && i < vb.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst;
}

TEST(Rope, MatchesTheReferenceFormulaInFloat32AndFloat64) {
  Generator g(1);
  for (const DType dt : {DType::float32, DType::float64})
    for (const auto& [offset, base, rotary] : std::vector<std::tuple<std::int64_t, double, std::int64_t>>{
             {0, 10000.0, 0}, {37, 10000.0, 0}, {5, 500000.0, 8}, {1000, 10.0, 4}}) {
      const Tensor x = randn({2, 3, 9, 12}, g, dt);
      const double tol = dt == DType::float32 ? 2e-5 : 1e-12;
      EXPECT_LT(max_diff(rope(x, offset, base, rotary), reference::rope(x, offset, base, rotary)), tol)
          << dtype_name(dt) << " offset " << offset << " base " << base << " rotary_dim " << rotary;
    }
}

TEST(Rope, IsARotationWhoseScoresDependOnTheDistanceOnly) {
  Generator g(2);
  const std::int64_t D = 16;
  const Tensor q = randn({1, 1, 1, D}, g, DType::float64), k = randn({1, 1, 1, D}, g, DType::float64);
  const auto dot_at = [&](std::int64_t m, std::int64_t n) {
    const std::vector<double> a = values(rope(q, m)), b = values(rope(k, n));
    double s = 0;
    for (std::int64_t i = 0; i < D; ++i) s += a[i] * b[i];
    return s;
  };
  EXPECT_NEAR(dot_at(3, 1), dot_at(102, 100), 1e-9);
  EXPECT_NEAR(dot_at(0, 7), dot_at(50, 57), 1e-9);
  EXPECT_GT(std::abs(dot_at(3, 1) - dot_at(9, 1)), 1e-3) << "another distance, another score";
  const std::vector<double> x = values(q), y = values(rope(q, 12345));
  double nx = 0, ny = 0;
  for (std::int64_t i = 0; i < D; ++i) {
    nx += x[i] * x[i];
    ny += y[i] * y[i];
  }
  EXPECT_NEAR(nx, ny, 1e-9);
}

TEST(Rope, AnOffsetGivesTheSamePositionsOfALongerSequence) {
  Generator g(3);
  const Tensor full = randn({2, 4, 10, 8}, g);
  const Tensor whole = rope(full, 0, 10000.0, 6);
  const Tensor tail = rope(full.slice(2, 7, 10).contiguous(), 7, 10000.0, 6);
  EXPECT_EQ(max_diff(tail, whole.slice(2, 7, 10)), 0.0) << "the same angles, the same rounding";
  // features past rotary_dim pass through
  EXPECT_EQ(max_diff(whole.slice(3, 6, 8), full.slice(3, 6, 8)), 0.0);
  // position 0 is the identity
  EXPECT_EQ(max_diff(whole.slice(2, 0, 1), full.slice(2, 0, 1)), 0.0);
}

TEST(Rope, RejectsWhatItCannotRotate) {
  const Tensor x = zeros({1, 2, 3, 6});
  EXPECT_THROW(rope(zeros({2, 3, 6})), std::invalid_argument);  // not (B, H, T, D)
  EXPECT_THROW(rope(x, 0, 10000.0, 5), std::invalid_argument);  // odd
  EXPECT_THROW(rope(x, 0, 10000.0, 8), std::invalid_argument);  // wider than D
  EXPECT_THROW(rope(x, -1), std::invalid_argument);
  EXPECT_THROW(rope(x, 0, 1.0), std::invalid_argument);
  EXPECT_THROW(rope(zeros({1, 2, 3, 6}, DType::int64)), std::invalid_argument);
}

}  // namespace
}  // namespace rune
