// GoogleTest helpers for gradient checks in users' suites (and ours):
//
//   EXPECT_GRADIENTS_OK([](const std::vector<Tensor>& in) { return my_op(in[0], in[1]); },
//                       {x, y});
//   EXPECT_GRADIENTS_OK(fn, {x}, GradcheckOptions{1e-3, 1e-3, 1e-2});  // float32
//
// On failure the message names each input's worst Jacobian entry and both values there.
#pragma once

#include <gtest/gtest.h>

#include "autograd/gradcheck.hpp"

namespace rune::testing {

inline ::testing::AssertionResult gradients_ok(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                                               const GradcheckOptions& options = {}) {
  const GradcheckResult r = gradcheck(f, inputs, options);
  if (r.ok) return ::testing::AssertionSuccess() << r.message();
  return ::testing::AssertionFailure() << "gradient check failed:\n" << r.message();
}

}  // namespace rune::testing

#define EXPECT_GRADIENTS_OK(...) EXPECT_TRUE(::rune::testing::gradients_ok(__VA_ARGS__))
#define ASSERT_GRADIENTS_OK(...) ASSERT_TRUE(::rune::testing::gradients_ok(__VA_ARGS__))
