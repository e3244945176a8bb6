// The differentiable ops, grouped by the file that implements them. Each op computes its result
// eagerly and, under grad mode, records its backward on the tape (tape.hpp).
//
// Broadcasting follows NumPy/PyTorch: shapes align from the right; a dim of 1 stretches. Every op
// checks shapes and dtypes and throws std::invalid_argument naming itself and the shapes at fault,
// and std::out_of_range for an index outside its dimension.
//
// Dimension legend in comments: B batch, T time, C channels, N rows, K inner dim, V classes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
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
// Rows of weight (V, C) for int64 ids of any shape: (..., C). Positions whose id is padding_idx
// send no gradient to that row (torch.nn.functional.embedding).
Tensor embedding(const Tensor& weight, const Tensor& ids, std::optional<std::int64_t> padding_idx = std::nullopt);
// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0, and so on (torch.gather).
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);
// Conversion between dtypes; differentiable between floating dtypes.
Tensor to_dtype(const Tensor& x, DType dtype);

// ---------------------------------------------------------------- linalg.cpp
// torch.matmul: 1-D operands are promoted and the added dim removed; batch dims broadcast.
// (..., N, K) @ (..., K, M) -> (..., N, M), every product one BLAS gemm on raw buffers.
Tensor matmul(const Tensor& a, const Tensor& b);
// torch.nn.functional.linear: x (..., K) @ w^T + b with w (N, K), b (N) or undefined -> (..., N).
// One gemm over all rows of x, its output first filled with b (beta = 1): the bias costs no pass
// and no tensor of its own.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---------------------------------------------------------------- nn.cpp
// Numerically stable softmax / log_softmax along dim, fused forward and backward.
Tensor softmax(const Tensor& x, std::int64_t dim = -1);
Tensor log_softmax(const Tensor& x, std::int64_t dim = -1);
// Normalises over the trailing `normalized_shape` dims; weight and bias (that shape) may be
// undefined tensors. Biased variance, as torch.nn.functional.layer_norm.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);
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

// ---------------------------------------------------------------- attention.cpp
// Masks of scaled dot-product attention. Every boolean says what it BLOCKS: true means "this
// query may not attend this key" (torch.nn.MultiheadAttention's convention; beware that
// torch.nn.functional.scaled_dot_product_attention uses the opposite one).
struct AttentionMask {
  // Query i may attend keys j <= i + (Tk - Tq): the causal mask aligned to the end of the keys,
  // so a decoding step with Tq = 1 sees the whole cache; with Tq == Tk, keys j <= i.
  bool causal = false;
  Tensor key_padding_mask;  // bool (B, Tk): true marks a padding key, blocked for every query
  Tensor blocked;           // bool, (Tq, Tk) or anything broadcasting to (B, H, Tq, Tk)
  Tensor bias;              // float, broadcasting to (B, H, Tq, Tk), added to the scaled scores
                            // (-inf blocks; an additive mask as in PyTorch's float attn_mask)
};
// P = softmax(scale * q k^T + bias) over the keys, blocked keys excluded: (B, H, Tq, Tk).
// q (B, H, Tq, D), k (B, Hkv, Tk, D) with H a multiple of Hkv: query head h reads key head
// h / (H / Hkv) (grouped-query attention; Hkv = 1 is multi-query). scale defaults to 1/sqrt(D).
// A query whose keys are all blocked gets a row of zeros and a zero gradient, never NaN.
Tensor attention_weights(const Tensor& q, const Tensor& k, const AttentionMask& mask = {},
                         std::optional<double> scale = std::nullopt);
// Fused scaled dot-product attention: dropout(attention_weights(q, k)) @ v, v (B, Hkv, Tk, Dv),
// result (B, H, Tq, Dv). With dropout_p > 0 the dropped weights come from `gen` (the default
// generator if null), in the order dropout() on the weights would draw them.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask = {},
                 std::optional<double> scale = std::nullopt, double dropout_p = 0.0, Generator* gen = nullptr);

// ---------------------------------------------------------------- flash_attention.cpp
// Memory-efficient attention (FlashAttention, Dao et al. 2022, in FlashAttention-2's loop order):
// the same result as attention(q, k, v, mask, scale) without dropout, computed over tiles of
// `queries` x `keys` with an online softmax, so that no (Tq, Tk) tensor is ever stored: the
// memory kept for backward is O and one log-sum-exp per query row. The backward recomputes each
// tile's weights. Masks: causal and key_padding_mask (a blocked or bias mask is refused).
struct AttentionTiles {
  std::int64_t queries = 64, keys = 128;
};
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask = {},
                       std::optional<double> scale = std::nullopt, AttentionTiles tiles = {});

// ---------------------------------------------------------------- rope.cpp
// Rotary position embedding in the rotate-half layout of GPT-NeoX and LLaMA: x (B, H, T, D), the
// query or key heads at positions offset .. offset + T - 1. The first rotary_dim features (0: all
// D; even) split into halves x1, x2; with a = position * base^(-2i / rotary_dim) for feature i of
// a half, the result is [x1 cos a - x2 sin a, x2 cos a + x1 sin a], the other features unchanged.
// A cached decoder passes offset = the cache length, so a step sees the angles a full pass would.
Tensor rope(const Tensor& x, std::int64_t offset = 0, double base = 10000.0, std::int64_t rotary_dim = 0);

// ---------------------------------------------------------------- image.cpp
// im2col for non-overlapping square patches: x (B, C, H, W), H and W divisible by patch, to
// (B, N, C * patch * patch) with N = (H/patch)(W/patch) patches in row-major grid order and the
// features of a patch ordered (c, kh, kw) like a flattened Conv2d weight (C_out, C, p, p). So
// patchify(x, p) @ W.reshape(C_out, -1)^T + b is Conv2d(kernel = stride = p) with (B, N, C_out) out.
Tensor patchify(const Tensor& x, std::int64_t patch);
// torch.nn.functional.interpolate(x, size=(out_h, out_w), mode='bicubic', align_corners) for
// x (B, C, H, W): Keys' cubic kernel with A = -0.75, border taps clamped, no antialiasing.
Tensor interpolate_bicubic(const Tensor& x, std::int64_t out_h, std::int64_t out_w, bool align_corners = false);

// ---------------------------------------------------------------- conv.cpp
// torch.nn.functional.conv2d: x (B, C, H, W), weight (O, C / groups, kh, kw), bias (O) or
// undefined, to (B, O, P, Q) with P = (H + 2 padding - dilation (kh - 1) - 1) / stride + 1 (Q alike).
struct Conv2dOptions {
  std::array<std::int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::int64_t groups = 1;
};
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv2dOptions& options = {});

// torch.nn.functional.batch_norm over x (B, C, ...): per channel, (x - mean) / sqrt(var + eps) *
// weight + bias. Training normalises by the batch's statistics (biased variance) and, when the
// running statistics are given, updates them in place: running = (1 - momentum) running +
// momentum batch, with the unbiased variance. Evaluation normalises by the running statistics.
// weight and bias may be undefined; the running statistics are never differentiated.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5);

// max_pool2d and avg_pool2d over x (B, C, H, W), as torch.nn.functional's: stride {0, 0} means the
// kernel size; padding at most half the kernel; ceil_mode rounds the output size up (a window
// must still start inside the input or its left padding). max_pool2d pads with -inf and takes the
// first maximum (NaN wins); avg_pool2d divides by the window clipped to the padded input
// (count_include_pad) or to the input. Dilation is max_pool2d's alone.
struct Pool2dOptions {
  std::array<std::int64_t, 2> kernel_size{2, 2}, stride{0, 0}, padding{0, 0}, dilation{1, 1};
  bool ceil_mode = false;
  bool count_include_pad = true;
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);
// torch.nn.functional.adaptive_avg_pool2d: output cell (p, q) is the mean over rows
// [floor(p H / out_h), ceil((p + 1) H / out_h)) and the columns alike.
Tensor adaptive_avg_pool2d(const Tensor& x, std::int64_t out_h, std::int64_t out_w);

}  // namespace rune
