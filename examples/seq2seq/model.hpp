// An encoder-decoder Transformer over token ids: embeddings scaled by sqrt(d_model), sinusoidal
// positions, the torch.nn.Transformer core and an output projection to the target vocabulary.
// Used by the sequence tasks (reversal here; translation builds on it).
//
// Legend: B batch, S source length, T target length, C d_model, V vocabulary.
// Parameter names: src_embed.weight, tgt_embed.weight, positions.weight (learned positions only),
// transformer.encoder.* and transformer.decoder.* (torch.nn.Transformer's), generator.weight and
// generator.bias, or output_bias alone when the output projection is tied to tgt_embed.weight.
#pragma once

#include <memory>

#include "cli/config.hpp"
#include "cli/task.hpp"
#include "nn/embedding.hpp"
#include "nn/linear.hpp"
#include "nn/transformer.hpp"

namespace rune::examples {

struct Seq2SeqOptions {
  std::int64_t src_vocab = 0, tgt_vocab = 0;
  std::int64_t pad_id = 0, bos_id = 1, eos_id = 2;
  std::int64_t max_len = 256;  // positions available
  bool learned_positions = false;  // a trained (max_len, C) table instead of the sinusoids
  bool tie_output = false;         // logits = x tgt_embed.weight^T + output_bias (Press and Wolf, 2017)
  nn::TransformerOptions transformer;
};

// The [model] keys of a sequence task's config: d_model and nhead (defaults given; nhead must
// divide d_model), num_encoder_layers and num_decoder_layers (2), dim_feedforward (4 d_model),
// dropout (0.1), activation (gelu), norm_first (true). Dropout draws from dropout_generator.
nn::TransformerOptions read_transformer_options(cli::Config& c, std::int64_t d_model, std::int64_t nhead,
                                                Generator* dropout_generator);
// model.positions ("sinusoidal" or "learned") and model.tie_output (false) into o.
void read_embedding_options(cli::Config& c, Seq2SeqOptions& o);

class Seq2SeqTransformer : public nn::Module {
 public:
  explicit Seq2SeqTransformer(const Seq2SeqOptions& options, Generator& gen = default_generator());
  // The encoder's output for src ids (B, S) and the mask of its padding (true = pad).
  std::pair<Tensor, AttentionMask> encode(const Tensor& src) const;
  // Logits (B, T, V) for decoder inputs tgt_in (B, T) (teacher forcing), or, with a cache, for
  // the new positions only, placed after cache->length() earlier ones.
  Tensor decode(const Tensor& tgt_in, const Tensor& memory, const AttentionMask& memory_mask,
                nn::DecoderCache* cache = nullptr) const;
  Tensor forward(const Tensor& src, const Tensor& tgt_in) const;  // (B, T, V)
  // Greedy decoding with the KV cache: (B, <= max_steps) ids after bos, eos included where
  // reached, pad after it.
  Tensor greedy(const Tensor& src, std::int64_t max_steps) const;
  // Beam search: per source the best of `beam` hypotheses by log-probability divided by GNMT's
  // length penalty ((5 + length) / 6)^length_penalty; (B, <= max_steps) like greedy(). With the
  // KV cache (its rows reordered as beams are chosen) or, for checking it, re-running the
  // decoder over each prefix.
  Tensor beam_search(const Tensor& src, std::int64_t beam, std::int64_t max_steps, double length_penalty = 0.6,
                     bool use_cache = true) const;
  // Head analysis of a padded, teacher-forced batch (src, tgt_in, tgt_out of a task's encoding):
  // each example's mean token cross-entropy (unsmoothed) on the tape, and the valid counts of
  // example b per attention module: encoder self (S_b, S_b), decoder self (T_b, T_b) and cross
  // (T_b, S_b), S_b and T_b its source's and target's tokens that are not padding.
  cli::AnalysisBatch analyse(const Tensor& src, const Tensor& tgt_in, const Tensor& tgt_out) const;
  std::string repr() const override;

  const Seq2SeqOptions options;
  std::shared_ptr<nn::Embedding> src_embed, tgt_embed;
  std::shared_ptr<nn::SinusoidalPositionalEncoding> sinusoids;  // one of these two
  std::shared_ptr<nn::LearnedPositionalEmbedding> positions;
  std::shared_ptr<nn::Transformer> transformer;
  std::shared_ptr<nn::Linear> generator;  // null when tied
  Tensor output_bias;                     // (V), when tied

 private:
  Tensor embed(const nn::Embedding& e, const Tensor& ids, std::int64_t start) const;
};

}  // namespace rune::examples
