// Shape ops: views (reshape, view, transpose, permute, expand, slice) that share the input's
// buffer, and copies (contiguous, concat, index_select, gather). Every op returns a fresh
// TensorImpl, even when it shares the buffer, so that each output carries its own grad_fn.
#include <algorithm>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"

namespace rune {
namespace {

// A new handle on x's buffer with the given geometry.
Tensor make_view(const Tensor& x, Shape shape, Shape strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = x.dtype();
  return Tensor(std::move(impl));
}

void check_defined(const Tensor& x, const char* op) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": undefined tensor");
}

// Resolves one -1 and checks the element count.
Shape infer_shape(const Shape& shape, std::int64_t numel, const Shape& from, const char* op) {
  Shape out = shape;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(std::string(op) + ": only one dim can be -1 in " + shape_str(shape));
      infer = static_cast<std::int64_t>(i);
    } else if (out[i] < 0) {
      throw std::invalid_argument(std::string(op) + ": invalid dim in " + shape_str(shape));
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw std::invalid_argument(std::string(op) + ": cannot reshape " + shape_str(from) + " (" +
                                  std::to_string(numel) + " elements) to " + shape_str(shape));
    out[infer] = numel / known;
  } else if (known != numel) {
    throw std::invalid_argument(std::string(op) + ": cannot reshape " + shape_str(from) + " (" + std::to_string(numel) +
                                " elements) to " + shape_str(shape) + " (" + std::to_string(known) + " elements)");
  }
  return out;
}

// Strides that show x's elements, in x's row-major order, in `shape` without moving them, or
// nothing if no such strides exist. Dims of x are taken in chunks that are contiguous with one
// another (stride[d-1] == size[d] * stride[d], as after a slice of the last dims or a split of a
// permuted dim); the new shape must split or merge within chunks only.
std::optional<Shape> view_strides(const Tensor& x, const Shape& shape) {
  if (x.dim() == 0 || x.numel() == 0) return contiguous_strides(shape);
  const Shape& os = x.shape();
  const Shape& ost = x.strides();
  Shape strides(shape.size(), 1);
  std::int64_t view_d = static_cast<std::int64_t>(shape.size()) - 1;
  std::int64_t chunk_stride = ost.back(), chunk_numel = 1, view_numel = 1;
  for (std::int64_t d = x.dim() - 1; d >= 0; --d) {
    chunk_numel *= os[d];
    const bool chunk_ends = d == 0 || (os[d - 1] != 1 && ost[d - 1] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (view_d >= 0 && (view_numel < chunk_numel || shape[view_d] == 1)) {
      strides[view_d] = view_numel * chunk_stride;
      view_numel *= shape[view_d];
      --view_d;
    }
    if (view_numel != chunk_numel) return std::nullopt;
    if (d > 0) {
      chunk_stride = ost[d - 1];
      chunk_numel = 1;
      view_numel = 1;
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

Tensor reshape_impl(const Tensor& x, const Shape& shape_in, bool allow_copy, const char* op) {
  check_defined(x, op);
  const Shape shape = infer_shape(shape_in, x.numel(), x.shape(), op);
  Tensor y;
  if (x.is_contiguous()) {
    y = make_view(x, shape, contiguous_strides(shape), x.offset());
  } else if (const std::optional<Shape> st = view_strides(x, shape)) {
    y = make_view(x, shape, *st, x.offset());
  } else if (allow_copy) {
    const Tensor c = detail::contiguous_data(x);
    y = make_view(c, shape, contiguous_strides(shape), c.offset());
  } else {
    throw std::invalid_argument(std::string(op) + ": the tensor of shape " + shape_str(x.shape()) + " and strides " +
                                shape_str(x.strides()) + " is not contiguous, so it has no view of shape " +
                                shape_str(shape) + "; use reshape() (which copies) or contiguous() first");
  }
  record(Op::reshape, y, {x}, [xs = x.shape()](const Tensor& gy, Grads& g) {
    g.set(0, reshape(gy, xs));  // dx = gy in the input's shape
  });
  return y;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) { return reshape_impl(x, shape, true, "reshape"); }
Tensor view(const Tensor& x, const Shape& shape) { return reshape_impl(x, shape, false, "view"); }

Tensor flatten(const Tensor& x, std::int64_t start_dim, std::int64_t end_dim) {
  check_defined(x, "flatten");
  if (x.dim() == 0) return reshape(x, {1});
  const std::int64_t s = wrap_dim(start_dim, x.dim(), "flatten");
  const std::int64_t e = wrap_dim(end_dim, x.dim(), "flatten");
  if (s > e) throw std::invalid_argument("flatten: start_dim comes after end_dim");
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  std::int64_t n = 1;
  for (std::int64_t d = s; d <= e; ++d) n *= x.size(d);
  shape.push_back(n);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, std::int64_t dim) {
  check_defined(x, "unsqueeze");
  const std::int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  shape.insert(shape.begin() + d, 1);
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, std::int64_t dim) {
  check_defined(x, "squeeze");
  const std::int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  if (x.dim() == 0 || x.size(d) != 1) return reshape(x, x.shape());  // as torch: a no-op
  Shape shape = x.shape();
  shape.erase(shape.begin() + d);
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const std::vector<std::int64_t>& dims) {
  check_defined(x, "permute");
  const std::int64_t rank = x.dim();
  if (static_cast<std::int64_t>(dims.size()) != rank)
    throw std::invalid_argument("permute: " + std::to_string(dims.size()) + " dims given for a tensor of rank " +
                                std::to_string(rank) + " " + shape_str(x.shape()));
  std::vector<std::int64_t> p(rank), inverse(rank, -1);
  Shape shape(rank), strides(rank);
  for (std::int64_t i = 0; i < rank; ++i) {
    p[i] = wrap_dim(dims[i], rank, "permute");
    if (inverse[p[i]] != -1) throw std::invalid_argument("permute: dim " + std::to_string(p[i]) + " repeats");
    inverse[p[i]] = i;
    shape[i] = x.shape()[p[i]];
    strides[i] = x.strides()[p[i]];
  }
  Tensor y = make_view(x, shape, strides, x.offset());
  record(Op::permute, y, {x}, [inverse](const Tensor& gy, Grads& g) {
    g.set(0, permute(gy, inverse));  // dx = gy permuted back
  });
  return y;
}

Tensor transpose(const Tensor& x, std::int64_t dim0, std::int64_t dim1) {
  check_defined(x, "transpose");
  const std::int64_t a = wrap_dim(dim0, x.dim(), "transpose");
  const std::int64_t b = wrap_dim(dim1, x.dim(), "transpose");
  Shape shape = x.shape(), strides = x.strides();
  if (x.dim() > 0) {
    std::swap(shape[a], shape[b]);
    std::swap(strides[a], strides[b]);
  }
  Tensor y = make_view(x, shape, strides, x.offset());
  record(Op::transpose, y, {x}, [a, b](const Tensor& gy, Grads& g) {
    g.set(0, transpose(gy, a, b));  // dx = gy transposed back
  });
  return y;
}

Tensor expand(const Tensor& x, const Shape& shape_in) {
  check_defined(x, "expand");
  if (shape_in.size() < x.shape().size())
    throw std::invalid_argument("expand: cannot expand " + shape_str(x.shape()) + " to fewer dims " +
                                shape_str(shape_in));
  Shape shape = shape_in;
  const std::size_t lead = shape.size() - x.shape().size();
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::int64_t have = i < lead ? 1 : x.shape()[i - lead];
    if (shape[i] == -1) {
      if (i < lead) throw std::invalid_argument("expand: -1 is not allowed for a new leading dim");
      shape[i] = have;
    }
    if (have != shape[i] && have != 1)
      throw std::invalid_argument("expand: cannot expand " + shape_str(x.shape()) + " to " + shape_str(shape_in) +
                                  " (dim " + std::to_string(i) + ": " + std::to_string(have) + " to " +
                                  std::to_string(shape[i]) + ")");
  }
  Tensor y = make_view(x, shape, detail::broadcast_strides(x, shape), x.offset());
  record(Op::expand, y, {x}, [xs = x.shape()](const Tensor& gy, Grads& g) {
    g.set(0, reduce_to_shape(gy, xs));  // dx = gy summed over the stretched dims
  });
  return y;
}

Tensor contiguous(const Tensor& x) {
  check_defined(x, "contiguous");
  if (x.is_contiguous()) return x;
  Tensor y = detail::contiguous_data(x);
  record(Op::contiguous, y, {x}, [](const Tensor& gy, Grads& g) { g.set(0, gy); });  // dx = gy
  return y;
}

Tensor slice(const Tensor& x, std::int64_t dim_in, std::int64_t start, std::int64_t end, std::int64_t step) {
  check_defined(x, "slice");
  if (x.dim() == 0) throw std::invalid_argument("slice: cannot slice a 0-d tensor");
  if (step <= 0) throw std::invalid_argument("slice: step must be positive, got " + std::to_string(step));
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "slice");
  const std::int64_t n = x.size(dim);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<std::int64_t>(start, 0, n);
  end = std::clamp<std::int64_t>(end, start, n);
  Shape shape = x.shape(), strides = x.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  Tensor y = make_view(x, shape, strides, x.offset() + start * x.stride(dim));
  record(Op::slice, y, {x}, [dim, start, end, step](const Tensor& gy, Grads& g) {
    // dx = gy scattered into the sliced positions, 0 elsewhere (the engine adds it in place)
    g.set_slice(0, gy, dim, start, end, step);
  });
  return y;
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t dim_in) {
  if (tensors.empty()) throw std::invalid_argument("concat: no tensors given");
  const Tensor& first = tensors[0];
  check_defined(first, "concat");
  if (first.dim() == 0) throw std::invalid_argument("concat: cannot concatenate 0-d tensors");
  const std::int64_t dim = wrap_dim(dim_in, first.dim(), "concat");
  Shape shape = first.shape();
  shape[dim] = 0;
  std::vector<std::int64_t> sizes;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const Tensor& t = tensors[k];
    check_defined(t, "concat");
    if (t.dtype() != first.dtype())
      throw std::invalid_argument("concat: tensor " + std::to_string(k) + " is " + dtype_name(t.dtype()) +
                                  ", tensor 0 is " + dtype_name(first.dtype()));
    bool ok = t.dim() == first.dim();
    for (std::int64_t d = 0; ok && d < t.dim(); ++d) ok = d == dim || t.size(d) == first.size(d);
    if (!ok)
      throw std::invalid_argument("concat: tensor " + std::to_string(k) + " has shape " + shape_str(t.shape()) +
                                  ", which does not match tensor 0's " + shape_str(first.shape()) + " outside dim " +
                                  std::to_string(dim));
    sizes.push_back(t.size(dim));
    shape[dim] += t.size(dim);
  }
  Tensor y = empty(shape, first.dtype());
  {
    NoGradGuard no_grad;
    std::int64_t at = 0;
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      slice(y, dim, at, at + sizes[k]).copy_(tensors[k]);
      at += sizes[k];
    }
  }
  record(Op::concat, y, tensors, [sizes, dim](const Tensor& gy, Grads& g) {
    // dx_k = the k-th block of gy along dim
    std::int64_t at = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      if (g.needs(k)) g.set(k, slice(gy, dim, at, at + sizes[k]));
      at += sizes[k];
    }
  });
  return y;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t dim_in) {
  check_defined(x, "split");
  if (x.dim() == 0) throw std::invalid_argument("split: a 0-d tensor cannot be split");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "split");
  const std::int64_t total = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  if (total != x.size(dim))
    throw std::invalid_argument("split: sizes add up to " + std::to_string(total) + " but dim " + std::to_string(dim) +
                                " of " + shape_str(x.shape()) + " has " + std::to_string(x.size(dim)));
  std::vector<Tensor> out;
  std::int64_t at = 0;
  for (auto s : sizes) {
    if (s < 0) throw std::invalid_argument("split: negative size");
    out.push_back(slice(x, dim, at, at + s));
    at += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, std::int64_t dim_in) {
  check_defined(x, "split");
  if (x.dim() == 0) throw std::invalid_argument("split: a 0-d tensor cannot be split");
  if (split_size <= 0) throw std::invalid_argument("split: split_size must be positive");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "split");
  std::vector<std::int64_t> sizes;
  for (std::int64_t at = 0; at < x.size(dim); at += split_size) sizes.push_back(std::min(split_size, x.size(dim) - at));
  return split(x, sizes, dim);
}

// ------------------------------------------------------------------------- indexing

namespace {
void check_index_range(const std::int64_t* idx, std::int64_t n, std::int64_t size, const char* op, std::int64_t dim) {
  for (std::int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= size)
      throw std::out_of_range(std::string(op) + ": index " + std::to_string(idx[i]) + " (at position " +
                              std::to_string(i) + ") is out of range for dim " + std::to_string(dim) + " of size " +
                              std::to_string(size));
}
}  // namespace

Tensor index_select(const Tensor& x, std::int64_t dim_in, const Tensor& index) {
  check_defined(x, "index_select");
  detail::check_dtype("index_select", index, DType::int64, "index");
  if (index.dim() != 1)
    throw std::invalid_argument("index_select: index must be 1-D, got shape " + shape_str(index.shape()));
  if (x.dim() == 0) throw std::invalid_argument("index_select: cannot index a 0-d tensor");
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "index_select");
  const Tensor idx = detail::contiguous_data(index);
  const std::int64_t k = idx.numel();
  const std::int64_t* ip = idx.data<std::int64_t>();
  check_index_range(ip, k, x.size(dim), "index_select", dim);
  const Tensor c = detail::contiguous_data(x);
  const detail::OuterInner oi = detail::split_at(x.shape(), dim);
  Shape shape = x.shape();
  shape[dim] = k;
  Tensor y = empty(shape, x.dtype());
  detail::dispatch_bits(x.dtype(), [&](auto tag) {
    using U = decltype(tag);
    const U* src = static_cast<const U*>(c.raw_data());
    U* dst = static_cast<U*>(y.raw_data());
    const int threads = detail::num_threads_for(y.numel());
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
    for (std::int64_t o = 0; o < oi.outer; ++o)
      for (std::int64_t i = 0; i < k; ++i)
        std::copy_n(src + (o * oi.n + ip[i]) * oi.inner, oi.inner, dst + (o * k + i) * oi.inner);
  });
  record(Op::index_select, y, {x}, [xs = x.shape(), idx, dim, oi, k](const Tensor& gy, Grads& g) {
    // dx[.., idx[i], ..] += gy[.., i, ..]; repeated indices add up
    Tensor gx = zeros(xs, gy.dtype());
    const Tensor gc = detail::contiguous_data(gy);
    const std::int64_t* ip2 = idx.data<std::int64_t>();
    detail::dispatch_float(gy.dtype(), "index_select backward", [&](auto tag) {
      using T = decltype(tag);
      T* dst = gx.data<T>();
      const T* src = gc.data<T>();
      const int threads = detail::num_threads_for(gc.numel());
      // Threads own disjoint column ranges of each row, so repeated indices never race.
#pragma omp parallel num_threads(threads) if (threads > 1)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const std::int64_t chunk = (oi.inner + nt - 1) / nt;
        const std::int64_t j0 = std::min<std::int64_t>(oi.inner, t * chunk);
        const std::int64_t j1 = std::min<std::int64_t>(oi.inner, j0 + chunk);
        for (std::int64_t o = 0; o < oi.outer; ++o)
          for (std::int64_t i = 0; i < k; ++i) {
            T* d = dst + (o * oi.n + ip2[i]) * oi.inner;
            const T* s = src + (o * k + i) * oi.inner;
            for (std::int64_t j = j0; j < j1; ++j) d[j] += s[j];
          }
      }
    });
    g.set(0, gx);
  });
  return y;
}

Tensor embedding(const Tensor& weight, const Tensor& ids, std::optional<std::int64_t> padding_idx) {
  check_defined(weight, "embedding");
  detail::check_dtype("embedding", ids, DType::int64, "ids");
  if (weight.dim() != 2)
    throw std::invalid_argument("embedding: weight must be (V, C), got shape " + shape_str(weight.shape()));
  const std::int64_t V = weight.size(0), C = weight.size(1);
  if (padding_idx && (*padding_idx < 0 || *padding_idx >= V))
    throw std::out_of_range("embedding: padding_idx " + std::to_string(*padding_idx) + " is outside [0, " +
                            std::to_string(V) + ")");
  const Tensor idx = detail::contiguous_data(ids);
  const std::int64_t n = idx.numel();
  const std::int64_t* ip = idx.data<std::int64_t>();
  check_index_range(ip, n, V, "embedding", 0);
  const Tensor w = detail::contiguous_data(weight);
  Shape shape = ids.shape();
  shape.push_back(C);
  Tensor y = empty(shape, weight.dtype());  // (..., C)
  detail::dispatch_float(weight.dtype(), "embedding", [&](auto tag) {
    using T = decltype(tag);
    const T* src = w.data<T>();
    T* dst = y.data<T>();
    const int threads = detail::num_threads_for(n * C);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) std::copy_n(src + ip[i] * C, C, dst + i * C);
  });
  const std::int64_t pad = padding_idx ? *padding_idx : -1;
  record(Op::embedding, y, {weight}, [V, C, idx, pad](const Tensor& gy, Grads& g) {
    // dW[ids[i]] += gy[i] for every position whose id is not padding_idx
    Tensor gw = zeros({V, C}, gy.dtype());
    const Tensor gc = detail::contiguous_data(gy);
    const std::int64_t* ip2 = idx.data<std::int64_t>();
    const std::int64_t m = idx.numel();
    detail::dispatch_float(gy.dtype(), "embedding backward", [&](auto tag) {
      using T = decltype(tag);
      T* dst = gw.data<T>();
      const T* src = gc.data<T>();
      const int threads = detail::num_threads_for(m * C);
      // Threads own disjoint column ranges, so repeated ids never race and the sum order is fixed.
#pragma omp parallel num_threads(threads) if (threads > 1)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const std::int64_t chunk = (C + nt - 1) / nt;
        const std::int64_t j0 = std::min<std::int64_t>(C, t * chunk), j1 = std::min<std::int64_t>(C, j0 + chunk);
        for (std::int64_t i = 0; i < m; ++i) {
          if (ip2[i] == pad) continue;
          T* d = dst + ip2[i] * C;
          const T* s2 = src + i * C;
          for (std::int64_t j = j0; j < j1; ++j) d[j] += s2[j];
        }
      }
    });
    g.set(0, gw);
  });
  return y;
}

Tensor gather(const Tensor& x, std::int64_t dim_in, const Tensor& index) {
  check_defined(x, "gather");
  detail::check_dtype("gather", index, DType::int64, "index");
  if (index.dim() != x.dim())
    throw std::invalid_argument("gather: index of shape " + shape_str(index.shape()) +
                                " must have the rank of the input " + shape_str(x.shape()));
  const std::int64_t dim = wrap_dim(dim_in, x.dim(), "gather");
  for (std::int64_t d = 0; d < x.dim(); ++d)
    if (d != dim && index.size(d) > x.size(d))
      throw std::invalid_argument("gather: index of shape " + shape_str(index.shape()) + " is larger than the input " +
                                  shape_str(x.shape()) + " in dim " + std::to_string(d));
  const Tensor idx = detail::contiguous_data(index);
  const std::int64_t* ip = idx.data<std::int64_t>();
  const std::int64_t n = idx.numel();
  check_index_range(ip, n, x.dim() == 0 ? 1 : x.size(dim), "gather", dim);
  const Shape ishape = idx.shape();
  const std::int64_t rank = x.dim();
  // Offset in x (read through its strides) of index element i, with dim replaced by index[i].
  auto source_offset = [ishape, rank, dim, xstr = x.strides()](std::int64_t i, std::int64_t value) {
    std::int64_t off = 0;
    for (std::int64_t d = rank - 1; d >= 0; --d) {
      const std::int64_t coord = i % ishape[d];
      i /= ishape[d];
      off += (d == dim ? value : coord) * xstr[d];
    }
    return off;
  };
  Tensor y = empty(ishape, x.dtype());
  detail::dispatch_bits(x.dtype(), [&](auto tag) {
    using U = decltype(tag);
    const U* src = static_cast<const U*>(x.raw_data());
    U* dst = static_cast<U*>(y.raw_data());
    const int threads = detail::num_threads_for(n);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) dst[i] = src[source_offset(i, ip[i])];
  });
  record(Op::gather, y, {x}, [xs = x.shape(), idx, dim, rank, ishape](const Tensor& gy, Grads& g) {
    // dx[.., index[i], ..] += gy[i]: a scatter-add, serial because indices may repeat
    Tensor gx = zeros(xs, gy.dtype());
    const Tensor gc = detail::contiguous_data(gy);
    const Shape gstr = gx.strides();
    const std::int64_t* ip2 = idx.data<std::int64_t>();
    detail::dispatch_float(gy.dtype(), "gather backward", [&](auto tag) {
      using T = decltype(tag);
      T* dst = gx.data<T>();
      const T* src = gc.data<T>();
      for (std::int64_t i = 0, n2 = gc.numel(); i < n2; ++i) {
        std::int64_t off = 0, rem = i;
        for (std::int64_t d = rank - 1; d >= 0; --d) {
          const std::int64_t coord = rem % ishape[d];
          rem /= ishape[d];
          off += (d == dim ? ip2[i] : coord) * gstr[d];
        }
        dst[off] += src[i];
      }
    });
    g.set(0, gx);
  });
  return y;
}

}  // namespace rune
