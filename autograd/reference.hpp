// Naive versions of the fused kernels, kept beside the fast ones (as llm.c does) and tested
// against them: plain loops in double, written for clarity, never for speed. Forward only; the
// fast kernels' gradients are checked against finite differences and against compositions of
// primitive ops instead.
#pragma once

#include "autograd/ops.hpp"

namespace rune::reference {

Tensor matmul(const Tensor& a, const Tensor& b);  // (M, K) @ (K, N) or (B, M, K) @ (B, K, N)
Tensor softmax(const Tensor& x);                  // over the last dim
Tensor log_softmax(const Tensor& x);              // over the last dim
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);  // last dim
Tensor gelu(const Tensor& x, GeluApproximation approximate);
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options);
// Rotary embedding as the Hugging Face LLaMA code writes it: emb = cat(freqs, freqs),
// x * cos(emb) + rotate_half(x) * sin(emb) with rotate_half(x) = cat(-x2, x1), on the first
// rotary_dim features. Returns float64.
Tensor rope(const Tensor& x, std::int64_t offset, double base, std::int64_t rotary_dim);
// The convolution as its definition sums it, one output at a time, in double; x's dtype out.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options);

}  // namespace rune::reference
