#include "nn/conv.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "nn/init.hpp"

namespace rune::nn {

namespace {
std::string pair(const std::array<std::int64_t, 2>& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
}
// The stride a pool takes: the kernel's when none is given.
std::string stride_of(const Pool2dOptions& o) {
  return pair(o.stride[0] == 0 && o.stride[1] == 0 ? o.kernel_size : o.stride);
}
}  // namespace

Conv2d::Conv2d(std::int64_t in, std::int64_t out, std::array<std::int64_t, 2> kernel, const rune::Conv2dOptions& o,
               bool with_bias, Generator& gen)
    : in_channels(in), out_channels(out), kernel_size(kernel), options(o) {
  if (in <= 0 || out <= 0 || kernel[0] <= 0 || kernel[1] <= 0)
    throw std::invalid_argument("Conv2d: channels and kernel_size must be positive");
  if (o.groups < 1 || in % o.groups != 0 || out % o.groups != 0)
    throw std::invalid_argument("Conv2d: groups " + std::to_string(o.groups) + " must divide in_channels " +
                                std::to_string(in) + " and out_channels " + std::to_string(out));
  weight = register_parameter("weight", empty({out, in / o.groups, kernel[0], kernel[1]}));
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  if (with_bias) {
    bias = register_parameter("bias", empty({out}));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in / o.groups * kernel[0] * kernel[1]));
    init::uniform_(bias, -bound, bound, gen);
  }
}

Tensor Conv2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) { return conv2d(in, weight, bias, options); });
}

std::string Conv2d::repr() const {
  return "Conv2d(" + std::to_string(in_channels) + ", " + std::to_string(out_channels) +
         ", kernel_size=" + pair(kernel_size) + ", stride=" + pair(options.stride) +
         ", padding=" + pair(options.padding) + ", dilation=" + pair(options.dilation) +
         ", groups=" + std::to_string(options.groups) + ", bias=" + (bias.defined() ? "true" : "false") + ")";
}

BatchNorm2d::BatchNorm2d(std::int64_t n, double eps_, double momentum_, bool affine, bool track)
    : num_features(n), eps(eps_), momentum(momentum_) {
  if (n <= 0) throw std::invalid_argument("BatchNorm2d: num_features must be positive");
  if (affine) {
    weight = register_parameter("weight", ones({n}));
    bias = register_parameter("bias", zeros({n}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", zeros({n}));
    running_var = register_buffer("running_var", ones({n}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::int64));
  }
}

Tensor BatchNorm2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) {
    if (in.dim() != 4 || in.size(1) != num_features)
      throw std::invalid_argument("BatchNorm2d(" + std::to_string(num_features) + "): input " + shape_str(in.shape()) +
                                  " must be (B, " + std::to_string(num_features) + ", H, W)");
    const bool batch_statistics = is_training() || !running_mean.defined();
    Tensor y = batch_norm(in, running_mean, running_var, weight, bias, batch_statistics, momentum, eps);
    if (is_training() && running_mean.defined()) ++num_batches_tracked.data<std::int64_t>()[0];  // once it ran
    return y;
  });
}

std::string BatchNorm2d::repr() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "BatchNorm2d(%lld, eps=%g, momentum=%g, affine=%s, track_running_stats=%s)",
                static_cast<long long>(num_features), eps, momentum, weight.defined() ? "true" : "false",
                running_mean.defined() ? "true" : "false");
  return buf;
}

Tensor MaxPool2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) { return max_pool2d(in, options); });
}

std::string MaxPool2d::repr() const {
  return "MaxPool2d(kernel_size=" + pair(options.kernel_size) + ", stride=" + stride_of(options) +
         ", padding=" + pair(options.padding) + ", dilation=" + pair(options.dilation) +
         ", ceil_mode=" + (options.ceil_mode ? "true" : "false") + ")";
}

Tensor AvgPool2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) { return avg_pool2d(in, options); });
}

std::string AvgPool2d::repr() const {
  return "AvgPool2d(kernel_size=" + pair(options.kernel_size) + ", stride=" + stride_of(options) +
         ", padding=" + pair(options.padding) + ", ceil_mode=" + (options.ceil_mode ? "true" : "false") +
         ", count_include_pad=" + (options.count_include_pad ? "true" : "false") + ")";
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) { return adaptive_avg_pool2d(in, output_size[0], output_size[1]); });
}

std::string AdaptiveAvgPool2d::repr() const { return "AdaptiveAvgPool2d(output_size=" + pair(output_size) + ")"; }

Pool2dOptions pool_options(std::int64_t kernel_size, std::int64_t stride, std::int64_t padding) {
  Pool2dOptions o;
  o.kernel_size = {kernel_size, kernel_size};
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  return o;
}

}  // namespace rune::nn
