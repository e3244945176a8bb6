// The CNN task's costs, Runestone's side; bench/torch_cnn.py runs the same cases with PyTorch
// (runestone_torch.ResNet: torchvision's basic blocks and names) and bench/run.sh joins them.
//
//   train step   ResNet-20 (widths 16, 32, 64; 3 blocks each), batch 128 of 1x28x28 images
//                (Fashion-MNIST) or 3x32x32 (CIFAR-10): forward in training mode (batch
//                statistics), cross-entropy, backward, an SGD step with Nesterov momentum
//   inference    the same batch, forward only, no gradient, eval mode (running statistics)
//   conv3x3      one 3x3 convolution of the ResNet (padding 1, no bias), batch 128, forward and
//                backward (the input's gradient and the weights'): the stride-1 layers of each
//                stage at 28x28, and a stride-2 one
// Rates: images per second, GFLOP/s for conv3x3. Timing as bench_ops.cpp (warm-up, median over
// about 0.4 s). FLOPs: 2 per multiply-add of the convolutions and fc (nn::multiply_adds), 3x
// that for a training step or a forward and backward.
#include <cstdio>
#include <string>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "bench/timing.hpp"
#include "nn/resnet.hpp"
#include "optim/sgd.hpp"

using namespace rune;
using bench::median_seconds;
using bench::report;

namespace {

void run(std::int64_t channels, std::int64_t size, const char* name) {
  constexpr std::int64_t B = 128;
  Generator g(0);
  nn::ResNetOptions o;
  o.in_chans = channels;
  nn::ResNet model(o, g);
  optim::SGDOptions sgd;
  sgd.momentum = 0.9;
  sgd.nesterov = true;
  optim::SGD opt(optim::param_groups_by_weight_decay(model.named_parameters(), 0.1, 5e-4, {"*.bias", "*bn*"}), sgd);
  const Tensor images = randn({B, channels, size, size}, g), labels = randint(0, 10, {B}, g);
  const double flops = 2 * nn::multiply_adds(o, size, size) * B;
  const double step = median_seconds([&] {
    cross_entropy(model.forward(images), labels).backward();
    opt.step();
    opt.zero_grad();
  });
  report(std::string("resnet20 train step (128x") + name + ")", step, B / step, "img/s", {3 * flops, true});
  model.eval();
  const double infer = median_seconds([&] {
    NoGradGuard no_grad;
    (void)model.forward(images);
  });
  report(std::string("resnet20 inference (128x") + name + ")", infer, B / infer, "img/s", {flops});
}

// One convolution's forward and backward: C -> O channels on H x H images, 3x3, padding 1.
void conv3x3(std::int64_t C, std::int64_t O, std::int64_t H, std::int64_t stride) {
  constexpr std::int64_t B = 128;
  Generator g(1);
  const Tensor x = randn({B, C, H, H}, g).requires_grad_(), w = randn({O, C, 3, 3}, g).requires_grad_();
  Conv2dOptions o;
  o.stride = {stride, stride}, o.padding = {1, 1};
  const std::int64_t P = (H - 1) / stride + 1;
  const double flops = 3 * 2.0 * B * O * P * P * C * 9;
  const double s = median_seconds([&] { sum(conv2d(x, w, Tensor(), o)).backward(); });
  report("conv3x3 fwd+bwd " + std::to_string(C) + "->" + std::to_string(O) + " " + std::to_string(H) + "x" +
             std::to_string(H) + (stride > 1 ? " stride 2" : ""),
         s, flops / s * 1e-9, "GFLOP/s", {flops});
}

}  // namespace

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench::print_sgemm_peak();
  run(1, 28, "1x28x28");
  run(3, 32, "3x32x32");
  conv3x3(16, 16, 28, 1);
  conv3x3(32, 32, 14, 1);
  conv3x3(64, 64, 7, 1);
  conv3x3(16, 32, 28, 2);
  return 0;
}
