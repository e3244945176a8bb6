#include "optim/registry.hpp"

#include <stdexcept>

#include "optim/adam.hpp"
#include "optim/sgd.hpp"

namespace rune::optim {

const std::vector<OptimizerInfo>& optimizers() {
  static const std::vector<OptimizerInfo> list{
      {"adamw", "Adam with decoupled weight decay (Loshchilov and Hutter, 2019)", make_adamw},
      {"adam", "Adam (Kingma and Ba, 2015), weight decay added to the gradient", make_adam},
      {"sgd", "stochastic gradient descent with momentum, optionally Nesterov's", make_sgd},
  };
  return list;
}

std::vector<std::string> optimizer_names() {
  std::vector<std::string> names;
  for (const OptimizerInfo& o : optimizers()) names.push_back(o.name);
  return names;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          OptimizerSettings& settings) {
  std::string known;
  for (const OptimizerInfo& o : optimizers()) {
    if (o.name == name) return o.make(std::move(groups), settings);
    known += (known.empty() ? "" : ", ") + o.name;
  }
  throw std::invalid_argument("no optimizer named '" + name + "' (known: " + known + ")");
}

}  // namespace rune::optim
