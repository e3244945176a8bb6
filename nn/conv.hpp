// The layers of a convolutional network as modules, with torch.nn's names, defaults and
// initialisation: Conv2d (weight, bias), BatchNorm2d (weight, bias; buffers running_mean,
// running_var, num_batches_tracked, saved in checkpoints), MaxPool2d, AvgPool2d and
// AdaptiveAvgPool2d. The arithmetic is autograd/conv.cpp's.
//
// Legend: B batch, C input channels, O output channels, H x W input, P x Q output.
#pragma once

#include <array>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace rune::nn {

class Conv2d : public Module {
 public:
  // torch's init: W ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
  // fan_in = C / groups * kh * kw; b likewise.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::array<std::int64_t, 2> kernel_size,
         const rune::Conv2dOptions& options = {}, bool bias = true, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) const;  // (B, C, H, W) -> (B, O, P, Q)
  std::string repr() const override;

  const std::int64_t in_channels, out_channels;
  const std::array<std::int64_t, 2> kernel_size;
  const rune::Conv2dOptions options;
  Tensor weight;  // (O, C / groups, kh, kw)
  Tensor bias;    // (O), undefined without bias
};

// Batch normalisation over the channels of (B, C, H, W). Training normalises by the batch's
// statistics and (tracking) moves the running ones by `momentum` and counts the batch;
// evaluation normalises by the running statistics (without tracking, by the batch's always).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true);
  Tensor forward(const Tensor& x) const;  // (B, C, H, W) -> the same
  std::string repr() const override;

  const std::int64_t num_features;
  const double eps, momentum;
  Tensor weight, bias;               // (C) ones and zeros; undefined without affine
  Tensor running_mean, running_var;  // (C) zeros and ones; undefined without tracking
  Tensor num_batches_tracked;        // int64 scalar: training batches seen
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& o) : options(o) {}
  Tensor forward(const Tensor& x) const;
  std::string repr() const override;
  const Pool2dOptions options;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dOptions& o) : options(o) {}
  Tensor forward(const Tensor& x) const;
  std::string repr() const override;
  const Pool2dOptions options;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(std::array<std::int64_t, 2> size) : output_size(size) {}
  Tensor forward(const Tensor& x) const;  // (B, C, H, W) -> (B, C, out_h, out_w)
  std::string repr() const override;
  const std::array<std::int64_t, 2> output_size;
};

// Pool2dOptions for a square kernel: stride the kernel unless given, no padding.
Pool2dOptions pool_options(std::int64_t kernel_size, std::int64_t stride = 0, std::int64_t padding = 0);

}  // namespace rune::nn
