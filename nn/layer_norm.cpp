#include "nn/layer_norm.hpp"

#include <sstream>

#include "autograd/ops.hpp"

namespace rune::nn {

LayerNorm::LayerNorm(std::int64_t n, double eps_, bool elementwise_affine) : normalized_shape(n), eps(eps_) {
  if (n <= 0) throw std::invalid_argument("LayerNorm: normalized_shape must be positive");
  if (!(eps_ > 0)) throw std::invalid_argument("LayerNorm: eps must be positive");
  if (elementwise_affine) {
    weight = register_parameter("weight", ones({n}));
    bias = register_parameter("bias", zeros({n}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) {
    if (in.dim() == 0 || in.size(-1) != normalized_shape)
      throw std::invalid_argument("LayerNorm: input " + shape_str(in.shape()) + " must end in normalized_shape " +
                                  std::to_string(normalized_shape));
    return layer_norm(in, {normalized_shape}, weight, bias, eps);
  });
}

std::string LayerNorm::repr() const {
  std::ostringstream os;
  os << "LayerNorm(" << normalized_shape << ", eps=" << eps
     << ", elementwise_affine=" << (weight.defined() ? "true" : "false") << ")";
  return os.str();
}

}  // namespace rune::nn
