// Image ops for the Vision Transformer: patchify (the im2col of a convolution whose kernel and
// stride are the patch size) and bicubic interpolation (torch.nn.functional.interpolate with
// mode='bicubic', used to resize position embeddings to a new patch grid).
//
// Legend: B batch, C channels, H x W image, p patch size, N = (H/p)(W/p) patches.
//
// Contract: inputs are (B, C, H, W), float32 or float64, any strides (copied to contiguous once);
// outputs are new contiguous tensors. Both ops are linear, so each backward applies the transpose
// of the forward map: a permutation back for patchify, a deterministic scatter-add for bicubic.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"

namespace rune {

// ------------------------------------------------------------------------- patchify

namespace {

// Copies one run of `bytes` bytes (one patch row: p elements, the same length for the whole call).
// A run of 32 bytes or more goes to std::memcpy, whose call cost it amortises. A shorter one (p < 8
// floats, p < 4 doubles) would pay a library call for a few bytes: that made a (256, 3, 32, 32)
// float patchify 3-5x slower at p = 2 and p = 4. It is copied instead by one fixed-width move, a
// single load and store, plus, when the run is not exactly that width, a second one ending at its
// end that overlaps the first (rewriting the same bytes). Elements are 4 or 8 bytes wide, so every
// run is at least 4 bytes.
template <std::size_t Width>
void copy_short(char* dst, const char* src, std::size_t bytes) {  // Width <= bytes < 2 Width
  std::memcpy(dst, src, Width);
  if (bytes != Width) std::memcpy(dst + bytes - Width, src + bytes - Width, Width);
}

template <class T>
void copy_run(T* dst, const T* src, std::size_t bytes) {
  char* d = reinterpret_cast<char*>(dst);
  const char* s = reinterpret_cast<const char*>(src);
  if (bytes >= 32)
    std::memcpy(d, s, bytes);
  else if (bytes >= 16)
    copy_short<16>(d, s, bytes);
  else if (bytes >= 8)
    copy_short<8>(d, s, bytes);
  else
    copy_short<4>(d, s, bytes);
}

// One row of the patch grid: image rows [r p, r p + p) of every channel <-> the gw patches of grid
// row r. Feature f = (c, kh, kw) of a patch is the order of a Conv2d weight (C_out, C, p, p)
// flattened. With ToPatches the image band (its channel 0, row r p) is `from` and the first patch of
// the row is `to`; otherwise the reverse.
template <class T, bool ToPatches>
void copy_band(const T* from, T* to, std::int64_t C, std::int64_t HW, std::int64_t W, std::int64_t p) {
  const std::int64_t gw = W / p, F = C * p * p;
  const std::size_t run = static_cast<std::size_t>(p) * sizeof(T);
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t kh = 0; kh < p; ++kh) {
      const std::int64_t img = c * HW + kh * W, pat = (c * p + kh) * p;  // image row, feature run
      for (std::int64_t q = 0; q < gw; ++q) {
        if constexpr (ToPatches)
          copy_run(to + pat + q * F, from + img + q * p, run);
        else
          copy_run(to + img + q * p, from + pat + q * F, run);
      }
    }
}

// Image (B, C, H, W) <-> patch matrix (B, N, C p p), patch n = (r, q) of the grid in row-major
// order. Patches do not overlap: a pure permutation, parallel over (b, r) bands.
template <class T, bool ToPatches>
void patch_copy(const T* from, T* to, std::int64_t B, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t p) {
  const std::int64_t gh = H / p, gw = W / p, F = C * p * p;
  const int threads = detail::num_threads_for(B * C * H * W);
#pragma omp parallel for collapse(2) num_threads(threads) if (threads > 1)
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t r = 0; r < gh; ++r) {
      const std::int64_t img = (b * C * H + r * p) * W, pat = (b * gh + r) * gw * F;
      if constexpr (ToPatches)
        copy_band<T, true>(from + img, to + pat, C, H * W, W, p);
      else
        copy_band<T, false>(from + pat, to + img, C, H * W, W, p);
    }
}

}  // namespace

Tensor patchify(const Tensor& x, std::int64_t patch) {
  if (!x.defined()) throw std::invalid_argument("patchify: undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype("patchify", x.dtype(), "a floating dtype");
  if (x.dim() != 4 || patch <= 0 || x.size(2) % patch != 0 || x.size(3) % patch != 0)
    throw std::invalid_argument("patchify: input " + shape_str(x.shape()) + " must be (B, C, H, W) with H and W " +
                                "divisible by the patch size " + std::to_string(patch));
  const std::int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const Shape out_shape{B, (H / patch) * (W / patch), C * patch * patch};
  const Tensor c = detail::contiguous_data(x);
  Tensor y = empty(out_shape, x.dtype());  // (B, N, C p p)
  detail::dispatch_float(x.dtype(), "patchify", [&](auto tag) {
    using T = decltype(tag);
    patch_copy<T, true>(c.data<T>(), y.data<T>(), B, C, H, W, patch);
  });
  record(Op::patchify, y, {x}, [xs = x.shape(), patch](const Tensor& gy, Grads& g) {
    // dx = col2im(gy): every gradient element goes back to the one pixel it was read from
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = empty(xs, gy.dtype());  // (B, C, H, W), every element written once
    detail::dispatch_float(gy.dtype(), "patchify backward", [&](auto tag) {
      using T = decltype(tag);
      patch_copy<T, false>(gc.data<T>(), gx.data<T>(), xs[0], xs[1], xs[2], xs[3], patch);
    });
    g.set(0, gx);
  });
  return y;
}

// ------------------------------------------------------------------------- bicubic

namespace {

// Keys' cubic convolution kernel with A = -0.75, PyTorch's choice:
//   |s| <= 1:     (A + 2)|s|^3 - (A + 3)|s|^2 + 1
//   1 < |s| < 2:  A|s|^3 - 5A|s|^2 + 8A|s| - 4A
constexpr double kCubicA = -0.75;
double cubic_near(double s) { return ((kCubicA + 2) * s - (kCubicA + 3)) * s * s + 1; }
double cubic_far(double s) { return ((kCubicA * s - 5 * kCubicA) * s + 8 * kCubicA) * s - 4 * kCubicA; }

// For each output position along one axis: the four source taps (clamped into [0, in)) and their
// weights. The source coordinate is (dst + 0.5) in/out - 0.5 (align_corners = false: pixel
// centres line up, and it is not clamped, as PyTorch's bicubic does not) or dst (in-1)/(out-1).
// Clamping the taps, not the coordinate, replicates the border pixels. With out == in the
// coordinate is dst exactly, f = 0 and the weights are (0, 1, 0, 0): the identity.
struct Taps {
  std::vector<std::array<std::int64_t, 4>> index;
  std::vector<std::array<double, 4>> weight;
};

Taps cubic_taps(std::int64_t in, std::int64_t out, bool align_corners) {
  Taps t;
  t.index.resize(static_cast<std::size_t>(out));
  t.weight.resize(static_cast<std::size_t>(out));
  const double scale = align_corners ? (out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0)
                                     : static_cast<double>(in) / static_cast<double>(out);
  for (std::int64_t d = 0; d < out; ++d) {
    const double src = align_corners ? scale * static_cast<double>(d) : scale * (static_cast<double>(d) + 0.5) - 0.5;
    const double base = std::floor(src);
    const double f = src - base;  // in [0, 1)
    const auto i0 = static_cast<std::int64_t>(base);
    for (int k = 0; k < 4; ++k) t.index[d][k] = std::clamp<std::int64_t>(i0 - 1 + k, 0, in - 1);
    t.weight[d] = {cubic_far(f + 1), cubic_near(f), cubic_near(1 - f), cubic_far(2 - f)};
  }
  return t;
}

}  // namespace

Tensor interpolate_bicubic(const Tensor& x, std::int64_t out_h, std::int64_t out_w, bool align_corners) {
  if (!x.defined()) throw std::invalid_argument("interpolate_bicubic: undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype("interpolate_bicubic", x.dtype(), "a floating dtype");
  if (x.dim() != 4 || x.size(2) < 1 || x.size(3) < 1 || out_h < 1 || out_w < 1)
    throw std::invalid_argument("interpolate_bicubic: input " + shape_str(x.shape()) +
                                " must be (B, C, H, W) with H, W >= 1, and the output size (" + std::to_string(out_h) +
                                ", " + std::to_string(out_w) + ") positive");
  const std::int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const Taps ty = cubic_taps(H, out_h, align_corners), tx = cubic_taps(W, out_w, align_corners);
  const Tensor c = detail::contiguous_data(x);
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());  // (B, C, out_h, out_w)
  detail::dispatch_float(x.dtype(), "interpolate_bicubic", [&](auto tag) {
    using T = decltype(tag);
    const T* src = c.data<T>();
    T* dst = y.data<T>();
    const int threads = detail::num_threads_for(planes * out_h * out_w * 16);
#pragma omp parallel for num_threads(threads) if (threads > 1)
    for (std::int64_t pl = 0; pl < planes; ++pl) {
      const T* in = src + pl * H * W;
      T* out = dst + pl * out_h * out_w;
      for (std::int64_t oy = 0; oy < out_h; ++oy)
        for (std::int64_t ox = 0; ox < out_w; ++ox) {
          // y = sum over the 4 x 4 taps of wy wx x[tap]
          double acc = 0;
          for (int i = 0; i < 4; ++i) {
            const T* row = in + ty.index[oy][i] * W;
            double r = 0;
            for (int j = 0; j < 4; ++j) r += tx.weight[ox][j] * static_cast<double>(row[tx.index[ox][j]]);
            acc += ty.weight[oy][i] * r;
          }
          out[oy * out_w + ox] = static_cast<T>(acc);
        }
    }
  });
  record(Op::interpolate_bicubic, y, {x}, [xs = x.shape(), ty, tx, out_h, out_w](const Tensor& gy, Grads& g) {
    // dx[tap] += wy wx gy: the transpose of the same linear map, plane by plane (no races)
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = zeros(xs, gy.dtype());  // (B, C, H, W), accumulated into
    const std::int64_t n_planes = xs[0] * xs[1], h = xs[2], w = xs[3];
    detail::dispatch_float(gy.dtype(), "interpolate_bicubic backward", [&](auto tag) {
      using T = decltype(tag);
      const int threads = detail::num_threads_for(n_planes * out_h * out_w * 16);
#pragma omp parallel for num_threads(threads) if (threads > 1)
      for (std::int64_t pl = 0; pl < n_planes; ++pl) {
        const T* go = gc.data<T>() + pl * out_h * out_w;
        T* gi = gx.data<T>() + pl * h * w;
        for (std::int64_t oy = 0; oy < out_h; ++oy)
          for (std::int64_t ox = 0; ox < out_w; ++ox) {
            const double v = static_cast<double>(go[oy * out_w + ox]);
            for (int i = 0; i < 4; ++i) {
              T* row = gi + ty.index[oy][i] * w;
              const double vy = ty.weight[oy][i] * v;
              for (int j = 0; j < 4; ++j) row[tx.index[ox][j]] += static_cast<T>(vy * tx.weight[ox][j]);
            }
          }
      }
    });
    g.set(0, gx);
  });
  return y;
}

}  // namespace rune
