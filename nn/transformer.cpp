#include "nn/transformer.hpp"

#include <algorithm>
#include <sstream>

#include "autograd/ops.hpp"
#include "nn/init.hpp"

namespace rune::nn {

std::string activation_name(Activation a) { return a == Activation::gelu ? "gelu" : "relu"; }

Activation activation_from_name(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  throw std::invalid_argument("activation '" + name + "' is not one of relu, gelu");
}

namespace {

Tensor activate(const Tensor& x, Activation a) { return a == Activation::gelu ? gelu(x) : relu(x); }

// A layer's attention options: its self-attention's (with the rotary positions, if any), or a
// decoder's cross-attention's (never rotary).
MultiheadAttentionOptions attention_options(const TransformerLayerOptions& o, bool self_attention = true) {
  MultiheadAttentionOptions m;
  m.embed_dim = o.d_model;
  m.num_heads = o.nhead;
  m.num_kv_heads = o.num_kv_heads;
  m.bias = o.bias;
  m.dropout = o.dropout;
  m.dropout_generator = o.dropout_generator;
  m.rotary = self_attention && o.rotary;
  m.rope_base = o.rope_base;
  m.rope_dim = o.rope_dim;
  m.kernel = o.attention_kernel;
  m.scale = o.attention_scale;
  return m;
}

const TransformerLayerOptions& checked(const TransformerLayerOptions& o, const char* who) {
  if (o.d_model <= 0 || o.nhead <= 0 || o.dim_feedforward <= 0)
    throw std::invalid_argument(std::string(who) + ": d_model, nhead and dim_feedforward must be positive");
  if (o.d_model % o.nhead != 0)
    throw std::invalid_argument(std::string(who) + ": d_model " + std::to_string(o.d_model) +
                                " is not divisible by nhead " + std::to_string(o.nhead));
  if (!(o.dropout >= 0.0 && o.dropout < 1.0))
    throw std::invalid_argument(std::string(who) + ": dropout must be in [0, 1)");
  return o;
}

std::string layer_repr(const char* name, const TransformerLayerOptions& o) {
  std::ostringstream os;
  os << name << "(d_model=" << o.d_model << ", nhead=" << o.nhead << ", dim_feedforward=" << o.dim_feedforward
     << ", dropout=" << o.dropout << ", activation=" << activation_name(o.activation)
     << ", norm_first=" << (o.norm_first ? "true" : "false");
  if (o.rotary) os << ", rotary=true, rope_base=" << o.rope_base;
  os << ")";
  return os.str();
}

}  // namespace

// ------------------------------------------------------------------------- FeedForward

FeedForward::FeedForward(std::int64_t d_model, std::int64_t dim_feedforward, double p, Activation a, Generator& gen,
                         Generator* dropout_generator)
    : activation(a) {
  linear1 = register_module("linear1", std::make_shared<Linear>(d_model, dim_feedforward, true, gen));
  dropout = register_module("dropout", std::make_shared<Dropout>(p, dropout_generator));
  linear2 = register_module("linear2", std::make_shared<Linear>(dim_feedforward, d_model, true, gen));
}

Tensor FeedForward::forward(const Tensor& x) const {
  return with_hooks(x, [this](const Tensor& in) {
    return linear2->forward(dropout->forward(activate(linear1->forward(in), activation)));
  });
}

std::string FeedForward::repr() const {
  return "FeedForward(" + std::to_string(linear1->in_features) + ", " + std::to_string(linear1->out_features) +
         ", activation=" + activation_name(activation) + ")";
}

// ------------------------------------------------------------------------- encoder layer

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o, Generator& gen)
    : options(checked(o, "TransformerEncoderLayer")) {
  // registration order is PyTorch's, so named_parameters() lists names in its state_dict order
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(attention_options(o), gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(o.d_model, o.dim_feedforward, o.bias, gen));
  dropout = register_module("dropout", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
  linear2 = register_module("linear2", std::make_shared<Linear>(o.dim_feedforward, o.d_model, o.bias, gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
}

Tensor TransformerEncoderLayer::feed_forward(const Tensor& x) const {
  return dropout2->forward(linear2->forward(dropout->forward(activate(linear1->forward(x), options.activation))));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const AttentionMask& src_mask, KVCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(src, src_mask, cache);
  EncoderKwargs kwargs;
  kwargs.src_mask = src_mask;
  kwargs.cache = cache;
  return with_hooks({src}, kwargs, [this](const std::vector<Tensor>& in, const EncoderKwargs& k) {
    return forward_impl(in[0], k.src_mask, k.cache);
  });
}

Tensor TransformerEncoderLayer::forward_impl(const Tensor& src, const AttentionMask& mask, KVCache* cache) const {
  const auto sa = [&](const Tensor& x) {
    return dropout1->forward(self_attn->forward(x, x, x, mask, AttentionWeights::none, cache).output);
  };
  if (options.norm_first) {
    const Tensor x = src + sa(norm1->forward(src));
    return x + feed_forward(norm2->forward(x));
  }
  const Tensor x = norm1->forward(src + sa(src));
  return norm2->forward(x + feed_forward(x));
}

std::string TransformerEncoderLayer::repr() const { return layer_repr("TransformerEncoderLayer", options); }

// ------------------------------------------------------------------------- decoder layer

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& o, Generator& gen)
    : options(checked(o, "TransformerDecoderLayer")) {
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(attention_options(o), gen));
  multihead_attn =
      register_module("multihead_attn", std::make_shared<MultiheadAttention>(attention_options(o, false), gen));
  linear1 = register_module("linear1", std::make_shared<Linear>(o.d_model, o.dim_feedforward, o.bias, gen));
  dropout = register_module("dropout", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
  linear2 = register_module("linear2", std::make_shared<Linear>(o.dim_feedforward, o.d_model, o.bias, gen));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  norm3 = register_module("norm3", std::make_shared<LayerNorm>(o.d_model, o.layer_norm_eps));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
  dropout3 = register_module("dropout3", std::make_shared<Dropout>(o.dropout, o.dropout_generator));
}

Tensor TransformerDecoderLayer::feed_forward(const Tensor& x) const {
  return dropout3->forward(linear2->forward(dropout->forward(activate(linear1->forward(x), options.activation))));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                        const AttentionMask& memory_mask, DecoderLayerCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(tgt, memory, tgt_mask, memory_mask, cache);
  DecoderLayerKwargs kwargs;
  kwargs.tgt_mask = tgt_mask;
  kwargs.memory_mask = memory_mask;
  kwargs.cache = cache;
  return with_hooks({tgt, memory}, kwargs, [this](const std::vector<Tensor>& in, const DecoderLayerKwargs& k) {
    return forward_impl(in[0], in[1], k.tgt_mask, k.memory_mask, k.cache);
  });
}

Tensor TransformerDecoderLayer::forward_impl(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                             const AttentionMask& memory_mask, DecoderLayerCache* cache) const {
  KVCache* self_cache = cache ? &cache->self_attn : nullptr;
  KVCache* cross_cache = cache ? &cache->cross_attn : nullptr;
  const auto sa = [&](const Tensor& x) {
    return dropout1->forward(self_attn->forward(x, x, x, tgt_mask, AttentionWeights::none, self_cache).output);
  };
  const auto ca = [&](const Tensor& x) {
    return dropout2->forward(
        multihead_attn->forward(x, memory, memory, memory_mask, AttentionWeights::none, cross_cache).output);
  };
  if (options.norm_first) {
    Tensor x = tgt + sa(norm1->forward(tgt));
    x = x + ca(norm2->forward(x));
    return x + feed_forward(norm3->forward(x));
  }
  Tensor x = norm1->forward(tgt + sa(tgt));
  x = norm2->forward(x + ca(x));
  return norm3->forward(x + feed_forward(x));
}

std::string TransformerDecoderLayer::repr() const { return layer_repr("TransformerDecoderLayer", options); }

// ------------------------------------------------------------------------- stacks

TransformerEncoder::TransformerEncoder(const TransformerLayerOptions& layer, std::int64_t num_layers, bool final_norm,
                                       Generator& gen) {
  if (num_layers < 0) throw std::invalid_argument("TransformerEncoder: num_layers must not be negative");
  layers = register_module("layers", std::make_shared<ModuleList<TransformerEncoderLayer>>());
  for (std::int64_t i = 0; i < num_layers; ++i)
    layers->push_back(std::make_shared<TransformerEncoderLayer>(layer, gen));
  if (final_norm) norm = register_module("norm", std::make_shared<LayerNorm>(layer.d_model, layer.layer_norm_eps));
}

Tensor TransformerEncoder::forward(const Tensor& src, const AttentionMask& src_mask, EncoderCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(src, src_mask, cache);
  EncoderStackKwargs kwargs;
  kwargs.src_mask = src_mask;
  kwargs.cache = cache;
  return with_hooks({src}, kwargs, [this](const std::vector<Tensor>& in, const EncoderStackKwargs& k) {
    return forward_impl(in[0], k.src_mask, k.cache);
  });
}

EncoderCache TransformerEncoder::make_cache() const {
  EncoderCache cache;
  cache.layers.resize(layers->size());
  return cache;
}

Tensor TransformerEncoder::forward_impl(const Tensor& src, const AttentionMask& src_mask, EncoderCache* cache) const {
  if (cache && cache->layers.size() != layers->size())
    throw std::invalid_argument("TransformerEncoder: the cache has " + std::to_string(cache->layers.size()) +
                                " layers, the encoder " + std::to_string(layers->size()) + " (use make_cache())");
  Tensor x = src;
  for (std::size_t i = 0; i < layers->size(); ++i)
    x = (*layers)[i].forward(x, src_mask, cache ? &cache->layers[i] : nullptr);
  return norm ? norm->forward(x) : x;
}

std::string TransformerEncoder::repr() const {
  return "TransformerEncoder(num_layers=" + std::to_string(layers->size()) + (norm ? ", norm" : "") + ")";
}

TransformerDecoder::TransformerDecoder(const TransformerLayerOptions& layer, std::int64_t num_layers, bool final_norm,
                                       Generator& gen) {
  if (num_layers < 0) throw std::invalid_argument("TransformerDecoder: num_layers must not be negative");
  layers = register_module("layers", std::make_shared<ModuleList<TransformerDecoderLayer>>());
  for (std::int64_t i = 0; i < num_layers; ++i)
    layers->push_back(std::make_shared<TransformerDecoderLayer>(layer, gen));
  if (final_norm) norm = register_module("norm", std::make_shared<LayerNorm>(layer.d_model, layer.layer_norm_eps));
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                   const AttentionMask& memory_mask, DecoderCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(tgt, memory, tgt_mask, memory_mask, cache);
  DecoderKwargs kwargs;
  kwargs.tgt_mask = tgt_mask;
  kwargs.memory_mask = memory_mask;
  kwargs.cache = cache;
  return with_hooks({tgt, memory}, kwargs, [this](const std::vector<Tensor>& in, const DecoderKwargs& k) {
    return forward_impl(in[0], in[1], k.tgt_mask, k.memory_mask, k.cache);
  });
}

Tensor TransformerDecoder::forward_impl(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                        const AttentionMask& memory_mask, DecoderCache* cache) const {
  if (cache && cache->layers.size() != layers->size())
    throw std::invalid_argument("TransformerDecoder: the cache has " + std::to_string(cache->layers.size()) +
                                " layers, the decoder " + std::to_string(layers->size()) + "; use make_cache()");
  Tensor x = tgt;
  for (std::size_t i = 0; i < layers->size(); ++i)
    x = (*layers)[i].forward(x, memory, tgt_mask, memory_mask, cache ? &cache->layers[i] : nullptr);
  return norm ? norm->forward(x) : x;
}

DecoderCache TransformerDecoder::make_cache() const {
  DecoderCache c;
  c.layers.resize(layers->size());
  return c;
}

std::string TransformerDecoder::repr() const {
  return "TransformerDecoder(num_layers=" + std::to_string(layers->size()) + (norm ? ", norm" : "") + ")";
}

// ------------------------------------------------------------------------- Transformer

TransformerLayerOptions TransformerOptions::layer() const {
  TransformerLayerOptions l;
  l.d_model = d_model;
  l.nhead = nhead;
  l.dim_feedforward = dim_feedforward;
  l.dropout = dropout;
  l.activation = activation;
  l.layer_norm_eps = layer_norm_eps;
  l.norm_first = norm_first;
  l.bias = bias;
  l.num_kv_heads = num_kv_heads;
  l.attention_scale = attention_scale;
  l.dropout_generator = dropout_generator;
  return l;
}

double parameter_count(const TransformerLayerOptions& o, bool decoder) {
  const auto C = static_cast<double>(o.d_model), F = static_cast<double>(o.dim_feedforward);
  const double kv_heads = static_cast<double>(o.num_kv_heads > 0 ? o.num_kv_heads : o.nhead);
  const double KV = kv_heads * static_cast<double>(o.d_model / std::max<std::int64_t>(o.nhead, 1));
  const double b = o.bias ? 1 : 0;
  // q, k, v and out projections with their biases; linear1 and linear2; a LayerNorm per sublayer
  const double attention = C * C + 2 * KV * C + b * (C + 2 * KV) + C * C + b * C;
  const double feed_forward = 2 * C * F + b * (F + C);
  return (decoder ? 2 : 1) * attention + feed_forward + (decoder ? 3 : 2) * 2 * C;
}

double parameter_count(const TransformerOptions& o) {
  const double norm = 2 * static_cast<double>(o.d_model);
  return static_cast<double>(o.num_encoder_layers) * parameter_count(o.layer(), false) + norm +
         static_cast<double>(o.num_decoder_layers) * parameter_count(o.layer(), true) + norm;
}

Transformer::Transformer(const TransformerOptions& o, Generator& gen) : options(o) {
  encoder =
      register_module("encoder", std::make_shared<TransformerEncoder>(o.layer(), o.num_encoder_layers, true, gen));
  decoder =
      register_module("decoder", std::make_shared<TransformerDecoder>(o.layer(), o.num_decoder_layers, true, gen));
  // torch.nn.Transformer._reset_parameters: every parameter of more than one dim, xavier_uniform
  for (auto& [name, p] : named_parameters())
    if (p.dim() > 1) init::xavier_uniform_(p, 1.0, gen);
}

Tensor Transformer::forward(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask,
                            const AttentionMask& tgt_mask, const AttentionMask& memory_mask) const {
  if (!has_forward_hooks()) return forward_impl(src, tgt, src_mask, tgt_mask, memory_mask);
  TransformerKwargs kwargs;
  kwargs.src_mask = src_mask;
  kwargs.tgt_mask = tgt_mask;
  kwargs.memory_mask = memory_mask;
  return with_hooks({src, tgt}, kwargs, [this](const std::vector<Tensor>& in, const TransformerKwargs& k) {
    return forward_impl(in[0], in[1], k.src_mask, k.tgt_mask, k.memory_mask);
  });
}

Tensor Transformer::forward_impl(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask,
                                 const AttentionMask& tgt_mask, const AttentionMask& memory_mask) const {
  if (src.dim() != 3 || tgt.dim() != 3 || src.size(0) != tgt.size(0) || src.size(2) != options.d_model ||
      tgt.size(2) != options.d_model)
    throw std::invalid_argument("Transformer: src " + shape_str(src.shape()) + " and tgt " + shape_str(tgt.shape()) +
                                " must be (B, S, d_model) and (B, T, d_model) with d_model " +
                                std::to_string(options.d_model));
  const Tensor memory = encoder->forward(src, src_mask);
  return decoder->forward(tgt, memory, tgt_mask, memory_mask);
}

std::string Transformer::repr() const {
  std::ostringstream os;
  os << "Transformer(d_model=" << options.d_model << ", nhead=" << options.nhead
     << ", num_encoder_layers=" << options.num_encoder_layers << ", num_decoder_layers=" << options.num_decoder_layers
     << ", dim_feedforward=" << options.dim_feedforward << ", norm_first=" << (options.norm_first ? "true" : "false")
     << ")";
  return os.str();
}

}  // namespace rune::nn
