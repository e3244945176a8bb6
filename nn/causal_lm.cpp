#include "nn/causal_lm.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"
#include "nn/init.hpp"

namespace rune::nn {

std::string position_kind_name(PositionKind p) {
  switch (p) {
    case PositionKind::learned:
      return "learned";
    case PositionKind::sinusoidal:
      return "sinusoidal";
    case PositionKind::rotary:
      return "rotary";
  }
  return "?";
}

PositionKind position_kind_from_name(const std::string& name) {
  if (name == "learned") return PositionKind::learned;
  if (name == "sinusoidal") return PositionKind::sinusoidal;
  if (name == "rotary") return PositionKind::rotary;
  throw std::invalid_argument("positions: '" + name + "' is not learned, sinusoidal or rotary");
}

namespace {
TransformerLayerOptions block_options(const CausalLMOptions& o) {
  TransformerLayerOptions l = o.layer;
  l.norm_first = true;
  l.activation = Activation::gelu;
  l.rotary = o.positions == PositionKind::rotary;
  return l;
}
}  // namespace

double parameter_count(const CausalLMOptions& o) {
  const auto C = static_cast<double>(o.layer.d_model), V = static_cast<double>(o.vocab);
  const double positions = o.positions == PositionKind::learned ? static_cast<double>(o.max_len) * C : 0;
  const double final_norm = 2 * C;
  const double output = o.tie_output ? 0 : V * C;
  return V * C + positions + static_cast<double>(o.num_layers) * parameter_count(block_options(o), false) + final_norm +
         output;
}

CausalLM::CausalLM(const CausalLMOptions& o, Generator& gen) : options(o) {
  if (o.vocab < 1) throw std::invalid_argument("CausalLM: vocab must be at least 1");
  if (o.max_len < 1) throw std::invalid_argument("CausalLM: max_len must be at least 1");
  const std::int64_t C = o.layer.d_model;
  embed = register_module("embed", std::make_shared<Embedding>(o.vocab, C, std::nullopt, gen));
  if (o.positions == PositionKind::learned)
    positions = register_module("positions", std::make_shared<LearnedPositionalEmbedding>(o.max_len, C, gen));
  else if (o.positions == PositionKind::sinusoidal)
    sinusoids = register_module("positions", std::make_shared<SinusoidalPositionalEncoding>(C, o.max_len));
  dropout = register_module("dropout", std::make_shared<Dropout>(o.layer.dropout, o.layer.dropout_generator));
  decoder = register_module(
      "decoder", std::make_shared<TransformerEncoder>(block_options(o), o.num_layers, /*final_norm=*/true, gen));
  if (!o.tie_output) lm_head = register_module("lm_head", std::make_shared<Linear>(C, o.vocab, false, gen));

  // GPT-2's initialisation, in the order of the parameters' names
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(o.num_layers));
  init::normal_(embed->weight, 0.0, std, gen);
  if (positions) init::normal_(positions->weight, 0.0, std, gen);
  for (std::size_t i = 0; i < decoder->layers->size(); ++i) {
    TransformerEncoderLayer& block = (*decoder->layers)[i];
    MultiheadAttention& a = *block.self_attn;
    for (Tensor* w : {&a.in_proj_weight, &a.q_proj_weight, &a.k_proj_weight, &a.v_proj_weight})
      if (w->defined()) init::normal_(*w, 0.0, std, gen);
    init::normal_(a.out_proj->weight, 0.0, residual_std, gen);
    init::normal_(block.linear1->weight, 0.0, std, gen);
    init::normal_(block.linear2->weight, 0.0, residual_std, gen);
    for (Tensor* b : {&a.in_proj_bias, &a.out_proj->bias, &block.linear1->bias, &block.linear2->bias})
      if (b->defined()) init::zeros_(*b);
  }
  if (lm_head) init::normal_(lm_head->weight, 0.0, std, gen);
}

Tensor CausalLM::forward(const Tensor& ids, EncoderCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(ids, cache);
  CausalLMKwargs kwargs;
  kwargs.cache = cache;
  return with_hooks({ids}, kwargs, [this](const std::vector<Tensor>& in, const CausalLMKwargs& k) {
    return forward_impl(in[0], k.cache);
  });
}

Tensor CausalLM::forward_impl(const Tensor& ids, EncoderCache* cache) const {
  if (ids.dim() != 2)
    throw std::invalid_argument("CausalLM: ids must be (batch, length), got " + std::to_string(ids.dim()) +
                                " dimensions");
  const std::int64_t start = cache ? cache->length() : 0, T = ids.size(1);
  if (start + T > options.max_len)
    throw std::invalid_argument("CausalLM: " + std::to_string(start) + " cached and " + std::to_string(T) +
                                " new positions exceed the model's context of " + std::to_string(options.max_len) +
                                " (max_len)");
  Tensor x = embed->forward(ids);
  if (positions) x = positions->forward(x, start);
  if (sinusoids) x = sinusoids->forward(x, start);
  AttentionMask causal;
  causal.causal = true;
  const Tensor h = decoder->forward(dropout->forward(x), causal, cache);
  return lm_head ? lm_head->forward(h) : rune::linear(h, embed->weight, Tensor());  // (B, T, V)
}

std::string CausalLM::repr() const {
  return "CausalLM(vocab=" + std::to_string(options.vocab) + ", max_len=" + std::to_string(options.max_len) +
         ", layers=" + std::to_string(options.num_layers) + ", positions=" + position_kind_name(options.positions) +
         ", tie_output=" + (options.tie_output ? "true" : "false") + ")";
}

}  // namespace rune::nn
