// Finite-difference gradient checking, for our tests and for users' own ops and modules.
//
// gradcheck(f, inputs) compares the full Jacobian of f computed by backward() (one backward per
// output element) with central differences (f(x + eps) - f(x - eps)) / 2 eps, for every input
// that requires grad. An element passes when |analytic - numeric| <= atol + rtol * |numeric|,
// as torch.autograd.gradcheck does. Run it in float64 where the op allows (the defaults are
// for float64); float32 needs eps ~1e-3 and tolerances ~1e-2.
//
// f must be deterministic (reseed any generator inside it). Inputs are leaves; non-floating
// inputs (indices, masks) are passed through untouched. Inputs may be non-contiguous views
// (a transposed leaf), but not expanded ones (two elements sharing one memory cell).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune {

struct GradcheckOptions {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // absolute tolerance
  double rtol = 1e-3;  // relative tolerance
};

struct GradcheckInputReport {
  std::size_t input = 0;
  bool checked = false;                    // false for inputs that do not require grad
  double max_abs_error = 0.0;              // max over the Jacobian of |analytic - numeric|
  double max_rel_error = 0.0;              // max of |analytic - numeric| / max(|numeric|, atol)
  std::int64_t worst_input_element = -1;   // flat (row-major) index into the input
  std::int64_t worst_output_element = -1;  // flat index into the output
  double analytic = 0.0, numeric = 0.0;    // the Jacobian entries at the worst place
  std::int64_t failures = 0;               // entries outside tolerance
};

struct GradcheckResult {
  bool ok = true;
  std::vector<GradcheckInputReport> inputs;
  std::string message() const;  // one line per checked input, saying where the worst error is
};

using GradcheckFn = std::function<Tensor(const std::vector<Tensor>&)>;

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace rune
