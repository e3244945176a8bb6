// Optimizers by name, as a config names them (train.optimizer = "adamw").
//
// An optimizer reads its own settings (betas, momentum ...) through OptimizerSettings, which the
// caller backs with its config (train/ maps a key "beta1" to "train.beta1"); optim/ never sees the
// config itself. Adding an optimizer: its file in optim/ with a factory, and one line in the list
// in registry.cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.hpp"

namespace rune::optim {

// Typed settings by key, each read with its default, valid range and a one-line description
// (the caller reports a bad value by key, with the file and line it came from, and lists the
// settings with their descriptions: `rune config`).
class OptimizerSettings {
 public:
  virtual ~OptimizerSettings() = default;
  // A number in [min, max] ([min, max) with max_open).
  virtual double number(const std::string& key, double fallback, double min, double max, bool max_open,
                        const std::string& description) = 0;
  virtual bool boolean(const std::string& key, bool fallback, const std::string& description) = 0;
};

using OptimizerFactory = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>, OptimizerSettings&)>;

struct OptimizerInfo {
  std::string name;         // the config's name: "adamw"
  std::string description;  // one line
  OptimizerFactory make;
};

// Every optimizer, in the list's order.
const std::vector<OptimizerInfo>& optimizers();
std::vector<std::string> optimizer_names();
// Throws std::invalid_argument listing the names when `name` is not one.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          OptimizerSettings& settings);

}  // namespace rune::optim
