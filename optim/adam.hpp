// Adam and AdamW, as torch.optim.Adam and AdamW (single-tensor path, PyTorch 1.13):
//   Adam adds L2 decay to the gradient: g = grad + wd * p; AdamW decays the weight itself,
//   decoupled from the moments: p *= 1 - lr * wd. Then, at the parameter's t-th update,
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  (amsgrad: vmax = max(vmax, v), used for v)
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once

#include <memory>

#include "optim/optimizer.hpp"

namespace rune::optim {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool amsgrad = false;
  bool decoupled_weight_decay = false;  // true: AdamW
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {});
  std::string name() const override { return options.decoupled_weight_decay ? "AdamW" : "Adam"; }
  const AdamOptions options;

 protected:
  void update(const ParamGroup& group, Tensor& param, const Tensor& grad, std::vector<Tensor>& slots,
              std::int64_t step) override;
  std::vector<std::string> slot_names() const override;
  bool updates_elementwise() const override { return true; }
};

// AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, 2019).
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamOptions opts = {})
      : Adam(std::move(groups), (opts.decoupled_weight_decay = true, opts)) {}
};

class OptimizerSettings;
// Registry factories (optim/registry.hpp): train.beta1 (0.9), train.beta2 (0.98), train.eps (1e-9);
// the betas of the Transformer recipe (Vaswani et al.), not torch's (0.9, 0.999, 1e-8).
std::unique_ptr<Optimizer> make_adam(std::vector<ParamGroup> groups, OptimizerSettings& settings);
std::unique_ptr<Optimizer> make_adamw(std::vector<ParamGroup> groups, OptimizerSettings& settings);

}  // namespace rune::optim
