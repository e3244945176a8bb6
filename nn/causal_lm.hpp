// A decoder-only Transformer language model in the shape of GPT-2 (Radford et al., 2019): token
// embedding, positions, a stack of pre-LN causal self-attention blocks with a GELU MLP, a final
// LayerNorm and an output projection to the vocabulary, tied to the token embedding or not.
//
// Legend: B batch, T length, C d_model, V vocabulary, L layers.
// Parameter names (the stack is PyTorch's nn.TransformerEncoder with a causal mask, named decoder):
//   embed.weight (V, C), positions.weight (max_len, C) for learned positions only,
//   decoder.layers.N.self_attn.*, decoder.layers.N.linear1/linear2/norm1/norm2.*,
//   decoder.norm.weight/bias (the final LayerNorm), lm_head.weight (V, C) when not tied (no bias,
//   as GPT-2's).
// Positions: learned (GPT-2), sinusoidal (Vaswani et al., added like the learned table), or rotary
// (RoPE, Su et al. 2021, rotate-half form, applied to queries and keys in every block; nothing is
// added to the embedding). Tokens are not scaled by sqrt(C).
// Initialisation as GPT-2's code (and nanoGPT's): every matrix and embedding N(0, 0.02), biases
// zero, and the two projections that write into the residual stream (self_attn.out_proj and
// linear2) N(0, 0.02 / sqrt(2 L)).
#pragma once

#include <memory>
#include <string>

#include "nn/embedding.hpp"
#include "nn/linear.hpp"
#include "nn/transformer.hpp"

namespace rune::nn {

enum class PositionKind { learned, sinusoidal, rotary };
std::string position_kind_name(PositionKind p);
PositionKind position_kind_from_name(const std::string& name);  // "learned", "sinusoidal", "rotary"

struct CausalLMOptions {
  std::int64_t vocab = 0;
  std::int64_t max_len = 256;  // the context: positions the model reads at most
  std::int64_t num_layers = 4;
  PositionKind positions = PositionKind::learned;
  bool tie_output = true;  // logits = x embed.weight^T (Press and Wolf, 2017)
  // d_model, nhead, num_kv_heads, dim_feedforward, dropout (also on the embedding's output),
  // layer_norm_eps, bias, rope_base and rope_dim; norm_first, the activation and rotary are set
  // by the model (pre-LN, GELU, rotary from positions).
  TransformerLayerOptions layer;
};

// The parameter count from the options, without building the model.
double parameter_count(const CausalLMOptions& o);

// What a pre-hook on the model may change besides ids.
struct CausalLMKwargs : ForwardKwargs {
  EncoderCache* cache = nullptr;
};

class CausalLM : public Module {
 public:
  explicit CausalLM(const CausalLMOptions& options, Generator& gen = default_generator());
  // Logits (B, T, V) for ids (B, T): position t sees positions <= t. With a cache (make_cache()),
  // ids are the next positions after cache->length() earlier ones, and the cache grows by T.
  // Beyond max_len positions in all: std::invalid_argument. Calls hooks with inputs (ids).
  Tensor forward(const Tensor& ids, EncoderCache* cache = nullptr) const;
  EncoderCache make_cache() const { return decoder->make_cache(); }
  std::string repr() const override;

  const CausalLMOptions options;
  std::shared_ptr<Embedding> embed;
  std::shared_ptr<LearnedPositionalEmbedding> positions;    // learned positions only
  std::shared_ptr<SinusoidalPositionalEncoding> sinusoids;  // sinusoidal positions only
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<TransformerEncoder> decoder;  // causal, with the final norm
  std::shared_ptr<Linear> lm_head;              // null when tied

 private:
  Tensor forward_impl(const Tensor& ids, EncoderCache* cache) const;
};

}  // namespace rune::nn
