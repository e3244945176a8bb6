// Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <vector>

#include "autograd/tensor.hpp"

namespace rune::optim {

// total = sqrt(sum over parameters of sum(grad^2)) (parameters without a gradient are skipped);
// when total > max_norm every gradient is scaled by max_norm / (total + 1e-6). Returns total,
// computed in double. A non-finite total leaves the gradients as they are (a NaN step is the
// caller's to refuse); with error_if_nonfinite it throws instead.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite = false);

}  // namespace rune::optim
