// The Vision Transformer (Dosovitskiy et al., 2021) and its pieces.
//
// Legend: B batch, C_in image channels, H x W image size, p patch size, N = (H/p)(W/p) patches,
// C embed_dim, K classes.
//
// image (B, C_in, H, W) -> patch_embed (B, N, C) -> [cls_token; patches] + pos_embed (B, 1+N, C)
// -> encoder (pre-LN layers, GELU, final norm) -> the class token's row, or the mean of the patch
// rows -> head (B, K). Parameter names: patch_embed.proj.weight (C, C_in, p, p) and .bias, cls_token
// (1, 1, C), pos_embed (1, 1+N, C), encoder.layers.N.*, encoder.norm.*, head.weight, head.bias.
#pragma once

#include <memory>
#include <string>

#include "nn/dropout.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"
#include "nn/transformer.hpp"

namespace rune::nn {

// A Conv2d whose kernel and stride are both the patch size (no padding, no overlap), computed as
// im2col (patchify) and one matmul. weight (C_out, C_in, p, p) as torch.nn.Conv2d, with its init.
class PatchConv2d : public Module {
 public:
  PatchConv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t patch_size,
              Generator& gen = default_generator());
  Tensor forward(const Tensor& x) const;  // (B, C_in, H, W) -> (B, N, C_out), patches row-major
  std::string repr() const override;

  const std::int64_t in_channels, out_channels, patch_size;
  Tensor weight, bias;
};

class PatchEmbedding : public Module {
 public:
  PatchEmbedding(std::int64_t in_chans, std::int64_t embed_dim, std::int64_t patch_size,
                 Generator& gen = default_generator());
  Tensor forward(const Tensor& x) const {
    return with_hooks(x, [this](const Tensor& in) { return proj->forward(in); });
  }
  std::string repr() const override { return "PatchEmbedding(" + proj->repr() + ")"; }
  std::shared_ptr<PatchConv2d> proj;
};

enum class ViTPool { cls, mean };
std::string pool_name(ViTPool p);
ViTPool pool_from_name(const std::string& name);  // "cls" or "mean", else throws

struct VisionTransformerOptions {
  std::int64_t image_size = 32;  // square images; a model for another size resizes pos_embed
  std::int64_t patch_size = 4;
  std::int64_t in_chans = 3;
  std::int64_t num_classes = 10;
  std::int64_t embed_dim = 192;
  std::int64_t depth = 6;
  std::int64_t num_heads = 3;
  std::int64_t mlp_dim = 768;
  double dropout = 0.0;      // in the encoder layers (attention weights and residual branches)
  double pos_dropout = 0.0;  // on the embedded tokens
  double layer_norm_eps = 1e-5;
  ViTPool pool = ViTPool::cls;
  Generator* dropout_generator = nullptr;
  std::int64_t grid() const { return image_size / patch_size; }  // patches per side
};

// The model's parameter count from its options, without building it (nn/transformer.hpp's
// parameter_count).
double parameter_count(const VisionTransformerOptions& o);

class VisionTransformer : public Module {
 public:
  // Init as timm: pos_embed ~ trunc_normal(std 0.02), cls_token ~ N(0, 1e-6), Linear weights
  // ~ trunc_normal(std 0.02) with zero biases; the patch projection keeps Conv2d's init.
  explicit VisionTransformer(const VisionTransformerOptions& options, Generator& gen = default_generator());
  // (B, C_in, H, W) -> logits (B, K). forward calls hooks; forward_features (the encoder's
  // output (B, 1+N, C), normed) calls none of its own, as in timm.
  Tensor forward(const Tensor& images) const;
  Tensor forward_features(const Tensor& images) const;
  std::string repr() const override;

  const VisionTransformerOptions options;
  std::shared_ptr<PatchEmbedding> patch_embed;
  Tensor cls_token, pos_embed;
  std::shared_ptr<Dropout> pos_drop;
  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<Linear> head;
};

// A position embedding (1, 1 + old_h*old_w, C) for a new patch grid: the class-token row is kept,
// the patch rows are a (C, old_h, old_w) image resized bicubically (align_corners = false), as
// timm's resample_abs_pos_embed without antialiasing. Differentiable.
Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t old_h, std::int64_t old_w, std::int64_t new_h,
                        std::int64_t new_w);

}  // namespace rune::nn
