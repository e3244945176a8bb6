#include "nn/embedding.hpp"

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "nn/init.hpp"

namespace rune::nn {

Embedding::Embedding(std::int64_t num, std::int64_t dim, std::optional<std::int64_t> pad, Generator& gen)
    : num_embeddings(num), embedding_dim(dim), padding_idx(pad) {
  if (num <= 0 || dim <= 0) throw std::invalid_argument("Embedding: num_embeddings and embedding_dim must be positive");
  if (pad && (*pad < 0 || *pad >= num))
    throw std::invalid_argument("Embedding: padding_idx " + std::to_string(*pad) + " must be in [0, " +
                                std::to_string(num) + ")");
  weight = register_parameter("weight", empty({num, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
  if (pad) {
    NoGradGuard no_grad;
    slice(weight, 0, *pad, *pad + 1).fill_(0.0);
  }
}

Tensor Embedding::forward(const Tensor& ids) const {
  return with_hooks(ids, [this](const Tensor& in) { return embedding(weight, in, padding_idx); });
}

std::string Embedding::repr() const {
  return "Embedding(" + std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) +
         (padding_idx ? ", padding_idx=" + std::to_string(*padding_idx) : "") + ")";
}

namespace {
// Rows [start, start + T) of a (max_len, C) table for x (B, T, C); names the module on error.
Tensor rows_for(const Tensor& table, const Tensor& x, std::int64_t start, const char* who) {
  const std::int64_t max_len = table.size(0), C = table.size(1);
  if (x.dim() < 2 || x.size(-1) != C)
    throw std::invalid_argument(std::string(who) + ": input " + shape_str(x.shape()) + " must be (..., T, " +
                                std::to_string(C) + ")");
  const std::int64_t T = x.size(-2);
  if (start < 0 || start + T > max_len)
    throw std::out_of_range(std::string(who) + ": positions [" + std::to_string(start) + ", " +
                            std::to_string(start + T) + ") exceed max_len " + std::to_string(max_len));
  return slice(table, 0, start, start + T);  // (T, C), broadcast over the batch
}
}  // namespace

SinusoidalPositionalEncoding::SinusoidalPositionalEncoding(std::int64_t d, std::int64_t len)
    : d_model(d), max_len(len) {
  if (d <= 0 || len <= 0)
    throw std::invalid_argument("SinusoidalPositionalEncoding: d_model and max_len must be positive");
  std::vector<double> v(static_cast<std::size_t>(len * d));
  for (std::int64_t t = 0; t < len; ++t)
    for (std::int64_t i = 0; i < d; ++i) {
      // angle = t / 10000^(2 floor(i/2) / C): even features take its sine, odd ones its cosine
      const double angle = static_cast<double>(t) *
                           std::exp(-std::log(10000.0) * static_cast<double>(i - i % 2) / static_cast<double>(d));
      v[static_cast<std::size_t>(t * d + i)] = i % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  pe = to_dtype(from_vector(v, {len, d}), DType::float32);
}

Tensor SinusoidalPositionalEncoding::forward(const Tensor& x, std::int64_t start) const {
  if (!has_forward_hooks()) return x + rows_for(pe, x, start, "SinusoidalPositionalEncoding");
  PositionKwargs kwargs;
  kwargs.start = start;
  return with_hooks({x}, kwargs, [this](const std::vector<Tensor>& in, const PositionKwargs& k) {
    return in[0] + rows_for(pe, in[0], k.start, "SinusoidalPositionalEncoding");
  });
}

std::string SinusoidalPositionalEncoding::repr() const {
  return "SinusoidalPositionalEncoding(d_model=" + std::to_string(d_model) + ", max_len=" + std::to_string(max_len) +
         ")";
}

LearnedPositionalEmbedding::LearnedPositionalEmbedding(std::int64_t len, std::int64_t d, Generator& gen)
    : max_len(len), d_model(d) {
  if (d <= 0 || len <= 0)
    throw std::invalid_argument("LearnedPositionalEmbedding: max_len and d_model must be positive");
  weight = register_parameter("weight", empty({len, d}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor LearnedPositionalEmbedding::forward(const Tensor& x, std::int64_t start) const {
  if (!has_forward_hooks()) return x + rows_for(weight, x, start, "LearnedPositionalEmbedding");
  PositionKwargs kwargs;
  kwargs.start = start;
  return with_hooks({x}, kwargs, [this](const std::vector<Tensor>& in, const PositionKwargs& k) {
    return in[0] + rows_for(weight, in[0], k.start, "LearnedPositionalEmbedding");
  });
}

std::string LearnedPositionalEmbedding::repr() const {
  return "LearnedPositionalEmbedding(max_len=" + std::to_string(max_len) + ", d_model=" + std::to_string(d_model) + ")";
}

}  // namespace rune::nn
