#include "onnx/export.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "onnx/graph.hpp"
#include "train/files.hpp"

namespace rune::onnx_export {

namespace {

// A (1, n, 1, 1) float32 tensor of per-channel values.
Tensor per_channel(const std::vector<double>& v) {
  std::vector<float> f(v.begin(), v.end());
  Tensor t = empty({1, static_cast<std::int64_t>(v.size()), 1, 1});
  std::copy(f.begin(), f.end(), t.data<float>());
  return t;
}

// The table of positions the model adds: learned ("positions.weight") or the sinusoids
// ("positions.pe", a buffer the checkpoint does not hold: the same values the model computes).
std::string position_table(GraphBuilder& g, const nn::Seq2SeqTransformer& m) {
  return m.positions ? g.initializer("positions.weight", m.positions->weight)
                     : g.initializer("positions.pe", m.sinusoids->pe);
}

// Embeddings scaled by sqrt(C), as Seq2SeqTransformer::embed.
std::string scaled_embedding(GraphBuilder& g, const nn::Embedding& e, const std::string& prefix,
                             const std::string& ids) {
  const auto scale = static_cast<float>(std::sqrt(static_cast<double>(e.embedding_dim)));
  return g.node("Mul", {embedding(g, e, prefix, ids), g.scalar(scale, "embed_scale")}, {}, "scaled_embed");
}

// The image classifiers' mean and std: one per channel the model reads.
void check_statistics(const char* what, std::int64_t channels, const std::vector<double>& mean,
                      const std::vector<double>& stdev) {
  if (static_cast<std::int64_t>(mean.size()) != channels || static_cast<std::int64_t>(stdev.size()) != channels)
    throw std::invalid_argument(std::string(what) + ": mean and std for " + std::to_string(mean.size()) + " and " +
                                std::to_string(stdev.size()) + " channels, the model reads " +
                                std::to_string(channels));
}

// Pixel values 0..255 (B, C, S, S) normalised as training did: (v / 255 - mean) / std as
// make_batch computes it in float32, v * scale - shift.
std::string normalized(GraphBuilder& g, const std::string& images, const std::vector<double>& mean,
                       const std::vector<double>& stdev) {
  std::vector<double> scale, shift;
  for (std::size_t c = 0; c < mean.size(); ++c) {
    scale.push_back(static_cast<float>(1.0 / (255.0 * stdev[c])));
    shift.push_back(static_cast<float>(mean[c] / stdev[c]));
  }
  return g.node("Sub",
                {g.node("Mul", {images, g.initializer("normalize.scale", per_channel(scale))}),
                 g.initializer("normalize.shift", per_channel(shift))},
                {}, "normalized");
}

// A basic block in evaluation mode: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
std::string basic_block(GraphBuilder& g, const nn::BasicBlock& b, const std::string& prefix, const std::string& x) {
  const auto conv_bn = [&](const nn::Conv2d& conv, const std::string& conv_name, const nn::BatchNorm2d& bn,
                           const std::string& bn_name, const std::string& in) {
    return batch_norm(g, bn, prefix + "." + bn_name, conv2d(g, conv, prefix + "." + conv_name, in));
  };
  const std::string h = g.node("Relu", {conv_bn(*b.conv1, "conv1", *b.bn1, "bn1", x)});
  const std::string shortcut =
      b.downsample ? conv_bn(*b.downsample->conv, "downsample.0", *b.downsample->bn, "downsample.1", x) : x;
  return g.node("Relu", {g.node("Add", {conv_bn(*b.conv2, "conv2", *b.bn2, "bn2", h), shortcut}, {}, "residual")});
}

void check_seq2seq(const nn::Seq2SeqTransformer& m) {
  if (!m.transformer->encoder || !m.transformer->decoder || m.transformer->decoder->layers->size() == 0)
    throw std::invalid_argument("the encoder-decoder has no decoder layers to export");
}

// The caller's metadata plus what a decoding loop needs to shape the empty cache of its first step.
Metadata with_cache_facts(const nn::Seq2SeqTransformer& m, Metadata metadata) {
  const nn::TransformerDecoder& decoder = *m.transformer->decoder;
  const nn::MultiheadAttention& first = *(*decoder.layers)[0].self_attn;
  metadata["decoder_layers"] = std::to_string(decoder.layers->size());
  metadata["kv_heads"] = std::to_string(first.num_kv_heads);
  metadata["head_dim"] = std::to_string(first.head_dim);
  metadata["d_model"] = std::to_string(m.options.transformer.d_model);
  metadata["target_vocabulary_size"] = std::to_string(m.options.tgt_vocab);
  return metadata;
}

}  // namespace

Model vit_model(const nn::VisionTransformer& model, const std::vector<double>& mean, const std::vector<double>& stdev,
                const Metadata& metadata) {
  const nn::VisionTransformerOptions& o = model.options;
  check_statistics("vit_model", o.in_chans, mean, stdev);
  GraphBuilder g("vit");
  const std::int64_t S = o.image_size, C = o.embed_dim, p = o.patch_size;
  const std::string images = g.input("images", kFloat, {"batch", o.in_chans, S, S});
  const std::string x = normalized(g, images, mean, stdev);
  // the patch projection: a convolution whose kernel and stride are the patch, (B, C, S/p, S/p),
  // then patches row-major (B, N, C) as PatchConv2d lays them out
  const nn::PatchConv2d& proj = *model.patch_embed->proj;
  const std::string conv = g.node(
      "Conv",
      {x, g.initializer("patch_embed.proj.weight", proj.weight), g.initializer("patch_embed.proj.bias", proj.bias)},
      {{"kernel_shape", std::vector<std::int64_t>{p, p}}, {"strides", std::vector<std::int64_t>{p, p}}}, "patch_embed");
  const std::string patches = g.node("Transpose", {g.node("Reshape", {conv, g.ints({0, C, -1})})},
                                     {{"perm", std::vector<std::int64_t>{0, 2, 1}}}, "patches");
  // [cls_token; patches] + pos_embed, the class token expanded to (B, 1, C)
  const std::string batch = g.node("Shape", {images}, {{"start", std::int64_t{0}}, {"end", std::int64_t{1}}}, "batch");
  const std::string cls_shape = g.node("Concat", {batch, g.ints({1, C})}, {{"axis", std::int64_t{0}}}, "cls_shape");
  const std::string cls = g.node("Expand", {g.initializer("cls_token", model.cls_token), cls_shape}, {}, "cls");
  const std::string tokens = g.node(
      "Add",
      {g.node("Concat", {cls, patches}, {{"axis", std::int64_t{1}}}), g.initializer("pos_embed", model.pos_embed)}, {},
      "tokens");
  const std::string h = encoder(g, *model.encoder, "encoder", tokens, "");  // (B, 1+N, C)
  std::string pooled;
  if (o.pool == nn::ViTPool::cls) {
    pooled = g.node("Reshape", {g.node("Slice", {h, g.ints({0}), g.ints({1}), g.ints({1}, "axes")}), g.ints({0, C})},
                    {}, "pooled");
  } else {
    const std::string rows =
        g.node("Slice", {h, g.ints({1}), g.ints({std::numeric_limits<std::int64_t>::max()}), g.ints({1}, "axes")}, {},
               "patch_rows");
    pooled =
        g.node("ReduceMean", {rows}, {{"axes", std::vector<std::int64_t>{1}}, {"keepdims", std::int64_t{0}}}, "pooled");
  }
  g.output(linear(g, *model.head, "head", pooled), "logits", kFloat, {"batch", o.num_classes});
  return make_model(g, metadata);
}

Model resnet_model(const nn::ResNet& model, std::int64_t image_size, const std::vector<double>& mean,
                   const std::vector<double>& stdev, const Metadata& metadata) {
  const nn::ResNetOptions& o = model.options;
  check_statistics("resnet_model", o.in_chans, mean, stdev);
  if (image_size < 1) throw std::invalid_argument("resnet_model: image size " + std::to_string(image_size));
  GraphBuilder g("resnet");
  const std::string images = g.input("images", kFloat, {"batch", o.in_chans, image_size, image_size});
  std::string h = g.node(
      "Relu", {batch_norm(g, *model.bn1, "bn1", conv2d(g, *model.conv1, "conv1", normalized(g, images, mean, stdev)))});
  for (std::size_t s = 0; s < model.layers.size(); ++s)
    for (std::size_t b = 0; b < model.layers[s]->size(); ++b)
      h = basic_block(g, (*model.layers[s])[b], "layer" + std::to_string(s + 1) + "." + std::to_string(b), h);
  // the mean over every position, (B, C_S, 1, 1) -> (B, C_S)
  const std::string pooled = g.node("Flatten", {g.node("GlobalAveragePool", {h}, {}, "global_avg_pool")},
                                    {{"axis", std::int64_t{1}}}, "pooled");
  g.output(linear(g, *model.fc, "fc", pooled), "logits", kFloat, {"batch", o.num_classes});
  return make_model(g, metadata);
}

Model seq2seq_encoder_model(const nn::Seq2SeqTransformer& model, const Metadata& metadata) {
  check_seq2seq(model);
  GraphBuilder g("encoder");
  const std::int64_t C = model.options.transformer.d_model;
  const std::string src = g.input("src", kInt64, {"batch", "source_length"});
  const std::string mask = g.node("Equal", {src, g.ints({model.options.pad_id}, "pad_id")}, {}, "src_padding_mask");
  // positions 0 .. N-1 of the table
  const std::string length = g.node("Shape", {src}, {{"start", std::int64_t{1}}, {"end", std::int64_t{2}}}, "length");
  const std::string positions =
      g.node("Slice", {position_table(g, model), g.ints({0}), length, g.ints({0}, "axes")}, {}, "positions");
  const std::string x =
      g.node("Add", {scaled_embedding(g, *model.src_embed, "src_embed", src), positions}, {}, "embedded");
  const std::string memory = encoder(g, *model.transformer->encoder, "transformer.encoder", x, padding_bias(g, mask));
  g.output(memory, "memory", kFloat, {"batch", "source_length", C});
  g.output(mask, "src_padding_mask", kBool, {"batch", "source_length"});
  return make_model(g, with_cache_facts(model, metadata));
}

Model seq2seq_decoder_model(const nn::Seq2SeqTransformer& model, const Metadata& metadata) {
  check_seq2seq(model);
  GraphBuilder g("decoder_step");
  const std::int64_t C = model.options.transformer.d_model, V = model.options.tgt_vocab;
  const nn::TransformerDecoder& decoder = *model.transformer->decoder;
  const nn::MultiheadAttention& first = *(*decoder.layers)[0].self_attn;
  const std::int64_t Hkv = first.num_kv_heads, D = first.head_dim;
  const std::string token = g.input("token", kInt64, {"batch", 1});
  const std::string position = g.input("position", kInt64, {1});
  const std::string memory = g.input("memory", kFloat, {"batch", "source_length", C});
  const std::string mask = g.input("src_padding_mask", kBool, {"batch", "source_length"});
  std::vector<std::string> past_keys, past_values;
  for (std::size_t l = 0; l < decoder.layers->size(); ++l) {
    past_keys.push_back(g.input("past_key_" + std::to_string(l), kFloat, {"batch", Hkv, "past_length", D}));
    past_values.push_back(g.input("past_value_" + std::to_string(l), kFloat, {"batch", Hkv, "past_length", D}));
  }
  // the new token's embedding at its position (B, 1, C)
  const std::string row =
      g.node("Gather", {position_table(g, model), position}, {{"axis", std::int64_t{0}}}, "position");
  std::string h = g.node("Add", {scaled_embedding(g, *model.tgt_embed, "tgt_embed", token), row}, {}, "embedded");
  const std::string bias = padding_bias(g, mask);
  std::vector<AttentionValues> present;
  for (std::size_t l = 0; l < decoder.layers->size(); ++l) {
    const std::string prefix = "transformer.decoder.layers." + std::to_string(l);
    present.push_back(decoder_layer(g, (*decoder.layers)[l], prefix, h, memory, bias, past_keys[l], past_values[l]));
    h = present.back().output;
  }
  if (decoder.norm) h = layer_norm(g, *decoder.norm, "transformer.decoder.norm", h);
  h = g.node("Reshape", {h, g.ints({-1, C})}, {}, "last");  // (B, C): the one new position
  const std::string logits = model.generator ? linear(g, *model.generator, "generator", h)
                                             : linear(g, h, g.initializer("tgt_embed.weight", model.tgt_embed->weight),
                                                      g.initializer("output_bias", model.output_bias));
  g.output(logits, "logits", kFloat, {"batch", V});
  g.output(g.node("LogSoftmax", {logits}, {{"axis", std::int64_t{-1}}}), "log_probs", kFloat, {"batch", V});
  for (std::size_t l = 0; l < present.size(); ++l) {
    g.output(present[l].key, "present_key_" + std::to_string(l), kFloat, {"batch", Hkv, "present_length", D});
    g.output(present[l].value, "present_value_" + std::to_string(l), kFloat, {"batch", Hkv, "present_length", D});
  }
  return make_model(g, with_cache_facts(model, metadata));
}

std::vector<std::string> seq2seq_paths(const std::string& path) {
  const std::string ending = ".onnx";
  const bool ends =
      path.size() > ending.size() && path.compare(path.size() - ending.size(), ending.size(), ending) == 0;
  const std::string base = ends ? path.substr(0, path.size() - ending.size()) : path;
  return {base + "-encoder.onnx", base + "-decoder.onnx"};
}

std::vector<std::string> write_vit(const nn::VisionTransformer& model, const std::vector<double>& mean,
                                   const std::vector<double>& stdev, const Metadata& metadata,
                                   const std::string& path) {
  write_model(vit_model(model, mean, stdev, metadata), path);
  return {path};
}

std::vector<std::string> write_resnet(const nn::ResNet& model, std::int64_t image_size, const std::vector<double>& mean,
                                      const std::vector<double>& stdev, const Metadata& metadata,
                                      const std::string& path) {
  write_model(resnet_model(model, image_size, mean, stdev, metadata), path);
  return {path};
}

std::vector<std::string> write_seq2seq(const nn::Seq2SeqTransformer& model, const Metadata& metadata,
                                       const std::string& path) {
  const std::vector<std::string> paths = seq2seq_paths(path);
  // both or neither: a decoder without its encoder (or one of another model) is of no use
  train::FileTransaction files;
  write_model(seq2seq_encoder_model(model, metadata), paths[0]);
  write_model(seq2seq_decoder_model(model, metadata), paths[1]);
  files.commit();
  return paths;
}

}  // namespace rune::onnx_export
