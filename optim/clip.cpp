#include "optim/clip.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/kernels.hpp"
#include "autograd/tape.hpp"

namespace rune::optim {

namespace {
template <class T>
double sum_squares(const T* g, std::int64_t n) {
  // the same bits on any number of threads
  return detail::fixed_order_sum(n,
                                 [g](std::int64_t i) { return static_cast<double>(g[i]) * static_cast<double>(g[i]); });
}
}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite) {
  if (!(max_norm > 0)) throw std::invalid_argument("clip_grad_norm_: max_norm must be positive");
  double total_sq = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const Tensor c = g.contiguous();
    total_sq += c.dtype() == DType::float32 ? sum_squares(c.data<float>(), c.numel())
                                            : sum_squares(c.data<double>(), c.numel());
  }
  const double total = std::sqrt(total_sq);
  if (!std::isfinite(total)) {
    if (error_if_nonfinite)
      throw std::runtime_error("clip_grad_norm_: the total gradient norm is " + std::to_string(total));
    return total;
  }
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    NoGradGuard no_grad;
    for (const Tensor& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
  }
  return total;
}

}  // namespace rune::optim
