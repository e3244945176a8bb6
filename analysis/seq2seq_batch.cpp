#include "analysis/seq2seq_batch.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/ops.hpp"

namespace rune::analysis {

AnalysisBatch seq2seq_analysis_batch(const nn::Seq2SeqTransformer& model, const Tensor& src, const Tensor& tgt_in,
                                     const Tensor& tgt_out) {
  const nn::Seq2SeqOptions& options = model.options;
  const std::int64_t B = src.size(0), T = tgt_out.size(1);
  const auto non_pad = [&options](const Tensor& ids) {  // per row of (B, L) ids
    const Tensor c = ids.contiguous();
    std::vector<std::int64_t> counts(static_cast<std::size_t>(c.size(0)), 0);
    for (std::int64_t b = 0; b < c.size(0); ++b)
      for (std::int64_t t = 0; t < c.size(1); ++t)
        counts[static_cast<std::size_t>(b)] += c.data<std::int64_t>()[b * c.size(1) + t] != options.pad_id;
    return counts;
  };
  const std::vector<std::int64_t> src_len = non_pad(src), tgt_len = non_pad(tgt_out);
  const Tensor logits = model.forward(src, tgt_in);  // (B, T, V)
  CrossEntropyOptions o;
  o.ignore_index = options.pad_id;
  o.reduction = Reduction::none;  // 0 on padding
  const Tensor per_token =
      reshape(cross_entropy(reshape(logits, {-1, logits.size(2)}), reshape(tgt_out, {-1}), o), {B, T});
  std::vector<double> tokens(tgt_len.begin(), tgt_len.end());
  for (double& n : tokens) n = std::max(n, 1.0);
  AnalysisBatch batch;
  batch.losses = sum(per_token, {1}) / to_dtype(from_vector(tokens, {B}), per_token.dtype());
  batch.valid = [src_len, tgt_len](const std::string& path, std::int64_t b) -> std::pair<std::int64_t, std::int64_t> {
    const auto i = static_cast<std::size_t>(b);
    const auto ends_with = [&](const std::string& tail) {
      return path.size() >= tail.size() && path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends_with("self_attn") && path.find("encoder.") != std::string::npos) return {src_len.at(i), src_len.at(i)};
    if (ends_with("self_attn") && path.find("decoder.") != std::string::npos) return {tgt_len.at(i), tgt_len.at(i)};
    if (ends_with("multihead_attn")) return {tgt_len.at(i), src_len.at(i)};
    throw std::invalid_argument("seq2seq_analysis_batch: no attention module at '" + path + "'");
  };
  return batch;
}

}  // namespace rune::analysis
