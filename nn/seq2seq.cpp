#include "nn/seq2seq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "nn/init.hpp"

namespace rune::nn {

double parameter_count(const Seq2SeqOptions& o) {
  const auto C = static_cast<double>(o.transformer.d_model), V = static_cast<double>(o.tgt_vocab);
  const double embeddings = (static_cast<double>(o.src_vocab) + V) * C;
  const double positions = o.learned_positions ? static_cast<double>(o.max_len) * C : 0;
  const double output = o.tie_output ? V : C * V + V;
  return embeddings + positions + parameter_count(o.transformer) + output;
}

Seq2SeqTransformer::Seq2SeqTransformer(const Seq2SeqOptions& o, Generator& gen) : options(o) {
  const std::int64_t C = o.transformer.d_model;
  src_embed = register_module("src_embed", std::make_shared<Embedding>(o.src_vocab, C, o.pad_id, gen));
  tgt_embed = register_module("tgt_embed", std::make_shared<Embedding>(o.tgt_vocab, C, o.pad_id, gen));
  if (o.learned_positions) {
    positions = register_module("positions", std::make_shared<LearnedPositionalEmbedding>(o.max_len, C, gen));
    init::normal_(positions->weight, 0.0, 1.0 / std::sqrt(static_cast<double>(C)), gen);
  } else {
    sinusoids = register_module("positions", std::make_shared<SinusoidalPositionalEncoding>(C, o.max_len));
  }
  transformer = register_module("transformer", std::make_shared<Transformer>(o.transformer, gen));
  if (o.tie_output)
    output_bias = register_parameter("output_bias", zeros({o.tgt_vocab}));
  else
    generator = register_module("generator", std::make_shared<Linear>(C, o.tgt_vocab, true, gen));
  // Embeddings ~ N(0, 1/C), so that after the sqrt(C) scale they are as large as the positions
  // (fairseq's choice); torch.nn.Embedding's N(0, 1) would drown the positions 8 to 20 times.
  // xavier_uniform draws them about sqrt(V / C) times smaller than that.
  const bool xavier = o.embedding_init == Seq2SeqOptions::EmbeddingInit::xavier_uniform;
  if (positions && xavier) init::xavier_uniform_(positions->weight, 1.0, gen);
  for (const auto& e : {src_embed, tgt_embed}) {
    if (xavier)
      init::xavier_uniform_(e->weight, 1.0, gen);
    else
      init::normal_(e->weight, 0.0, 1.0 / std::sqrt(static_cast<double>(C)), gen);
    NoGradGuard no_grad;
    slice(e->weight, 0, o.pad_id, o.pad_id + 1).fill_(0.0);
  }
}

// Embeddings scaled by sqrt(C) (Vaswani et al.) plus positions from `start`.
Tensor Seq2SeqTransformer::embed(const Embedding& e, const Tensor& ids, std::int64_t start) const {
  const Tensor x = e.forward(ids) * std::sqrt(static_cast<double>(e.embedding_dim));
  return positions ? positions->forward(x, start) : sinusoids->forward(x, start);
}

std::pair<Tensor, AttentionMask> Seq2SeqTransformer::encode(const Tensor& src) const {
  AttentionMask mask;
  mask.key_padding_mask = eq(src, full({}, static_cast<double>(options.pad_id), DType::int64));  // (B, S)
  return {transformer->encoder->forward(embed(*src_embed, src, 0), mask), mask};
}

Tensor Seq2SeqTransformer::decode(const Tensor& tgt_in, const Tensor& memory, const AttentionMask& memory_mask,
                                  DecoderCache* cache) const {
  AttentionMask causal;
  causal.causal = true;
  const std::int64_t start = cache ? cache->length() : 0;
  const Tensor h = transformer->decoder->forward(embed(*tgt_embed, tgt_in, start), memory, causal, memory_mask, cache);
  return generator ? generator->forward(h) : rune::linear(h, tgt_embed->weight, output_bias);  // (B, T, V)
}

Tensor Seq2SeqTransformer::forward(const Tensor& src, const Tensor& tgt_in) const {
  const auto run = [this](const Tensor& source, const Tensor& target) {
    const auto [memory, mask] = encode(source);
    return decode(target, memory, mask);
  };
  if (!has_forward_hooks()) return run(src, tgt_in);
  ForwardCall call{*this, {src, tgt_in}};
  return call_with_hooks(call,
                         [&](const ForwardCall& c) { return std::vector<Tensor>{run(c.inputs[0], c.inputs[1])}; })[0];
}

std::vector<double> Seq2SeqTransformer::log_probability(const Tensor& src, const Tensor& tgt_in,
                                                        const Tensor& tgt_out) const {
  NoGradGuard no_grad;
  const Tensor lp = to_dtype(log_softmax(forward(src, tgt_in), -1), DType::float64).contiguous();  // (B, T, V)
  const Tensor want = tgt_out.contiguous();
  const std::int64_t B = lp.size(0), T = lp.size(1), V = lp.size(2);
  std::vector<double> out(static_cast<std::size_t>(B), 0.0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int64_t id = want.data<std::int64_t>()[b * T + t];
      if (id != options.pad_id) out[static_cast<std::size_t>(b)] += lp.data<double>()[(b * T + t) * V + id];
    }
  return out;
}

Tensor Seq2SeqTransformer::greedy(const Tensor& src, std::int64_t max_steps) const {
  NoGradGuard no_grad;
  const std::int64_t B = src.size(0);
  const auto [memory, mask] = encode(src);
  DecoderCache cache = transformer->decoder->make_cache();
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

Tensor Seq2SeqTransformer::beam_search(const Tensor& src, std::int64_t beam, std::int64_t max_steps,
                                       double length_penalty, bool use_cache) const {
  if (beam < 1) throw std::invalid_argument("beam_search: beam must be at least 1");
  NoGradGuard no_grad;
  const std::int64_t B = src.size(0), K = beam, N = B * K;
  const auto [memory1, mask1] = encode(src);
  // every source's memory repeated for its K beams: rows b*K .. b*K+K-1
  std::vector<std::int64_t> repeat(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) repeat[static_cast<std::size_t>(i)] = i / K;
  const Tensor rep = from_vector(repeat, {N});
  const Tensor memory = index_select(memory1, 0, rep);
  AttentionMask mask;
  mask.key_padding_mask = index_select(mask1.key_padding_mask, 0, rep);
  DecoderCache cache = transformer->decoder->make_cache();

  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<std::vector<std::int64_t>> seqs(static_cast<std::size_t>(N));         // tokens after bos
  std::vector<double> score(static_cast<std::size_t>(N), ninf);                     // log-probability so far
  for (std::int64_t b = 0; b < B; ++b) score[static_cast<std::size_t>(b * K)] = 0;  // one live beam at first
  struct Done {
    double key;
    std::vector<std::int64_t> tokens;
  };
  std::vector<std::vector<Done>> done(static_cast<std::size_t>(B));
  const auto penalty = [&](std::size_t len) {
    return std::pow((5.0 + static_cast<double>(len)) / 6.0, length_penalty);
  };
  for (std::int64_t t = 0; t < max_steps; ++t) {
    Tensor logp;  // (N, V)
    if (use_cache) {
      std::vector<std::int64_t> last(static_cast<std::size_t>(N));
      for (std::int64_t i = 0; i < N; ++i) last[i] = t == 0 ? options.bos_id : seqs[i].back();
      logp = log_softmax(reshape(decode(from_vector(last, {N, 1}), memory, mask, &cache), {N, -1}), -1);
    } else {
      std::vector<std::int64_t> prefix(static_cast<std::size_t>(N * (t + 1)));
      for (std::int64_t i = 0; i < N; ++i) {
        prefix[i * (t + 1)] = options.bos_id;
        for (std::int64_t j = 0; j < t; ++j) prefix[i * (t + 1) + j + 1] = seqs[i][j];
      }
      const Tensor all = decode(from_vector(prefix, {N, t + 1}), memory, mask);  // (N, t+1, V)
      logp = log_softmax(reshape(slice(all, 1, t, t + 1), {N, -1}), -1);
    }
    const Tensor lp = to_dtype(logp, DType::float64).contiguous();
    const std::int64_t V = lp.size(1);
    std::vector<std::int64_t> parent(static_cast<std::size_t>(N));
    std::vector<std::vector<std::int64_t>> next_seqs(static_cast<std::size_t>(N));
    std::vector<double> next_score(static_cast<std::size_t>(N), ninf);
    for (std::int64_t b = 0; b < B; ++b) {
      // the K best continuations of this source's live beams (ties: lower index first)
      std::vector<std::pair<double, std::int64_t>> cand;  // (score, beam * V + token)
      for (std::int64_t k = 0; k < K; ++k) {
        const double s = score[b * K + k];
        if (s == ninf) continue;
        for (std::int64_t v = 0; v < V; ++v) cand.emplace_back(s + lp.data<double>()[(b * K + k) * V + v], k * V + v);
      }
      const std::size_t keep = std::min<std::size_t>(cand.size(), static_cast<std::size_t>(2 * K));
      std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end(),
                        [](const auto& x, const auto& y) {
                          return x.first > y.first || (x.first == y.first && x.second < y.second);
                        });
      std::int64_t filled = 0;
      for (std::size_t c = 0; c < keep && filled < K; ++c) {
        const std::int64_t k = cand[c].second / V, v = cand[c].second % V, from = b * K + k;
        std::vector<std::int64_t> seq = seqs[from];
        seq.push_back(v);
        if (v == options.eos_id || t + 1 == max_steps) {  // finished: scored with the length penalty
          done[b].push_back({cand[c].first / penalty(seq.size()), seq});
          continue;
        }
        const std::int64_t to = b * K + filled++;
        parent[to] = from;
        next_seqs[to] = std::move(seq);
        next_score[to] = cand[c].first;
      }
      for (std::int64_t k = filled; k < K; ++k) {  // dead slots: padding, never extended (score -inf)
        parent[b * K + k] = b * K;
        next_seqs[b * K + k].assign(static_cast<std::size_t>(t + 1), options.pad_id);
      }
      // stop this source once its best finished hypothesis cannot be beaten by a live one
      // (log-probabilities only fall; with length_penalty >= 0 the penalty grows at most to
      // that of max_steps)
      if (!done[b].empty()) {
        double best_done = ninf;
        for (const Done& d : done[b]) best_done = std::max(best_done, d.key);
        double best_live = ninf;
        for (std::int64_t k = 0; k < filled; ++k)
          best_live = std::max(best_live, next_score[b * K + k] / penalty(static_cast<std::size_t>(max_steps)));
        if (best_live <= best_done)
          for (std::int64_t k = 0; k < K; ++k) next_score[b * K + k] = ninf;
      }
    }
    if (use_cache)
      for (auto& layer : cache.layers) layer.self_attn.reorder(from_vector(parent, {N}));
    seqs = std::move(next_seqs);
    score = std::move(next_score);
    if (std::all_of(score.begin(), score.end(), [&](double s) { return s == ninf; })) break;
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(B * max_steps), options.pad_id);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto best =
        std::max_element(done[b].begin(), done[b].end(), [](const Done& x, const Done& y) { return x.key < y.key; });
    if (best == done[b].end()) continue;
    std::copy(best->tokens.begin(), best->tokens.end(), out.begin() + b * max_steps);
  }
  return from_vector(out, {B, max_steps});
}

std::string Seq2SeqTransformer::repr() const {
  return "Seq2SeqTransformer(src_vocab=" + std::to_string(options.src_vocab) +
         ", tgt_vocab=" + std::to_string(options.tgt_vocab) + ", " + transformer->repr() + ")";
}

}  // namespace rune::nn
