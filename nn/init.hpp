// Parameter initialisation with torch.nn.init's names and formulas, drawing from a Generator so
// that a seed fixes a model. Each fills `t` in place (no gradient recorded) and returns it.
//
// fan_in / fan_out of a weight (out, in, *kernel) are in * prod(kernel) and out * prod(kernel).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace rune::nn::init {

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, relu, leaky_relu, tanh, sigmoid };

std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const Tensor& t);
// torch.nn.init.calculate_gain; `param` is leaky_relu's negative slope.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

Tensor& uniform_(Tensor& t, double low, double high, Generator& gen = default_generator());
Tensor& normal_(Tensor& t, double mean, double std, Generator& gen = default_generator());
// Normal values redrawn until they fall in [a, b] (absolute bounds, as torch's trunc_normal_).
Tensor& trunc_normal_(Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0,
                      Generator& gen = default_generator());
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
// U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator& gen = default_generator());
Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator& gen = default_generator());
// U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan). Linear's default is a = sqrt(5), leaky_relu.
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                         Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator());
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator());

}  // namespace rune::nn::init
