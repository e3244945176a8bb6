#include "examples/vit/vit_task.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "analysis/attention_recorder.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "onnx/export.hpp"
#include "report/plot.hpp"
#include "train/memory.hpp"

namespace rune::examples {
namespace fs = std::filesystem;

ViTTask::ViTTask(train::Config& c, const train::TaskContext& context) : ImageClassifierTask(c, context) {
  nn::VisionTransformerOptions o;
  o.patch_size =
      c.integer("model.patch_size", 4, {1}, "side of the square patches in pixels; must divide the image size");
  o.embed_dim = c.integer("model.embed_dim", 128, {1},
                          "width of the model: the patch embedding and every layer's input and output");
  o.depth = c.integer("model.depth", 6, {1}, "encoder layers");
  o.num_heads = c.integer("model.num_heads", 8, {1}, "attention heads per layer; must divide model.embed_dim");
  o.mlp_dim =
      c.integer("model.mlp_dim", {4 * o.embed_dim, "4 * model.embed_dim"}, {1}, "hidden width of each layer's MLP");
  o.dropout = c.number("model.dropout", 0.0, {0.0, 1.0, true},
                       "dropout rate on the attention weights, the residual branches and the embedded patches");
  o.pool = nn::pool_from_name(c.string("model.pool", "cls", {"cls", "mean"},
                                       "what the classifier reads: the class token, or the mean of the patch tokens"));
  if (context.describe_only) return;  // rune config: the keys are declared; no data is read
  load_data(c, context);

  o.image_size = transform_.size;
  o.in_chans = train_.channels;
  o.num_classes = static_cast<std::int64_t>(train_.classes.size());
  o.pos_dropout = o.dropout;
  o.dropout_generator = context.dropout;
  if (o.image_size % o.patch_size != 0)
    c.fail("model.patch_size",
           std::to_string(o.patch_size) + " does not divide the image size " + std::to_string(o.image_size));
  if (o.embed_dim % o.num_heads != 0)
    c.fail("model.num_heads",
           std::to_string(o.num_heads) + " does not divide model.embed_dim " + std::to_string(o.embed_dim));
  check_memory(c, o);
  model_ = std::make_shared<nn::VisionTransformer>(o, *context.init);
}

void ViTTask::check_memory(const train::Config& c, const nn::VisionTransformerOptions& o) const {
  const double params = nn::parameter_count(o);
  const auto S = static_cast<double>(o.image_size), grid = static_cast<double>(o.grid());
  const train::SizeKey image_size{"data.image_size", o.image_size, 2},
      patch_size{"model.patch_size", o.patch_size, 1, grid * grid};
  train::check_memory(c, "the model's " + train::count_text(params) + " parameters", 4 * params,
                      {{"model.embed_dim", o.embed_dim, 2},
                       {"model.mlp_dim", o.mlp_dim},
                       {"model.depth", o.depth},
                       image_size,
                       patch_size});
  // a batch: its images (and their normalised copy), and the encoder's activations; in evaluation
  // (no backward) one layer's at a time
  const auto floats = [&](std::int64_t batch, std::int64_t layers) {
    const auto B = static_cast<double>(batch);
    return 2 * B * static_cast<double>(o.in_chans) * S * S +
           train::activation_floats(B, 1 + grid * grid, static_cast<double>(o.embed_dim),
                                    static_cast<double>(o.num_heads), static_cast<double>(layers));
  };
  const double train_floats = floats(batch_size_, o.depth), eval_floats = floats(eval_batch_size_, 1);
  train::check_memory(c, "a training batch's activations (about " + train::count_text(train_floats) + " floats)",
                      4 * train_floats,
                      {{"data.batch_size", batch_size_},
                       image_size,
                       patch_size,
                       {"model.embed_dim", o.embed_dim},
                       {"model.depth", o.depth},
                       {"model.num_heads", o.num_heads}});
  train::check_memory(
      c, "an evaluation batch's activations (about " + train::count_text(eval_floats) + " floats)", 4 * eval_floats,
      {{"data.eval_batch_size", eval_batch_size_}, image_size, patch_size, {"model.embed_dim", o.embed_dim}});
}

std::int64_t ViTTask::prepare_analysis(const std::string& name, std::int64_t batch_size, std::int64_t limit) {
  analysis_set_ = &split(name);
  analysis_size_ = limit > 0 ? std::min(limit, analysis_set_->size()) : analysis_set_->size();
  analysis_batch_size_ = batch_size;
  return analysis_size_;
}

analysis::AnalysisBatch ViTTask::analysis_batch(std::int64_t index) {
  const std::int64_t start = index * analysis_batch_size_, end = std::min(analysis_size_, start + analysis_batch_size_);
  if (!analysis_set_ || index < 0 || start >= end)
    throw std::out_of_range("ViTTask::analysis_batch: no batch " + std::to_string(index));
  std::vector<std::int64_t> indices = vision::iota(end - start);
  for (auto& i : indices) i += start;
  const vision::ImageBatch batch = vision::make_batch(*analysis_set_, indices, transform_, false, nullptr);
  CrossEntropyOptions none;
  none.reduction = Reduction::none;
  const std::int64_t tokens = 1 + model_->options.grid() * model_->options.grid();
  return {cross_entropy(model_->forward(batch.images), batch.labels, none), [tokens](const std::string&, std::int64_t) {
            return std::pair<std::int64_t, std::int64_t>{tokens, tokens};
          }};
}

void ViTTask::describe(train::Checkpoint& c) const {
  ImageClassifierTask::describe(c);  // /meta, and how pixels become the input
  // every fact from the model's options and its encoder layers' (nn/vit.cpp builds those)
  const nn::VisionTransformerOptions& o = model_->options;
  const nn::TransformerLayerOptions& layer = (*model_->encoder->layers)[0].options;
  auto& a = c.architecture;
  const auto flag = [](bool b) { return std::int64_t{b}; };
  a["model"] = std::string("vision_transformer");
  a["patch_size"] = o.patch_size;
  a["grid"] = o.grid();
  a["embed_dim"] = o.embed_dim;
  a["depth"] = static_cast<std::int64_t>(model_->encoder->layers->size());
  a["num_heads"] = layer.nhead;
  a["mlp_dim"] = layer.dim_feedforward;
  a["activation"] = nn::activation_name(layer.activation);  // gelu: the exact (erf) form
  a["norm_first"] = flag(layer.norm_first);
  a["layer_norm_eps"] = layer.layer_norm_eps;
  a["bias"] = flag(layer.bias);
  a["encoder_final_norm"] = flag(model_->encoder->norm != nullptr);
  a["patch_embedding"] = std::string(
      "patch_embed.proj: Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size), its output "
      "(B, embed_dim, grid, grid) flattened to (B, grid * grid, embed_dim), patches row by row");
  a["class_token"] = std::string("cls_token (1, 1, embed_dim), put before the patches");
  a["pos_embed"] = std::string(
      "(1, 1 + grid * grid, embed_dim): row 0 the class token's, then the patches row by row; added to "
      "[cls_token; patches] before the encoder");
  a["pool"] = nn::pool_name(o.pool);
  a["pooling"] =
      std::string(o.pool == nn::ViTPool::cls ? "the class token's row of the encoder's (final-normed) output"
                                             : "the mean of the patch rows of the encoder's (final-normed) output");
  a["head"] = std::string("head: Linear(embed_dim, num_classes) on the pooled row; logits, classes in /meta/classes");
}

std::vector<std::string> ViTTask::load_parameters(const train::Checkpoint& c, const std::string& path) {
  std::vector<std::string> notes;
  train::Checkpoint adapted = c;
  const std::int64_t grid = model_->options.grid();
  for (auto& [name, t] : adapted.params) {
    if (name != "pos_embed" || t.shape() == model_->pos_embed.shape()) continue;
    // (1, 1 + g*g, C) from a model of another image size: resize its patch grid to ours
    const std::int64_t n = t.dim() == 3 ? t.size(1) - 1 : -1;
    const auto old_grid =
        static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(std::max<std::int64_t>(n, 0)))));
    if (n == 0)
      throw std::runtime_error(path + ": pos_embed " + shape_str(t.shape()) +
                               " holds the class token's row alone, no patch positions to resize to a " +
                               std::to_string(grid) + "x" + std::to_string(grid) + " patch grid");
    if (t.dim() != 3 || old_grid * old_grid != n || t.size(2) != model_->options.embed_dim)
      throw std::runtime_error(path + ": pos_embed " + shape_str(t.shape()) + " is not a square patch grid of width " +
                               std::to_string(model_->options.embed_dim));
    NoGradGuard no_grad;
    const Shape before = t.shape();
    t = nn::resize_pos_embed(t, old_grid, old_grid, grid, grid);
    notes.push_back("pos_embed " + shape_str(before) + " -> " + shape_str(t.shape()) + ": patch grid " +
                    std::to_string(old_grid) + "x" + std::to_string(old_grid) + " resized bicubically to " +
                    std::to_string(grid) + "x" + std::to_string(grid) + ", class-token row kept");
  }
  train::load_parameters(*model_, adapted, path);
  return notes;
}

analysis::ImageAttention ViTTask::image_attention(const std::string& file_or_index) {
  analysis::ImageAttention a;
  a.classes = train_.classes;
  a.channels = train_.channels;
  a.size = transform_.size;
  a.grid = model_->options.grid();
  vision::ImageSet one;  // the image as a one-item set, so it goes through the same transform
  const bool is_index = !file_or_index.empty() && std::all_of(file_or_index.begin(), file_or_index.end(), ::isdigit);
  if (is_index) {
    const std::int64_t i = std::stoll(file_or_index);
    if (i >= test_.size())
      throw std::out_of_range("image index " + file_or_index + " is past the " + std::to_string(test_.size()) +
                              " images of the test split");
    one = test_.subset({i});
    a.label = one.labels[0];
  } else {
    // a PNG of any size becomes the data's channels at the data's native size
    int h = 0, w = 0;
    std::vector<std::uint8_t> pixels = report::read_png(file_or_index, static_cast<int>(train_.channels), h, w);
    one.channels = train_.channels;
    one.height = h;
    one.width = w;
    one.pixels = std::move(pixels);
    one.labels = {0};
    one.classes = train_.classes;
    if (h != w)
      throw std::invalid_argument(file_or_index + ": a " + std::to_string(w) + "x" + std::to_string(h) +
                                  " image is not square");
    if (h != train_.height) one = vision::resampled(one, train_.height);
  }
  a.image = vision::resized_image(one, 0, transform_);
  NoGradGuard no_grad;
  model_->eval();
  const vision::ImageBatch batch = vision::make_batch(one, {0}, transform_, false, nullptr);
  const analysis::AttentionRecorder recorder(*model_);
  const Tensor logits = model_->forward(batch.images);  // (1, K)
  for (std::size_t l = 0; l < model_->encoder->layers->size(); ++l) {
    const Tensor& w = recorder.weights("encoder.layers." + std::to_string(l) + ".self_attn");  // (1, H, T, T)
    a.layers.push_back(reshape(w, {w.size(1), w.size(2), w.size(3)}).contiguous());
  }
  const Tensor p = softmax(logits, -1);
  a.predicted = argmax(logits, 1).data<std::int64_t>()[0];
  a.confidence = p.contiguous().data<float>()[a.predicted];
  const std::vector<double> r = analysis::attention_rollout(a.layers);
  const std::int64_t T = 1 + a.grid * a.grid;
  a.rollout.assign(r.begin() + 1, r.begin() + T);  // row 0 (the class token), patch columns
  return a;
}

std::vector<std::string> ViTTask::export_onnx(const std::string& path) {
  return onnx_export::write_vit(*model_, transform_.stats.mean, transform_.stats.std, onnx_metadata("vit"), path);
}

std::string ViTTask::onnx_layout() const {
  const nn::VisionTransformerOptions& o = model_->options;
  const std::string S = std::to_string(o.image_size);
  return "graph vit: images float (batch, " + std::to_string(o.in_chans) + ", " + S + ", " + S +
         "), pixel values 0..255 -> logits float (batch, " + std::to_string(o.num_classes) +
         "); class names in the metadata (classes)\n";
}

namespace {
const bool registered = train::register_task<ViTTask, train::EvalReports, analysis::HeadAnalysisSource,
                                             analysis::ImageAttentionSource, train::OnnxExporter>(
    "vit", "a Vision Transformer classifying images (Fashion-MNIST, MNIST or CIFAR-10)");
}  // namespace

}  // namespace rune::examples
