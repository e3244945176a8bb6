// The ViT's costs, Runestone's side; bench/torch_vit.py runs the same cases with a PyTorch ViT
// (Conv2d patches, class token, nn.TransformerEncoderLayer pre-LN with GELU, final LayerNorm,
// head) and bench/run.sh joins them.
//
//   train step   batch 128 of 3x32x32 images, patch 4 (64 patches + the class token), embed 128,
//                depth 6, 8 heads, MLP 512, 10 classes: forward, label-smoothed cross-entropy,
//                backward, an AdamW step
//   inference    the same batch, forward only, no gradient, eval mode
//   patch embed  the patch projection alone, forward and backward (a sum of the outputs times
//                fixed weights): the ViT's patchify + one matmul, and the general conv2d op
//                (im2col per image) with kernel = stride = 4, as PyTorch's patch_embed.proj
// Rates: images per second. Timing as bench_ops.cpp (warm-up, median over about 0.4 s).
#include <cstdio>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "bench/models.hpp"
#include "bench/timing.hpp"
#include "optim/adam.hpp"

using namespace rune;
using bench::median_seconds;
using bench::report;

int main() {
  std::printf("# runestone BLAS: %s\n", blas::describe().c_str());
  bench::print_sgemm_peak();
  constexpr std::int64_t B = 128;
  Generator g(0);
  const nn::VisionTransformerOptions options = bench::vit_options(32, 3, 128, 512);
  nn::VisionTransformer model(options, g);
  optim::AdamW opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-3, 0.05,
                                                       {"*.bias", "*norm*", "pos_embed", "cls_token"}));
  const Tensor images = randn({B, 3, 32, 32}, g), labels = randint(0, 10, {B}, g);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1;
  const double step = median_seconds([&] {
    cross_entropy(model.forward(images), labels, ce).backward();
    opt.step();
    opt.zero_grad();
  });
  report("vit train step (128x3x32x32, d128, depth 6)", step, B / step, "img/s",
         {3 * bench::vit_forward_flops(options, B), true});
  model.eval();
  const double infer = median_seconds([&] {
    NoGradGuard no_grad;
    (void)model.forward(images);
  });
  report("vit inference (128x3x32x32)", infer, B / infer, "img/s", {bench::vit_forward_flops(options, B)});

  // the patch embedding: (128, 3, 32, 32) -> (128, 64, 128), 2 x 128 x 64 x 48 x 128 FLOPs forward
  const nn::PatchConv2d& patch = *model.patch_embed->proj;
  const Tensor x = images.detach().clone().requires_grad_(), gy = randn({B, 64, 128}, g);
  const double patch_flops = 3.0 * 2 * B * 64 * 48 * 128;
  const double by_patches = median_seconds([&] {
    sum(mul(patch.forward(x), gy)).backward();
    model.zero_grad();
  });
  report("vit patch embed fwd+bwd, patchify", by_patches, B / by_patches, "img/s", {patch_flops});
  Conv2dOptions stride;
  stride.stride = {4, 4};
  const double by_conv = median_seconds([&] {
    sum(mul(transpose(flatten(conv2d(x, patch.weight, patch.bias, stride), 2), 1, 2), gy)).backward();
    model.zero_grad();
  });
  report("vit patch embed fwd+bwd, conv2d", by_conv, B / by_conv, "img/s", {patch_flops});
  return 0;
}
