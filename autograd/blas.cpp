// The one translation unit that speaks cblas.
#include "autograd/blas.hpp"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rune::blas {
namespace {

// OpenBLAS built with DYNAMIC_ARCH picks its kernels once, when it loads, from the CPU's family
// and model numbers. A CPU newer than its tables (0.3.21 knows no Sapphire or Emerald Rapids Xeon)
// gets the oldest x86-64 kernels, Prescott's (SSE3): sgemm at 7.5 GFLOP/s on one core of such a
// Xeon, against 38 with its AVX-512 (SkylakeX) kernels. OPENBLAS_CORETYPE overrides the choice,
// but it is read only at load. So, before main, a program whose OpenBLAS chose a core without AVX
// on a CPU that has AVX-512 or AVX2 runs itself again, same arguments, with OPENBLAS_CORETYPE set
// to SkylakeX or Haswell. A user's own OPENBLAS_CORETYPE is left alone (which also ends the loop).
bool pre_avx_core(const char* name) {
  for (const char* old : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Opteron", "Opteron(SSE3)",
                          "Barcelona", "Bobcat", "Nano", "Katmai", "Coppermine", "Northwood", "Banias", "Athlon"})
    if (std::strcmp(name, old) == 0) return true;
  return false;
}

__attribute__((constructor)) void prefer_the_cpus_own_kernels() {
  if (std::getenv("OPENBLAS_CORETYPE") || !pre_avx_core(openblas_get_corename())) return;
  __builtin_cpu_init();
  const char* core = __builtin_cpu_supports("avx512f")                                 ? "SkylakeX"
                     : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "Haswell"
                                                                                       : nullptr;
  if (!core) return;  // the CPU is as old as the kernels: nothing better to load
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<char*> argv;
  for (std::size_t at = 0; at < cmdline.size(); at += std::strlen(cmdline.c_str() + at) + 1)
    argv.push_back(const_cast<char*>(cmdline.c_str() + at));
  if (argv.empty()) return;
  argv.push_back(nullptr);
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  ::execv("/proc/self/exe", argv.data());
  ::unsetenv("OPENBLAS_CORETYPE");  // execv failed: go on with the kernels loaded
}

CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint i(std::int64_t v) { return static_cast<blasint>(v); }

// OpenBLAS's results depend on how it blocks a product (a row computed in a block of 408 rows
// can differ in its last bit from the same row in a block of 416), and its own threading blocks
// by the thread count. So it gets single-threaded calls only (OpenBLAS built for OpenMP follows
// the calling thread's omp_get_max_threads(), set to 1 around the call), and the blocks are
// chosen here by the sizes alone: the same bits on any number of threads.
class OneBlasThread {
 public:
  OneBlasThread() : threads_(omp_in_parallel() ? 0 : omp_get_max_threads()) {
    if (threads_ > 1) omp_set_num_threads(1);
  }
  ~OneBlasThread() {
    if (threads_ > 1) omp_set_num_threads(threads_);
  }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  int threads_;
};

void call(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  const OneBlasThread one;
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}
void call(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  const OneBlasThread one;
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), i(m), i(n), i(k), alpha, a, i(lda), b, i(ldb), beta, c, i(ldc));
}

// A product with one row or one column of C is a matrix-vector product. OpenBLAS 0.3.21's gemm
// packs its operands even then: a decoding step's (1, C) @ (C, 4C) copied the whole weight matrix
// before reading it (60% of `rune generate`'s time in sgemm's packing and kernel); gemv reads it
// once. The vector's stride is the other operand's leading dimension when it is a column.
void gemv_call(bool trans, std::int64_t rows, std::int64_t cols, float alpha, const float* a, std::int64_t lda,
               const float* x, std::int64_t incx, float beta, float* y, std::int64_t incy) {
  const OneBlasThread one;
  cblas_sgemv(CblasRowMajor, flag(trans), i(rows), i(cols), alpha, a, i(lda), x, i(incx), beta, y, i(incy));
}
void gemv_call(bool trans, std::int64_t rows, std::int64_t cols, double alpha, const double* a, std::int64_t lda,
               const double* x, std::int64_t incx, double beta, double* y, std::int64_t incy) {
  const OneBlasThread one;
  cblas_dgemv(CblasRowMajor, flag(trans), i(rows), i(cols), alpha, a, i(lda), x, i(incx), beta, y, i(incy));
}

// C (1 x n) = alpha op(A) (1 x k) op(B) (k x n) + beta C as gemv over B, or C (m x 1) as gemv
// over A. False when C has more than one row and column.
template <class T>
bool as_gemv(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
             const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 1) {  // c^T = op(B)^T a^T: B stored (n, k) when tb, else (k, n)
    if (tb)
      gemv_call(false, n, k, alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
    else
      gemv_call(true, k, n, alpha, b, ldb, a, ta ? lda : 1, beta, c, 1);
    return true;
  }
  if (n == 1) {  // c = op(A) b: A stored (m, k), or (k, m) when ta; b a column of op(B)
    if (ta)
      gemv_call(true, k, m, alpha, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
    else
      gemv_call(false, m, k, alpha, a, lda, b, tb ? 1 : ldb, beta, c, ldc);
    return true;
  }
  return false;
}

// OpenBLAS built for OpenMP runs single-threaded inside a parallel region, so the split below
// never oversubscribes; a pthreads build would start its own threads in each part.
bool splittable_library() { return openblas_get_parallel() != 1; }

// The gemms of a Transformer are tall and thin: (B*T, C) by (C, 3C) or 4C, and their weight
// gradients reduce over all B*T rows. OpenBLAS's own threading reaches 85-130 GFLOP/s on these
// shapes on 2 cores, single-threaded gemms on blocks of C shared out between the cores reach
// 150-175: so the share-out is done here. C is cut into blocks of rows (or of columns, when C is
// wide and short), or, when C is small and the reduction long, k is cut into parts whose partial
// products go to buffers, then summed into C in part order. The cuts depend on the sizes alone,
// never on the thread count, and the threads share the blocks out.
constexpr std::int64_t kMinPart = 64;     // reduction length a part of k takes at least
constexpr std::int64_t kBlockRows = 128;  // rows (or columns) a block of C takes at least

// How many parts of k a long reduction is cut into (1: none).
std::int64_t k_parts(std::int64_t m, std::int64_t n, std::int64_t k) {
  const std::int64_t largest_out = std::max(m, n);
  if (k <= 4 * largest_out || k < 2 * kMinPart) return 1;
  const std::int64_t parts = std::clamp<std::int64_t>(k / (4 * largest_out), 2, 8);
  return parts >= 8 ? 8 : parts >= 4 ? 4 : 2;  // a power of 2, shared out evenly by 1, 2 or 4 threads
}

// How many blocks a dimension of C of `size` is cut into: about one per kBlockRows, at most 32,
// and a multiple of 4 from 256 on (so that 1, 2 or 4 threads share them out evenly).
std::int64_t blocks_of(std::int64_t size) {
  const std::int64_t blocks = std::min<std::int64_t>(32, size / kBlockRows);
  if (blocks >= 4) return blocks / 4 * 4;
  return size >= 256 ? 4 : size >= 128 ? 2 : 1;
}

// Block t of `parts` of a dimension of `size`: [p0, p1), edges aligned to 16.
std::pair<std::int64_t, std::int64_t> bounds(std::int64_t size, std::int64_t t, std::int64_t parts) {
  const auto edge = [&](std::int64_t s) { return std::min(size, (size * s / parts + 15) / 16 * 16); };
  return {t == 0 ? std::int64_t(0) : edge(t), t + 1 == parts ? size : edge(t + 1)};
}

// OpenBLAS packs the operands of every product into a buffer it maps once per calling thread and
// keeps; which physical pages back that buffer is settled page by page, at its first touches. When
// a thread's first products are small, those touches come scattered over the buffer (the first rows
// of each packed panel), and the panels of later, larger products can then collide in the
// physically indexed L2 cache. Measured on a Zen 1 core: single-threaded sgemm (192 x 288) by
// (288 x 96) at 14 GFLOP/s, (192 x 256) by (256 x 96) at 10, against 36 for both after one 512^3
// product had run first, or with transparent huge pages on; a Fashion-MNIST ViT training step took
// 605 ms against 435. So before the first large product, each OpenMP thread runs one 512^3
// product of its own, which touches the buffer in order. (Rerun when more threads come.)
std::atomic<int> g_warmed_threads{0};

void warm_packing_buffers() {
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  const int threads = omp_get_max_threads();
  if (threads <= g_warmed_threads.load()) return;
  constexpr std::int64_t n = 512;
#pragma omp parallel num_threads(threads)
  {
    const std::unique_ptr<float[]> a(new float[n * n]), b(new float[n * n]), c(new float[n * n]);
    std::fill(a.get(), a.get() + n * n, 0.5f);
    std::fill(b.get(), b.get() + n * n, 0.25f);
    call(false, false, n, n, n, 1.0f, a.get(), n, b.get(), n, 0.0f, c.get(), n);
  }
  g_warmed_threads.store(threads);
}

// C[r0 .. r1) x [c0 .. c1) = the bias's columns c0 .. c1, row after row.
template <class T>
void set_to_bias(const T* bias, T* c, std::int64_t ldc, std::int64_t r0, std::int64_t r1, std::int64_t c0,
                 std::int64_t c1) {
  for (std::int64_t r = r0; r < r1; ++r) std::copy(bias + c0, bias + c1, c + r * ldc + c0);
}

// With a bias, C's rows start as the bias and beta is 1: each block's rows are set just before
// its product, in the thread that computes it, so they are still in cache when the product reads
// them (set all at once beforehand, a (6400 x 288) C went out to memory and came back).
template <class T>
void gemm_split(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc, const T* bias) {
  if (bias) beta = T(1);
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (bias && (flops < double(1 << 23) || !splittable_library() || m == 1 || n == 1 || k_parts(m, n, k) > 1)) {
    set_to_bias(bias, c, ldc, 0, m, 0, n);  // C is small here, or its product reads it in one go
    bias = nullptr;
  }
  if (k > 0 && as_gemv(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  if (flops < double(1 << 23) || !splittable_library()) {
    call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool nested = omp_in_parallel();
  const int threads = nested ? 1 : omp_get_max_threads();
  if (!nested && threads > g_warmed_threads.load(std::memory_order_relaxed)) warm_packing_buffers();
  const std::int64_t parts = k_parts(m, n, k);
  if (parts > 1) {
    // part 0 accumulates into C with beta, the others into buffers of their own, added in order
    const std::unique_ptr<T[]> partial(new T[static_cast<std::size_t>(parts - 1) * m * n]);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t part = 0; part < parts; ++part) {
      const auto [k0, k1] = bounds(k, part, parts);
      const T* pa = ta ? a + k0 * lda : a + k0;  // op(A)'s columns k0..k1
      const T* pb = tb ? b + k0 : b + k0 * ldb;  // op(B)'s rows k0..k1
      if (part == 0)
        call(ta, tb, m, n, k1 - k0, alpha, pa, lda, pb, ldb, beta, c, ldc);
      else
        call(ta, tb, m, n, k1 - k0, alpha, pa, lda, pb, ldb, T(0), partial.get() + (part - 1) * m * n, n);
    }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t s = 1; s < parts; ++s) {
        const T* p = partial.get() + (s - 1) * m * n + r * n;
        T* out = c + r * ldc;
        for (std::int64_t j = 0; j < n; ++j) out[j] += p[j];
      }
    return;
  }
  const bool by_rows = m >= n;
  const std::int64_t blocks = blocks_of(by_rows ? m : n);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t block = 0; block < blocks; ++block) {
    if (by_rows) {
      const auto [r0, r1] = bounds(m, block, blocks);
      if (r1 <= r0) continue;
      if (bias) set_to_bias(bias, c, ldc, r0, r1, 0, n);
      call(ta, tb, r1 - r0, n, k, alpha, ta ? a + r0 : a + r0 * lda, lda, b, ldb, beta, c + r0 * ldc, ldc);
    } else {
      const auto [c0, c1] = bounds(n, block, blocks);
      if (c1 <= c0) continue;
      if (bias) set_to_bias(bias, c, ldc, 0, m, c0, c1);
      call(ta, tb, m, c1 - c0, k, alpha, a, lda, tb ? b + c0 * ldb : b + c0, ldb, beta, c + c0, ldc);
    }
  }
}

}  // namespace

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, static_cast<const float*>(nullptr));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, static_cast<const double*>(nullptr));
}

void gemm_bias(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, const float* bias, float* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, 1.0f, c, ldc, bias);
}

void gemm_bias(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
               std::int64_t lda, const double* b, std::int64_t ldb, const double* bias, double* c, std::int64_t ldc) {
  gemm_split(ta, tb, m, n, k, alpha, a, lda, b, ldb, 1.0, c, ldc, bias);
}

std::string describe() {
  const int parallel = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* mode = parallel == 2 ? "OpenMP" : parallel == 1 ? "pthreads" : "sequential";
  return std::string(openblas_get_config()) + ", core " + openblas_get_corename() + ", " + mode +
         " threading; single-threaded calls on blocks shared out by " + std::to_string(omp_get_max_threads()) +
         " OpenMP threads";
}

}  // namespace rune::blas
