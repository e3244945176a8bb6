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

#include <cstdint>
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

// C[i0 .. i0 + MR) x [0, n) of alpha op(A) B + beta C, with B row-major (k x n, rows ldb apart)
// and readable up to a whole vector past column n (small_gemm pads it so): a last, partial
// vector of columns is computed whole and stored in part.
template <class T, bool TA, int MR>
inline void rows(std::int64_t i0, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                 std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  using V = Batch<T>;
  constexpr std::int64_t W = static_cast<std::int64_t>(V::size);
  const auto a_at = [&](int r, std::int64_t p) { return TA ? a[p * lda + i0 + r] : a[(i0 + r) * lda + p]; };
  const auto store = [&](int r, std::int64_t j, const V& acc) {
    T* out = c + (i0 + r) * ldc + j;
    const std::int64_t valid = n - j;
    if (valid >= W) {
      const V v = beta == T(0) ? acc * V(alpha) : xsimd::fma(acc, V(alpha), V::load_unaligned(out) * V(beta));
      v.store_unaligned(out);
      return;
    }
    alignas(64) T lanes[W];  // the columns past n are computed but never written
    (acc * V(alpha)).store_aligned(lanes);
    for (std::int64_t l = 0; l < valid; ++l) out[l] = beta == T(0) ? lanes[l] : lanes[l] + beta * out[l];
  };
  std::int64_t j = 0;
  for (; j + W < n; j += 2 * W) {  // two vectors, the second possibly partial
    V acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = V(T(0));
    for (std::int64_t p = 0; p < k; ++p) {
      const V b0 = V::load_unaligned(b + p * ldb + j), b1 = V::load_unaligned(b + p * ldb + j + W);
      for (int r = 0; r < MR; ++r) {
        const V av(a_at(r, p));
        acc[r][0] = xsimd::fma(av, b0, acc[r][0]);
        acc[r][1] = xsimd::fma(av, b1, acc[r][1]);
      }
    }
    for (int r = 0; r < MR; ++r) {
      store(r, j, acc[r][0]);
      store(r, j + W, acc[r][1]);
    }
  }
  if (j < n) {  // one vector, possibly partial
    V acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = V(T(0));
    for (std::int64_t p = 0; p < k; ++p) {
      const V b0 = V::load_unaligned(b + p * ldb + j);
      for (int r = 0; r < MR; ++r) acc[r] = xsimd::fma(V(a_at(r, p)), b0, acc[r]);
    }
    for (int r = 0; r < MR; ++r) store(r, j, acc[r]);
  }
}

template <class T, bool TA>
void product(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
             std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 6 <= m; i += 6) rows<T, TA, 6>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  for (; i + 4 <= m; i += 4) rows<T, TA, 4>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  for (; i < m; ++i) rows<T, TA, 1>(i, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace small_gemm_impl

// C (m x n, rows ldc apart) = alpha op(A) op(B) + beta C, row-major, as blas::gemm; C is not read
// when beta is 0. Not thread-parallel: callers run it per head inside their own parallel loops.
template <class T>
void small_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  if (tb || n % W != 0) {
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
