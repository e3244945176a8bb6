// What the attention kernels share (attention.cpp, flash_attention.cpp): the shapes of a call,
// heads of (B, heads, T, D) operands addressed as row-major matrices, and the argument checks.
#pragma once

#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"

namespace rune::attention_detail {

// Shapes and per-head addressing of one attention call.
struct Geometry {
  std::int64_t B, H, Hkv, G, Tq, Tk, D, Dv;
};

// A (B, heads, T, D) operand seen as heads of row-major (T, D) matrices.
template <class T>
struct Heads {
  T* base;
  std::int64_t sb, sh, ld;  // strides of batch, head, row
  T* at(std::int64_t b, std::int64_t h) const { return base + b * sb + h * sh; }
};

// x itself when every head is a row-major matrix BLAS can read (last dim contiguous, rows not
// overlapping), else a contiguous copy.
inline Tensor gemm_ready(const Tensor& x) {
  if (x.stride(3) == 1 && x.stride(2) >= x.size(3) && x.stride(2) > 0) return x;
  return x.contiguous();
}

// An uninitialised (B, H, T, D) tensor stored as (B, T, H, D), the layout of a projection split
// into heads: gradients written this way reach the projection without a transposing copy.
inline Tensor empty_heads_major(std::int64_t B, std::int64_t H, std::int64_t T, std::int64_t D, DType dtype) {
  return permute(empty({B, T, H, D}, dtype), {0, 2, 1, 3});
}

template <class T>
Heads<T> heads_of(const Tensor& x) {
  return {x.data<T>(), x.stride(0), x.stride(1), x.stride(2)};
}

inline Geometry check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor* v) {
  for (const Tensor* t : {&q, &k, v})
    if (t && !t->defined()) throw std::invalid_argument(std::string(op) + ": undefined input");
  if (!is_floating(q.dtype())) detail::throw_dtype(op, q.dtype(), "a floating dtype");
  const auto shapes = [&] {
    return "q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + (v ? ", v " + shape_str(v->shape()) : "");
  };
  if (q.dim() != 4 || k.dim() != 4 || (v && v->dim() != 4))
    throw std::invalid_argument(std::string(op) + ": q, k, v must be (B, H, T, D); got " + shapes());
  if (k.dtype() != q.dtype() || (v && v->dtype() != q.dtype()))
    throw std::invalid_argument(std::string(op) + ": q, k, v must share a dtype");
  Geometry g{q.size(0), q.size(1), k.size(1), 0, q.size(2), k.size(2), q.size(3), v ? v->size(3) : 0};
  const bool ok = k.size(0) == g.B && k.size(3) == g.D && g.Hkv > 0 && g.H % g.Hkv == 0 &&
                  (!v || (v->size(0) == g.B && v->size(1) == g.Hkv && v->size(2) == g.Tk));
  if (!ok)
    throw std::invalid_argument(std::string(op) + ": shapes do not fit: " + shapes() +
                                " (k and v need q's batch, k needs q's head dim, v needs k's heads and "
                                "length, and the query heads must be a multiple of the key/value heads)");
  g.G = g.H / g.Hkv;
  return g;
}

inline double resolve_scale(const char* op, std::optional<double> scale, std::int64_t D) {
  const double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(D));
  if (!std::isfinite(s)) throw std::invalid_argument(std::string(op) + ": scale must be finite");
  return s;
}

}  // namespace rune::attention_detail
