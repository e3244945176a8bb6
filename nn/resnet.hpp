// A residual network of basic blocks (He et al., 2016), torchvision's ResNet with the small-image
// stem of the paper's CIFAR-10 networks (section 4.2: a 3x3 convolution, no max-pool, stages that
// halve the size and double the width; ResNet-20 is widths 16, 32, 64 with 3 blocks each).
//
// Legend: B batch, C_in image channels, H x W image size, C a stage's width, K classes.
//
// image (B, C_in, H, W) -> relu(bn1(conv1)) (B, C_1, H, W) -> layer1 .. layerS (each stage after
// the first starts with a stride-2 block: (B, C_s, H / 2^(s-1), W / 2^(s-1))) -> the mean over
// every position (B, C_S) -> fc (B, K).
// A block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the shortcut x itself or, where
// the shape changes, downsample = (1x1 Conv2d with the block's stride, BatchNorm2d).
// Parameter and buffer names are torchvision's: conv1.weight, bn1.{weight, bias, running_mean,
// running_var, num_batches_tracked}, layer1.0.conv1.weight, layer1.0.bn1.*, layer2.0.downsample.0.weight,
// layer2.0.downsample.1.*, fc.weight, fc.bias. Convolutions have no bias (a batch norm follows).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/conv.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"

namespace rune::nn {

// The shortcut of a block whose shape changes: a 1x1 convolution ("0") and a batch norm ("1"),
// torchvision's Sequential names.
class Downsample : public Module {
 public:
  Downsample(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride, Generator& gen);
  Tensor forward(const Tensor& x) const { return bn->forward(conv->forward(x)); }
  std::string repr() const override;
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

class BasicBlock : public Module {
 public:
  BasicBlock(std::int64_t in_channels, std::int64_t channels, std::int64_t stride, Generator& gen);
  Tensor forward(const Tensor& x) const;  // (B, C_in, H, W) -> (B, C, H / stride, W / stride)
  std::string repr() const override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Downsample> downsample;  // null when the shortcut is the identity
};

struct ResNetOptions {
  std::int64_t in_chans = 3;
  std::int64_t num_classes = 10;
  std::vector<std::int64_t> widths = {16, 32, 64};  // channels of each stage
  std::vector<std::int64_t> blocks = {3, 3, 3};     // basic blocks of each stage
  // torchvision's zero_init_residual: each block's last batch norm starts at weight 0, so that
  // every block starts as its shortcut
  bool zero_init_residual = false;
};

// The parameter count from the options, without building the model.
double parameter_count(const ResNetOptions& o);
// Multiply-adds of one image's forward pass at h x w pixels (the convolutions and fc).
double multiply_adds(const ResNetOptions& o, std::int64_t h, std::int64_t w);

class ResNet : public Module {
 public:
  // Init as torchvision: convolutions kaiming_normal(fan_out, relu), batch norms weight 1 and
  // bias 0, fc torch.nn.Linear's default. Throws std::invalid_argument for empty or mismatched
  // widths and blocks, or a non-positive entry.
  explicit ResNet(const ResNetOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& images) const;  // (B, C_in, H, W) -> logits (B, K)
  std::string repr() const override;

  const ResNetOptions options;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::vector<std::shared_ptr<ModuleList<BasicBlock>>> layers;  // layer1, layer2, ...
  std::shared_ptr<Linear> fc;
};

}  // namespace rune::nn
