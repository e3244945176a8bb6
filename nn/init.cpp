// torch.nn.init's formulas. Values are drawn in double and rounded to the tensor's dtype.
#include "nn/init.hpp"

#include <cmath>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"

namespace rune::nn::init {
namespace {

// Writes `draw()` into every element of t, in row-major order, without recording grad.
template <class Draw>
Tensor& fill_with(Tensor& t, const char* op, Draw&& draw) {
  if (!t.defined()) throw std::invalid_argument(std::string(op) + ": undefined tensor");
  if (!is_floating(t.dtype())) throw std::invalid_argument(std::string(op) + ": needs a floating tensor");
  std::vector<double> values(static_cast<std::size_t>(t.numel()));
  for (double& v : values) v = draw();
  NoGradGuard no_grad;
  t.copy_(from_vector(values, t.shape()));
  return t;
}

}  // namespace

std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  if (t.dim() < 2)
    throw std::invalid_argument("calculate_fan_in_and_fan_out: a tensor of shape " + shape_str(t.shape()) +
                                " has fewer than 2 dims");
  std::int64_t receptive = 1;
  for (std::int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

Tensor& uniform_(Tensor& t, double low, double high, Generator& gen) {
  if (!(low <= high)) throw std::invalid_argument("uniform_: low must not exceed high");
  return fill_with(t, "uniform_", [&] { return low + (high - low) * gen.uniform(); });
}

Tensor& normal_(Tensor& t, double mean, double std, Generator& gen) {
  if (!(std >= 0)) throw std::invalid_argument("normal_: std must be non-negative");
  return fill_with(t, "normal_", [&] { return mean + std * gen.normal(); });
}

Tensor& trunc_normal_(Tensor& t, double mean, double std, double a, double b, Generator& gen) {
  if (!(a < b) || !(std > 0) || mean + 6 * std < a || mean - 6 * std > b)
    throw std::invalid_argument("trunc_normal_: needs a < b, std > 0 and [a, b] within 6 std of the mean");
  return fill_with(t, "trunc_normal_", [&] {
    for (;;) {
      const double v = mean + std * gen.normal();
      if (v >= a && v <= b) return v;
    }
  });
}

Tensor& constant_(Tensor& t, double value) {
  NoGradGuard no_grad;
  t.fill_(value);
  return t;
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& xavier_uniform_(Tensor& t, double gain, Generator& gen) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return uniform_(t, -a, a, gen);
}

Tensor& xavier_normal_(Tensor& t, double gain, Generator& gen) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

namespace {
double kaiming_std(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double fan = static_cast<double>(mode == FanMode::fan_in ? fan_in : fan_out);
  return calculate_gain(nonlinearity, a) / std::sqrt(fan);
}
}  // namespace

Tensor& kaiming_uniform_(Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator& gen) {
  const double bound = std::sqrt(3.0) * kaiming_std(t, a, mode, nonlinearity);
  return uniform_(t, -bound, bound, gen);
}

Tensor& kaiming_normal_(Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator& gen) {
  return normal_(t, 0.0, kaiming_std(t, a, mode, nonlinearity), gen);
}

}  // namespace rune::nn::init
