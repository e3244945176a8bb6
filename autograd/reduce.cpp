// Reductions: sum, mean, max (and argmax) over dims with keepdim, and reduce_to_shape, the
// un-broadcasting every broadcasting op's backward goes through.
//
// Kernel shape: reducing a run of adjacent dims of a contiguous tensor is a reduction of
// (outer, n, inner) to (outer, inner). inner == 1 (reducing the last dims) sums rows; inner > 1
// (e.g. a bias gradient, reducing the leading dims) adds whole rows of length inner.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"

namespace rune {
namespace {

using detail::OuterInner;

// Sorted, de-duplicated, wrapped dims; an empty list means all dims.
std::vector<std::int64_t> normalize_dims(const std::vector<std::int64_t>& dims, std::int64_t rank, const char* op) {
  std::vector<std::int64_t> out;
  if (dims.empty()) {
    out.resize(rank);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (auto d : dims) out.push_back(wrap_dim(d, rank, op));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument(std::string(op) + ": a dim appears twice in the list");
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& dims, bool keepdim) {
  Shape out;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(shape.size()); ++d) {
    const bool reduced = std::binary_search(dims.begin(), dims.end(), d);
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// out (outer, inner) = sum over n of x (outer, n, inner); x contiguous.
template <class T>
void sum_kernel(const T* x, T* out, OuterInner s) {
  using Acc = double;  // accumulate rows in double: float sums of long rows drift
  if (s.inner == 1) {
    const int threads = detail::num_threads_for(s.outer * s.n);
    if (s.outer >= threads) {
#pragma omp parallel for num_threads(threads) if (threads > 1)
      for (std::int64_t o = 0; o < s.outer; ++o) {
        const T* row = x + o * s.n;
        Acc acc = 0;
        for (std::int64_t i = 0; i < s.n; ++i) acc += row[i];
        out[o] = static_cast<T>(acc);
      }
    } else {  // few long rows: each row split into blocks the threads share (fixed_order_sum)
      for (std::int64_t o = 0; o < s.outer; ++o) {
        const T* row = x + o * s.n;
        out[o] = static_cast<T>(detail::fixed_order_sum(s.n, [row](std::int64_t i) { return Acc(row[i]); }));
      }
    }
    return;
  }
  // inner > 1: add rows of length inner; threads split the inner columns so each owns its outputs.
  const int threads = detail::num_threads_for(s.outer * s.n * s.inner);
  for (std::int64_t o = 0; o < s.outer; ++o) {
    T* dst = out + o * s.inner;
    const T* src = x + o * s.n * s.inner;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const std::int64_t chunk = (s.inner + nt - 1) / nt;
      const std::int64_t j0 = std::min<std::int64_t>(s.inner, t * chunk);
      const std::int64_t j1 = std::min<std::int64_t>(s.inner, j0 + chunk);
      // Accumulate in double (float32 sums of long columns drift), a strip of kStrip columns at
      // a time in registers down all the rows, then the columns left over one slot each. (One
      // slot per column in memory, loaded and stored every row, made a bias gradient over 6400
      // rows of 288 ten times slower than over rows of 96.)
      constexpr std::int64_t kStrip = 16;
      std::int64_t j = j0;
      for (; j + kStrip <= j1; j += kStrip) {
        Acc acc[kStrip] = {};
        for (std::int64_t i = 0; i < s.n; ++i) {
          const T* r = src + i * s.inner + j;
          for (std::int64_t l = 0; l < kStrip; ++l) acc[l] += r[l];
        }
        for (std::int64_t l = 0; l < kStrip; ++l) dst[j + l] = static_cast<T>(acc[l]);
      }
      for (; j < j1; ++j) {
        Acc acc = 0;
        for (std::int64_t i = 0; i < s.n; ++i) acc += src[i * s.inner + j];
        dst[j] = static_cast<T>(acc);
      }
    }
  }
}

// Sums x over `dims` (sorted), keeping them as size-1 dims. Adjacent dims are reduced in one
// pass; separated runs one after the other, last run first.
Tensor sum_keepdim(const Tensor& x, const std::vector<std::int64_t>& dims) {
  if (dims.empty()) return x.detach().clone();  // a 0-d tensor: its own sum, in a fresh buffer
  Tensor cur = detail::contiguous_data(x);
  std::size_t hi = dims.size();
  while (hi > 0) {
    std::size_t lo = hi - 1;
    while (lo > 0 && dims[lo - 1] + 1 == dims[lo]) --lo;
    const std::int64_t d0 = dims[lo], d1 = dims[hi - 1];
    const Shape& s = cur.shape();
    OuterInner oi{1, 1, 1};
    for (std::int64_t d = 0; d < d0; ++d) oi.outer *= s[d];
    for (std::int64_t d = d0; d <= d1; ++d) oi.n *= s[d];
    for (std::size_t d = d1 + 1; d < s.size(); ++d) oi.inner *= s[d];
    Shape out_shape = s;
    for (std::int64_t d = d0; d <= d1; ++d) out_shape[d] = 1;
    Tensor out = empty(out_shape, cur.dtype());
    detail::dispatch_float(cur.dtype(), "sum", [&](auto tag) {
      using T = decltype(tag);
      if (oi.n == 0)
        std::fill(out.data<T>(), out.data<T>() + out.numel(), T(0));
      else
        sum_kernel<T>(cur.data<T>(), out.data<T>(), oi);
    });
    cur = out;
    hi = lo;
  }
  return cur;
}

// Values and first-argmax over one dim of contiguous x (outer, n, inner); NaN wins, as in PyTorch.
template <class T>
void max_kernel(const T* x, T* values, std::int64_t* index, OuterInner s) {
  const int threads = detail::num_threads_for(s.outer * s.n * s.inner);
#pragma omp parallel for num_threads(threads) collapse(2) if (threads > 1)
  for (std::int64_t o = 0; o < s.outer; ++o)
    for (std::int64_t j = 0; j < s.inner; ++j) {
      const T* p = x + o * s.n * s.inner + j;
      T best = p[0];
      std::int64_t arg = 0;
      for (std::int64_t i = 1; i < s.n && !std::isnan(best); ++i) {
        const T v = p[i * s.inner];
        if (v > best || std::isnan(v)) {
          best = v;
          arg = i;
        }
      }
      values[o * s.inner + j] = best;
      index[o * s.inner + j] = arg;
    }
}

struct MaxResult {
  Tensor values;   // keepdim shape
  Tensor indices;  // int64, keepdim shape
};

MaxResult max_one_dim(const Tensor& x, std::int64_t dim, const char* op) {
  if (x.dim() > 0 && x.size(dim) == 0)
    throw std::invalid_argument(std::string(op) + ": cannot reduce an empty dim " + std::to_string(dim) + " of shape " +
                                shape_str(x.shape()));
  const Tensor c = detail::contiguous_data(x);
  Shape out_shape = x.shape();
  if (!out_shape.empty()) out_shape[dim] = 1;
  MaxResult r{empty(out_shape, x.dtype()), empty(out_shape, DType::int64)};
  const OuterInner oi = detail::split_at(x.shape(), x.dim() == 0 ? 0 : dim);
  detail::dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    max_kernel<T>(c.data<T>(), r.values.data<T>(), r.indices.data<std::int64_t>(), oi);
  });
  return r;
}

}  // namespace

// ------------------------------------------------------------------------- sum, mean

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  if (!x.defined()) throw std::invalid_argument("sum: undefined tensor");
  const auto dims = normalize_dims(dims_in, x.dim(), "sum");
  Tensor y = sum_keepdim(x, x.dim() == 0 ? std::vector<std::int64_t>{} : dims);
  const Shape keep_shape = y.shape();
  if (!keepdim) {
    auto impl = std::make_shared<TensorImpl>(*y.impl());
    impl->shape = reduced_shape(x.shape(), dims, false);
    impl->strides = contiguous_strides(impl->shape);
    y = Tensor(std::move(impl));
  }
  record(Op::sum, y, {x}, [xs = x.shape(), keep_shape](const Tensor& gy, Grads& g) {
    // dx = gy broadcast back over the reduced dims
    g.set(0, expand(reshape(gy, keep_shape), xs));
  });
  return y;
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  if (!x.defined()) throw std::invalid_argument("mean: undefined tensor");
  const auto dims = normalize_dims(dims_in, x.dim(), "mean");
  std::int64_t count = 1;
  for (auto d : dims) count *= x.dim() == 0 ? 1 : x.size(d);
  Tensor y;
  {
    NoGradGuard no_grad;  // one mean node, not a sum and a mul
    y = sum(x, dims, keepdim);
    y.mul_(1.0 / static_cast<double>(count));
  }
  Shape keep_shape = x.shape();
  for (auto d : dims)
    if (x.dim() > 0) keep_shape[d] = 1;
  record(Op::mean, y, {x}, [xs = x.shape(), keep_shape, count](const Tensor& gy, Grads& g) {
    // dx = gy / count, broadcast back over the reduced dims
    g.set(0, expand(reshape(div(gy, static_cast<double>(count)), keep_shape), xs));
  });
  return y;
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// ------------------------------------------------------------------------- max, argmax

Tensor max(const Tensor& x, std::int64_t dim_in, bool keepdim) {
  if (!x.defined()) throw std::invalid_argument("max: undefined tensor");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "max");
  MaxResult r = max_one_dim(x, dim, "max");
  Tensor y = r.values;
  if (!keepdim && x.dim() > 0) {
    auto impl = std::make_shared<TensorImpl>(*y.impl());
    impl->shape = reduced_shape(x.shape(), {dim}, false);
    impl->strides = contiguous_strides(impl->shape);
    y = Tensor(std::move(impl));
  }
  record(Op::max, y, {x}, [xs = x.shape(), ks = r.values.shape(), idx = r.indices, dim](const Tensor& gy, Grads& g) {
    // dx = gy at the argmax position of each reduced row, 0 elsewhere
    Tensor gx = zeros(xs, gy.dtype());
    const Tensor gc = detail::contiguous_data(gy);
    const OuterInner oi = detail::split_at(xs, xs.empty() ? 0 : dim);
    const std::int64_t* ip = idx.data<std::int64_t>();
    detail::dispatch_float(gy.dtype(), "max backward", [&](auto tag) {
      using T = decltype(tag);
      T* dst = gx.data<T>();
      const T* src = gc.data<T>();
      for (std::int64_t o = 0; o < oi.outer; ++o)
        for (std::int64_t j = 0; j < oi.inner; ++j) {
          const std::int64_t k = o * oi.inner + j;
          dst[(o * oi.n + ip[k]) * oi.inner + j] = src[k];
        }
    });
    g.set(0, gx);
  });
  return y;
}

Tensor max(const Tensor& x, const std::vector<std::int64_t>& dims_in, bool keepdim) {
  if (!x.defined()) throw std::invalid_argument("max: undefined tensor");
  const auto dims = normalize_dims(dims_in, x.dim(), "max");
  if (x.dim() == 0) return max(x, 0, keepdim);
  // The max over several dims is the max over each in turn; each step records its own node.
  Tensor y = x;
  for (auto it = dims.rbegin(); it != dims.rend(); ++it) y = max(y, *it, true);
  return keepdim ? y : reshape(y, reduced_shape(x.shape(), dims, false));
}

Tensor max(const Tensor& x) { return max(x, std::vector<std::int64_t>{}, false); }

Tensor argmax(const Tensor& x, std::int64_t dim_in, bool keepdim) {
  if (!x.defined()) throw std::invalid_argument("argmax: undefined tensor");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "argmax");
  MaxResult r = max_one_dim(x, dim, "argmax");
  if (keepdim || x.dim() == 0) return r.indices;
  auto impl = std::make_shared<TensorImpl>(*r.indices.impl());
  impl->shape = reduced_shape(x.shape(), {dim}, false);
  impl->strides = contiguous_strides(impl->shape);
  return Tensor(std::move(impl));
}

// ------------------------------------------------------------------------- reduce_to_shape

Tensor reduce_to_shape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const Shape& gs = g.shape();
  if (gs.size() < shape.size())
    throw std::logic_error("reduce_to_shape: " + shape_str(gs) + " has fewer dims than " + shape_str(shape));
  const std::size_t lead = gs.size() - shape.size();
  std::vector<std::int64_t> dims;
  for (std::size_t d = 0; d < gs.size(); ++d) {
    if (d < lead)
      dims.push_back(static_cast<std::int64_t>(d));
    else if (shape[d - lead] == 1 && gs[d] != 1)
      dims.push_back(static_cast<std::int64_t>(d));
    else if (shape[d - lead] != gs[d])
      throw std::logic_error("reduce_to_shape: " + shape_str(gs) + " does not reduce to " + shape_str(shape));
  }
  if (dims.empty()) return reshape(g, shape);
  return reshape(sum(g, dims, true), shape);
}

}  // namespace rune
