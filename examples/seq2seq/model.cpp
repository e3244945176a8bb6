#include "examples/seq2seq/model.hpp"

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "nn/init.hpp"

namespace rune::examples {

Seq2SeqTransformer::Seq2SeqTransformer(const Seq2SeqOptions& o, Generator& gen) : options(o) {
  const std::int64_t C = o.transformer.d_model;
  src_embed = register_module("src_embed", std::make_shared<nn::Embedding>(o.src_vocab, C, o.pad_id, gen));
  tgt_embed = register_module("tgt_embed", std::make_shared<nn::Embedding>(o.tgt_vocab, C, o.pad_id, gen));
  positions = register_module("positions", std::make_shared<nn::SinusoidalPositionalEncoding>(C, o.max_len));
  transformer = register_module("transformer", std::make_shared<nn::Transformer>(o.transformer, gen));
  generator = register_module("generator", std::make_shared<nn::Linear>(C, o.tgt_vocab, true, gen));
  // Embeddings ~ N(0, 1/C), so that after the sqrt(C) scale they are as large as the positions
  // (fairseq's choice); torch.nn.Embedding's N(0, 1) would drown the positions 8 to 20 times.
  for (const auto& e : {src_embed, tgt_embed}) {
    nn::init::normal_(e->weight, 0.0, 1.0 / std::sqrt(static_cast<double>(C)), gen);
    NoGradGuard no_grad;
    slice(e->weight, 0, o.pad_id, o.pad_id + 1).fill_(0.0);
  }
}

namespace {
// Embeddings scaled by sqrt(C) (Vaswani et al.) plus positions from `start`.
Tensor embed(const nn::Embedding& e, const nn::SinusoidalPositionalEncoding& pe, const Tensor& ids, std::int64_t start) {
  return pe.forward(e.forward(ids) * std::sqrt(static_cast<double>(e.embedding_dim)), start);
}
}  // namespace

std::pair<Tensor, AttentionMask> Seq2SeqTransformer::encode(const Tensor& src) const {
  AttentionMask mask;
  mask.key_padding_mask = eq(src, full({}, static_cast<double>(options.pad_id), DType::int64));  // (B, S)
  return {transformer->encoder->forward(embed(*src_embed, *positions, src, 0), mask), mask};
}

Tensor Seq2SeqTransformer::decode(const Tensor& tgt_in, const Tensor& memory, const AttentionMask& memory_mask,
                                  nn::DecoderCache* cache) const {
  AttentionMask causal;
  causal.causal = true;
  const std::int64_t start = cache ? cache->length() : 0;
  const Tensor x = embed(*tgt_embed, *positions, tgt_in, start);
  return generator->forward(transformer->decoder->forward(x, memory, causal, memory_mask, cache));  // (B, T, V)
}

Tensor Seq2SeqTransformer::forward(const Tensor& src, const Tensor& tgt_in) const {
  const auto [memory, mask] = encode(src);
  return decode(tgt_in, memory, mask);
}

Tensor Seq2SeqTransformer::greedy(const Tensor& src, std::int64_t max_steps) const {
  NoGradGuard no_grad;
  const std::int64_t B = src.size(0);
  const auto [memory, mask] = encode(src);
  nn::DecoderCache cache = transformer->decoder->make_cache();
  std::vector<std::int64_t> out(static_cast<std::size_t>(B * max_steps), options.pad_id);
  std::vector<std::int64_t> next(static_cast<std::size_t>(B), options.bos_id);
  std::vector<bool> done(static_cast<std::size_t>(B), false);
  for (std::int64_t t = 0; t < max_steps; ++t) {
    const Tensor logits = decode(from_vector(next, {B, 1}), memory, mask, &cache);  // (B, 1, V)
    const Tensor best = argmax(logits, -1).contiguous();                            // (B, 1)
    bool all_done = true;
    for (std::int64_t b = 0; b < B; ++b) {
      next[b] = best.data<std::int64_t>()[b];
      if (!done[b]) out[b * max_steps + t] = next[b];
      done[b] = done[b] || next[b] == options.eos_id;
      all_done = all_done && done[b];
    }
    if (all_done) break;
  }
  return from_vector(out, {B, max_steps});
}

std::string Seq2SeqTransformer::repr() const {
  return "Seq2SeqTransformer(src_vocab=" + std::to_string(options.src_vocab) +
         ", tgt_vocab=" + std::to_string(options.tgt_vocab) + ", " + transformer->repr() + ")";
}

}  // namespace rune::examples
