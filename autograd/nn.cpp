// Fused neural-network ops: softmax, log_softmax, layer_norm, dropout, cross_entropy, mse_loss.
// Each is one pass (or two) over contiguous rows in plain OpenMP loops, with xsimd for exp;
// naive references for tests live at the bottom of the file.
//
// Legend: rows = product of the leading dims, n = length of the reduced (last) dim.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/reference.hpp"
#include "autograd/simd.hpp"

namespace rune {
namespace {

using detail::Batch;

// Softmax or log-softmax of each row of a contiguous (rows, n) buffer.
template <class T>
void softmax_rows(const T* x, T* y, std::int64_t rows, std::int64_t n, bool log) {
  const int threads = detail::num_threads_for(rows * n * 4);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    T m = detail::row_max(xr, n);
    if (m == -std::numeric_limits<T>::infinity()) m = 0;  // an all -inf row: avoid inf - inf
    const T s = detail::exp_shifted(xr, yr, n, m);
    if (log) {
      const T lse = m + std::log(s);
      for (std::int64_t i = 0; i < n; ++i) yr[i] = xr[i] - lse;
    } else {
      const T inv = T(1) / s;
      for (std::int64_t i = 0; i < n; ++i) yr[i] *= inv;
    }
  }
}

// The same along a middle dim: (outer, n, inner), one strided column at a time.
template <class T>
void softmax_strided(const T* x, T* y, detail::OuterInner s, bool log) {
  const int threads = detail::num_threads_for(s.outer * s.n * s.inner * 4);
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
  for (std::int64_t o = 0; o < s.outer; ++o)
    for (std::int64_t j = 0; j < s.inner; ++j) {
      const T* xr = x + o * s.n * s.inner + j;
      T* yr = y + o * s.n * s.inner + j;
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t i = 0; i < s.n; ++i) m = std::max(m, xr[i * s.inner]);
      if (m == -std::numeric_limits<T>::infinity()) m = 0;
      T sum = 0;
      for (std::int64_t i = 0; i < s.n; ++i) sum += std::exp(xr[i * s.inner] - m);
      const T lse = m + std::log(sum);
      for (std::int64_t i = 0; i < s.n; ++i)
        yr[i * s.inner] = log ? xr[i * s.inner] - lse : std::exp(xr[i * s.inner] - lse);
    }
}

// Backward of both: softmax dx = y * (gy - sum(gy * y)); log_softmax dx = gy - exp(y) * sum(gy).
template <class T>
void softmax_backward(const T* y, const T* gy, T* gx, detail::OuterInner s, bool log) {
  if (s.inner == 1) {  // contiguous rows: vectorised
    const int threads = detail::num_threads_for(s.outer * s.n * 2);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t r = 0; r < s.outer; ++r) {
      const T* yr = y + r * s.n;
      const T* gr = gy + r * s.n;
      T* dr = gx + r * s.n;
      const Batch<T> dot(log ? detail::sum_simd(gr, s.n) : detail::dot_simd(gr, yr, s.n));
      if (log)
        detail::row_map2(gr, yr, dr, s.n, [&](auto g, auto v) { return g - xsimd::exp(v) * dot; });
      else
        detail::row_map2(gr, yr, dr, s.n, [&](auto g, auto v) { return v * (g - dot); });
    }
    return;
  }
  const int threads = detail::num_threads_for(s.outer * s.n * s.inner * 2);
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
  for (std::int64_t o = 0; o < s.outer; ++o)
    for (std::int64_t j = 0; j < s.inner; ++j) {
      const std::int64_t base = o * s.n * s.inner + j, st = s.inner;
      T dot = 0;
      if (log)
        for (std::int64_t i = 0; i < s.n; ++i) dot += gy[base + i * st];
      else
        for (std::int64_t i = 0; i < s.n; ++i) dot += gy[base + i * st] * y[base + i * st];
      if (log)
        for (std::int64_t i = 0; i < s.n; ++i) gx[base + i * st] = gy[base + i * st] - std::exp(y[base + i * st]) * dot;
      else
        for (std::int64_t i = 0; i < s.n; ++i) gx[base + i * st] = y[base + i * st] * (gy[base + i * st] - dot);
    }
}

Tensor softmax_impl(const Tensor& x, std::int64_t dim_in, bool log, const char* op) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": undefined tensor");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), op);
  const Tensor c = detail::contiguous_data(x);
  Tensor y = empty(x.shape(), x.dtype());
  const detail::OuterInner s = detail::split_at(x.shape(), x.dim() == 0 ? 0 : dim);
  detail::dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (s.n == 0) return;
    if (s.inner == 1)
      softmax_rows<T>(c.data<T>(), y.data<T>(), s.outer, s.n, log);
    else
      softmax_strided<T>(c.data<T>(), y.data<T>(), s, log);
  });
  record(log ? Op::log_softmax : Op::softmax, y, {x}, [y_ = y.detach(), s, log](const Tensor& gy, Grads& g) {
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = empty(gy.shape(), gy.dtype());
    detail::dispatch_float(gy.dtype(), "softmax backward", [&](auto tag) {
      using T = decltype(tag);
      softmax_backward<T>(y_.data<T>(), gc.data<T>(), gx.data<T>(), s, log);
    });
    g.set(0, gx);
  });
  return y;
}

// y = (x - mu) * rstd * w + b over a row; w and b may be null.
template <class T>
void normalize_row(const T* x, T* y, std::int64_t n, T mu, T rstd, const T* w, const T* b) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const Batch<T> m(mu), r(rstd);
  std::int64_t i = 0;
  for (; i + W <= n; i += W) {
    Batch<T> v = (Batch<T>::load_unaligned(x + i) - m) * r;
    if (w) v *= Batch<T>::load_unaligned(w + i);
    if (b) v += Batch<T>::load_unaligned(b + i);
    v.store_unaligned(y + i);
  }
  for (; i < n; ++i) y[i] = (x[i] - mu) * rstd * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
}

// One row of layer_norm's backward (math in layer_norm's closure). dx may be null; dw and db
// accumulate this row's share.
template <class T>
void layer_norm_backward_row(const T* x, const T* g, const T* w, T mu, T rstd, std::int64_t n, T* dx, T* dw, T* db) {
  constexpr std::int64_t W = static_cast<std::int64_t>(Batch<T>::size);
  const Batch<T> m(mu), r(rstd);
  std::int64_t i = 0;
  if (dx) {
    Batch<T> sg(T(0)), sgx(T(0));
    for (; i + W <= n; i += W) {
      const Batch<T> xhat = (Batch<T>::load_unaligned(x + i) - m) * r;
      Batch<T> gh = Batch<T>::load_unaligned(g + i);
      if (w) gh *= Batch<T>::load_unaligned(w + i);
      sg += gh;
      sgx = xsimd::fma(gh, xhat, sgx);
    }
    T sum_g = xsimd::hadd(sg), sum_gx = xsimd::hadd(sgx);
    for (; i < n; ++i) {
      const T xhat = (x[i] - mu) * rstd, gh = w ? g[i] * w[i] : g[i];
      sum_g += gh;
      sum_gx += gh * xhat;
    }
    const Batch<T> a(sum_g / static_cast<T>(n)), c(sum_gx / static_cast<T>(n));
    for (i = 0; i + W <= n; i += W) {
      const Batch<T> xhat = (Batch<T>::load_unaligned(x + i) - m) * r;
      Batch<T> gh = Batch<T>::load_unaligned(g + i);
      if (w) gh *= Batch<T>::load_unaligned(w + i);
      (r * (gh - a - xhat * c)).store_unaligned(dx + i);
    }
    for (; i < n; ++i) {
      const T xhat = (x[i] - mu) * rstd, gh = w ? g[i] * w[i] : g[i];
      dx[i] = rstd * (gh - a.get(0) - xhat * c.get(0));
    }
  }
  if (dw)
    for (i = 0; i + W <= n; i += W) {
      const Batch<T> xhat = (Batch<T>::load_unaligned(x + i) - m) * r;
      const Batch<T> gv = Batch<T>::load_unaligned(g + i);
      xsimd::fma(gv, xhat, Batch<T>::load_unaligned(dw + i)).store_unaligned(dw + i);
      (Batch<T>::load_unaligned(db + i) + gv).store_unaligned(db + i);
    }
  if (dw)
    for (; i < n; ++i) {
      dw[i] += g[i] * (x[i] - mu) * rstd;
      db[i] += g[i];
    }
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t dim) { return softmax_impl(x, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& x, std::int64_t dim) { return softmax_impl(x, dim, true, "log_softmax"); }

// ------------------------------------------------------------------------- layer_norm

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (!x.defined()) throw std::invalid_argument("layer_norm: undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype("layer_norm", x.dtype(), "a floating dtype");
  const std::size_t k = normalized_shape.size();
  bool fits = k >= 1 && k <= x.shape().size();
  for (std::size_t i = 0; fits && i < k; ++i) fits = x.shape()[x.shape().size() - k + i] == normalized_shape[i];
  if (!fits)
    throw std::invalid_argument("layer_norm: normalized_shape " + shape_str(normalized_shape) +
                                " does not match the trailing dims of the input " + shape_str(x.shape()));
  for (const auto* p : {&weight, &bias})
    if (p->defined()) {
      if (p->shape() != normalized_shape)
        throw std::invalid_argument(std::string("layer_norm: ") + (p == &weight ? "weight" : "bias") + " has shape " +
                                    shape_str(p->shape()) + ", expected " + shape_str(normalized_shape));
      detail::check_same_float("layer_norm", x, *p);
    }
  const std::int64_t n = shape_numel(normalized_shape);
  const std::int64_t rows = n == 0 ? 0 : x.numel() / n;
  const Tensor c = detail::contiguous_data(x);
  const Tensor w = weight.defined() ? detail::contiguous_data(weight) : Tensor();
  const Tensor b = bias.defined() ? detail::contiguous_data(bias) : Tensor();
  Tensor y = empty(x.shape(), x.dtype());
  Tensor mean_t = empty({rows}, x.dtype()), rstd_t = empty({rows}, x.dtype());
  detail::dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = c.data<T>();
    const T* pw = w.defined() ? w.data<T>() : nullptr;
    const T* pb = b.defined() ? b.data<T>() : nullptr;
    T* py = y.data<T>();
    T* pm = mean_t.data<T>();
    T* pr = rstd_t.data<T>();
    const int threads = detail::num_threads_for(rows * n * 2);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* xr = px + r * n;
      T* yr = py + r * n;
      const T mu = detail::sum_simd(xr, n) / static_cast<T>(n);
      // two passes: the variance of (x - mean) does not cancel catastrophically
      const T var = detail::centred_square_sum(xr, n, mu) / static_cast<T>(n);
      const T rstd = static_cast<T>(1.0 / std::sqrt(static_cast<double>(var) + eps));
      pm[r] = mu;
      pr[r] = rstd;
      normalize_row(xr, yr, n, mu, rstd, pw, pb);
    }
  });
  record(Op::layer_norm, y, {x, weight, bias},
         [c_ = c.detach(), w_ = w.defined() ? w.detach() : Tensor(), mean_t, rstd_t, rows, n, normalized_shape](
             const Tensor& gy, Grads& g) {
           // xhat = (x - mean) * rstd;  gxhat = gy * w
           // dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
           // dw = sum over rows of gy * xhat;  db = sum over rows of gy
           const Tensor gc = detail::contiguous_data(gy);
           const bool need_x = g.needs(0), need_w = g.needs(1), need_b = g.needs(2);
           Tensor gx = need_x ? empty(gy.shape(), gy.dtype()) : Tensor();
           Tensor gw = need_w ? zeros({n}, gy.dtype()) : Tensor();
           Tensor gb = need_b ? zeros({n}, gy.dtype()) : Tensor();
           detail::dispatch_float(gy.dtype(), "layer_norm backward", [&](auto tag) {
             using T = decltype(tag);
             const T* px = c_.data<T>();
             const T* pw = w_.defined() ? w_.data<T>() : nullptr;
             const T* pg = gc.data<T>();
             const T* pm = mean_t.data<T>();
             const T* pr = rstd_t.data<T>();
             const int threads = detail::num_threads_for(rows * n * 4);
             // Partial sums of dw and db over blocks of kRowBlock rows, added up in block order
             // after the parallel loop: the blocks, hence the sums, do not depend on the threads.
             constexpr std::int64_t kRowBlock = 256;
             const std::int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
             std::vector<T> partial(static_cast<std::size_t>(blocks) * 2 * n, T(0));
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
             for (std::int64_t block = 0; block < blocks; ++block) {
               T* pdw = partial.data() + static_cast<std::size_t>(block) * 2 * n;
               T* pdb = pdw + n;
               for (std::int64_t r = block * kRowBlock; r < std::min(rows, (block + 1) * kRowBlock); ++r)
                 layer_norm_backward_row(px + r * n, pg + r * n, pw, pm[r], pr[r], n,
                                         need_x ? gx.template data<T>() + r * n : nullptr,
                                         need_w || need_b ? pdw : nullptr, pdb);
             }
             for (std::int64_t t = 0; t < blocks; ++t) {
               const T* pdw = partial.data() + static_cast<std::size_t>(t) * 2 * n;
               if (need_w)
                 for (std::int64_t i = 0; i < n; ++i) gw.template data<T>()[i] += pdw[i];
               if (need_b)
                 for (std::int64_t i = 0; i < n; ++i) gb.template data<T>()[i] += pdw[n + i];
             }
           });
           if (need_x) g.set(0, gx);
           if (need_w) g.set(1, reshape(gw, normalized_shape));
           if (need_b) g.set(2, reshape(gb, normalized_shape));
         });
  return y;
}

// ------------------------------------------------------------------------- dropout

namespace {
// detail::keep_scaled over n elements, blocks of them shared out between the threads.
template <class T>
void keep_scaled_in_blocks(const T* x, const bool* keep, T scale, T* y, std::int64_t n) {
  const int threads = detail::num_threads_for(n);
  const std::int64_t blocks = (n + detail::kSumBlock - 1) / detail::kSumBlock;
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t i = b * detail::kSumBlock;
    detail::keep_scaled(x + i, keep + i, scale, y + i, std::min(detail::kSumBlock, n - i));
  }
}
}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  if (!x.defined()) throw std::invalid_argument("dropout: undefined input");
  if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("dropout: p must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0.0) return x;
  if (!is_floating(x.dtype())) detail::throw_dtype("dropout", x.dtype(), "a floating dtype");
  const Tensor c = detail::contiguous_data(x);
  const std::int64_t n = x.numel();
  Tensor keep = empty(x.shape(), DType::bool_);
  bool* pk = keep.data<bool>();
  bernoulli_keep(pk, n, p, gen);  // depends on the generator's state alone, never on the thread count
  const double scale = p >= 1.0 ? 0.0 : 1.0 / (1.0 - p);
  Tensor y = empty(x.shape(), x.dtype());
  detail::dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* px = c.data<T>();
    T* py = y.data<T>();
    const T s = static_cast<T>(scale);
    keep_scaled_in_blocks(px, pk, s, py, n);
  });
  record(Op::dropout, y, {x}, [keep, scale](const Tensor& gy, Grads& g) {
    // dx = gy * keep / (1 - p)
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = empty(gy.shape(), gy.dtype());
    detail::dispatch_float(gy.dtype(), "dropout backward", [&](auto tag) {
      using T = decltype(tag);
      const bool* pk2 = keep.data<bool>();
      const T* pg = gc.data<T>();
      T* px = gx.data<T>();
      const T s = static_cast<T>(scale);
      const std::int64_t m = gx.numel();
      keep_scaled_in_blocks(pg, pk2, s, px, m);
    });
    g.set(0, gx);
  });
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training) { return dropout(x, p, training, default_generator()); }

// ------------------------------------------------------------------------- cross_entropy

namespace {
struct CeShape {
  std::int64_t rows, classes;
};

CeShape check_cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  if (!logits.defined()) throw std::invalid_argument("cross_entropy: undefined logits");
  if (!is_floating(logits.dtype())) detail::throw_dtype("cross_entropy", logits.dtype(), "floating logits");
  detail::check_dtype("cross_entropy", target, DType::int64, "target");
  const bool batched = logits.dim() == 2;
  if (!(batched || logits.dim() == 1) || target.dim() != logits.dim() - 1 ||
      (batched && target.size(0) != logits.size(0)))
    throw std::invalid_argument("cross_entropy: logits " + shape_str(logits.shape()) + " and target " +
                                shape_str(target.shape()) +
                                " must be (N, V) and (N), or (V) and (); flatten (B, T, V) logits to (B*T, V)");
  if (!(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0))
    throw std::invalid_argument("cross_entropy: label_smoothing must be in [0, 1]");
  const CeShape s{batched ? logits.size(0) : 1, logits.size(-1)};
  const Tensor t = detail::contiguous_data(target);
  const std::int64_t* pt = t.data<std::int64_t>();
  for (std::int64_t i = 0; i < s.rows; ++i)
    if (pt[i] != o.ignore_index && (pt[i] < 0 || pt[i] >= s.classes))
      throw std::out_of_range("cross_entropy: target " + std::to_string(pt[i]) + " at position " + std::to_string(i) +
                              " is out of range for " + std::to_string(s.classes) + " classes");
  return s;
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options) {
  const CeShape s = check_cross_entropy(logits, target, options);
  const Tensor x = detail::contiguous_data(logits);
  const Tensor t = detail::contiguous_data(target);
  const double eps = options.label_smoothing;
  Tensor lse_t = empty({s.rows}, logits.dtype());
  Tensor per_row = empty({s.rows}, logits.dtype());
  std::int64_t count = 0;
  const std::int64_t* pt = t.data<std::int64_t>();
  for (std::int64_t i = 0; i < s.rows; ++i) count += pt[i] != options.ignore_index;
  detail::dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* plse = lse_t.data<T>();
    T* pl = per_row.data<T>();
    const int threads = detail::num_threads_for(s.rows * s.classes * 4);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      std::vector<T> scratch(static_cast<std::size_t>(s.classes));  // once per thread
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < s.rows; ++i) {
        const T* xr = px + i * s.classes;
        const T m = detail::row_max(xr, s.classes);
        const T lse = m + std::log(detail::exp_shifted(xr, scratch.data(), s.classes, m));
        plse[i] = lse;
        if (pt[i] == options.ignore_index) {
          pl[i] = 0;
          continue;
        }
        // nll = lse - x_t;  smooth = mean over classes of -log p = lse - mean(x)
        double mean_x = 0;
        if (eps > 0) {
          for (std::int64_t j = 0; j < s.classes; ++j) mean_x += xr[j];
          mean_x /= static_cast<double>(s.classes);
        }
        pl[i] = static_cast<T>((1.0 - eps) * (lse - xr[pt[i]]) + eps * (lse - mean_x));
      }
    }
  });
  Tensor y;
  {
    NoGradGuard no_grad;
    const Shape out_shape = logits.dim() == 2 ? Shape{s.rows} : Shape{};
    if (options.reduction == Reduction::none)
      y = reshape(per_row, out_shape);
    else if (options.reduction == Reduction::sum)
      y = sum(per_row);
    else
      y = div(sum(per_row), static_cast<double>(count));  // 0/0 = NaN when all are ignored, as torch
  }
  record(Op::cross_entropy, y, {logits},
         [x_ = x.detach(), t, lse_t, s, eps, count, options](const Tensor& gy, Grads& g) {
           // dx_ij = scale_i * (softmax_ij - (1 - eps) [j == t_i] - eps / V), 0 on ignored rows
           const Tensor gc = detail::contiguous_data(gy);
           Tensor gx = empty({s.rows, s.classes}, x_.dtype());
           detail::dispatch_float(x_.dtype(), "cross_entropy backward", [&](auto tag) {
             using T = decltype(tag);
             const T* px = x_.data<T>();
             const T* plse = lse_t.data<T>();
             const T* pg = gc.data<T>();
             const std::int64_t* pt2 = t.data<std::int64_t>();
             T* pgx = gx.data<T>();
             const T off = static_cast<T>(eps / static_cast<double>(s.classes));
             const int threads = detail::num_threads_for(s.rows * s.classes * 4);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
             for (std::int64_t i = 0; i < s.rows; ++i) {
               T* dr = pgx + i * s.classes;
               if (pt2[i] == options.ignore_index) {
                 std::fill(dr, dr + s.classes, T(0));
                 continue;
               }
               const T scale = options.reduction == Reduction::none  ? pg[i]
                               : options.reduction == Reduction::sum ? pg[0]
                                                                     : pg[0] / static_cast<T>(count);
               const T* xr = px + i * s.classes;
               detail::exp_shifted(xr, dr, s.classes, plse[i]);  // softmax row
               for (std::int64_t j = 0; j < s.classes; ++j) dr[j] = scale * (dr[j] - off);
               dr[pt2[i]] -= scale * static_cast<T>(1.0 - eps);
             }
           });
           g.set(0, reshape(gx, x_.shape()));
         });
  return y;
}

// ------------------------------------------------------------------------- mse_loss

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  detail::check_same_float("mse_loss", input, target);
  if (input.shape() != target.shape())
    throw std::invalid_argument("mse_loss: input " + shape_str(input.shape()) + " and target " +
                                shape_str(target.shape()) + " must have the same shape");
  Tensor diff, y;
  {
    NoGradGuard no_grad;
    diff = sub(input, target);
    const Tensor sq = mul(diff, diff);
    y = reduction == Reduction::none ? sq : reduction == Reduction::sum ? sum(sq) : mean(sq);
  }
  const double n = static_cast<double>(input.numel());
  record(Op::mse_loss, y, {input, target}, [diff, reduction, n](const Tensor& gy, Grads& g) {
    // d input = 2 (input - target) * gy (/ n for mean); d target = -d input
    const Tensor scale = reduction == Reduction::mean ? div(gy, n / 2.0) : mul(gy, 2.0);
    const Tensor gi = mul(diff, scale);
    if (g.needs(0)) g.set(0, gi);
    if (g.needs(1)) g.set(1, neg(gi));
  });
  return y;
}

// ------------------------------------------------------------------------- references

namespace reference {
namespace {
template <class F>
Tensor per_row_double(const Tensor& x, F f) {
  // Runs f(row_in, row_out, n) on each last-dim row in double, returning x's dtype.
  const Tensor xd = to_dtype(detail::contiguous_data(x).detach(), DType::float64);
  Tensor yd = empty(x.shape(), DType::float64);
  const std::int64_t n = x.dim() == 0 ? 1 : x.size(-1);
  const std::int64_t rows = n == 0 ? 0 : x.numel() / n;
  for (std::int64_t r = 0; r < rows; ++r) f(xd.data<double>() + r * n, yd.data<double>() + r * n, n, r);
  return to_dtype(yd, x.dtype());
}
}  // namespace

Tensor softmax(const Tensor& x) {
  return per_row_double(x, [](const double* in, double* out, std::int64_t n, std::int64_t) {
    double m = -INFINITY, s = 0;
    for (std::int64_t i = 0; i < n; ++i) m = std::max(m, in[i]);
    for (std::int64_t i = 0; i < n; ++i) s += std::exp(in[i] - m);
    for (std::int64_t i = 0; i < n; ++i) out[i] = std::exp(in[i] - m) / s;
  });
}

Tensor log_softmax(const Tensor& x) {
  return per_row_double(x, [](const double* in, double* out, std::int64_t n, std::int64_t) {
    double m = -INFINITY, s = 0;
    for (std::int64_t i = 0; i < n; ++i) m = std::max(m, in[i]);
    for (std::int64_t i = 0; i < n; ++i) s += std::exp(in[i] - m);
    for (std::int64_t i = 0; i < n; ++i) out[i] = in[i] - m - std::log(s);
  });
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const std::vector<double> w =
      weight.defined() ? to_dtype(weight.detach(), DType::float64).to_vector<double>() : std::vector<double>();
  const std::vector<double> b =
      bias.defined() ? to_dtype(bias.detach(), DType::float64).to_vector<double>() : std::vector<double>();
  return per_row_double(x, [&](const double* in, double* out, std::int64_t n, std::int64_t) {
    double mu = 0, var = 0;
    for (std::int64_t i = 0; i < n; ++i) mu += in[i] / static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) var += (in[i] - mu) * (in[i] - mu) / static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = (in[i] - mu) / std::sqrt(var + eps) * (w.empty() ? 1.0 : w[i]) + (b.empty() ? 0.0 : b[i]);
  });
}

Tensor gelu(const Tensor& x, GeluApproximation approximate) {
  return per_row_double(x, [approximate](const double* in, double* out, std::int64_t n, std::int64_t) {
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = in[i];
      out[i] = approximate == GeluApproximation::none
                   ? 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)))
                   : 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    }
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  const Tensor lp = reference::log_softmax(logits.dim() == 1 ? reshape(logits.detach(), {1, -1}) : logits.detach());
  const std::vector<double> logp = to_dtype(lp, DType::float64).to_vector<double>();
  const std::vector<std::int64_t> t = target.to_vector<std::int64_t>();
  const std::int64_t rows = lp.size(0), classes = lp.size(1);
  std::vector<double> losses;
  double total = 0;
  std::int64_t count = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    double loss = 0;
    if (t[i] != o.ignore_index) {
      double smooth = 0;
      for (std::int64_t j = 0; j < classes; ++j) smooth -= logp[i * classes + j] / static_cast<double>(classes);
      loss = (1 - o.label_smoothing) * -logp[i * classes + t[i]] + o.label_smoothing * smooth;
      ++count;
    }
    losses.push_back(loss);
    total += loss;
  }
  if (o.reduction == Reduction::none)
    return to_dtype(from_vector(losses, logits.dim() == 1 ? Shape{} : Shape{rows}), logits.dtype());
  const double value = o.reduction == Reduction::sum ? total : total / static_cast<double>(count);
  return to_dtype(full({}, value, DType::float64), logits.dtype());
}

}  // namespace reference
}  // namespace rune
