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
//
// Pattern scores (Clark et al. 2019's families), each a share of attention mass in [0, 1],
// averaged over rows like the statistics:
//   diagonal    A[i][i]: the query attends to itself
//   offset      A[i][i+k] for the best fixed offset k in -3..3, k != 0 (previous/next token),
//               over the rows where i + k is a valid key
//   vertical    the mass on the two keys the matrix's rows attend to most in total (<bos>,
//               <eos>, the class token, punctuation): the sum of the two largest column means
//   block       the row's mass inside its span, counted only where the span is a segment the
//               rows inside it share: the span of row i is grown from key i one neighbour at a
//               time (the heavier side first) until it holds 90% of the row; a segment has 2 to
//               Tk / 2 keys and every valid row inside it has the same span
// The pattern is the family with the highest score if that score reaches 0.5 (ties in the
// order above), else heterogeneous.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace rune::analysis {

enum class Pattern { diagonal, offset, vertical, block, heterogeneous };
std::string pattern_name(Pattern p);  // "diagonal", "offset", "vertical", "block", "heterogeneous"

struct HeadStatistics {
  double entropy = 0, distance = 0, confidence = 0;
  double diagonal = 0, offset = 0, vertical = 0, block = 0;  // pattern scores
  int best_offset = 0;                                       // the k behind `offset`
  Pattern pattern = Pattern::heterogeneous;
  double pattern_score = 0;  // the score that named the pattern (the highest one)
  std::int64_t rows = 0;     // rows averaged
};

class HeadAccumulator {
 public:
  // One matrix: rows 0..valid_q-1 of `weights`, each `row_stride` floats apart, keys 0..valid_k-1.
  void add(const float* weights, std::int64_t valid_q, std::int64_t valid_k, std::int64_t row_stride);
  HeadStatistics result() const;

 private:
  static constexpr int kMaxOffset = 3;
  double entropy_ = 0, distance_ = 0, confidence_ = 0, diagonal_ = 0, vertical_ = 0, block_ = 0;
  std::int64_t rows_ = 0, diagonal_rows_ = 0;
  std::array<double, 2 * kMaxOffset + 1> offset_{};
  std::array<std::int64_t, 2 * kMaxOffset + 1> offset_rows_{};
  std::vector<double> columns_;                  // column sums of the matrix being added
  std::vector<std::int64_t> span_lo_, span_hi_;  // each row's span
  std::vector<double> span_mass_;
};

// Jensen-Shannon divergence between two distributions of equal length, in nats: the mean of
// KL(p || m) and KL(q || m) with m = (p + q) / 2. Symmetric, 0 for equal rows, at most ln 2.
double js_divergence(const float* p, const float* q, std::int64_t n);

// Redundancy between the heads of one attention module: for every pair of heads, the Jensen-
// Shannon divergence between their attention rows (the same query), averaged over every valid
// row of every example. Computed as H(m) - (H(p) + H(q)) / 2 with H the entropy, so each pair
// costs one logarithm per weight; the pairs are shared out between threads.
class RedundancyAccumulator {
 public:
  explicit RedundancyAccumulator(std::int64_t heads);
  // One example: head h's row i at weights + h head_stride + i row_stride, keys 0..valid_k-1.
  void add(const float* weights, std::int64_t valid_q, std::int64_t valid_k, std::int64_t row_stride,
           std::int64_t head_stride);
  double mean(std::int64_t a, std::int64_t b) const;  // 0 for a == b
  std::int64_t heads() const { return heads_; }

 private:
  std::int64_t heads_, rows_ = 0;
  std::vector<double> sums_;     // (H, H), upper triangle
  std::vector<double> entropy_;  // (H, valid_q) of the example being added
};

}  // namespace rune::analysis
