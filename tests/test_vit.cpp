// The Vision Transformer's pieces (nn/vit.hpp) and the image ops under them (autograd/image.cpp):
// the patch projection equals a direct convolution, bicubic resizing keeps what it should, the
// ViT's shapes, names and errors. Values and gradients against PyTorch are in tests/parity/.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/vit.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

TEST(Vit, ParameterCountFromOptionsMatchesTheBuiltModel) {
  Generator g(0);
  for (const auto& [image, patch, chans, classes] :
       {std::tuple<int, int, int, int>{8, 4, 3, 10}, {12, 3, 1, 4}, {4, 4, 2, 2}}) {
    nn::VisionTransformerOptions o;
    o.image_size = image;
    o.patch_size = patch;
    o.in_chans = chans;
    o.num_classes = classes;
    o.embed_dim = 12;
    o.num_heads = 3;
    o.depth = 2;
    o.mlp_dim = 20;
    EXPECT_EQ(nn::parameter_count(o), static_cast<double>(nn::VisionTransformer(o, g).num_parameters()))
        << image << "/" << patch;
  }
}

// The patch projection (patchify + one matmul) against the general conv2d op with kernel = stride =
// p (the im2col path of autograd/conv.cpp), flattened as torch's patch_embed.proj(x).flatten(2)
// .transpose(1, 2): the same values and the same gradients of x, the weight and the bias.
TEST(Vit, PatchProjectionEqualsTheConv2dOpInValuesAndGradients) {
  Generator g(1);
  const nn::PatchConv2d patch(3, 6, 4, g);
  const Tensor x = randn({2, 3, 8, 12}, g).requires_grad_(), gy = randn({2, 6, 6}, g);
  Conv2dOptions o;
  o.stride = {4, 4};
  const Tensor w = patch.weight.detach().clone().requires_grad_(), b = patch.bias.detach().clone().requires_grad_();
  const Tensor x2 = x.detach().clone().requires_grad_();
  const Tensor by_patches = patch.forward(x);                                            // (B, N, C_out)
  const Tensor by_conv = transpose(flatten(conv2d(x2, w, b, o), 2), 1, 2).contiguous();  // (B, N, C_out)
  EXPECT_LT(max_abs_diff(by_patches, by_conv), 1e-5);
  sum(mul(by_patches, gy)).backward();
  sum(mul(by_conv, gy)).backward();
  EXPECT_LT(max_abs_diff(x.grad(), x2.grad()), 1e-5);
  EXPECT_LT(max_abs_diff(patch.weight.grad(), w.grad()), 1e-4);
  EXPECT_LT(max_abs_diff(patch.bias.grad(), b.grad()), 1e-4);
}

TEST(Vit, PatchProjectionIsAStridedConvolution) {
  Generator g(0);
  const nn::PatchConv2d conv(3, 5, 4, g);
  const Tensor x = randn({2, 3, 8, 12}, g);
  const Tensor y = conv.forward(x);  // (B, N, C_out), N = 2 x 3 patches
  ASSERT_EQ(y.shape(), (Shape{2, 6, 5}));
  const Tensor xc = to_dtype(x, DType::float64), w = to_dtype(conv.weight, DType::float64),
               b = to_dtype(conv.bias, DType::float64), yc = to_dtype(y, DType::float64).contiguous();
  const double *px = xc.data<double>(), *pw = w.data<double>(), *pb = b.data<double>(), *py = yc.data<double>();
  double worst = 0;
  for (int n = 0; n < 2; ++n)
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 3; ++c)
        for (int o = 0; o < 5; ++o) {
          double acc = pb[o];  // out[o] = b[o] + sum over (ci, kh, kw) of W[o, ci, kh, kw] x[ci, 4r + kh, 4c + kw]
          for (int ci = 0; ci < 3; ++ci)
            for (int kh = 0; kh < 4; ++kh)
              for (int kw = 0; kw < 4; ++kw)
                acc += pw[((o * 3 + ci) * 4 + kh) * 4 + kw] * px[((n * 3 + ci) * 8 + 4 * r + kh) * 12 + 4 * c + kw];
          worst = std::max(worst, std::abs(acc - py[(n * 6 + r * 3 + c) * 5 + o]));
        }
  EXPECT_LT(worst, 1e-5);
  EXPECT_THROW(conv.forward(randn({2, 3, 8, 10}, g)), std::invalid_argument);  // 10 not divisible by 4
  EXPECT_THROW(patchify(randn({3, 8, 8}, g), 4), std::invalid_argument);
}

TEST(Vit, BicubicResizeKeepsConstantsAndTheSameGrid) {
  Generator g(1);
  const Tensor x = randn({1, 2, 4, 5}, g, DType::float64);
  EXPECT_LT(max_abs_diff(interpolate_bicubic(x, 4, 5), x), 1e-15) << "the same size is the identity";
  // the cubic weights sum to 1: a constant image stays constant, however it is resized
  const Tensor c = full({1, 1, 3, 3}, 2.5, DType::float64);
  EXPECT_LT(max_abs_diff(interpolate_bicubic(c, 7, 2), full({1, 1, 7, 2}, 2.5, DType::float64)), 1e-12);
  EXPECT_LT(max_abs_diff(interpolate_bicubic(c, 5, 6, true), full({1, 1, 5, 6}, 2.5, DType::float64)), 1e-12);
  // align_corners keeps the corner pixels
  const Tensor up = interpolate_bicubic(x, 7, 9, true).contiguous();
  EXPECT_NEAR(up.data<double>()[0], x.data<double>()[0], 1e-12);
  EXPECT_NEAR(up.data<double>()[7 * 9 - 1], x.data<double>()[4 * 5 - 1], 1e-12);
  EXPECT_THROW(interpolate_bicubic(x, 0, 3), std::invalid_argument);
}

TEST(Vit, ResizePosEmbedKeepsTheClassRow) {
  Generator g(2);
  const Tensor pos = randn({1, 1 + 3 * 4, 6}, g);
  const Tensor r = nn::resize_pos_embed(pos, 3, 4, 5, 2);
  EXPECT_EQ(r.shape(), (Shape{1, 1 + 10, 6}));
  EXPECT_EQ(max_abs_diff(slice(r, 1, 0, 1), slice(pos, 1, 0, 1)), 0.0);
  EXPECT_LT(max_abs_diff(nn::resize_pos_embed(pos, 3, 4, 3, 4), pos), 1e-6);
  EXPECT_THROW(nn::resize_pos_embed(pos, 4, 4, 5, 5), std::invalid_argument);
}

TEST(Vit, ShapesNamesPoolingAndErrors) {
  Generator g(3);
  nn::VisionTransformerOptions o;
  o.image_size = 16;
  o.patch_size = 4;
  o.in_chans = 1;
  o.embed_dim = 24;
  o.depth = 2;
  o.num_heads = 3;
  o.mlp_dim = 48;
  o.num_classes = 7;
  nn::VisionTransformer vit(o, g);
  std::vector<std::string> names;
  for (const auto& [n, p] : vit.named_parameters()) names.push_back(n);
  // a module's own parameters come before its children's, as in torch's named_parameters()
  EXPECT_EQ(names[0], "cls_token");
  EXPECT_EQ(names[1], "pos_embed");
  EXPECT_EQ(names[2], "patch_embed.proj.weight");
  EXPECT_EQ(names[4], "encoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(names.back(), "head.bias");
  EXPECT_EQ(vit.pos_embed.shape(), (Shape{1, 17, 24}));
  const Tensor images = randn({3, 1, 16, 16}, g);
  EXPECT_EQ(vit.forward(images).shape(), (Shape{3, 7}));
  EXPECT_EQ(vit.forward_features(images).shape(), (Shape{3, 17, 24}));
  // the class token's row, or the mean of the patch rows, goes to the head
  const Tensor feats = vit.forward_features(images);
  EXPECT_LT(max_abs_diff(vit.forward(images), vit.head->forward(reshape(slice(feats, 1, 0, 1), {3, 24}))), 1e-6);
  o.pool = nn::ViTPool::mean;
  Generator g2(3);
  nn::VisionTransformer mean_vit(o, g2);
  const Tensor f2 = mean_vit.forward_features(images);
  EXPECT_LT(max_abs_diff(mean_vit.forward(images), mean_vit.head->forward(mean(slice(f2, 1, 1, 17), {1}))), 1e-6);
  try {
    vit.forward(randn({3, 1, 32, 32}, g));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("are not (B, 1, 16, 16)"), std::string::npos) << e.what();
  }
  o.image_size = 18;
  EXPECT_THROW(nn::VisionTransformer bad(o), std::invalid_argument);
  EXPECT_THROW(nn::pool_from_name("max"), std::invalid_argument);
}

}  // namespace
}  // namespace rune
