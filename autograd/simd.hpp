// Vectorised maps for transcendental kernels (exp, tanh, erf, ...), through xsimd: a scalar
// std::exp costs about 22 ns, a vector one a few per element. Internal to autograd/.
//
// map_simd(x, y, n, f) computes y[i] = f(x[i]) where f is a generic lambda called with an
// xsimd batch for the body and with a one-lane batch (via broadcast) for the tail, so one
// expression serves both and the results agree to the last bit.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "autograd/kernels.hpp"

namespace rune::detail {

template <class T>
using Batch = xsimd::batch<T>;

// Blocks of this many elements are the unit of work split between threads.
constexpr std::int64_t kSimdBlock = 4096;

template <class T, class F>
void map_simd(const T* x, T* y, std::int64_t n, F f) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const std::int64_t blocks = (n + kSimdBlock - 1) / kSimdBlock;
  const int threads = num_threads_for(n * 8);  // transcendental work is worth forking for sooner
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t begin = blk * kSimdBlock;
    const std::int64_t end = begin + kSimdBlock < n ? begin + kSimdBlock : n;
    std::int64_t i = begin;
    for (; i + W <= end; i += W) f(Batch<T>::load_unaligned(x + i)).store_unaligned(y + i);
    for (; i < end; ++i) {
      const Batch<T> v(x[i]);
      y[i] = f(v).get(0);
    }
  }
}

// y[i] = f(a[i], b[i]) for two same-length inputs.
template <class T, class F>
void map2_simd(const T* a, const T* b, T* y, std::int64_t n, F f) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const std::int64_t blocks = (n + kSimdBlock - 1) / kSimdBlock;
  const int threads = num_threads_for(n * 8);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t begin = blk * kSimdBlock;
    const std::int64_t end = begin + kSimdBlock < n ? begin + kSimdBlock : n;
    std::int64_t i = begin;
    for (; i + W <= end; i += W)
      f(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i)).store_unaligned(y + i);
    for (; i < end; ++i) y[i] = f(Batch<T>(a[i]), Batch<T>(b[i])).get(0);
  }
}

// erf. float64 uses xsimd's erf. float32 uses a branch-free rational minimax approximation on
// [-4, 4] (outside it erf rounds to +-1 in float): x P(x^2) / Q(x^2), 13th over 8th degree,
// within 2 ulp of erf, a few times cheaper than xsimd's two-branch float erf with its exp.
template <class B>
B erf_batch(const B& v) {
  using T = typename B::value_type;
  if constexpr (std::is_same_v<T, float>) {
    const B x = xsimd::max(xsimd::min(v, B(4.0f)), B(-4.0f));
    const B x2 = x * x;
    B p = xsimd::fma(x2, B(-2.72614225801306e-10f), B(2.77068142495902e-08f));
    p = xsimd::fma(x2, p, B(-2.10102402082508e-06f));
    p = xsimd::fma(x2, p, B(-5.69250639462346e-05f));
    p = xsimd::fma(x2, p, B(-7.34990630326855e-04f));
    p = xsimd::fma(x2, p, B(-2.95459980854025e-03f));
    p = xsimd::fma(x2, p, B(-1.60960333262415e-02f));
    B q = xsimd::fma(x2, B(-1.45660718464996e-05f), B(-2.13374055278905e-04f));
    q = xsimd::fma(x2, q, B(-1.68282697438203e-03f));
    q = xsimd::fma(x2, q, B(-7.37332916720468e-03f));
    q = xsimd::fma(x2, q, B(-1.42647390514189e-02f));
    return x * p / q;
  } else {
    return xsimd::erf(v);
  }
}

// sum of x[i], and of a[i] * b[i], over one row, in W lanes (no serial add chain).
template <class T>
T sum_simd(const T* x, std::int64_t n) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  Batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + W <= n; i += W) acc += Batch<T>::load_unaligned(x + i);
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += x[i];
  return s;
}

template <class T>
T dot_simd(const T* a, const T* b, std::int64_t n) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  Batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + W <= n; i += W) acc = xsimd::fma(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i), acc);
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// sum of (x[i] - c)^2, and of g[i] (x[i] - c), over one row, in W lanes (batch_norm's variance and
// its gradient's dot with the centred input).
template <class T>
T centred_square_sum(const T* x, std::int64_t n, T c) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const Batch<T> vc(c);
  Batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    const Batch<T> d = Batch<T>::load_unaligned(x + i) - vc;
    acc = xsimd::fma(d, d, acc);
  }
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += (x[i] - c) * (x[i] - c);
  return s;
}

template <class T>
T centred_dot(const T* g, const T* x, std::int64_t n, T c) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const Batch<T> vc(c);
  Batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + W <= n; i += W)
    acc = xsimd::fma(Batch<T>::load_unaligned(g + i), Batch<T>::load_unaligned(x + i) - vc, acc);
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) s += g[i] * (x[i] - c);
  return s;
}

// y[i] = f(a[i], b[i]) over one row, on the calling thread.
template <class T, class F>
void row_map2(const T* a, const T* b, T* y, std::int64_t n, F f) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  std::int64_t i = 0;
  for (; i + W <= n; i += W) f(Batch<T>::load_unaligned(a + i), Batch<T>::load_unaligned(b + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = f(Batch<T>(a[i]), Batch<T>(b[i])).get(0);
}

// The largest element of a row (-inf for an empty or all -inf row).
template <class T>
T row_max(const T* x, std::int64_t n) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  T m = -std::numeric_limits<T>::infinity();
  std::int64_t i = 0;
  if (n >= W) {
    Batch<T> vm = Batch<T>::load_unaligned(x);
    for (i = W; i + W <= n; i += W) vm = xsimd::max(vm, Batch<T>::load_unaligned(x + i));
    alignas(64) T lanes[Batch<T>::size];
    vm.store_aligned(lanes);
    for (std::int64_t k = 0; k < W; ++k) m = std::max(m, lanes[k]);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// y = exp(x - shift); returns the sum of y.
template <class T>
T exp_shifted(const T* x, T* y, std::int64_t n, T shift) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const Batch<T> vs(shift);
  Batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    const Batch<T> e = xsimd::exp(Batch<T>::load_unaligned(x + i) - vs);
    e.store_unaligned(y + i);
    acc += e;
  }
  T s = xsimd::hadd(acc);
  for (; i < n; ++i) {
    y[i] = xsimd::exp(Batch<T>(x[i] - shift)).get(0);
    s += y[i];
  }
  return s;
}

}  // namespace rune::detail
