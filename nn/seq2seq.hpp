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
#include <vector>

#include "nn/embedding.hpp"
#include "nn/linear.hpp"
#include "nn/transformer.hpp"

namespace rune::nn {

struct Seq2SeqOptions {
  std::int64_t src_vocab = 0, tgt_vocab = 0;
  std::int64_t pad_id = 0, bos_id = 1, eos_id = 2;
  std::int64_t max_len = 256;      // positions available
  bool learned_positions = false;  // a trained (max_len, C) table instead of the sinusoids
  bool tie_output = false;         // logits = x tgt_embed.weight^T + output_bias (Press and Wolf, 2017)
  // The embeddings' (and learned positions') initial values: N(0, 1/C) as fairseq draws them, or
  // xavier_uniform like every other matrix, as torch.nn.Transformer's tutorials initialise the whole model.
  enum class EmbeddingInit { normal, xavier_uniform } embedding_init = EmbeddingInit::normal;
  TransformerOptions transformer;
};

// The model's parameter count from its options, without building it (nn/transformer.hpp's
// parameter_count).
double parameter_count(const Seq2SeqOptions& o);

class Seq2SeqTransformer : public Module {
 public:
  explicit Seq2SeqTransformer(const Seq2SeqOptions& options, Generator& gen = default_generator());
  // The encoder's output for src ids (B, S) and the mask of its padding (true = pad).
  std::pair<Tensor, AttentionMask> encode(const Tensor& src) const;
  // Logits (B, T, V) for decoder inputs tgt_in (B, T) (teacher forcing), or, with a cache, for
  // the new positions only, placed after cache->length() earlier ones.
  Tensor decode(const Tensor& tgt_in, const Tensor& memory, const AttentionMask& memory_mask,
                DecoderCache* cache = nullptr) const;
  // (B, T, V); calls hooks with inputs (src, tgt_in). encode, decode, greedy and beam_search
  // call none of their own (their submodules' hooks run).
  Tensor forward(const Tensor& src, const Tensor& tgt_in) const;
  // log P(tgt_out | src) per row (B values): the teacher-forced log-softmax of tgt_out's tokens,
  // summed in float64 over its positions that are not pad_id. No grad; eval mode is the caller's.
  std::vector<double> log_probability(const Tensor& src, const Tensor& tgt_in, const Tensor& tgt_out) const;
  // Greedy decoding with the KV cache: (B, <= max_steps) ids after bos, eos included where
  // reached, pad after it.
  Tensor greedy(const Tensor& src, std::int64_t max_steps) const;
  // Beam search: per source the best of `beam` hypotheses by log-probability divided by GNMT's
  // length penalty ((5 + length) / 6)^length_penalty; (B, <= max_steps) like greedy(). With the
  // KV cache (its rows reordered as beams are chosen) or, for checking it, re-running the
  // decoder over each prefix.
  Tensor beam_search(const Tensor& src, std::int64_t beam, std::int64_t max_steps, double length_penalty = 0.6,
                     bool use_cache = true) const;
  std::string repr() const override;

  const Seq2SeqOptions options;
  std::shared_ptr<Embedding> src_embed, tgt_embed;
  std::shared_ptr<SinusoidalPositionalEncoding> sinusoids;  // one of these two
  std::shared_ptr<LearnedPositionalEmbedding> positions;
  std::shared_ptr<Transformer> transformer;
  std::shared_ptr<Linear> generator;  // null when tied
  Tensor output_bias;                 // (V), when tied

 private:
  Tensor embed(const Embedding& e, const Tensor& ids, std::int64_t start) const;
};

}  // namespace rune::nn
