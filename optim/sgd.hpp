// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, as torch.optim.SGD:
//   g = grad + wd * p;  buf = g (first step) or momentum * buf + (1 - dampening) * g
//   d = nesterov ? g + momentum * buf : buf (or g without momentum);  p -= lr * d
#pragma once

#include <memory>

#include "optim/optimizer.hpp"

namespace rune::optim {

struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options = {});
  std::string name() const override { return "SGD"; }
  const SGDOptions options;

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, std::vector<Tensor>& slots,
              std::int64_t step) override;
  std::vector<std::string> slot_names() const override;
  bool updates_elementwise() const override { return true; }
};

class OptimizerSettings;
// Registry factory (optim/registry.hpp): train.momentum (0.9), train.nesterov (false).
std::unique_ptr<Optimizer> make_sgd(std::vector<ParamGroup> groups, OptimizerSettings& settings);

}  // namespace rune::optim
