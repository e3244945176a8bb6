// Linear: y = x W^T + b over the last dim, W (out_features, in_features) as in torch.nn.Linear.
#pragma once

#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace rune::nn {

class Linear : public Module {
 public:
  // PyTorch's init: W ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); b likewise.
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) const;  // (..., in) -> (..., out)
  std::string repr() const override;

  const std::int64_t in_features, out_features;
  Tensor weight;  // (out, in)
  Tensor bias;    // (out), undefined without bias
};

}  // namespace rune::nn
