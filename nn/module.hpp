// The module base: a named tree of parameters and submodules, as torch.nn.Module.
//
// A module registers its parameters and children in its constructor; named_parameters() walks
// the tree in registration order and joins names with dots ("encoder.layers.0.self_attn.
// in_proj_weight"). Those names are PyTorch's exactly, so they are also the checkpoint format
// and a state_dict from PyTorch loads by name (load_state_dict). Modules are non-copyable and
// held by shared_ptr; a parameter is a Tensor handle shared between the member and the registry,
// so updating it in place (an optimizer step, a load) is seen through both.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found: names the module has and the state lacks, names the state has and
// the module lacks, and names present in both with different shapes ("name: [a, b] vs [c, d]").
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string message() const;  // one line per problem, empty when ok()
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The class name with its options, e.g. "Linear(in_features=16, out_features=12, bias=true)".
  virtual std::string repr() const = 0;

  NamedTensors named_parameters() const;  // dotted paths, registration order, depth first
  std::vector<Tensor> parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module ("") and every descendant with its dotted path, depth first.
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  // The parameter at a dotted path; throws std::out_of_range naming the path.
  Tensor parameter(const std::string& path) const;

  // Training mode (dropout active) for this module and all its descendants.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Resets every parameter's gradient: dropped (set_to_none, PyTorch's default, so the next
  // backward writes it afresh) or filled with zeros in place.
  void zero_grad(bool set_to_none = true);
  std::int64_t num_parameters() const;   // total element count
  // A table: one row per parameter (name, shape, count) and the total.
  std::string summary() const;

  // Copies values into the parameters of the same names (no grad recorded), converting dtype.
  // Strict: any missing, unexpected or mis-shaped name throws std::invalid_argument listing every
  // problem, and nothing is copied. Non-strict: copies what matches and returns the rest.
  LoadReport load_state_dict(const NamedTensors& state, bool strict = true);

 protected:
  // Registers t (made a leaf that requires grad) under `name`; returns it for the member.
  Tensor register_parameter(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_name(name);
    if (!module) throw std::invalid_argument("register_module: '" + name + "' is null");
    children_.emplace_back(name, module);
    return module;
  }

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, NamedTensors& out) const;

  NamedTensors params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An indexable list of modules named "0", "1", ... (torch.nn.ModuleList).
template <class M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> m) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(m)));
  }
  M& operator[](std::size_t i) const { return *items_.at(i); }
  std::size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  std::string repr() const override { return "ModuleList(" + std::to_string(items_.size()) + ")"; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace rune::nn
