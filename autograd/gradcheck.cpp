// gradcheck: the analytic Jacobian, row by row from backward(), against central differences.
#include "autograd/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"

namespace rune {
namespace {

// Element offset (from the tensor's data pointer) of flat logical index k.
std::int64_t element_offset(const Tensor& t, std::int64_t k) {
  std::int64_t off = 0;
  for (std::int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (k % t.size(d)) * t.stride(d);
    k /= t.size(d);
  }
  return off;
}

double get(const Tensor& t, std::int64_t off) {
  return t.dtype() == DType::float64 ? t.data<double>()[off] : t.data<float>()[off];
}

void put(const Tensor& t, std::int64_t off, double v) {
  if (t.dtype() == DType::float64)
    t.data<double>()[off] = v;
  else
    t.data<float>()[off] = static_cast<float>(v);
}

std::vector<double> as_doubles(const Tensor& t) { return to_dtype(t.detach(), DType::float64).to_vector<double>(); }

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt) {
  GradcheckResult result;
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    GradcheckInputReport rep;
    rep.input = i;
    rep.checked = x.defined() && x.requires_grad();
    if (rep.checked) {
      if (!x.is_leaf()) throw std::invalid_argument("gradcheck: input " + std::to_string(i) + " is not a leaf");
      for (std::int64_t d = 0; d < x.dim(); ++d)
        if (x.stride(d) == 0 && x.size(d) > 1)
          throw std::invalid_argument("gradcheck: input " + std::to_string(i) +
                                      " is an expanded view (stride 0); pass a contiguous copy");
      checked.push_back(i);
    }
    result.inputs.push_back(rep);
  }
  if (checked.empty()) throw std::invalid_argument("gradcheck: no input requires grad");

  // Analytic: one backward per output element, seeded with a one-hot gradient.
  const Tensor y = f(inputs);
  if (!is_floating(y.dtype())) throw std::invalid_argument("gradcheck: f must return a floating tensor");
  const std::int64_t m = y.numel();
  std::vector<std::vector<double>> analytic(inputs.size());  // [input][out * n_in + in]
  for (std::size_t i : checked) analytic[i].assign(static_cast<std::size_t>(m * inputs[i].numel()), 0.0);
  if (y.requires_grad()) {
    for (std::int64_t j = 0; j < m; ++j) {
      for (std::size_t i : checked) inputs[i].impl()->meta->grad.reset();
      Tensor seed = zeros(y.shape(), y.dtype());
      put(seed, j, 1.0);
      y.backward(seed, /*retain_graph=*/j + 1 < m);
      for (std::size_t i : checked) {
        const Tensor g = inputs[i].grad();
        if (!g.defined()) continue;  // the output does not depend on this input
        const std::vector<double> gv = as_doubles(g);
        std::copy(gv.begin(), gv.end(), analytic[i].begin() + j * inputs[i].numel());
      }
    }
    for (std::size_t i : checked) inputs[i].impl()->meta->grad.reset();
  }

  // Numeric: central differences, one input element at a time, without recording.
  NoGradGuard no_grad;
  for (std::size_t i : checked) {
    const Tensor& x = inputs[i];
    GradcheckInputReport& rep = result.inputs[i];
    const std::int64_t n = x.numel();
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t off = element_offset(x, k);
      const double orig = get(x, off);
      put(x, off, orig + opt.eps);
      const std::vector<double> plus = as_doubles(f(inputs));
      put(x, off, orig - opt.eps);
      const std::vector<double> minus = as_doubles(f(inputs));
      put(x, off, orig);
      for (std::int64_t j = 0; j < m; ++j) {
        const double num = (plus[j] - minus[j]) / (2.0 * opt.eps);
        const double ana = analytic[i][j * n + k];
        const double err = std::abs(ana - num);
        const double rel = err / std::max(std::abs(num), opt.atol);
        const bool bad = !(err <= opt.atol + opt.rtol * std::abs(num));  // NaN fails too
        rep.failures += bad;
        if (err > rep.max_abs_error || std::isnan(err) || rep.worst_input_element < 0) {
          if (!(std::isnan(rep.max_abs_error))) {
            rep.max_abs_error = err;
            rep.worst_input_element = k;
            rep.worst_output_element = j;
            rep.analytic = ana;
            rep.numeric = num;
          }
        }
        rep.max_rel_error = std::max(rep.max_rel_error, rel);
      }
    }
    if (rep.failures > 0) result.ok = false;
  }
  return result;
}

std::string GradcheckResult::message() const {
  std::ostringstream os;
  os.precision(4);
  for (const auto& r : inputs) {
    if (!r.checked) continue;
    os << "input " << r.input << ": max abs error " << r.max_abs_error << ", max rel error " << r.max_rel_error;
    if (r.failures > 0)
      os << "; " << r.failures << " Jacobian entries out of tolerance, worst at input element " << r.worst_input_element
         << " / output element " << r.worst_output_element << " (analytic " << r.analytic << ", numeric " << r.numeric
         << ")";
    os << '\n';
  }
  return os.str();
}

}  // namespace rune
