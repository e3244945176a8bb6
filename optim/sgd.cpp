#include "optim/sgd.hpp"

#include "optim/registry.hpp"

#include <omp.h>

#include <stdexcept>

namespace rune::optim {

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o) : Optimizer(std::move(groups)), options(o) {
  if (!(o.momentum >= 0)) throw std::invalid_argument("SGD: momentum must be non-negative");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    throw std::invalid_argument("SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

std::vector<std::string> SGD::slot_names() const {
  return options.momentum != 0 ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{};
}

namespace {
template <class T>
void sgd_kernel(T* p, const T* g, T* buf, std::int64_t n, double lr, double wd, double momentum, double dampening,
                bool nesterov, bool first) {
  const T lr_ = static_cast<T>(lr), wd_ = static_cast<T>(wd), mom = static_cast<T>(momentum),
          keep = static_cast<T>(1 - dampening);
#pragma omp parallel for if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd_ != T(0)) d += wd_ * p[i];
    if (buf) {
      buf[i] = first ? d : mom * buf[i] + keep * d;
      d = nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] -= lr_ * d;
  }
}
}  // namespace

void SGD::update(const ParamGroup& group, Tensor& param, const Tensor& grad, std::vector<Tensor>& slots,
                 std::int64_t step) {
  const bool first = step == 1;
  if (param.dtype() == DType::float32)
    sgd_kernel<float>(param.data<float>(), grad.data<float>(), slots.empty() ? nullptr : slots[0].data<float>(),
                      param.numel(), group.lr, group.weight_decay, options.momentum, options.dampening,
                      options.nesterov, first);
  else
    sgd_kernel<double>(param.data<double>(), grad.data<double>(), slots.empty() ? nullptr : slots[0].data<double>(),
                       param.numel(), group.lr, group.weight_decay, options.momentum, options.dampening,
                       options.nesterov, first);
}

std::unique_ptr<Optimizer> make_sgd(std::vector<ParamGroup> groups, OptimizerSettings& settings) {
  SGDOptions o;
  o.momentum =
      settings.number("momentum", 0.9, 0.0, 1.0, true, "SGD's momentum: the decay of its velocity (0: plain SGD)");
  o.nesterov = settings.boolean("nesterov", false, "Nesterov's momentum: the step looks ahead along the velocity");
  return std::make_unique<SGD>(std::move(groups), o);
}

}  // namespace rune::optim
