// The differentiable ops, grouped by the file that implements them. Each op computes its result
// eagerly and, under grad mode, records its backward on the tape (tape.hpp).
//
// Broadcasting follows NumPy/PyTorch: shapes align from the right; a dim of 1 stretches. Every op
// checks shapes and dtypes and throws std::invalid_argument naming itself and the shapes at fault,
// and std::out_of_range for an index outside its dimension.
//
// Dimension legend in comments: B batch, T time, C channels, N rows, K inner dim, V classes.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/tape.hpp"
#include "autograd/tensor.hpp"

namespace rune {

class Generator;

// ---------------------------------------------------------------- elementwise.cpp
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor pow(const Tensor& base, const Tensor& exponent);  // base > 0 where exponent's grad is needed
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor erf(const Tensor& x);
// GELU: exact x * Phi(x) by default; `tanh` is the approximation of Hendrycks and Gimpel.
enum class GeluApproximation { none, tanh };
Tensor gelu(const Tensor& x, GeluApproximation approximate = GeluApproximation::none);
// cond ? a : b, all three broadcast together; cond is bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where mask is true; mask (bool) broadcasts to x's shape.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Comparisons give bool tensors and carry no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& mask);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator-(const Tensor& x);

// ---------------------------------------------------------------- reduce.cpp
Tensor sum(const Tensor& x);  // all elements, shape []
Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim = false);
// Maximum values; the gradient goes to the first maximal element (the one argmax reports).
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, std::int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<std::int64_t>& dims, bool keepdim = false);
Tensor argmax(const Tensor& x, std::int64_t dim, bool keepdim = false);  // int64, no gradient
// Sums a broadcast gradient back to `shape` (the inverse of broadcasting `shape` up to g's).
Tensor reduce_to_shape(const Tensor& g, const Shape& shape);

// ---------------------------------------------------------------- shape.cpp
// A view when x's layout allows it (always for contiguous x), a copy otherwise. One dim may be -1.
Tensor reshape(const Tensor& x, const Shape& shape);
// Like reshape, but never copies: throws when x's strides do not allow a view.
Tensor view(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
Tensor unsqueeze(const Tensor& x, std::int64_t dim);
Tensor squeeze(const Tensor& x, std::int64_t dim);
Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1);  // a view
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims);   // a view
// Broadcasts x to `shape` without copying (stride 0 on stretched dims); -1 keeps a dim.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor contiguous(const Tensor& x);
// Elements start, start+step, ... < end along dim (a view). Negative start/end count from the end
// and are clamped to the dim, as in Python slicing.
Tensor slice(const Tensor& x, std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1);
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t dim = 0);
// Pieces of `split_size` along dim (the last may be shorter), or of the given sizes.
std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t dim = 0);
// Rows of x along dim picked by a 1-D int64 index (an embedding lookup is index_select(W, 0, ids)).
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);
// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0, and so on (torch.gather).
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);
// Conversion between dtypes; differentiable between floating dtypes.
Tensor to_dtype(const Tensor& x, DType dtype);

// ---------------------------------------------------------------- linalg.cpp
// torch.matmul: 1-D operands are promoted and the added dim removed; batch dims broadcast.
// (..., N, K) @ (..., K, M) -> (..., N, M), every product one BLAS gemm on raw buffers.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---------------------------------------------------------------- nn.cpp
// Numerically stable softmax / log_softmax along dim, fused forward and backward.
Tensor softmax(const Tensor& x, std::int64_t dim = -1);
Tensor log_softmax(const Tensor& x, std::int64_t dim = -1);
// Normalises over the trailing `normalized_shape` dims; weight and bias (that shape) may be
// undefined tensors. Biased variance, as torch.nn.functional.layer_norm.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not
// training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
Tensor dropout(const Tensor& x, double p, bool training);  // default generator

enum class Reduction { none, mean, sum };
struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::mean;
};
// logits (N, V) or (V), target int64 (N) or () with class indices; fused log_softmax + NLL.
// With mean reduction the sum is divided by the number of targets not equal to ignore_index.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

}  // namespace rune
