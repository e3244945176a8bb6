// Choosing the next token from a row of logits: greedy, temperature, top-k and top-p (nucleus)
// sampling, in the order the Hugging Face generation code applies them: logits / temperature,
// then the k most probable tokens, then the smallest set of those whose probability reaches p,
// renormalised. Reproducible: the draws come from the Generator given.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace rune::nn {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (the most probable token; the first one among ties)
  std::int64_t top_k = 0;    // keep the k most probable tokens; 0: all
  double top_p = 1.0;        // keep the fewest most probable tokens whose probability reaches p; 1: all
};

// The distribution a row of V logits is sampled from under `options` (probabilities summing to 1,
// zero outside the kept tokens). Throws on options out of range.
std::vector<double> sampling_distribution(const std::vector<double>& logits, const SamplingOptions& options);

// One token per row of logits (B, V), float32 or float64: int64 (B). Each row takes one uniform
// draw from `gen` (the inverse of its distribution's CDF) when sampling, none when greedy.
Tensor sample(const Tensor& logits, const SamplingOptions& options, Generator& gen);

}  // namespace rune::nn
