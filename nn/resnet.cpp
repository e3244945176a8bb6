#include "nn/resnet.hpp"

#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "nn/init.hpp"

namespace rune::nn {

namespace {

rune::Conv2dOptions conv_options(std::int64_t stride, std::int64_t padding) {
  rune::Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = {padding, padding};
  return o;
}

// kaiming_normal(fan_out, relu), torchvision's init of a ResNet's convolutions
std::shared_ptr<Conv2d> make_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                                  Generator& gen) {
  auto conv = std::make_shared<Conv2d>(in, out, std::array<std::int64_t, 2>{kernel, kernel},
                                       conv_options(stride, kernel / 2), false, gen);
  NoGradGuard no_grad;
  init::kaiming_normal_(conv->weight, 0.0, init::FanMode::fan_out, init::Nonlinearity::relu, gen);
  return conv;
}

void check_options(const ResNetOptions& o) {
  if (o.widths.empty() || o.widths.size() != o.blocks.size())
    throw std::invalid_argument("ResNet: widths (" + std::to_string(o.widths.size()) + " stages) and blocks (" +
                                std::to_string(o.blocks.size()) + ") must name the same, non-zero number of stages");
  for (std::size_t s = 0; s < o.widths.size(); ++s)
    if (o.widths[s] <= 0 || o.blocks[s] <= 0)
      throw std::invalid_argument("ResNet: stage " + std::to_string(s + 1) + " has width " +
                                  std::to_string(o.widths[s]) + " and " + std::to_string(o.blocks[s]) +
                                  " blocks; both must be positive");
  if (o.in_chans <= 0 || o.num_classes <= 0)
    throw std::invalid_argument("ResNet: in_chans and num_classes must be positive");
}

}  // namespace

Downsample::Downsample(std::int64_t in, std::int64_t out, std::int64_t stride, Generator& gen) {
  conv = register_module("0", make_conv(in, out, 1, stride, gen));
  bn = register_module("1", std::make_shared<BatchNorm2d>(out));
}

std::string Downsample::repr() const { return "Sequential(" + conv->repr() + ", " + bn->repr() + ")"; }

BasicBlock::BasicBlock(std::int64_t in, std::int64_t channels, std::int64_t stride, Generator& gen) {
  conv1 = register_module("conv1", make_conv(in, channels, 3, stride, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(channels));
  conv2 = register_module("conv2", make_conv(channels, channels, 3, 1, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(channels));
  if (stride != 1 || in != channels)
    downsample = register_module("downsample", std::make_shared<Downsample>(in, channels, stride, gen));
}

Tensor BasicBlock::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) {
    const Tensor h = relu(bn1->forward(conv1->forward(in)));
    const Tensor shortcut = downsample ? downsample->forward(in) : in;
    return relu(bn2->forward(conv2->forward(h)) + shortcut);
  });
}

std::string BasicBlock::repr() const {
  return "BasicBlock(" + std::to_string(conv1->in_channels) + ", " + std::to_string(conv1->out_channels) +
         ", stride=" + std::to_string(conv1->options.stride[0]) + ")";
}

double parameter_count(const ResNetOptions& o) {
  check_options(o);
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  double n = d(o.in_chans) * d(o.widths[0]) * 9 + 2 * d(o.widths[0]);  // conv1, bn1
  std::int64_t in = o.widths[0];
  for (std::size_t s = 0; s < o.widths.size(); ++s) {
    const std::int64_t c = o.widths[s];
    for (std::int64_t b = 0; b < o.blocks[s]; ++b) {
      n += d(in) * d(c) * 9 + d(c) * d(c) * 9 + 4 * d(c);              // conv1, conv2, bn1, bn2
      if (in != c || (s > 0 && b == 0)) n += d(in) * d(c) + 2 * d(c);  // downsample
      in = c;
    }
  }
  return n + d(in) * d(o.num_classes) + d(o.num_classes);  // fc
}

double multiply_adds(const ResNetOptions& o, std::int64_t h, std::int64_t w) {
  check_options(o);
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  double n = d(h) * d(w) * d(o.in_chans) * d(o.widths[0]) * 9;
  std::int64_t in = o.widths[0];
  for (std::size_t s = 0; s < o.widths.size(); ++s) {
    const std::int64_t c = o.widths[s];
    for (std::int64_t b = 0; b < o.blocks[s]; ++b) {
      const bool down = s > 0 && b == 0;
      if (down) h = (h + 1) / 2, w = (w + 1) / 2;  // 3x3, stride 2, padding 1
      n += d(h) * d(w) * (d(in) * d(c) * 9 + d(c) * d(c) * 9);
      if (in != c || down) n += d(h) * d(w) * d(in) * d(c);
      in = c;
    }
  }
  return n + d(in) * d(o.num_classes);
}

ResNet::ResNet(const ResNetOptions& o, Generator& gen) : options(o) {
  check_options(o);
  conv1 = register_module("conv1", make_conv(o.in_chans, o.widths[0], 3, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(o.widths[0]));
  std::int64_t in = o.widths[0];
  for (std::size_t s = 0; s < o.widths.size(); ++s) {
    auto stage = std::make_shared<ModuleList<BasicBlock>>();
    for (std::int64_t b = 0; b < o.blocks[s]; ++b) {
      stage->push_back(std::make_shared<BasicBlock>(in, o.widths[s], s > 0 && b == 0 ? 2 : 1, gen));
      in = o.widths[s];
    }
    layers.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  fc = register_module("fc", std::make_shared<Linear>(in, o.num_classes, true, gen));
  if (o.zero_init_residual) {
    NoGradGuard no_grad;
    for (const auto& stage : layers)
      for (const auto& block : *stage) init::zeros_(block->bn2->weight);
  }
}

Tensor ResNet::forward(const Tensor& images) const {
  return with_hooks(images, [this](const Tensor& in) {
    if (in.dim() != 4 || in.size(1) != options.in_chans)
      throw std::invalid_argument("ResNet: expected images (B, " + std::to_string(options.in_chans) + ", H, W), got " +
                                  shape_str(in.shape()));
    Tensor h = relu(bn1->forward(conv1->forward(in)));  // (B, C_1, H, W)
    for (const auto& stage : layers)
      for (const auto& block : *stage) h = block->forward(h);
    return fc->forward(mean(h, {2, 3}));  // (B, C_S) -> (B, K)
  });
}

std::string ResNet::repr() const {
  std::string widths, blocks;
  for (std::size_t s = 0; s < options.widths.size(); ++s) {
    widths += (s ? ", " : "") + std::to_string(options.widths[s]);
    blocks += (s ? ", " : "") + std::to_string(options.blocks[s]);
  }
  return "ResNet(in_chans=" + std::to_string(options.in_chans) +
         ", num_classes=" + std::to_string(options.num_classes) + ", widths=[" + widths + "], blocks=[" + blocks + "])";
}

}  // namespace rune::nn
