// The one translation unit that speaks cblas.
#include "autograd/blas.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>

namespace rune::blas {
namespace {

CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint i(std::int64_t v) { return static_cast<blasint>(v); }

void call(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}
void call(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

// OpenBLAS built for OpenMP runs single-threaded inside a parallel region, so the split below
// never oversubscribes; a pthreads build would start its own threads in each part.
bool splittable_library() { return openblas_get_parallel() != 1; }

// The gemms of a Transformer are tall and thin: (B*T, C) by (C, 3C) or 4C, and their weight
// gradients reduce over all B*T rows. OpenBLAS's own threading reaches 85-130 GFLOP/s on these
// shapes on 2 cores, one single-threaded gemm per core on an equal share reaches 150-175: so the
// share-out is done here. Each thread takes a contiguous block of C's rows (or columns, when C
// is wide and short), or, when C is small and the reduction long, a block of k whose partial
// product it writes to a buffer of its own, the buffers then summed into C.
template <class T>
void gemm_split(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  constexpr std::int64_t kMinPart = 64;  // rows, columns or reduction length a thread takes at least
  if (threads < 2 || flops < double(1 << 23) || !splittable_library()) {
    call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // A block [p0, p1) of the split dimension, aligned to 16 so the parts keep vector-aligned edges.
  // (The region may get fewer threads than asked for: the parts follow the count it has.)
  const auto bounds = [](std::int64_t size, int t, int parts) {
    const auto edge = [&](int s) { return std::min(size, (size * s / parts + 15) / 16 * 16); };
    return std::pair{t == 0 ? std::int64_t(0) : edge(t), t + 1 == parts ? size : edge(t + 1)};
  };
  const std::int64_t largest_out = std::max(m, n);
  if (k > 4 * largest_out && k >= threads * kMinPart) {
    // split k: thread 0 accumulates into C with beta, the others into buffers of their own
    const std::unique_ptr<T[]> partial(new T[static_cast<std::size_t>(threads - 1) * m * n]);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), parts = omp_get_num_threads();
      const auto [k0, k1] = bounds(k, t, parts);
      const T* pa = ta ? a + k0 * lda : a + k0;  // op(A)'s columns k0..k1
      const T* pb = tb ? b + k0 : b + k0 * ldb;  // op(B)'s rows k0..k1
      if (t == 0)
        call(ta, tb, m, n, k1 - k0, alpha, pa, lda, pb, ldb, beta, c, ldc);
      else
        call(ta, tb, m, n, k1 - k0, alpha, pa, lda, pb, ldb, T(0), partial.get() + (t - 1) * m * n, n);
#pragma omp barrier
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < m; ++r)
        for (int s = 1; s < parts; ++s) {
          const T* p = partial.get() + (s - 1) * m * n + r * n;
          T* out = c + r * ldc;
          for (std::int64_t j = 0; j < n; ++j) out[j] += p[j];
        }
    }
    return;
  }
  if (largest_out < threads * kMinPart) {
    call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_rows = m >= n;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), parts = omp_get_num_threads();
    if (by_rows) {
      const auto [r0, r1] = bounds(m, t, parts);
      if (r1 > r0) call(ta, tb, r1 - r0, n, k, alpha, ta ? a + r0 : a + r0 * lda, lda, b, ldb, beta, c + r0 * ldc, ldc);
    } else {
      const auto [c0, c1] = bounds(n, t, parts);
      if (c1 > c0) call(ta, tb, m, c1 - c0, k, alpha, a, lda, tb ? b + c0 * ldb : b + c0, ldb, beta, c + c0, ldc);
    }
  }
}

}  // namespace

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

std::string describe() {
  const int parallel = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* mode = parallel == 2 ? "OpenMP" : parallel == 1 ? "pthreads" : "sequential";
  return std::string(openblas_get_config()) + ", core " + openblas_get_corename() + ", " + mode + " threading, " +
         std::to_string(openblas_get_num_threads()) + " threads";
}

}  // namespace rune::blas
