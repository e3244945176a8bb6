// Products too small for BLAS: the per-head products of attention at small head dims.
//
// A (24 x 16) by (16 x 24) product is 18 kFLOP. Through cblas_sgemm it costs a call, a buffer
// from OpenBLAS's pool and the packing of both operands, about 1.5 us, which is 12 GFLOP/s: a
// translation step made 19,000 such calls and spent a sixth of its time on 4% of its FLOPs.
// small_gemm computes C = alpha op(A) op(B) + beta C in registers instead: blocks of 6 rows of C
// (then 4, then 1) by two SIMD vectors of columns, each accumulated over k with one broadcast of
// A and one FMA per vector, then scaled into C. op(B) = B^T (tb) is first transposed into a
// scratch buffer, so the kernel always reads rows of op(B); so is a B whose width is not a whole
// number of vectors, its rows padded with zeros (at head dim 12 a scalar tail had made attention
// 2.7x slower than BLAS). Results are the same on any thread (the sums run over k in
// order), and small_gemm_reference is the plain loop the tests hold it to.
//
// Internal to autograd/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/simd.hpp"

namespace rune::detail {

// True when a product of this size is cheaper here than through BLAS. Measured on attention
// forward and backward at (64, 8, T, D) (all six products of a head through one path or the
// other): T24 D16 1.1 against 1.8 ms, T65 D16 5.7 against 7.5, T64 D32 8.4 against 10.6, T128
// D64 46 against 48; at T256 D64 BLAS wins, 186 against 202. So: up to a million multiply-adds.
inline bool small_gemm_pays(std::int64_t m, std::int64_t n, std::int64_t k) {
  return m * n * k <= (std::int64_t(1) << 20);
}

template <class T>
void small_gemm_reference(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T acc = 0;
      for (std::int64_t p = 0; p < k; ++p)
        acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = beta == T(0) ? alpha * acc : alpha * acc + beta * c[i * ldc + j];
    }
}

namespace small_gemm_impl {

// A batch of half the width of Batch<T> (SSE's 4 floats beside AVX2's 8, AVX2's beside AVX-512's),
// for a row whose width is an odd number of half vectors: head dim 12 is one vector and a half,
// read and written as such, with no padded copy of B and no lanes computed for nothing (a
// 128-bit FMA is half the work of a 256-bit one on Zen 1 and 2). None where the ISA has none.
// (xsimd 8 gives SSE batches no FMA when AVX is on, hence fma_of.)
template <class T>
struct Half {
#if XSIMD_WITH_AVX512F && XSIMD_WITH_FMA3_AVX2
  using type = xsimd::batch<T, xsimd::fma3<xsimd::avx2>>;
  static constexpr bool available = true;
#elif XSIMD_WITH_AVX2 && defined(__FMA__)
  using type = xsimd::batch<T, xsimd::sse4_2>;
  static constexpr bool available = true;
#else
  using type = Batch<T>;  // never used
  static constexpr bool available = false;
#endif
};

template <class V>
inline V fma_of(const V& x, const V& y, const V& z) {
  return xsimd::fma(x, y, z);
}
#if XSIMD_WITH_AVX2 && defined(__FMA__) && !XSIMD_WITH_AVX512F
inline xsimd::batch<float, xsimd::sse4_2> fma_of(const xsimd::batch<float, xsimd::sse4_2>& x,
                                                 const xsimd::batch<float, xsimd::sse4_2>& y,
                                                 const xsimd::batch<float, xsimd::sse4_2>& z) {
  return _mm_fmadd_ps(x, y, z);
}
inline xsimd::batch<double, xsimd::sse4_2> fma_of(const xsimd::batch<double, xsimd::sse4_2>& x,
                                                  const xsimd::batch<double, xsimd::sse4_2>& y,
                                                  const xsimd::batch<double, xsimd::sse4_2>& z) {
  return _mm_fmadd_pd(x, y, z);
}
#endif

template <class T>
constexpr bool has_half() {
  return Half<T>::available && 2 * Half<T>::type::size == Batch<T>::size;
}

// alpha acc + beta C into the `valid` first columns of C from out (C is not read when beta is 0).
template <class T, class V>
inline void store(T* out, std::int64_t valid, const V& acc, T alpha, T beta) {
  constexpr std::int64_t W = static_cast<std::int64_t>(V::size);
  if (valid >= W) {
    const V v = beta == T(0) ? acc * V(alpha) : fma_of(acc, V(alpha), V::load_unaligned(out) * V(beta));
    v.store_unaligned(out);
    return;
  }
  alignas(64) T lanes[W];  // the columns past `valid` are computed but never written
  (acc * V(alpha)).store_aligned(lanes);
  for (std::int64_t l = 0; l < valid; ++l) out[l] = beta == T(0) ? lanes[l] : lanes[l] + beta * out[l];
}

// C[i0 .. i0 + MR) x [j, j + valid) of alpha op(A) B + beta C, with B row-major (k x n, rows ldb
// apart): NF full vectors of columns then, with HALF, a half vector, each accumulated over k with
// one broadcast of A per row and one FMA per vector, then scaled into C. Columns past `valid` in
// the last vector are computed (B must be readable there) and never stored.
// Kept out of line: inlined into its callers, the compiler ran short of registers and spilled
// accumulators inside the loop over k (1.5x slower at head dim 12).
template <class T, bool TA, int MR, int NF, bool HALF>
[[gnu::noinline]] void block(std::int64_t i0, std::int64_t j, std::int64_t valid, std::int64_t k, T alpha, const T* a,
                             std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  using V = Batch<T>;
  using H = std::conditional_t<HALF, typename Half<T>::type, V>;  // V stands in when unused
  constexpr std::int64_t W = static_cast<std::int64_t>(V::size);
  V acc[MR][NF > 0 ? NF : 1];
  H half[MR];
  for (int r = 0; r < MR; ++r) {
    for (int f = 0; f < NF; ++f) acc[r][f] = V(T(0));
    if constexpr (HALF) half[r] = H(T(0));
  }
  const T* bj = b + j;
  for (std::int64_t p = 0; p < k; ++p) {
    const T* row = bj + p * ldb;
    V bv[NF > 0 ? NF : 1];
    for (int f = 0; f < NF; ++f) bv[f] = V::load_unaligned(row + f * W);
    H bh;
    if constexpr (HALF) bh = H::load_unaligned(row + NF * W);
    for (int r = 0; r < MR; ++r) {
      const T av = TA ? a[p * lda + i0 + r] : a[(i0 + r) * lda + p];
      for (int f = 0; f < NF; ++f) acc[r][f] = fma_of(V(av), bv[f], acc[r][f]);
      if constexpr (HALF) half[r] = fma_of(H(av), bh, half[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    T* out = c + (i0 + r) * ldc + j;
    for (int f = 0; f < NF; ++f) store(out + f * W, valid - f * W, acc[r][f], alpha, beta);
    if constexpr (HALF) store(out + NF * W, valid - NF * W, half[r], alpha, beta);
  }
}

// The rows i0 .. i0 + MR of C, column block by column block: pairs of full vectors, then what is
// left as a vector and a half, one vector, or a half. Reads of B past column n stay within one
// full vector (small_gemm pads B so, unless n is a whole number of half vectors).
template <class T, bool TA, int MR>
inline void rows(std::int64_t i0, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                 std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  constexpr bool kHalf = has_half<T>();
  std::int64_t j = 0;
  for (; n - j > W + (kHalf ? W / 2 : 0); j += 2 * W)
    block<T, TA, MR, 2, false>(i0, j, std::min(n - j, 2 * W), k, alpha, a, lda, b, ldb, beta, c, ldc);
  const std::int64_t left = n - j;
  if (left <= 0) return;
  if constexpr (kHalf) {
    if (left > W) return block<T, TA, MR, 1, true>(i0, j, left, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (left <= W / 2) return block<T, TA, MR, 0, true>(i0, j, left, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  block<T, TA, MR, 1, false>(i0, j, left, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T, bool TA>
void product(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
             std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 6 <= m; i += 6) rows<T, TA, 6>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  switch (m - i) {  // the last rows as one block
    case 5:
      return rows<T, TA, 5>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 4:
      return rows<T, TA, 4>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 3:
      return rows<T, TA, 3>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 2:
      return rows<T, TA, 2>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 1:
      return rows<T, TA, 1>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    default:
      return;
  }
}

// Whether B can be read as it is: its rows a whole number of half vectors wide (where there are
// half vectors), so that no read goes past column n.
template <class T>
constexpr bool reads_within(std::int64_t n) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  return n % W == 0 || (has_half<T>() && n % (W / 2) == 0);
}

}  // namespace small_gemm_impl

// C (m x n, rows ldc apart) = alpha op(A) op(B) + beta C, row-major, as blas::gemm; C is not read
// when beta is 0. Not thread-parallel: callers run it per head inside their own parallel loops.
template <class T>
void small_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  if (tb || !small_gemm_impl::reads_within<T>(n)) {
    // op(B) copied into rows of k x padded, the columns past n zero: the kernel then reads whole
    // vectors (op(B) = B^T, B stored n x k, is transposed on the way)
    const std::int64_t padded = (n + W - 1) / W * W;
    thread_local std::vector<T> scratch;
    if (scratch.size() < static_cast<std::size_t>(k * padded)) scratch.resize(static_cast<std::size_t>(k * padded));
    T* s = scratch.data();
    for (std::int64_t p = 0; p < k; ++p) {
      T* row = s + p * padded;
      if (tb)
        for (std::int64_t j = 0; j < n; ++j) row[j] = b[j * ldb + p];
      else
        for (std::int64_t j = 0; j < n; ++j) row[j] = b[p * ldb + j];
      for (std::int64_t j = n; j < padded; ++j) row[j] = T(0);
    }
    b = s;
    ldb = padded;
  }
  if (ta)
    small_gemm_impl::product<T, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    small_gemm_impl::product<T, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// One product of a batch (a head of attention, a batched matmul's item): in registers when it
// is small, through BLAS otherwise.
template <class T>
void gemm_by_size(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                  std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (small_gemm_pays(m, n, k))
    small_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    blas::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace rune::detail
