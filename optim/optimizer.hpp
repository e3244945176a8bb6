// Optimizers update named parameters from their gradients. They see only tensors and names
// (never modules): build them from module.named_parameters().
//
// Parameter groups carry their own learning rate and weight decay, as torch.optim's do; the
// usual split keeps biases, norms, embeddings and position embeddings out of weight decay, by
// name pattern (param_groups_by_weight_decay). A schedule sets every group's lr from its
// base_lr each step (set_lr_factor). State (moments, step count) is exposed by parameter name,
// so a checkpoint stores it beside the parameters and a resume restores it exactly.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ParamGroup {
  std::string name;  // for logs and checkpoints: "decay", "no_decay", ...
  NamedTensors params;
  double lr = 1e-3;       // the current learning rate (a schedule changes it)
  double base_lr = 1e-3;  // the schedule's reference; set_lr_factor(f) sets lr = f * base_lr
  double weight_decay = 0.0;
};

// True when `name` matches the glob `pattern` ('*' matches any run of characters, including
// dots): "*.bias", "*norm*", "pos_embed".
bool glob_match(const std::string& pattern, const std::string& name);

// Two groups of `params`: "decay" with weight_decay and "no_decay" with 0 for every name matching
// one of `no_decay_patterns`. Both start at lr. Empty groups are dropped.
std::vector<ParamGroup> param_groups_by_weight_decay(const NamedTensors& params, double lr, double weight_decay,
                                                     const std::vector<std::string>& no_decay_patterns);

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient (others are skipped, as in torch).
  void step();
  void zero_grad(bool set_to_none = true);
  void set_lr_factor(double factor);  // lr = factor * base_lr in every group
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  std::int64_t steps() const { return steps_; }  // step() calls so far
  virtual std::string name() const = 0;

  // The per-parameter state, named "<param>/<slot>" (e.g. "encoder.norm.weight/exp_avg") with
  // "<param>/step" (int64, 0-d: the updates this parameter received, which its bias correction
  // uses, as torch keeps them), and the number of step() calls, for checkpoints. load_state
  // takes the same; it is strict: a missing, unexpected or mis-shaped entry throws naming it,
  // and nothing is changed.
  NamedTensors state() const;
  void load_state(const NamedTensors& state, std::int64_t steps);

 protected:
  // Updates one parameter for its `step`-th update (1 first); `slots` are its state tensors in
  // slot_names() order (zeros at first). grad is contiguous, in the parameter's dtype.
  virtual void update(const ParamGroup& group, Tensor& param, const Tensor& grad, std::vector<Tensor>& slots,
                      std::int64_t step) = 0;
  virtual std::vector<std::string> slot_names() const = 0;
  // True when update() treats each element on its own (SGD, Adam): step() may then call it on
  // pieces of a parameter, and on several pieces at once. An update that needs a whole tensor
  // (a norm, a factored second moment) keeps the default.
  virtual bool updates_elementwise() const { return false; }
  std::int64_t steps_ = 0;

 private:
  struct ParamState {
    std::string name;
    std::int64_t step = 0;
    std::vector<Tensor> slots;
  };
  ParamState& state_for(const std::string& name, const Tensor& param);
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // in the order parameters were first updated
};

}  // namespace rune::optim
