// matmul against the naive reference loop and against xtensor-blas (an independent route to
// BLAS), over the layouts the kernel treats differently: plain, transposed operands handed to
// BLAS with a trans flag, strided views that must be copied, batched with broadcasting,
// (B, T, C) @ (C, N) folded into one gemm, many small products run one per thread, and
// degenerate sizes; and its gradients on the same layouts. Also the register kernel attention
// uses for small per-head products, against its reference loop.
#include <gtest/gtest.h>
#include <omp.h>

#include <xtensor-blas/xlinalg.hpp>

#include <cmath>
#include <limits>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/reference.hpp"
#include "autograd/small_gemm.hpp"
#include "autograd/xt.hpp"

namespace rune {
namespace {

Tensor rnd(const Shape& s, std::uint64_t seed, DType d = DType::float32) {
  Generator g(seed);
  return randn(s, g, d);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : to_dtype(t, DType::float64).to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = to_dtype(a, DType::float64).to_vector<double>();
  const auto vb = to_dtype(b, DType::float64).to_vector<double>();
  double worst = 0;
  for (std::size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst / std::max(max_abs(b), 1e-30);
}

// The reference handles contiguous 2-D and equal-batch 3-D operands; broadcast batches are
// expanded to that form first.
Tensor reference_matmul(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  if (a.dim() == 2 && b.dim() == 2) return reference::matmul(a, b);
  Shape batch =
      a.dim() > b.dim() ? Shape(a.shape().begin(), a.shape().end() - 2) : Shape(b.shape().begin(), b.shape().end() - 2);
  for (std::size_t i = 0; i + 2 < std::min(a.shape().size(), b.shape().size()); ++i) {
    const std::size_t ia = a.dim() - 3 - i, ib = b.dim() - 3 - i, ob = batch.size() - 1 - i;
    batch[ob] = std::max(a.shape()[ia], b.shape()[ib]);
  }
  Shape sa = batch, sb = batch;
  sa.push_back(a.size(-2));
  sa.push_back(a.size(-1));
  sb.push_back(b.size(-2));
  sb.push_back(b.size(-1));
  const Tensor ea = contiguous(expand(a, sa)).reshape({-1, a.size(-2), a.size(-1)});
  const Tensor eb = contiguous(expand(b, sb)).reshape({-1, b.size(-2), b.size(-1)});
  Shape out = batch;
  out.push_back(a.size(-2));
  out.push_back(b.size(-1));
  return reference::matmul(ea, eb).reshape(out);
}

struct Case {
  const char* name;
  Shape a, b;
  bool transpose_a, transpose_b;
};
// gtest names a case by this, not by the bytes of the struct (which hold a pointer)
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MatmulLayouts : public ::testing::TestWithParam<Case> {};

TEST_P(MatmulLayouts, MatchesTheReferenceForwardAndBackward) {
  const Case c = GetParam();
  for (DType d : {DType::float32, DType::float64}) {
    // A transposed operand is stored as its transpose and viewed back.
    auto make = [&](Shape s, bool transposed, std::uint64_t seed) {
      if (!transposed) return rnd(s, seed, d).requires_grad_();
      std::swap(s[s.size() - 1], s[s.size() - 2]);
      return rnd(s, seed, d).transpose(-1, -2).detach().requires_grad_();
    };
    Tensor a = make(c.a, c.transpose_a, 1), b = make(c.b, c.transpose_b, 2);
    const Tensor y = matmul(a, b);
    const double tol = d == DType::float32 ? 2e-6 : 1e-13;
    EXPECT_LT(max_rel_diff(y, reference_matmul(a, b)), tol) << dtype_name(d);
    // da = gy @ b^T and db = a^T @ gy, summed over broadcast dims, via the reference
    const Tensor gy = rnd(y.shape(), 3, d);
    y.backward(gy);
    NoGradGuard no_grad;
    const Tensor da = reduce_to_shape(reference_matmul(gy, contiguous(transpose(b, -1, -2))), a.shape());
    const Tensor db = reduce_to_shape(reference_matmul(contiguous(transpose(a, -1, -2)), gy), b.shape());
    EXPECT_LT(max_rel_diff(a.grad(), da), tol * 10) << dtype_name(d) << " da";
    EXPECT_LT(max_rel_diff(b.grad(), db), tol * 10) << dtype_name(d) << " db";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulLayouts,
                         ::testing::Values(Case{"square", {64, 64}, {64, 64}, false, false},
                                           Case{"odd_sizes", {37, 19}, {19, 53}, false, false},
                                           Case{"a_transposed", {37, 19}, {19, 53}, true, false},
                                           Case{"b_transposed", {37, 19}, {19, 53}, false, true},
                                           Case{"both_transposed", {8, 300}, {300, 9}, true, true},
                                           Case{"batched", {6, 17, 8}, {6, 8, 12}, false, false},
                                           Case{"batched_transposed_keys", {12, 16, 8}, {12, 8, 16}, false, true},
                                           Case{"batch_broadcast", {2, 1, 5, 4}, {3, 4, 6}, false, false},
                                           Case{"linear_fold", {4, 33, 24}, {24, 40}, false, false},
                                           Case{"linear_fold_weight_transposed", {4, 33, 24}, {24, 40}, false, true},
                                           Case{"shared_lhs", {5, 6}, {3, 6, 7}, false, false},
                                           Case{"attention_many_small", {64, 16, 8}, {64, 8, 16}, false, true},
                                           Case{"row_vector_like", {1, 7}, {7, 1}, false, false}),
                         [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

TEST(Matmul, AgreesWithXtensorBlas) {
  const Tensor a = rnd({70, 45}, 4, DType::float64), b = rnd({45, 31}, 5, DType::float64);
  const xt::xarray<double> expected = xt::linalg::dot(to_xarray<double>(a), to_xarray<double>(b));
  EXPECT_LT(max_rel_diff(matmul(a, b), from_xarray(expected)), 1e-13);
}

TEST(Matmul, StridedViewsAreCopiedNotMisread) {
  // Every other column: neither row- nor column-major, so BLAS cannot read it in place.
  const Tensor base = rnd({9, 20}, 6);
  const Tensor a = slice(base, 1, 0, 20, 2);  // (9, 10), strides (20, 2)
  const Tensor b = rnd({10, 4}, 7);
  EXPECT_FALSE(a.is_contiguous());
  EXPECT_LT(max_rel_diff(matmul(a, b), reference::matmul(contiguous(a), b)), 2e-6);
}

TEST(Matmul, VectorsFollowTorchSemantics) {
  const Tensor v = tensor({1.0, 2.0, 3.0}, DType::float64);
  const Tensor m = tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}}, DType::float64);  // (3, 2)
  EXPECT_EQ(matmul(v, v).shape(), Shape{});
  EXPECT_DOUBLE_EQ(matmul(v, v).item(), 14.0);
  EXPECT_EQ(matmul(v, m).shape(), (Shape{2}));
  EXPECT_EQ(matmul(v, m).to_vector<double>(), (std::vector<double>{4.0, 5.0}));
  EXPECT_EQ(matmul(transpose(m, 0, 1), v).to_vector<double>(), (std::vector<double>{4.0, 5.0}));
  EXPECT_EQ(matmul(rnd({4, 2, 3}, 8), rnd({3}, 9)).shape(), (Shape{4, 2}));
}

TEST(Matmul, DegenerateSizes) {
  EXPECT_EQ(matmul(zeros({0, 3}), zeros({3, 4})).shape(), (Shape{0, 4}));
  const Tensor y = matmul(ones({2, 0}), ones({0, 3}));  // an empty sum is 0
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(y.to_vector<float>(), std::vector<float>(6, 0.0f));
}

TEST(Matmul, ThreadCountDoesNotChangeResults) {
  // 256 small products: run one per thread with 2 threads, one at a time with 1.
  const Tensor q = rnd({256, 64, 16}, 10), k = rnd({256, 64, 16}, 11);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor one = matmul(q, transpose(k, -1, -2));
  omp_set_num_threads(2);
  const Tensor two = matmul(q, transpose(k, -1, -2));
  omp_set_num_threads(saved);
  EXPECT_EQ(one.to_vector<float>(), two.to_vector<float>());
}

// blas::gemm shares large products out between threads itself: by rows of C when it is tall, by
// columns when it is wide, by the reduction when C is small and k long (partial products summed).
// Each regime, every transpose combination, beta 0 and 1 and gemm_bias (C unread: it holds NaN)
// and padded leading dimensions, at 1, 2 and 3 threads, against a loop accumulating in double, and
// bit for bit against one thread.
TEST(Matmul, GemmSplitAcrossThreadsMatchesALoop) {
  struct Dims {
    std::int64_t m, n, k;
  };
  // split by rows, by columns, by k; and one row or one column of C (the gemv path)
  const Dims cases[] = {{1040, 96, 72}, {40, 1030, 136}, {72, 56, 3000}, {1, 1030, 136}, {1040, 1, 72}, {1, 1, 50}};
  const int saved = omp_get_max_threads();
  std::uint64_t seed = 20;
  for (const Dims& c : cases)
    for (int trans = 0; trans < 4; ++trans)
      for (const int mode : {0, 1, 2}) {  // beta 0, beta 1, bias
        const float beta = mode == 1 ? 1.0f : 0.0f;
        const bool with_bias = mode == 2;
        const bool ta = trans & 1, tb = trans & 2;
        // stored A is (m, k) or (k, m), B (k, n) or (n, k), each row padded by 3
        const std::int64_t a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
        const std::int64_t b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
        const std::int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = c.n + 3;
        const std::vector<float> a = rnd({a_rows, lda}, seed++).to_vector<float>();
        const std::vector<float> b = rnd({b_rows, ldb}, seed++).to_vector<float>();
        std::vector<float> c0 = rnd({c.m, ldc}, seed++).to_vector<float>();
        const std::vector<float> bias = rnd({c.n}, seed++).to_vector<float>();
        if (with_bias)
          for (std::int64_t i = 0; i < c.m; ++i)
            for (std::int64_t j = 0; j < c.n; ++j) c0[i * ldc + j] = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> on_one_thread;
        for (const int threads : {1, 2, 3}) {
          std::vector<float> out = c0;
          omp_set_num_threads(threads);
          if (with_bias)
            blas::gemm_bias(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, bias.data(), out.data(), ldc);
          else
            blas::gemm(ta, tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, beta, out.data(), ldc);
          omp_set_num_threads(saved);
          double worst = 0;
          for (std::int64_t i = 0; i < c.m; ++i)
            for (std::int64_t j = 0; j < c.n; ++j) {
              double acc = 0;
              for (std::int64_t p = 0; p < c.k; ++p)
                acc += double(ta ? a[p * lda + i] : a[i * lda + p]) * double(tb ? b[j * ldb + p] : b[p * ldb + j]);
              const double want = 0.5 * acc + (with_bias ? double(bias[j]) : beta * c0[i * ldc + j]);
              worst = std::max(worst, std::abs(out[i * ldc + j] - want) / (1.0 + std::abs(want)));
            }
          for (std::int64_t i = 0; i < c.m; ++i)  // the padding of C is left alone
            for (std::int64_t j = c.n; j < ldc; ++j) ASSERT_EQ(out[i * ldc + j], c0[i * ldc + j]);
          EXPECT_LT(worst, 1e-4) << c.m << "x" << c.n << "x" << c.k << " ta " << ta << " tb " << tb << " mode " << mode
                                 << " threads " << threads;  // NaN fails here too
          // and the same bits on any number of threads (the blocks depend on the sizes alone)
          if (threads == 1)
            on_one_thread = out;
          else
            EXPECT_TRUE(out == on_one_thread) << c.m << "x" << c.n << "x" << c.k << " ta " << ta << " tb " << tb
                                              << " mode " << mode << ": " << threads << " threads differ from 1";
        }
      }
}

// The register kernel for attention's small products against the plain loop, over every
// transposition, row counts that leave every tail block (1 to 5 rows after blocks of 6), column
// counts that end in a whole, partial or half vector (4, 12, 20: read unpadded where there are
// half vectors; 8- and 16-wide vectors), padded leading dims, beta 0 (C unread: it holds NaN)
// and 1, in float and double.
template <class T>
void small_gemm_matches_reference(double tolerance) {
  std::uint64_t seed = 300;
  for (const std::int64_t m : {1, 2, 3, 4, 5, 7, 10, 24, 50})
    for (const std::int64_t n : {1, 2, 4, 7, 8, 12, 15, 16, 17, 20, 24, 28, 33, 50})
      for (const std::int64_t k : {1, 5, 16, 65})
        for (int trans = 0; trans < 4; ++trans)
          for (const T beta : {T(0), T(1)}) {
            const bool ta = trans & 1, tb = trans & 2;
            const std::int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
            const DType dt = detail::dtype_of<T>::value;
            const std::vector<T> a = rnd({ta ? k : m, lda}, seed++, dt).template to_vector<T>();
            const std::vector<T> b = rnd({tb ? n : k, ldb}, seed++, dt).template to_vector<T>();
            std::vector<T> c0 = rnd({m, ldc}, seed++, dt).template to_vector<T>();
            if (beta == T(0))
              for (std::int64_t i = 0; i < m; ++i)
                for (std::int64_t j = 0; j < n; ++j) c0[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
            std::vector<T> fast = c0, slow = c0;
            detail::small_gemm(ta, tb, m, n, k, T(0.5), a.data(), lda, b.data(), ldb, beta, fast.data(), ldc);
            detail::small_gemm_reference(ta, tb, m, n, k, T(0.5), a.data(), lda, b.data(), ldb, beta, slow.data(), ldc);
            double worst = 0;
            for (std::int64_t i = 0; i < m; ++i) {
              for (std::int64_t j = 0; j < n; ++j)
                worst = std::max(worst, std::abs(double(fast[i * ldc + j]) - double(slow[i * ldc + j])));
              for (std::int64_t j = n; j < ldc; ++j) ASSERT_EQ(fast[i * ldc + j], c0[i * ldc + j]) << "padding written";
            }
            ASSERT_LT(worst, tolerance) << m << "x" << n << "x" << k << " ta " << ta << " tb " << tb << " beta "
                                        << double(beta);  // NaN would fail here too
          }
}

TEST(Matmul, SmallProductKernelMatchesTheReferenceLoop) {
  small_gemm_matches_reference<float>(1e-5);
  small_gemm_matches_reference<double>(1e-13);
}

}  // namespace
}  // namespace rune
