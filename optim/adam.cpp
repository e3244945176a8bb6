#include "optim/adam.hpp"

#include "optim/registry.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

namespace rune::optim {

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o) : Optimizer(std::move(groups)), options(o) {
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
    throw std::invalid_argument(name() + ": betas must be in [0, 1)");
  if (!(o.eps >= 0)) throw std::invalid_argument(name() + ": eps must be non-negative");
}

std::vector<std::string> Adam::slot_names() const {
  if (options.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

namespace {
// The arithmetic in torch's order, in T, so that float32 trajectories agree to rounding. The
// flags are template arguments and the loop is `omp simd`, so that it vectorises (sqrt and the
// divisions included: with -fno-math-errno, IEEE-exact like the scalar instructions). The `if`
// names `parallel`: a bare `if` would also turn the simd off for small parameters.
template <class T, bool kDecoupled, bool kAmsgrad>
void adam_loop(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, T step_size, T c2, T eps, T b1, T b2, T a1, T a2,
               T decay, T wd) {
#pragma omp parallel for simd if (parallel : n > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    if constexpr (kDecoupled)
      p[i] *= decay;  // AdamW: p *= 1 - lr wd
    else
      gi += wd * p[i];  // Adam: L2 in the gradient (wd may be 0)
    m[i] = m[i] * b1 + a1 * gi;
    v[i] = v[i] * b2 + a2 * gi * gi;
    T second = v[i];
    if constexpr (kAmsgrad) second = vmax[i] = std::max(vmax[i], v[i]);
    p[i] -= step_size * (m[i] / (std::sqrt(second) / c2 + eps));
  }
}

template <class T>
void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, double lr, double wd, bool decoupled, double b1,
                 double b2, double eps, std::int64_t step) {
  const double bc1 = 1 - std::pow(b1, static_cast<double>(step));
  const double bc2_sqrt = std::sqrt(1 - std::pow(b2, static_cast<double>(step)));
  const T step_size = static_cast<T>(lr / bc1), c2 = static_cast<T>(bc2_sqrt), eps_ = static_cast<T>(eps);
  const T b1_ = static_cast<T>(b1), b2_ = static_cast<T>(b2), a1 = static_cast<T>(1 - b1), a2 = static_cast<T>(1 - b2);
  const T decay = static_cast<T>(1 - lr * wd), wd_ = static_cast<T>(wd);
  const auto run = [&](auto decoupled_tag, auto amsgrad_tag) {
    adam_loop<T, decltype(decoupled_tag)::value, decltype(amsgrad_tag)::value>(p, g, m, v, vmax, n, step_size, c2, eps_,
                                                                               b1_, b2_, a1, a2, decay, wd_);
  };
  using Yes = std::true_type;
  using No = std::false_type;
  if (decoupled)
    vmax ? run(Yes{}, Yes{}) : run(Yes{}, No{});
  else
    vmax ? run(No{}, Yes{}) : run(No{}, No{});
}
}  // namespace

void Adam::update(const ParamGroup& group, Tensor& param, const Tensor& grad, std::vector<Tensor>& slots,
                  std::int64_t step) {
  const auto run = [&](auto tag) {
    using T = decltype(tag);
    adam_kernel<T>(param.data<T>(), grad.data<T>(), slots[0].data<T>(), slots[1].data<T>(),
                   options.amsgrad ? slots[2].data<T>() : nullptr, param.numel(), group.lr, group.weight_decay,
                   options.decoupled_weight_decay, options.beta1, options.beta2, options.eps, step);
  };
  if (param.dtype() == DType::float32)
    run(float{});
  else
    run(double{});
}

namespace {
AdamOptions read_adam(OptimizerSettings& s, bool decoupled) {
  AdamOptions a;
  a.beta1 = s.number("beta1", 0.9, 0.0, 1.0, true, "decay rate of Adam's running mean of the gradient");
  a.beta2 = s.number("beta2", 0.98, 0.0, 1.0, true, "decay rate of Adam's running mean of the squared gradient");
  a.eps = s.number("eps", 1e-9, 0.0, std::numeric_limits<double>::infinity(), false,
                   "added to the square root of Adam's second moment in the update's denominator");
  a.decoupled_weight_decay = decoupled;
  return a;
}
}  // namespace

std::unique_ptr<Optimizer> make_adam(std::vector<ParamGroup> groups, OptimizerSettings& settings) {
  return std::make_unique<Adam>(std::move(groups), read_adam(settings, false));
}

std::unique_ptr<Optimizer> make_adamw(std::vector<ParamGroup> groups, OptimizerSettings& settings) {
  return std::make_unique<Adam>(std::move(groups), read_adam(settings, true));
}

}  // namespace rune::optim
