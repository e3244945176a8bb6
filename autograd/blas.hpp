// BLAS on raw buffers. Only blas.cpp includes <cblas.h>: xtensor-blas declares the same cblas
// functions with other signatures, so the two must never meet in one translation unit.
#pragma once

#include <cstdint>
#include <string>

namespace rune::blas {

// C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, row-major; op transposes when
// trans_* is set. Leading dimensions are those of the stored (untransposed) matrices.
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc);

// C = alpha * op(A) op(B) + one copy of `bias` (n values) per row: a linear layer's output. C is
// not read. The rows are set to the bias block by block, just before each block's product.
void gemm_bias(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, const float* bias, float* c, std::int64_t ldc);
void gemm_bias(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
               const double* a, std::int64_t lda, const double* b, std::int64_t ldb, const double* bias, double* c,
               std::int64_t ldc);

// What the linked library says of itself ("OpenBLAS 0.3.21 DYNAMIC_ARCH ... OpenMP"), its core
// type and thread count, for benchmarks that must say which BLAS they measured.
std::string describe();

}  // namespace rune::blas
