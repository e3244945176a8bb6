// The one translation unit that speaks cblas.
#include "autograd/blas.hpp"

#include <cblas.h>

#include <string>

namespace rune::blas {
namespace {
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint i(std::int64_t v) { return static_cast<blasint>(v); }
}  // namespace

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

std::string describe() {
  const int parallel = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* mode = parallel == 2 ? "OpenMP" : parallel == 1 ? "pthreads" : "sequential";
  return std::string(openblas_get_config()) + ", core " + openblas_get_corename() + ", " + mode +
         " threading, " + std::to_string(openblas_get_num_threads()) + " threads";
}

}  // namespace rune::blas
