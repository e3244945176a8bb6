// matmul: every product is one gemm on raw buffers, batched over broadcast leading dims.
//
// Layouts: a transposed operand (a view from transpose()) is handed to the gemm with its trans
// flag, never copied. (B, T, C) @ (C, N), the Linear layer's shape, is folded into one
// (B*T, C) @ (C, N) gemm. Many small products (attention over B x H) run one per thread, in
// registers when small (detail::gemm_by_size); few large ones are shared out by blas::gemm.
#include <optional>
#include <stdexcept>
#include <string>

#include "autograd/blas.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/reference.hpp"
#include "autograd/small_gemm.hpp"

namespace rune {
namespace {

struct Layout {
  bool trans;       // stored as the transpose of a row-major matrix
  std::int64_t ld;  // leading dimension of the stored matrix
};

// How BLAS can read the last two dims of t (rows x cols) in place; nullopt when it cannot.
std::optional<Layout> blas_layout(const Tensor& t) {
  const std::int64_t r = t.size(-2), c = t.size(-1), sr = t.stride(-2), sc = t.stride(-1);
  if ((sc == 1 || c == 1) && (r == 1 || sr >= std::max<std::int64_t>(1, c)))
    return Layout{false, r == 1 ? std::max<std::int64_t>(1, c) : sr};
  if ((sr == 1 || r == 1) && (c == 1 || sc >= std::max<std::int64_t>(1, r)))
    return Layout{true, c == 1 ? std::max<std::int64_t>(1, r) : sc};
  return std::nullopt;
}

// Products smaller than this (in multiply-adds) run one per thread rather than one at a time.
constexpr std::int64_t kSmallGemm = 128 * 128 * 128;

// out (batch..., M, N), contiguous and freshly allocated, = a (..., M, K) @ b (..., K, N).
template <class T>
void matmul_into(const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  const Tensor a = blas_layout(a_in) ? a_in : detail::contiguous_data(a_in);
  const Tensor b = blas_layout(b_in) ? b_in : detail::contiguous_data(b_in);
  const Layout la = *blas_layout(a), lb = *blas_layout(b);
  const std::int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  T* c = out.data<T>();
  if (out.numel() == 0) return;
  if (K == 0) {
    std::fill(c, c + out.numel(), T(0));
    return;
  }
  const Shape batch(out.shape().begin(), out.shape().end() - 2);
  const std::int64_t nb = shape_numel(batch);
  // (..., M, K) row-major @ (K, N): one tall gemm.
  if (b.dim() == 2 && a.is_contiguous()) {
    blas::gemm(false, lb.trans, nb * M, N, K, T(1), a.data<T>(), K, b.data<T>(), lb.ld, T(0), c, N);
    return;
  }
  // Batch strides of each operand over the broadcast batch shape (0 where broadcast).
  auto batch_strides = [&](const Tensor& t) {
    Shape s(batch.size(), 0);
    const std::size_t lead = batch.size() - (t.shape().size() - 2);
    for (std::size_t i = lead; i < batch.size(); ++i) s[i] = t.shape()[i - lead] == 1 ? 0 : t.strides()[i - lead];
    return s;
  };
  const Shape sa = batch_strides(a), sb = batch_strides(b);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  auto one = [&](std::int64_t i) {
    std::int64_t oa = 0, ob = 0, rem = i;
    for (std::int64_t d = static_cast<std::int64_t>(batch.size()) - 1; d >= 0; --d) {
      const std::int64_t idx = rem % batch[d];
      rem /= batch[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    detail::gemm_by_size(la.trans, lb.trans, M, N, K, T(1), pa + oa, la.ld, pb + ob, lb.ld, T(0), c + i * M * N, N);
  };
  const int threads = omp_get_max_threads();
  if (nb >= threads && threads > 1 && M * N * K < kSmallGemm) {
    // Inside a parallel region OpenBLAS (OpenMP build) runs each gemm on the calling thread.
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < nb; ++i) one(i);
  } else {
    for (std::int64_t i = 0; i < nb; ++i) one(i);
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  detail::check_same_float("matmul", a, b);
  if (a.dim() == 0 || b.dim() == 0)
    throw std::invalid_argument("matmul: both operands need at least 1 dim, got " + shape_str(a.shape()) + " @ " +
                                shape_str(b.shape()));
  // 1-D operands are promoted to matrices and the added dim removed again (torch.matmul).
  if (a.dim() == 1 && b.dim() == 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);

  const std::int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  if (K != K2)
    throw std::invalid_argument("matmul: " + shape_str(a.shape()) + " @ " + shape_str(b.shape()) +
                                ": inner dimensions " + std::to_string(K) + " and " + std::to_string(K2) + " differ");
  const Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape shape = detail::broadcast_shapes(ba, bb, "matmul (batch dims)");
  shape.push_back(M);
  shape.push_back(N);
  Tensor y = empty(shape, a.dtype());
  detail::dispatch_float(a.dtype(), "matmul", [&](auto tag) { matmul_into<decltype(tag)>(a, b, y); });

  const bool ga = a.requires_grad(), gb = b.requires_grad();
  record(Op::matmul, y, {a, b},
         [as = a.shape(), bs = b.shape(), a_ = gb ? a.detach() : Tensor(), b_ = ga ? b.detach() : Tensor()](
             const Tensor& gy, Grads& g) {
           // da = gy @ b^T, db = a^T @ gy, each summed over broadcast batch dims
           if (g.needs(0)) g.set(0, reduce_to_shape(matmul(gy, transpose(b_, -1, -2)), as));
           if (g.needs(1)) {
             if (bs.size() == 2 && as.size() > 2) {
               // b shared by every batch: one (K, B*M) @ (B*M, N) gemm sums over the batch
               const std::int64_t k = as.back(), n = bs.back();
               g.set(1, matmul(transpose(reshape(a_, {-1, k}), 0, 1), reshape(gy, {-1, n})));
             } else {
               g.set(1, reduce_to_shape(matmul(transpose(a_, -1, -2), gy), bs));
             }
           }
         });
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  detail::check_same_float("linear", x, w);
  if (x.dim() == 0 || w.dim() != 2 || x.size(-1) != w.size(1))
    throw std::invalid_argument("linear: input " + shape_str(x.shape()) + " does not fit weight " +
                                shape_str(w.shape()) + " (out, in): the input's last dim must be in");
  if (b.defined()) {
    detail::check_same_float("linear", x, b);
    if (b.dim() != 1 || b.size(0) != w.size(0))
      throw std::invalid_argument("linear: bias " + shape_str(b.shape()) + " does not fit weight " +
                                  shape_str(w.shape()));
  }
  const std::int64_t N = w.size(0), K = w.size(1);
  const Tensor xc = x.is_contiguous() ? x : detail::contiguous_data(x);
  const Tensor wc = w.is_contiguous() ? w : detail::contiguous_data(w);
  const std::int64_t M = K > 0 ? xc.numel() / K : shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape shape = x.shape();
  shape.back() = N;
  Tensor y = empty(shape, x.dtype());
  detail::dispatch_float(x.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    if (M == 0 || N == 0) return;
    if (b.defined()) {
      const Tensor bc = b.is_contiguous() ? b : detail::contiguous_data(b);
      const T* pb = bc.data<T>();
      if (K > 0) {
        blas::gemm_bias(false, true, M, N, K, T(1), xc.data<T>(), K, wc.data<T>(), K, pb, py, N);
      } else {
        for (std::int64_t i = 0; i < M; ++i) std::copy(pb, pb + N, py + i * N);
      }
    } else if (K > 0) {
      blas::gemm(false, true, M, N, K, T(1), xc.data<T>(), K, wc.data<T>(), K, T(0), py, N);
    } else {
      std::fill(py, py + M * N, T(0));
    }
  });

  std::vector<Tensor> inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  record(Op::linear, y, inputs,
         [N, K, has_bias = b.defined(), x_ = w.requires_grad() ? xc.detach() : Tensor(),
          w_ = x.requires_grad() ? wc.detach() : Tensor()](const Tensor& gy, Grads& g) {
           // dx = gy @ w, dw = gy^T @ x over all rows, db = the column sums of gy
           const Tensor rows = reshape(gy, {-1, N});  // (M, N)
           if (g.needs(0)) g.set(0, matmul(gy, w_));
           if (g.needs(1)) g.set(1, matmul(transpose(rows, 0, 1), reshape(x_, {-1, K})));
           if (has_bias && g.needs(2)) g.set(2, sum(rows, {0}));
         });
  return y;
}

// ------------------------------------------------------------------------- reference

namespace reference {

Tensor matmul(const Tensor& a, const Tensor& b) {
  // Triple loop over contiguous 2-D or equally batched 3-D operands, accumulating in double.
  const Tensor ca = detail::contiguous_data(a), cb = detail::contiguous_data(b);
  const bool batched = a.dim() == 3;
  const std::int64_t B = batched ? a.size(0) : 1, M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Tensor y = empty(batched ? Shape{B, M, N} : Shape{M, N}, a.dtype());
  detail::dispatch_float(a.dtype(), "reference::matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = ca.data<T>();
    const T* pb = cb.data<T>();
    T* py = y.data<T>();
    for (std::int64_t z = 0; z < B; ++z)
      for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (std::int64_t k = 0; k < K; ++k)
            acc += static_cast<double>(pa[(z * M + i) * K + k]) * pb[(z * K + k) * N + j];
          py[(z * M + i) * N + j] = static_cast<T>(acc);
        }
  });
  return y;
}

}  // namespace reference
}  // namespace rune
