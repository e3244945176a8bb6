// Small helpers the test files share: a tensor's values as float64, and the largest absolute
// element or difference (computed in float64 from both sides).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/ops.hpp"

namespace rune {

inline std::vector<double> values(const Tensor& t) {
  const Tensor c = to_dtype(t.detach(), DType::float64).contiguous();
  return std::vector<double>(c.data<double>(), c.data<double>() + c.numel());
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : values(t)) m = std::max(m, std::abs(v));
  return m;
}

// Fails the calling test (not just the comparison) when the shapes differ.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  return max_abs(to_dtype(a.detach(), DType::float64) - to_dtype(b.detach(), DType::float64));
}

}  // namespace rune
