// Elementwise ops: arithmetic with broadcasting, unary math and activations, where/masked_fill,
// comparisons, dtype casts. Each op's backward sits right below its forward.
#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/simd.hpp"

namespace rune {
namespace {

using detail::Batch;

// out = f(a, b) over the broadcast of a and b. Contiguous same-shape and scalar operands take
// flat loops; everything else walks rows with per-operand strides.
template <class TOut, class TA, class TB, class F>
Tensor broadcast_map(const Tensor& a, const Tensor& b, DType out_dtype, const char* op, F f) {
  const Shape shape = detail::broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = empty(shape, out_dtype);
  TOut* o = out.data<TOut>();
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  const std::int64_t n = out.numel();
  const int threads = detail::num_threads_for(n);
  const bool a_flat = a.shape() == shape && a.is_contiguous();
  const bool b_flat = b.shape() == shape && b.is_contiguous();
  if (a_flat && b_flat) {
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return out;
  }
  if (a_flat && b.numel() == 1) {
    const TB s = *pb;
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) o[i] = f(pa[i], s);
    return out;
  }
  if (b_flat && a.numel() == 1) {
    const TA s = *pa;
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t i = 0; i < n; ++i) o[i] = f(s, pb[i]);
    return out;
  }
  const Shape so = out.strides();
  const Shape sa = detail::broadcast_strides(a, shape);
  const Shape sb = detail::broadcast_strides(b, shape);
  detail::for_each_row<3>(
      shape, {&so, &sa, &sb},
      [&](const std::array<std::int64_t, 3>& off, std::int64_t len, const std::array<std::int64_t, 3>& in) {
        TOut* ro = o + off[0];
        const TA* ra = pa + off[1];
        const TB* rb = pb + off[2];
        if (in[1] == 1 && in[2] == 1) {
          for (std::int64_t i = 0; i < len; ++i) ro[i] = f(ra[i], rb[i]);
        } else if (in[1] == 1 && in[2] == 0) {
          const TB s = *rb;
          for (std::int64_t i = 0; i < len; ++i) ro[i] = f(ra[i], s);
        } else if (in[1] == 0 && in[2] == 1) {
          const TA s = *ra;
          for (std::int64_t i = 0; i < len; ++i) ro[i] = f(s, rb[i]);
        } else {
          for (std::int64_t i = 0; i < len; ++i) ro[i] = f(ra[i * in[1]], rb[i * in[2]]);
        }
      });
  return out;
}

// Same-dtype floating binary op.
template <class F>
Tensor float_binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  detail::check_same_float(op, a, b);
  return detail::dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    return broadcast_map<T, T, T>(a, b, a.dtype(), op, [f](T x, T y) { return static_cast<T>(f(x, y)); });
  });
}

// y = f(x) elementwise, vectorised through xsimd (f is called with batches).
template <class F>
Tensor simd_unary(const Tensor& x, const char* op, F f) {
  return detail::dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const Tensor c = detail::contiguous_data(x);
    Tensor y = empty(x.shape(), x.dtype());
    detail::map_simd<T>(c.data<T>(), y.data<T>(), c.numel(), f);
    return y;
  });
}

// out = f(a, b) for two same-shape floating tensors, vectorised (used by backward kernels).
template <class F>
Tensor simd_binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  detail::check_same_float(op, a, b);
  if (a.shape() != b.shape())
    throw std::logic_error(std::string(op) + ": shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                           " differ");
  return detail::dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const Tensor ca = detail::contiguous_data(a);
    const Tensor cb = detail::contiguous_data(b);
    Tensor y = empty(a.shape(), a.dtype());
    detail::map2_simd<T>(ca.data<T>(), cb.data<T>(), y.data<T>(), y.numel(), f);
    return y;
  });
}

Tensor scalar_like(const Tensor& t, double value) { return full({}, value, t.dtype()); }

}  // namespace

// ------------------------------------------------------------------------- arithmetic

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = float_binary(a, b, "add", [](auto x, auto z) { return x + z; });
  record(Op::add, y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& gy, Grads& g) {
    // da = gy, db = gy, each summed over the dims it was broadcast along
    if (g.needs(0)) g.set(0, reduce_to_shape(gy, sa));
    if (g.needs(1)) g.set(1, reduce_to_shape(gy, sb));
  });
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = float_binary(a, b, "sub", [](auto x, auto z) { return x - z; });
  record(Op::sub, y, {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& gy, Grads& g) {
    // da = gy, db = -gy
    if (g.needs(0)) g.set(0, reduce_to_shape(gy, sa));
    if (g.needs(1)) g.set(1, reduce_to_shape(neg(gy), sb));
  });
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = float_binary(a, b, "mul", [](auto x, auto z) { return x * z; });
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  record(Op::mul, y, {a, b},
         [sa = a.shape(), sb = b.shape(), a_ = gb ? a.detach() : Tensor(), b_ = ga ? b.detach() : Tensor()](
             const Tensor& gy, Grads& g) {
           // da = gy * b, db = gy * a
           if (g.needs(0)) g.set(0, reduce_to_shape(mul(gy, b_), sa));
           if (g.needs(1)) g.set(1, reduce_to_shape(mul(gy, a_), sb));
         });
  return y;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = float_binary(a, b, "div", [](auto x, auto z) { return x / z; });
  record(Op::div, y, {a, b},
         [sa = a.shape(), sb = b.shape(), b_ = b.detach(), y_ = b.requires_grad() ? y.detach() : Tensor()](
             const Tensor& gy, Grads& g) {
           // da = gy / b, db = -gy * a / b^2 = -gy * y / b
           if (g.needs(0)) g.set(0, reduce_to_shape(div(gy, b_), sa));
           if (g.needs(1)) g.set(1, reduce_to_shape(neg(div(mul(gy, y_), b_)), sb));
         });
  return y;
}

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }

Tensor neg(const Tensor& x) {
  Tensor y = detail::dispatch_float(x.dtype(), "neg", [&](auto tag) {
    using T = decltype(tag);
    const Tensor s = scalar_like(x, -1.0);
    return broadcast_map<T, T, T>(x, s, x.dtype(), "neg", [](T v, T m) { return v * m; });
  });
  record(Op::neg, y, {x}, [](const Tensor& gy, Grads& g) { g.set(0, neg(gy)); });  // dx = -gy
  return y;
}

Tensor pow(const Tensor& x, double p) {
  Tensor y = float_binary(x, scalar_like(x, p), "pow", [](auto b, auto e) { return std::pow(b, e); });
  record(Op::pow, y, {x}, [x_ = x.detach(), p](const Tensor& gy, Grads& g) {
    // dx = gy * p * x^(p-1)
    g.set(0, mul(gy, mul(pow(x_, p - 1.0), p)));
  });
  return y;
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor y = float_binary(base, exponent, "pow", [](auto b, auto e) { return std::pow(b, e); });
  record(Op::pow_tensor, y, {base, exponent},
         [sa = base.shape(), sb = exponent.shape(), a_ = base.detach(), b_ = exponent.detach(), y_ = y.detach()](
             const Tensor& gy, Grads& g) {
           // da = gy * b * a^(b-1), db = gy * y * log(a)
           if (g.needs(0)) g.set(0, reduce_to_shape(mul(gy, mul(b_, pow(a_, sub(b_, 1.0)))), sa));
           if (g.needs(1)) g.set(1, reduce_to_shape(mul(gy, mul(y_, log(a_))), sb));
         });
  return y;
}

// ------------------------------------------------------------------------- unary math

Tensor exp(const Tensor& x) {
  Tensor y = simd_unary(x, "exp", [](auto v) { return xsimd::exp(v); });
  record(Op::exp, y, {x}, [y_ = y.detach()](const Tensor& gy, Grads& g) {
    g.set(0, mul(gy, y_));  // dx = gy * y
  });
  return y;
}

Tensor log(const Tensor& x) {
  Tensor y = simd_unary(x, "log", [](auto v) { return xsimd::log(v); });
  record(Op::log, y, {x}, [x_ = x.detach()](const Tensor& gy, Grads& g) {
    g.set(0, div(gy, x_));  // dx = gy / x
  });
  return y;
}

Tensor sqrt(const Tensor& x) {
  Tensor y = simd_unary(x, "sqrt", [](auto v) { return xsimd::sqrt(v); });
  record(Op::sqrt, y, {x}, [y_ = y.detach()](const Tensor& gy, Grads& g) {
    // dx = gy / (2 sqrt(x))
    g.set(0, simd_binary(gy, y_, "sqrt backward", [](auto gv, auto yv) { return gv * decltype(yv)(0.5) / yv; }));
  });
  return y;
}

Tensor tanh(const Tensor& x) {
  Tensor y = simd_unary(x, "tanh", [](auto v) { return xsimd::tanh(v); });
  record(Op::tanh, y, {x}, [y_ = y.detach()](const Tensor& gy, Grads& g) {
    // dx = gy * (1 - y^2)
    g.set(0, simd_binary(gy, y_, "tanh backward", [](auto gv, auto yv) { return gv * (decltype(yv)(1) - yv * yv); }));
  });
  return y;
}

Tensor sigmoid(const Tensor& x) {
  Tensor y = simd_unary(x, "sigmoid", [](auto v) {
    using B = decltype(v);
    return B(1) / (B(1) + xsimd::exp(-v));
  });
  record(Op::sigmoid, y, {x}, [y_ = y.detach()](const Tensor& gy, Grads& g) {
    // dx = gy * y * (1 - y)
    g.set(0,
          simd_binary(gy, y_, "sigmoid backward", [](auto gv, auto yv) { return gv * yv * (decltype(yv)(1) - yv); }));
  });
  return y;
}

Tensor relu(const Tensor& x) {
  Tensor y = simd_unary(x, "relu", [](auto v) { return xsimd::max(v, decltype(v)(0)); });
  record(Op::relu, y, {x}, [x_ = x.detach()](const Tensor& gy, Grads& g) {
    // dx = gy * [x > 0]
    g.set(0, simd_binary(gy, x_, "relu backward", [](auto gv, auto xv) {
            using B = decltype(xv);
            return xsimd::select(xv > B(0), gv, B(0));
          }));
  });
  return y;
}

Tensor erf(const Tensor& x) {
  Tensor y = simd_unary(x, "erf", [](auto v) { return detail::erf_batch(v); });
  record(Op::erf, y, {x}, [x_ = x.detach()](const Tensor& gy, Grads& g) {
    // dx = gy * 2/sqrt(pi) * exp(-x^2)
    g.set(0, simd_binary(gy, x_, "erf backward", [](auto gv, auto xv) {
            using B = decltype(xv);
            return gv * B(M_2_SQRTPI) * xsimd::exp(-xv * xv);
          }));
  });
  return y;
}

namespace {
// GELU and its derivative, for a batch of any width.
constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kGeluCubic = 0.044715;

template <class B>
B gelu_exact(B x) {  // x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  return B(0.5) * x * (B(1) + detail::erf_batch(B(x * B(M_SQRT1_2))));
}
template <class B>
B gelu_exact_grad(B x) {  // Phi(x) + x phi(x)
  const B cdf = B(0.5) * (B(1) + detail::erf_batch(B(x * B(M_SQRT1_2))));
  const B pdf = B(0.5 * M_2_SQRTPI * M_SQRT1_2) * xsimd::exp(B(-0.5) * x * x);
  return cdf + x * pdf;
}
template <class B>
B gelu_tanh(B x) {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  const B u = B(kSqrt2OverPi) * (x + B(kGeluCubic) * x * x * x);
  return B(0.5) * x * (B(1) + xsimd::tanh(u));
}
template <class B>
B gelu_tanh_grad(B x) {  // 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
  const B u = B(kSqrt2OverPi) * (x + B(kGeluCubic) * x * x * x);
  const B t = xsimd::tanh(u);
  const B du = B(kSqrt2OverPi) * (B(1) + B(3 * kGeluCubic) * x * x);
  return B(0.5) * (B(1) + t) + B(0.5) * x * (B(1) - t * t) * du;
}
}  // namespace

Tensor gelu(const Tensor& x, GeluApproximation approximate) {
  const bool exact = approximate == GeluApproximation::none;
  Tensor y = exact ? simd_unary(x, "gelu", [](auto v) { return gelu_exact(v); })
                   : simd_unary(x, "gelu", [](auto v) { return gelu_tanh(v); });
  record(Op::gelu, y, {x}, [x_ = x.detach(), exact](const Tensor& gy, Grads& g) {
    // dx = gy * gelu'(x), fused in one pass
    g.set(0, exact ? simd_binary(gy, x_, "gelu backward", [](auto gv, auto xv) { return gv * gelu_exact_grad(xv); })
                   : simd_binary(gy, x_, "gelu backward", [](auto gv, auto xv) { return gv * gelu_tanh_grad(xv); }));
  });
  return y;
}

// ------------------------------------------------------------------------- selection

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_dtype("where", cond, DType::bool_, "cond");
  detail::check_same_float("where", a, b);
  const Shape ab = detail::broadcast_shapes(a.shape(), b.shape(), "where");
  const Shape shape = detail::broadcast_shapes(cond.shape(), ab, "where");
  Tensor y = empty(shape, a.dtype());
  detail::dispatch_float(a.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    const Shape so = y.strides();
    const Shape sc = detail::broadcast_strides(cond, shape);
    const Shape sa = detail::broadcast_strides(a, shape);
    const Shape sb = detail::broadcast_strides(b, shape);
    T* o = y.data<T>();
    const bool* pc = cond.data<bool>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    detail::for_each_row<4>(
        shape, {&so, &sc, &sa, &sb},
        [&](const std::array<std::int64_t, 4>& off, std::int64_t n, const std::array<std::int64_t, 4>& in) {
          for (std::int64_t i = 0; i < n; ++i)
            o[off[0] + i] = pc[off[1] + i * in[1]] ? pa[off[2] + i * in[2]] : pb[off[3] + i * in[3]];
        });
  });
  record(Op::where, y, {cond, a, b}, [c_ = cond.detach(), sa = a.shape(), sb = b.shape()](const Tensor& gy, Grads& g) {
    // da = gy where cond, db = gy where not cond
    const Tensor zero = scalar_like(gy, 0.0);
    if (g.needs(1)) g.set(1, reduce_to_shape(where(c_, gy, zero), sa));
    if (g.needs(2)) g.set(2, reduce_to_shape(where(c_, zero, gy), sb));
  });
  return y;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  detail::check_dtype("masked_fill", mask, DType::bool_, "mask");
  if (!is_floating(x.dtype())) detail::throw_dtype("masked_fill", x.dtype(), "a floating dtype");
  if (detail::broadcast_shapes(mask.shape(), x.shape(), "masked_fill") != x.shape())
    throw std::invalid_argument("masked_fill: mask of shape " + shape_str(mask.shape()) +
                                " does not broadcast to the input's shape " + shape_str(x.shape()));
  Tensor y;
  {
    NoGradGuard no_grad;  // recorded as one masked_fill node below, not as a where node
    y = where(mask, scalar_like(x, value), x);
  }
  record(Op::masked_fill, y, {x}, [m_ = mask.detach()](const Tensor& gy, Grads& g) {
    // dx = gy where the mask is false, 0 where it was filled
    g.set(0, where(m_, scalar_like(gy, 0.0), gy));
  });
  return y;
}

// ------------------------------------------------------------------------- comparisons

namespace {
template <class Cmp>
Tensor compare(const Tensor& a, const Tensor& b, const char* op, Cmp cmp) {
  if (!a.defined() || !b.defined()) throw std::invalid_argument(std::string(op) + ": undefined tensor");
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string(op) + ": dtypes differ: " + dtype_name(a.dtype()) + " and " +
                                dtype_name(b.dtype()));
  switch (a.dtype()) {
    case DType::float32:
      return broadcast_map<bool, float, float>(a, b, DType::bool_, op, cmp);
    case DType::float64:
      return broadcast_map<bool, double, double>(a, b, DType::bool_, op, cmp);
    case DType::int64:
      return broadcast_map<bool, std::int64_t, std::int64_t>(a, b, DType::bool_, op, cmp);
    case DType::bool_:
      return broadcast_map<bool, bool, bool>(a, b, DType::bool_, op, cmp);
  }
  return Tensor();
}
}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) {
  return compare(a, b, "eq", [](auto x, auto y) { return x == y; });
}
Tensor ne(const Tensor& a, const Tensor& b) {
  return compare(a, b, "ne", [](auto x, auto y) { return x != y; });
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return compare(a, b, "lt", [](auto x, auto y) { return x < y; });
}
Tensor le(const Tensor& a, const Tensor& b) {
  return compare(a, b, "le", [](auto x, auto y) { return x <= y; });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return compare(a, b, "gt", [](auto x, auto y) { return x > y; });
}
Tensor ge(const Tensor& a, const Tensor& b) {
  return compare(a, b, "ge", [](auto x, auto y) { return x >= y; });
}

Tensor logical_not(const Tensor& mask) {
  detail::check_dtype("logical_not", mask, DType::bool_, "mask");
  return eq(mask, full({}, 0.0, DType::bool_));
}

// ------------------------------------------------------------------------- casts

namespace {
template <class From, class To>
void cast_buffer(const From* src, To* dst, std::int64_t n) {
  const int threads = detail::num_threads_for(n);
#pragma omp parallel for num_threads(threads) if (threads > 1)
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<To>(src[i]);
}

template <class From>
void cast_from(const From* src, const Tensor& out) {
  const std::int64_t n = out.numel();
  switch (out.dtype()) {
    case DType::float32:
      cast_buffer(src, out.data<float>(), n);
      break;
    case DType::float64:
      cast_buffer(src, out.data<double>(), n);
      break;
    case DType::int64:
      cast_buffer(src, out.data<std::int64_t>(), n);
      break;
    case DType::bool_:
      cast_buffer(src, out.data<bool>(), n);
      break;
  }
}
}  // namespace

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (!x.defined()) throw std::invalid_argument("to: undefined tensor");
  if (x.dtype() == dtype) return x;
  const Tensor c = detail::contiguous_data(x);
  Tensor y = empty(x.shape(), dtype);
  switch (x.dtype()) {
    case DType::float32:
      cast_from(c.data<float>(), y);
      break;
    case DType::float64:
      cast_from(c.data<double>(), y);
      break;
    case DType::int64:
      cast_from(c.data<std::int64_t>(), y);
      break;
    case DType::bool_:
      cast_from(c.data<bool>(), y);
      break;
  }
  if (is_floating(dtype))
    record(Op::cast, y, {x}, [from = x.dtype()](const Tensor& gy, Grads& g) {
      g.set(0, to_dtype(gy, from));  // dx = gy, in the input's dtype
    });
  return y;
}

// ------------------------------------------------------------------------- operators

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }
Tensor operator-(const Tensor& x) { return neg(x); }

}  // namespace rune
