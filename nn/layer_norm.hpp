// LayerNorm over the last dim (torch.nn.LayerNorm with a 1-D normalized_shape): biased variance,
// eps inside the square root, weight ones and bias zeros at init.
#pragma once

#include "nn/module.hpp"

namespace rune::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) const;  // (..., C) -> (..., C)
  std::string repr() const override;

  const std::int64_t normalized_shape;
  const double eps;
  Tensor weight, bias;  // (C) each, undefined without elementwise_affine
};

}  // namespace rune::nn
