#include "nn/dropout.hpp"

#include <sstream>

namespace rune::nn {

Dropout::Dropout(double p_, Generator* gen) : p(p_), gen_(gen) {
  if (!(p_ >= 0.0 && p_ <= 1.0)) throw std::invalid_argument("Dropout: p must be in [0, 1]");
}

Tensor Dropout::forward(const Tensor& x) const {
  return with_hooks(
      x, [this](const Tensor& in) { return dropout(in, p, is_training(), gen_ ? *gen_ : default_generator()); });
}

std::string Dropout::repr() const {
  std::ostringstream os;
  os << "Dropout(p=" << p << ")";
  return os.str();
}

std::string GELU::repr() const {
  return approximate == GeluApproximation::tanh ? "GELU(approximate='tanh')" : "GELU()";
}

}  // namespace rune::nn
