// Token and position embeddings.
//
//   Embedding                    torch.nn.Embedding: weight (V, C) ~ N(0, 1), padding_idx row zero
//                                at init and never updated by a gradient.
//   SinusoidalPositionalEncoding the fixed encoding of Vaswani et al. (2017):
//                                PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(same).
//   LearnedPositionalEmbedding   a trained (max_len, C) table, weight ~ N(0, 1) like Embedding.
//
// The positional modules add their rows to x (B, T, C) starting at position `start` (the number
// of tokens already decoded when a KV cache is in use).
#pragma once

#include <optional>

#include "autograd/random.hpp"
#include "nn/module.hpp"

namespace rune::nn {

// What a pre-hook on a positional module may change besides x: the first position.
struct PositionKwargs : ForwardKwargs {
  std::int64_t start = 0;
};

class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim,
            std::optional<std::int64_t> padding_idx = std::nullopt, Generator& gen = default_generator());
  Tensor forward(const Tensor& ids) const;  // int64 (...) -> (..., C)
  std::string repr() const override;

  const std::int64_t num_embeddings, embedding_dim;
  const std::optional<std::int64_t> padding_idx;
  Tensor weight;  // (V, C)
};

class SinusoidalPositionalEncoding : public Module {
 public:
  SinusoidalPositionalEncoding(std::int64_t d_model, std::int64_t max_len = 5000);
  Tensor forward(const Tensor& x, std::int64_t start = 0) const;  // x + PE[start : start + T]
  std::string repr() const override;

  const std::int64_t d_model, max_len;
  Tensor pe;  // (max_len, C), a buffer: not a parameter, not trained, not in checkpoints
};

class LearnedPositionalEmbedding : public Module {
 public:
  LearnedPositionalEmbedding(std::int64_t max_len, std::int64_t d_model, Generator& gen = default_generator());
  Tensor forward(const Tensor& x, std::int64_t start = 0) const;  // x + weight[start : start + T]
  std::string repr() const override;

  const std::int64_t max_len, d_model;
  Tensor weight;  // (max_len, C)
};

}  // namespace rune::nn
