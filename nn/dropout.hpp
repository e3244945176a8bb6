// Dropout and the activations as modules: Dropout (active in training mode only), GELU, ReLU.
#pragma once

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace rune::nn {

class Dropout : public Module {
 public:
  // Draws from `gen` (the default generator if null), which must outlive the module.
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;
  std::string repr() const override;

  const double p;

 private:
  Generator* gen_;
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximation approx = GeluApproximation::none) : approximate(approx) {}
  Tensor forward(const Tensor& x) const {
    return with_hooks(x, [this](const Tensor& in) { return gelu(in, approximate); });
  }
  std::string repr() const override;
  const GeluApproximation approximate;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) const {
    return with_hooks(x, [](const Tensor& in) { return relu(in); });
  }
  std::string repr() const override { return "ReLU()"; }
};

}  // namespace rune::nn
