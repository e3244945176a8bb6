// Internal helpers shared by the op files: dtype dispatch, broadcasting, strided iteration and
// the parallel-loop threshold. Not part of the public API.
//
// Kernels work on raw pointers. An input that is not contiguous is either walked with its strides
// (elementwise ops, copies) or made contiguous once before a fused kernel runs.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::detail {

// Loops shorter than this run on one thread: forking costs more than it saves.
constexpr std::int64_t kParallelGrain = 1 << 15;

inline int num_threads_for(std::int64_t work) { return work < kParallelGrain ? 1 : omp_get_max_threads(); }

// The sum of term(i) for i in [0, n), in double, the same bits on any number of threads: blocks
// of kSumBlock terms fixed by n alone are summed in parallel, then the block sums in order.
constexpr std::int64_t kSumBlock = 1 << 14;
template <class F>
double fixed_order_sum(std::int64_t n, F&& term) {
  const std::int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  if (blocks <= 1) {
    double acc = 0;
    for (std::int64_t i = 0; i < n; ++i) acc += term(i);
    return acc;
  }
  std::vector<double> partial(static_cast<std::size_t>(blocks));
  const int threads = num_threads_for(n);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    double acc = 0;
    for (std::int64_t i = b * kSumBlock; i < std::min(n, (b + 1) * kSumBlock); ++i) acc += term(i);
    partial[static_cast<std::size_t>(b)] = acc;
  }
  double total = 0;
  for (const double p : partial) total += p;
  return total;
}

// y[i] = keep[i] ? x[i] * scale : 0 (dropout's mask applied), exactly, yet with no branch on the
// random mask: the product's bits are and-ed with all-ones or zero, which compilers vectorise (a
// select on a bool they would not). y may be x.
template <class T>
inline void keep_scaled(const T* x, const bool* keep, T scale, T* y, std::int64_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const auto* k = reinterpret_cast<const unsigned char*>(keep);
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = x[i] * scale;
    Bits bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits &= Bits(0) - static_cast<Bits>(k[i]);
    std::memcpy(y + i, &bits, sizeof bits);
  }
}

template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::float32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::float64;
};
template <>
struct dtype_of<std::int64_t> {
  static constexpr DType value = DType::int64;
};
template <>
struct dtype_of<bool> {
  static constexpr DType value = DType::bool_;
};

[[noreturn]] void throw_dtype(const char* op, DType dtype, const char* wanted);

// Calls f(T{}) with T = float or double according to dtype; other dtypes are refused.
template <class F>
decltype(auto) dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::float32:
      return f(float{});
    case DType::float64:
      return f(double{});
    default:
      throw_dtype(op, dtype, "a floating dtype (float32 or float64)");
  }
}

// Calls f(U{}) with an unsigned integer type of the element's width, for ops that only move bytes.
template <class F>
decltype(auto) dispatch_bits(DType dtype, F&& f) {
  switch (dtype_size(dtype)) {
    case 1:
      return f(std::uint8_t{});
    case 4:
      return f(std::uint32_t{});
    default:
      return f(std::uint64_t{});
  }
}

// Both operands must share a floating dtype.
void check_same_float(const char* op, const Tensor& a, const Tensor& b);
void check_dtype(const char* op, const Tensor& t, DType dtype, const char* role);

// The broadcast of two shapes; throws "op: cannot broadcast [..] with [..]".
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides that read `t` as if it had the (broadcast) shape `out`: 0 on stretched dims.
Shape broadcast_strides(const Tensor& t, const Shape& out);

// Visits every row (all dims but the last) of `shape`, calling f(offsets, n, inner_strides) where
// offsets[k] is the element offset of operand k at the row's start, n the last dim's length and
// inner_strides[k] operand k's stride along it. Rows are split between threads when large.
template <std::size_t K, class F>
void for_each_row(const Shape& shape, const std::array<const Shape*, K>& strides, F&& f) {
  const std::int64_t rank = static_cast<std::int64_t>(shape.size());
  std::array<std::int64_t, K> inner{};
  const std::int64_t n = rank == 0 ? 1 : shape.back();
  for (std::size_t k = 0; k < K; ++k) inner[k] = rank == 0 ? 0 : (*strides[k]).back();
  const std::int64_t rows = n == 0 ? 0 : shape_numel(shape) / n;
  if (rows == 0) return;
  const int threads = num_threads_for(rows * n);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t r = 0; r < rows; ++r) {
    std::array<std::int64_t, K> off{};
    std::int64_t rem = r;
    for (std::int64_t d = rank - 2; d >= 0; --d) {
      const std::int64_t idx = rem % shape[d];
      rem /= shape[d];
      for (std::size_t k = 0; k < K; ++k) off[k] += idx * (*strides[k])[d];
    }
    f(off, n, inner);
  }
}

// dst (contiguous, shape `shape`) <- src read through `src_strides`.
template <class T>
void strided_gather(T* dst, const T* src, const Shape& shape, const Shape& src_strides) {
  const Shape dst_strides = contiguous_strides(shape);
  for_each_row<2>(
      shape, {&dst_strides, &src_strides},
      [&](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& inner) {
        T* d = dst + off[0];
        const T* s = src + off[1];
        const std::int64_t ss = inner[1];
        if (ss == 1) {
          for (std::int64_t i = 0; i < n; ++i) d[i] = s[i];
        } else {
          for (std::int64_t i = 0; i < n; ++i) d[i] = s[i * ss];
        }
      });
}

// dst read through dst_strides <- src read through src_strides (both of shape `shape`).
template <class T>
void strided_copy(T* dst, const Shape& dst_strides, const T* src, const Shape& src_strides, const Shape& shape) {
  for_each_row<2>(
      shape, {&dst_strides, &src_strides},
      [&](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& inner) {
        T* d = dst + off[0];
        const T* s = src + off[1];
        for (std::int64_t i = 0; i < n; ++i) d[i * inner[0]] = s[i * inner[1]];
      });
}

// x itself when contiguous, else a contiguous copy (no autograd: for kernels' inputs).
Tensor contiguous_data(const Tensor& x);

// Splits `shape` around `dim` into (outer, n, inner): element (o, i, j) lives at
// o * n * inner + i * inner + j in a contiguous buffer.
struct OuterInner {
  std::int64_t outer, n, inner;
};
OuterInner split_at(const Shape& shape, std::int64_t dim);

}  // namespace rune::detail
