// Rotary position embedding (RoFormer, Su et al. 2021), in the rotate-half layout of the GPT-NeoX
// and LLaMA code bases: the rotary features of a head split into two halves, feature i paired
// with feature i + r/2, and each pair rotated by the angle (offset + t) * base^(-2i / r).
//
// Legend: B batch, H heads, T positions, D head dim, r = rotary_dim (<= D, even), i < r/2.
//
//   y[i]       = x[i] cos(a_ti) - x[i + r/2] sin(a_ti)
//   y[i + r/2] = x[i + r/2] cos(a_ti) + x[i] sin(a_ti)     features past r pass through
//
// The map is a rotation per pair, so backward is the rotation by -a: dx = R(-a) dy. Angles are
// computed in double and rounded once to the tensor's dtype, for every position of the call.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/reference.hpp"

namespace rune {
namespace {

// cos and sin of a_ti for t < T, i < r/2, as rows of r/2.
template <class T>
struct Angles {
  std::vector<T> cos, sin;
};

template <class T>
Angles<T> angles(std::int64_t positions, std::int64_t offset, double base, std::int64_t r) {
  const std::int64_t half = r / 2;
  Angles<T> a;
  a.cos.resize(static_cast<std::size_t>(positions * half));
  a.sin.resize(a.cos.size());
  for (std::int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(r));
    for (std::int64_t t = 0; t < positions; ++t) {
      const double angle = static_cast<double>(offset + t) * inv_freq;
      a.cos[static_cast<std::size_t>(t * half + i)] = static_cast<T>(std::cos(angle));
      a.sin[static_cast<std::size_t>(t * half + i)] = static_cast<T>(std::sin(angle));
    }
  }
  return a;
}

// y = R(sign * a) x over rows of D features, row n at position n % T. y may not alias x.
template <class T>
void rotate(const T* x, T* y, std::int64_t rows, std::int64_t T_, std::int64_t D, std::int64_t r, const Angles<T>& a,
            T sign) {
  const std::int64_t half = r / 2;
  const int threads = detail::num_threads_for(rows * D);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (std::int64_t n = 0; n < rows; ++n) {
    const T* xr = x + n * D;
    T* yr = y + n * D;
    const T* c = a.cos.data() + (n % T_) * half;
    const T* s = a.sin.data() + (n % T_) * half;
    for (std::int64_t i = 0; i < half; ++i) {
      const T x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
      yr[i] = x1 * c[i] - x2 * si;
      yr[i + half] = x2 * c[i] + x1 * si;
    }
    for (std::int64_t i = r; i < D; ++i) yr[i] = xr[i];
  }
}

}  // namespace

Tensor rope(const Tensor& x, std::int64_t offset, double base, std::int64_t rotary_dim) {
  if (!x.defined()) throw std::invalid_argument("rope: undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype("rope", x.dtype(), "a floating dtype");
  if (x.dim() != 4) throw std::invalid_argument("rope: x must be (B, H, T, D); got " + shape_str(x.shape()));
  const std::int64_t T_ = x.size(2), D = x.size(3);
  const std::int64_t r = rotary_dim == 0 ? D : rotary_dim;
  if (r <= 0 || r > D || r % 2 != 0)
    throw std::invalid_argument("rope: rotary_dim " + std::to_string(rotary_dim) +
                                " must be even and at most the head dim " + std::to_string(D) + " (0: all of it)");
  if (offset < 0) throw std::invalid_argument("rope: offset must be >= 0, got " + std::to_string(offset));
  if (!(base > 1.0) || !std::isfinite(base))
    throw std::invalid_argument("rope: base must be finite and above 1, got " + std::to_string(base));
  const Tensor c = detail::contiguous_data(x);
  Tensor y = empty(x.shape(), x.dtype());
  const std::int64_t rows = x.numel() / (D == 0 ? 1 : D);
  detail::dispatch_float(x.dtype(), "rope", [&](auto tag) {
    using T = decltype(tag);
    if (x.numel() > 0) rotate<T>(c.data<T>(), y.data<T>(), rows, T_, D, r, angles<T>(T_, offset, base, r), T(1));
  });
  record(Op::rope, y, {x}, [T_, D, r, rows, offset, base](const Tensor& gy, Grads& g) {
    // dx = R(-a) dy: each pair rotated back
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = empty(gy.shape(), gy.dtype());
    detail::dispatch_float(gy.dtype(), "rope backward", [&](auto tag) {
      using T = decltype(tag);
      if (gy.numel() > 0) rotate<T>(gc.data<T>(), gx.data<T>(), rows, T_, D, r, angles<T>(T_, offset, base, r), T(-1));
    });
    g.set(0, gx);
  });
  return y;
}

namespace reference {

Tensor rope(const Tensor& x, std::int64_t offset, double base, std::int64_t rotary_dim) {
  const Tensor xd = to_dtype(x.detach(), DType::float64).contiguous();
  const std::vector<double> in = xd.to_vector<double>();
  std::vector<double> out = in;
  const std::int64_t T = x.size(2), D = x.size(3), r = rotary_dim == 0 ? D : rotary_dim, half = r / 2;
  for (std::int64_t n = 0; n < x.numel() / D; ++n) {
    const std::int64_t t = n % T;
    for (std::int64_t f = 0; f < r; ++f) {
      const std::int64_t i = f % half;  // emb = cat(freqs, freqs)
      const double angle = static_cast<double>(offset + t) / std::pow(base, 2.0 * static_cast<double>(i) / double(r));
      const double rotated = f < half ? -in[n * D + f + half] : in[n * D + f - half];  // rotate_half
      out[n * D + f] = in[n * D + f] * std::cos(angle) + rotated * std::sin(angle);
    }
  }
  return from_vector(out, x.shape());
}

}  // namespace reference

}  // namespace rune
