// The Transformer's layers and stacks, as torch.nn (batch_first = true), with PyTorch's
// parameter names: self_attn, multihead_attn, linear1, linear2, norm1..norm3, layers.N,
// encoder, decoder, norm.
//
// Legend: B batch, S source length, T target length, C d_model, F dim_feedforward.
//
// post-LN (norm_first = false), as Vaswani et al.:  x = norm1(x + sa(x)); x = norm2(x + ff(x))
// pre-LN  (norm_first = true):                      x = x + sa(norm1(x)); x = x + ff(norm2(x))
// The decoder adds cross-attention over the encoder output (memory) between the two, with norm2,
// and its feed-forward moves to norm3.
//
// Every forward here calls forward hooks (nn/module.hpp); the kwargs a pre-hook may change are
// the masks and caches below (EncoderKwargs, DecoderLayerKwargs, DecoderKwargs, TransformerKwargs).
#pragma once

#include <memory>
#include <vector>

#include "nn/attention.hpp"
#include "nn/dropout.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"

namespace rune::nn {

enum class Activation { relu, gelu };
std::string activation_name(Activation a);
Activation activation_from_name(const std::string& name);  // "relu" or "gelu", else throws

// The position-wise feed-forward block: linear2(dropout(activation(linear1(x)))).
class FeedForward : public Module {
 public:
  FeedForward(std::int64_t d_model, std::int64_t dim_feedforward, double dropout = 0.1,
              Activation activation = Activation::gelu, Generator& gen = default_generator(),
              Generator* dropout_generator = nullptr);
  Tensor forward(const Tensor& x) const;  // (..., C) -> (..., C)
  std::string repr() const override;

  const Activation activation;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<Dropout> dropout;
};

// The encoder layer's and the encoder's arguments besides src, as hooks see them.
struct EncoderKwargs : ForwardKwargs {
  AttentionMask src_mask;
  KVCache* cache = nullptr;  // a layer's self-attention cache (a decoder-only model decoding)
};

struct TransformerLayerOptions {
  std::int64_t d_model = 512;
  std::int64_t nhead = 8;
  std::int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;
  bool bias = true;
  std::int64_t num_kv_heads = 0;           // 0: nhead (see MultiheadAttentionOptions)
  Generator* dropout_generator = nullptr;  // null: the default generator
  // Rotary positions in the self-attention (MultiheadAttentionOptions::rotary); never in a
  // decoder's cross-attention.
  bool rotary = false;
  double rope_base = 10000.0;
  std::int64_t rope_dim = 0;
  AttentionKernel attention_kernel = AttentionKernel::automatic;  // every attention of the layer
  std::optional<double> attention_scale;                          // every attention's MultiheadAttentionOptions::scale
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& options, Generator& gen = default_generator());
  // src (B, S, C); src_mask: the self-attention's masks (key padding, blocked, causal). With a
  // cache (a causal decoder-only stack decoding), src holds only the new positions and the
  // self-attention sees every cached one.
  Tensor forward(const Tensor& src, const AttentionMask& src_mask = {}, KVCache* cache = nullptr) const;
  std::string repr() const override;

  const TransformerLayerOptions options;
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2;

 private:
  Tensor forward_impl(const Tensor& src, const AttentionMask& src_mask, KVCache* cache) const;
  Tensor feed_forward(const Tensor& x) const;
};

// The caches of one decoder layer: its self-attention's growing keys and values, and the
// encoder memory's keys and values projected once.
struct DecoderLayerCache {
  KVCache self_attn{KVCache::Kind::self_attention};
  KVCache cross_attn{KVCache::Kind::memory};
};

// The decoder layer's arguments besides tgt and memory, as hooks see them.
struct DecoderLayerKwargs : ForwardKwargs {
  AttentionMask tgt_mask, memory_mask;
  DecoderLayerCache* cache = nullptr;
};

class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& options, Generator& gen = default_generator());
  // tgt (B, T, C), memory (B, S, C). tgt_mask masks the self-attention (set causal = true for a
  // causal decoder), memory_mask the cross-attention. With a cache, tgt holds only the new
  // positions and the self-attention sees every cached one.
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {}, DecoderLayerCache* cache = nullptr) const;
  std::string repr() const override;

  const TransformerLayerOptions options;
  std::shared_ptr<MultiheadAttention> self_attn, multihead_attn;
  std::shared_ptr<Linear> linear1, linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Dropout> dropout, dropout1, dropout2, dropout3;

 private:
  Tensor forward_impl(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                      const AttentionMask& memory_mask, DecoderLayerCache* cache) const;
  Tensor feed_forward(const Tensor& x) const;
};

// One self-attention cache per layer of an encoder stack used as a causal decoder-only model;
// length() positions decoded so far.
struct EncoderCache {
  std::vector<KVCache> layers;
  std::int64_t length() const { return layers.empty() ? 0 : layers.front().length(); }
};

// The encoder stack's arguments besides src, as hooks see them.
struct EncoderStackKwargs : ForwardKwargs {
  AttentionMask src_mask;
  EncoderCache* cache = nullptr;
};

class TransformerEncoder : public Module {
 public:
  // num_layers layers of these options, then a LayerNorm named "norm" if final_norm.
  TransformerEncoder(const TransformerLayerOptions& layer, std::int64_t num_layers, bool final_norm,
                     Generator& gen = default_generator());
  // With a cache (from make_cache), src holds the new positions only: a causal stack (src_mask
  // causal) decodes one step at a time, as TransformerDecoder does.
  Tensor forward(const Tensor& src, const AttentionMask& src_mask = {}, EncoderCache* cache = nullptr) const;
  EncoderCache make_cache() const;  // empty caches, one per layer
  std::string repr() const override;

  std::shared_ptr<ModuleList<TransformerEncoderLayer>> layers;
  std::shared_ptr<LayerNorm> norm;  // null without final_norm

 private:
  Tensor forward_impl(const Tensor& src, const AttentionMask& src_mask, EncoderCache* cache) const;
};

// One DecoderLayerCache per layer; length() positions decoded so far.
struct DecoderCache {
  std::vector<DecoderLayerCache> layers;
  std::int64_t length() const { return layers.empty() ? 0 : layers.front().self_attn.length(); }
};

// The decoder's arguments besides tgt and memory, as hooks see them.
struct DecoderKwargs : ForwardKwargs {
  AttentionMask tgt_mask, memory_mask;
  DecoderCache* cache = nullptr;
};

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerLayerOptions& layer, std::int64_t num_layers, bool final_norm,
                     Generator& gen = default_generator());
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {}, DecoderCache* cache = nullptr) const;
  DecoderCache make_cache() const;  // empty caches, one per layer
  std::string repr() const override;

  std::shared_ptr<ModuleList<TransformerDecoderLayer>> layers;
  std::shared_ptr<LayerNorm> norm;

 private:
  Tensor forward_impl(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                      const AttentionMask& memory_mask, DecoderCache* cache) const;
};

struct TransformerOptions {
  std::int64_t d_model = 512;
  std::int64_t nhead = 8;
  std::int64_t num_encoder_layers = 6;
  std::int64_t num_decoder_layers = 6;
  std::int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;
  bool bias = true;
  std::int64_t num_kv_heads = 0;
  std::optional<double> attention_scale;  // TransformerLayerOptions::attention_scale
  Generator* dropout_generator = nullptr;
  TransformerLayerOptions layer() const;
};

// Parameter counts from options alone, without building (and allocating) the module, so that a
// model too large for memory is refused first. Each equals the built module's num_parameters();
// in double, exact below 2^53, so that no product of sizes wraps around.
double parameter_count(const TransformerLayerOptions& o, bool decoder);  // one encoder or decoder layer
double parameter_count(const TransformerOptions& o);                     // both stacks and their final norms

// The Transformer's arguments besides src and tgt, as hooks see them.
struct TransformerKwargs : ForwardKwargs {
  AttentionMask src_mask, tgt_mask, memory_mask;
};

// torch.nn.Transformer: an encoder and a decoder, each ending in a LayerNorm, every weight
// matrix re-initialised xavier_uniform as PyTorch does. Embeddings and the output projection
// belong to the model that uses it.
class Transformer : public Module {
 public:
  explicit Transformer(const TransformerOptions& options, Generator& gen = default_generator());
  // src (B, S, C), tgt (B, T, C) -> (B, T, C). The memory's key padding usually equals the
  // source's: pass src_mask.key_padding_mask in memory_mask too.
  Tensor forward(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask = {},
                 const AttentionMask& tgt_mask = {}, const AttentionMask& memory_mask = {}) const;
  std::string repr() const override;

  const TransformerOptions options;
  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<TransformerDecoder> decoder;

 private:
  Tensor forward_impl(const Tensor& src, const Tensor& tgt, const AttentionMask& src_mask,
                      const AttentionMask& tgt_mask, const AttentionMask& memory_mask) const;
};

}  // namespace rune::nn
