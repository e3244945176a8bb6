#include "nn/vit.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "autograd/ops.hpp"
#include "nn/init.hpp"

namespace rune::nn {

// ------------------------------------------------------------------------- patches

PatchConv2d::PatchConv2d(std::int64_t in, std::int64_t out, std::int64_t p, Generator& gen)
    : in_channels(in), out_channels(out), patch_size(p) {
  if (in <= 0 || out <= 0 || p <= 0)
    throw std::invalid_argument("PatchConv2d: channels and patch_size must be positive");
  weight = register_parameter("weight", empty({out, in, p, p}));
  bias = register_parameter("bias", empty({out}));
  // torch.nn.Conv2d's init: kaiming_uniform(a = sqrt(5)) and U(+-1/sqrt(fan_in)) for the bias
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * p * p));
  init::uniform_(bias, -bound, bound, gen);
}

Tensor PatchConv2d::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) {
    if (in.dim() != 4 || in.size(1) != in_channels)
      throw std::invalid_argument("PatchConv2d: input " + shape_str(in.shape()) + " is not (B, " +
                                  std::to_string(in_channels) + ", H, W)");
    const Tensor cols = patchify(in, patch_size);  // (B, N, C_in p p), features in weight order
    const Tensor w = reshape(weight, {out_channels, in_channels * patch_size * patch_size});
    return linear(cols, w, bias);  // (B, N, C_out)
  });
}

std::string PatchConv2d::repr() const {
  return "PatchConv2d(" + std::to_string(in_channels) + ", " + std::to_string(out_channels) +
         ", kernel_size=stride=" + std::to_string(patch_size) + ")";
}

PatchEmbedding::PatchEmbedding(std::int64_t in_chans, std::int64_t embed_dim, std::int64_t patch_size, Generator& gen) {
  proj = register_module("proj", std::make_shared<PatchConv2d>(in_chans, embed_dim, patch_size, gen));
}

// ------------------------------------------------------------------------- ViT

std::string pool_name(ViTPool p) { return p == ViTPool::mean ? "mean" : "cls"; }

ViTPool pool_from_name(const std::string& name) {
  if (name == "cls") return ViTPool::cls;
  if (name == "mean") return ViTPool::mean;
  throw std::invalid_argument("pool '" + name + "' is not one of cls, mean");
}

namespace {
const VisionTransformerOptions& checked(const VisionTransformerOptions& o) {
  const auto fail = [](const std::string& m) { throw std::invalid_argument("VisionTransformer: " + m); };
  if (o.image_size <= 0 || o.patch_size <= 0 || o.in_chans <= 0 || o.num_classes <= 0 || o.embed_dim <= 0 ||
      o.depth < 0 || o.num_heads <= 0 || o.mlp_dim <= 0)
    fail("sizes must be positive");
  if (o.image_size % o.patch_size != 0)
    fail("image_size " + std::to_string(o.image_size) + " is not divisible by patch_size " +
         std::to_string(o.patch_size));
  if (o.embed_dim % o.num_heads != 0)
    fail("embed_dim " + std::to_string(o.embed_dim) + " is not divisible by num_heads " + std::to_string(o.num_heads));
  return o;
}

TransformerLayerOptions encoder_layer(const VisionTransformerOptions& o) {
  TransformerLayerOptions l;
  l.d_model = o.embed_dim;
  l.nhead = o.num_heads;
  l.dim_feedforward = o.mlp_dim;
  l.dropout = o.dropout;
  l.activation = Activation::gelu;
  l.layer_norm_eps = o.layer_norm_eps;
  l.norm_first = true;
  l.dropout_generator = o.dropout_generator;
  return l;
}
}  // namespace

double parameter_count(const VisionTransformerOptions& o) {
  const auto C = static_cast<double>(o.embed_dim), p = static_cast<double>(o.patch_size);
  const double grid = static_cast<double>(o.image_size / std::max<std::int64_t>(o.patch_size, 1));
  const double patches = C * static_cast<double>(o.in_chans) * p * p + C;
  const double tokens = C + (1 + grid * grid) * C;  // cls_token and pos_embed
  const double encoder = static_cast<double>(o.depth) * parameter_count(encoder_layer(o), false) + 2 * C;
  return patches + tokens + encoder + C * static_cast<double>(o.num_classes) + static_cast<double>(o.num_classes);
}

VisionTransformer::VisionTransformer(const VisionTransformerOptions& o, Generator& gen) : options(checked(o)) {
  const std::int64_t C = o.embed_dim, N = o.grid() * o.grid();
  patch_embed = register_module("patch_embed", std::make_shared<PatchEmbedding>(o.in_chans, C, o.patch_size, gen));
  cls_token = register_parameter("cls_token", empty({1, 1, C}));
  pos_embed = register_parameter("pos_embed", empty({1, 1 + N, C}));
  pos_drop = register_module("pos_drop", std::make_shared<Dropout>(o.pos_dropout, o.dropout_generator));
  encoder = register_module("encoder", std::make_shared<TransformerEncoder>(encoder_layer(o), o.depth, true, gen));
  head = register_module("head", std::make_shared<Linear>(C, o.num_classes, true, gen));
  init::trunc_normal_(pos_embed, 0.0, 0.02, -2.0, 2.0, gen);
  init::normal_(cls_token, 0.0, 1e-6, gen);
  for (const auto& [name, m] : named_modules())
    if (const auto* lin = dynamic_cast<const Linear*>(m)) {
      Tensor w = lin->weight, b = lin->bias;
      init::trunc_normal_(w, 0.0, 0.02, -2.0, 2.0, gen);
      if (b.defined()) init::zeros_(b);
    }
}

Tensor VisionTransformer::forward_features(const Tensor& images) const {
  const std::int64_t S = options.image_size;
  if (images.dim() != 4 || images.size(1) != options.in_chans || images.size(2) != S || images.size(3) != S)
    throw std::invalid_argument("VisionTransformer: images " + shape_str(images.shape()) + " are not (B, " +
                                std::to_string(options.in_chans) + ", " + std::to_string(S) + ", " + std::to_string(S) +
                                ")");
  const std::int64_t B = images.size(0), C = options.embed_dim;
  const Tensor patches = patch_embed->forward(images);                                   // (B, N, C)
  const Tensor tokens = concat({expand(cls_token, {B, 1, C}), patches}, 1) + pos_embed;  // (B, 1+N, C)
  return encoder->forward(pos_drop->forward(tokens));
}

Tensor VisionTransformer::forward(const Tensor& images) const {
  return with_hooks(images, [this](const Tensor& in) {
    const Tensor x = forward_features(in);  // (B, 1+N, C)
    const std::int64_t B = x.size(0), T = x.size(1), C = x.size(2);
    const Tensor pooled = options.pool == ViTPool::cls ? reshape(slice(x, 1, 0, 1), {B, C})  // (B, C)
                                                       : mean(slice(x, 1, 1, T), {1});
    return head->forward(pooled);
  });
}

std::string VisionTransformer::repr() const {
  std::ostringstream os;
  os << "VisionTransformer(image_size=" << options.image_size << ", patch_size=" << options.patch_size
     << ", embed_dim=" << options.embed_dim << ", depth=" << options.depth << ", num_heads=" << options.num_heads
     << ", mlp_dim=" << options.mlp_dim << ", num_classes=" << options.num_classes
     << ", pool=" << pool_name(options.pool) << ")";
  return os.str();
}

Tensor resize_pos_embed(const Tensor& pos_embed, std::int64_t old_h, std::int64_t old_w, std::int64_t new_h,
                        std::int64_t new_w) {
  if (pos_embed.dim() != 3 || pos_embed.size(0) != 1 || pos_embed.size(1) != 1 + old_h * old_w)
    throw std::invalid_argument("resize_pos_embed: pos_embed " + shape_str(pos_embed.shape()) + " is not (1, 1 + " +
                                std::to_string(old_h) + "*" + std::to_string(old_w) + ", C)");
  if (new_h <= 0 || new_w <= 0) throw std::invalid_argument("resize_pos_embed: the new grid must be positive");
  const std::int64_t C = pos_embed.size(2);
  const Tensor cls = slice(pos_embed, 1, 0, 1);  // (1, 1, C), kept as it is
  const Tensor grid = permute(reshape(slice(pos_embed, 1, 1, 1 + old_h * old_w), {1, old_h, old_w, C}),
                              {0, 3, 1, 2});                              // (1, C, old_h, old_w)
  const Tensor resized = interpolate_bicubic(grid, new_h, new_w, false);  // (1, C, new_h, new_w)
  return concat({cls, reshape(permute(resized, {0, 2, 3, 1}), {1, new_h * new_w, C})}, 1);
}

}  // namespace rune::nn
