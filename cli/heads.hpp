// Head analysis: statistics of each attention head's weights over a data split (Voita et al.
// 2019; Clark et al. 2019), accumulated one attention matrix at a time.
//
// Legend: Tq queries, Tk keys; a matrix is row-stochastic over its valid keys (rows of padding
// queries are left out by the caller's valid_q, padding keys carry weight 0 and lie past valid_k).
//
// For a row p (the attention of query i over keys j):
//   entropy     -sum_j p_j ln p_j, in nats (0 for a one-hot row, ln Tk for a uniform one)
//   distance    sum_j p_j |i - j|, in positions (tokens or patches in the sequence's order)
//   confidence  max_j p_j
// Each statistic of a head is the mean over every valid row of every matrix it was given.
#pragma once

#include <cstdint>
#include <vector>

namespace rune::cli {

struct HeadStatistics {
  double entropy = 0, distance = 0, confidence = 0;
  std::int64_t rows = 0;  // rows averaged
};

class HeadAccumulator {
 public:
  // One matrix: rows 0..valid_q-1 of `weights`, each `row_stride` floats apart, keys 0..valid_k-1.
  void add(const float* weights, std::int64_t valid_q, std::int64_t valid_k, std::int64_t row_stride);
  HeadStatistics result() const;

 private:
  double entropy_ = 0, distance_ = 0, confidence_ = 0;
  std::int64_t rows_ = 0;
};

// Jensen-Shannon divergence between two distributions of equal length, in nats: the mean of
// KL(p || m) and KL(q || m) with m = (p + q) / 2. Symmetric, 0 for equal rows, at most ln 2.
double js_divergence(const float* p, const float* q, std::int64_t n);

}  // namespace rune::cli
