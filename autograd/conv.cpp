// The layers of a convolutional network: conv2d, batch_norm, max_pool2d, avg_pool2d and
// adaptive_avg_pool2d, with torch.nn.functional's arguments, output sizes and arithmetic.
//
// Legend: B batch, C input channels, O output channels, G groups, H x W input, P x Q output,
// kh x kw kernel, S the spatial size of a batch_norm input (H W, or 1 for (B, C)).
//
// conv2d runs the shifted kernel (the convolutions of a ResNet, at stride 1 and 2): the image
// copied once into zero-padded planes (at stride s, one per phase of each channel), each kernel
// tap's row of the im2col matrix is a contiguous run of those planes, read in place by a
// register-blocked kernel (forward, and the weight gradient); at stride 1 the input's gradient
// is the convolution of gy with the flipped kernel, the same kernel again. The rest (where the
// shifted kernel would waste over a third of its columns, and the input's gradient at stride 2
// or more) lower each image and group to GEMMs (im2col): cols (C/G kh kw, P Q) holds
// the input pixel under each kernel tap at each output position (zero in the padding), and
// y[b, g] = W[g] (O/G, C/G kh kw) @ cols, computed as y^T = cols^T W^T where OpenBLAS is faster
// so (transposed_forward); dW[g]^T += cols @ gy[b, g]^T; dcols = W[g]^T @ gy[b, g], scattered
// back (col2im) into dx[b]. A 1x1 kernel at stride 1 without padding reads the input itself as
// its cols. dW is accumulated over fixed blocks of images and the blocks summed in order (the
// result does not depend on the thread count). With enough images every thread takes whole
// images, each kernel or GEMM on its own thread; otherwise the images go one by one and the BLAS
// spreads each GEMM.
//
// Contract: inputs float32 or float64 of one dtype, any strides (copied to contiguous once);
// outputs are new contiguous tensors. Pooling runs over (B, C) planes in parallel.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/reference.hpp"
#include "autograd/simd.hpp"

namespace rune {

namespace {

std::string pair_str(const std::array<std::int64_t, 2>& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
}

// The tensor as (B, C, H, W), or a clear error naming the op.
void check_image(const char* op, const Tensor& x) {
  if (!x.defined()) throw std::invalid_argument(std::string(op) + ": undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype(op, x.dtype(), "a floating dtype");
  if (x.dim() != 4)
    throw std::invalid_argument(std::string(op) + ": input " + shape_str(x.shape()) + " must be (B, C, H, W)");
}

// Valid output positions q of one kernel tap along an axis: those with 0 <= q s - pad + tap < n,
// i.e. q in [lo, hi); the others read the padding.
struct Span {
  std::int64_t lo, hi;
};
Span valid_span(std::int64_t out, std::int64_t n, std::int64_t stride, std::int64_t pad, std::int64_t tap) {
  const std::int64_t first = pad - tap;  // q s >= first
  std::int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const std::int64_t last = n - 1 + pad - tap;  // q s <= last
  std::int64_t hi = last < 0 ? 0 : last / stride + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
  return {lo, hi};
}

struct ConvGeometry {
  std::int64_t B, C, H, W, O, G, kh, kw, sh, sw, ph, pw, dh, dw, P, Q;
  std::int64_t cg() const { return C / G; }  // input channels of a group
  std::int64_t og() const { return O / G; }  // output channels of a group
  std::int64_t K() const { return cg() * kh * kw; }
  std::int64_t PQ() const { return P * Q; }
  bool direct() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// cols (K, P Q) from the group's input planes x (C/G, H, W); to_cols false is the transpose:
// x += the cols scattered back (col2im), x being zeroed by the caller.
//
// At stride 1 with the output as wide as the input (a "same" convolution: 3x3 with padding 1), a
// tap's valid pixels of consecutive output rows lie back to back in the input plane, so each
// kernel tap's row is one copy (and its add one loop) over them, the padding columns then zeroed
// (or left out of the add): the small per-row copies were a third of a ResNet's step.
template <class T, bool ToCols>
void im2col(T* x, T* cols, const ConvGeometry& g) {
  const std::int64_t PQ = g.PQ();
  const bool contiguous_rows = g.sw == 1 && g.Q == g.W;
  for (std::int64_t c = 0; c < g.cg(); ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        T* row = cols + ((c * g.kh + i) * g.kw + j) * PQ;
        T* plane = x + c * g.H * g.W;
        const Span ps = valid_span(g.P, g.H, g.sh, g.ph, i * g.dh), qs = valid_span(g.Q, g.W, g.sw, g.pw, j * g.dw);
        if constexpr (ToCols) {
          std::fill(row, row + ps.lo * g.Q, T(0));
          std::fill(row + ps.hi * g.Q, row + PQ, T(0));
        }
        if (ps.lo >= ps.hi || qs.lo >= qs.hi) {
          if constexpr (ToCols) std::fill(row + ps.lo * g.Q, row + ps.hi * g.Q, T(0));
          continue;
        }
        // in[q] is column q's pixel in output row p: plane + (p sh - ph + i dh) W - pw + j dw + q sw
        const auto input_row = [&](std::int64_t p) {
          return plane + (p * g.sh - g.ph + i * g.dh) * g.W - g.pw + j * g.dw;
        };
        if (contiguous_rows && g.sh == 1) {
          // output position (p, q) reads input_row(ps.lo)[(p - ps.lo) Q + q]: one span from the
          // first valid pixel to the last, the columns outside [qs.lo, qs.hi) of each row then fixed
          T* out = row + ps.lo * g.Q;
          T* in = input_row(ps.lo);
          const std::int64_t first = qs.lo, last = (ps.hi - ps.lo - 1) * g.Q + qs.hi;  // [first, last)
          if constexpr (ToCols) {
            std::fill(out, out + first, T(0));
            std::copy(in + first, in + last, out + first);
            std::fill(out + last, row + ps.hi * g.Q, T(0));
            for (std::int64_t p = 0; p < ps.hi - ps.lo; ++p) {
              T* r = out + p * g.Q;
              for (std::int64_t q = 0; q < qs.lo; ++q) r[q] = T(0);
              for (std::int64_t q = qs.hi; q < g.Q; ++q) r[q] = T(0);
            }
          } else {
            for (std::int64_t p = 0; p < ps.hi - ps.lo; ++p) {
              T* __restrict dst = in + p * g.Q;
              const T* __restrict src = out + p * g.Q;
              for (std::int64_t q = qs.lo; q < qs.hi; ++q) dst[q] += src[q];
            }
          }
          continue;
        }
        for (std::int64_t p = ps.lo; p < ps.hi; ++p) {
          T* out = row + p * g.Q;
          T* in = input_row(p);
          if constexpr (ToCols) {
            std::fill(out, out + qs.lo, T(0));
            std::fill(out + qs.hi, out + g.Q, T(0));
            if (g.sw == 1)
              std::copy(in + qs.lo, in + qs.hi, out + qs.lo);
            else
              for (std::int64_t q = qs.lo; q < qs.hi; ++q) out[q] = in[q * g.sw];
          } else if (g.sw == 1) {
            T* __restrict dst = in;
            const T* __restrict src = out;
            for (std::int64_t q = qs.lo; q < qs.hi; ++q) dst[q] += src[q];
          } else {
            for (std::int64_t q = qs.lo; q < qs.hi; ++q) in[q * g.sw] += out[q];
          }
        }
      }
}

// Images in blocks of this many: the unit of the parallel loops and of dW's partial sums.
constexpr std::int64_t kImageBlock = 4;

// fn(first, last, thread scratch) over the blocks of images: in parallel when there are blocks for
// every thread (each GEMM then on its thread), else in order (each GEMM on every thread). The
// blocks go to threads as they come free: a thread slowed by another process on its core does
// not keep the other waiting, and a block's result is the same whichever thread computes it.
template <class T, class F>
void over_image_blocks(std::int64_t B, std::int64_t work, std::size_t scratch, F&& fn) {
  const std::int64_t blocks = (B + kImageBlock - 1) / kImageBlock;
  const int threads = detail::num_threads_for(work);
  const bool parallel = threads > 1 && blocks >= threads;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    // kept by each thread from call to call: no allocation, zeroing or page faults per convolution
    thread_local std::vector<T> buffer;
    if (buffer.size() < scratch) buffer.resize(scratch);
#pragma omp for schedule(dynamic)
    for (std::int64_t block = 0; block < blocks; ++block)
      fn(block, block * kImageBlock, std::min(B, (block + 1) * kImageBlock), buffer.data());
  }
}

// out (n, m) = in (m, n) transposed, plus bias[r] on each row r of out when given.
template <class T>
void transpose_into(const T* in, T* out, std::int64_t m, std::int64_t n, const T* bias) {
  for (std::int64_t r = 0; r < n; ++r) {
    const T add = bias ? bias[r] : T(0);
    T* __restrict row = out + r * m;
    for (std::int64_t i = 0; i < m; ++i) row[i] = in[i * n + r] + add;
  }
}

// Whether a group's GEMM runs as y^T = cols^T W^T (P Q rows) rather than y = W cols (O/G rows).
// OpenBLAS's Haswell and Zen kernels (the same in both orientations on most shapes) fall to 40%
// of their speed on W cols at 32 output channels and 14x14 or 16x16 outputs (ResNet-20's second
// stage, 12.8 against 31 GFLOP/s on one Zen core), and the transposed product loses at 64
// channels on 7x7 or 8x8 (17 against 25.5): measured per shape with both orientations.
bool transposed_forward(const ConvGeometry& g) { return g.og() >= 32 && g.PQ() >= 128; }

// ---- the shifted kernel: a convolution without im2col
//
// At stride 1 the input is copied once into zero-padded planes xp (C/G, Hp rows of L), Hp =
// H + 2 ph, with image pixel (c, r, x) at left + (c Hp + ph + r) L + x, left = pw. A row's last
// L - W = pw entries are zeros: the right padding of its row, and (read past the row's start,
// wrapping to the row before) the left padding of the next. Number the outputs over the row
// pitch, n = p L + q with q in [0, L): the pixel under tap k = (c, i, j) of output n is then
// xp[off[k] + n], off[k] = (c Hp + i dh) L + j dw, so every tap's row of "cols" is a contiguous
// run of xp that the kernel reads in place. y_wide (O/G, P L) = W B, B[k, n] = xp[off[k] + n],
// computed by register blocks of up to 6 channels by two SIMD vectors of n (one in
// the last block when P L ends there), as small_gemm's, with B rows read from xp; the L - Q
// columns per row past the output are computed and dropped. That is the im2col copy and the
// BLAS's packing of it gone (a seventh of a ResNet-20 step's profile), for L - Q = dw (kw - 1) -
// pw wasted columns in L: one per row for a 3x3 "same" convolution (49 outputs in 56 columns at
// 7x7, where padding on both sides and whole blocks of two vectors computed 64). A ResNet-20's
// 3x3 convolutions, forward and backward, went from 34-42 to 44-49 GFLOP/s on 2 Zen cores whose
// sgemm peaks at about 60 (forward alone: 38-47 to 52-58).
//
// At stride s the input is split into its s^2 phases (rows r = a mod sh, columns x = b mod sw),
// each a plane of its own: input row r = p sh + e of a tap with offset e = i dh - ph is row
// p + u of phase a, with e = u sh + a, and the convolution is one of stride 1 over the phases'
// planes, each tap reading one of them at its own (u, v). The planes are laid out as above, with
// `top` zero rows and `left` zero columns (from the most negative u and v), so a stride-2 3x3
// convolution computes as few columns as a stride-1 one on its output's size.
struct Shifted {
  std::int64_t Hp, L, top, left;  // a plane's rows and row pitch; the padding rows and columns before its pixels
  std::int64_t n_wide, xp_size;   // columns computed (whole SIMD vectors); xp's size
};

// Python's floor division and modulo (d > 0).
std::int64_t floor_div(std::int64_t a, std::int64_t d) { return a >= 0 ? a / d : -((-a + d - 1) / d); }
std::int64_t floor_mod(std::int64_t a, std::int64_t d) { return a - floor_div(a, d) * d; }

// The plane layout; n_wide and xp_size are filled in by shifted_geometry.
Shifted shifted_layout(const ConvGeometry& g) {
  std::int64_t u_min = 0, u_max = 0, v_min = 0, v_max = 0;  // the taps' row and column shifts
  for (std::int64_t i = 0; i < g.kh; ++i) {
    u_min = std::min(u_min, floor_div(i * g.dh - g.ph, g.sh));
    u_max = std::max(u_max, floor_div(i * g.dh - g.ph, g.sh));
  }
  for (std::int64_t j = 0; j < g.kw; ++j) {
    v_min = std::min(v_min, floor_div(j * g.dw - g.pw, g.sw));
    v_max = std::max(v_max, floor_div(j * g.dw - g.pw, g.sw));
  }
  const std::int64_t rows = (g.H + g.sh - 1) / g.sh, cols = (g.W + g.sw - 1) / g.sw;  // the largest phase's
  Shifted s{};
  s.top = -u_min, s.left = -v_min;
  s.Hp = s.top + std::max(rows, g.P + u_max);
  // each row's trailing zeros (past the pixels and past the reads) pad the next row's left side
  s.L = std::max(cols + s.left, g.Q + v_max);
  return s;
}

// Not a 1x1 kernel (one GEMM on the input itself, or on its pixels at the stride, where the
// planes would copy 4 phases to read one: 4 times slower for a ResNet's downsampling), and at
// most a third of the columns wasted (3x3 without padding on 5x5 would compute 5 per row for 3).
bool shifted_applies(const ConvGeometry& g) {
  if (g.kh * g.kw == 1) return false;
  const std::int64_t L = shifted_layout(g).L;
  return 3 * (L - g.Q) <= L;
}

template <class T>
Shifted shifted_geometry(const ConvGeometry& g) {
  Shifted s = shifted_layout(g);
  const std::int64_t V = static_cast<std::int64_t>(detail::Batch<T>::size);
  s.n_wide = (g.P * s.L + V - 1) / V * V;
  const std::int64_t planes = g.cg() * g.sh * g.sw;
  const std::int64_t last_offset = (planes * s.Hp - g.P) * s.L + s.L - g.Q + s.left;  // at least any tap's
  s.xp_size = std::max(last_offset + s.n_wide, planes * s.Hp * s.L);
  return s;
}

// Where tap k = (c, i, j) starts in xp: off[k].
std::vector<std::int64_t> shifted_offsets(const ConvGeometry& g, const Shifted& s) {
  std::vector<std::int64_t> off;
  for (std::int64_t c = 0; c < g.cg(); ++c)
    for (std::int64_t i = 0; i < g.kh; ++i)
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const std::int64_t e = i * g.dh - g.ph, f = j * g.dw - g.pw;
        const std::int64_t plane = (c * g.sh + floor_mod(e, g.sh)) * g.sw + floor_mod(f, g.sw);
        off.push_back((plane * s.Hp + floor_div(e, g.sh) + s.top) * s.L + floor_div(f, g.sw) + s.left);
      }
  return off;
}

// The blocks of output channels (fn(first, rows)): 6 at a time, and what is left as blocks of at
// least 3 where it can be (32 channels as 6, 6, 6, 6, 4, 4: blocks of 6, then 4, then single
// channels left two of 1, which run at a sixth of the speed; blocks of 5 ran slower than 6 and 4).
template <class F>
void channel_blocks(std::int64_t n, F&& fn) {
  std::int64_t o = 0;
  for (; n - o > 8 || n - o == 6; o += 6) fn(o, 6);
  if (n - o >= 7) {
    fn(o, 4);
    o += 4;
  }
  if (o < n) fn(o, n - o);
}

// The weights as forward_image reads them: W (O, C/G kh kw) for the GEMMs, and for the shifted
// kernel its geometry, the weights packed per group and channel block as (K, rows), and the
// taps' offsets in xp.
template <class T>
struct ConvWeights {
  const T* w = nullptr;
  std::optional<Shifted> shifted;  // when the shifted kernel applies
  std::vector<T> packed;
  std::vector<std::int64_t> offsets;

  ConvWeights(const T* weights, const ConvGeometry& g) : w(weights) {
    if (!shifted_applies(g)) return;
    shifted = shifted_geometry<T>(g);
    offsets = shifted_offsets(g, *shifted);
    packed.reserve(static_cast<std::size_t>(g.O * g.K()));
    for (std::int64_t gi = 0; gi < g.G; ++gi)
      channel_blocks(g.og(), [&](std::int64_t o0, std::int64_t rows) {
        for (std::int64_t k = 0; k < g.K(); ++k)
          for (std::int64_t r = 0; r < rows; ++r) packed.push_back(w[(gi * g.og() + o0 + r) * g.K() + k]);
      });
  }
};

// out[r, n0 .. n0 + NV vectors) = sum over k of a[k, r] xp[off[k] + n0 ..], r < MR.
template <class T, int MR, int NV>
inline void shifted_block(const T* a, const T* xp, const std::int64_t* off, std::int64_t K, T* out, std::int64_t ld) {
  using V = detail::Batch<T>;
  constexpr std::int64_t W = static_cast<std::int64_t>(V::size);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V(T(0));
  for (std::int64_t k = 0; k < K; ++k) {
    const T* b = xp + off[k];
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = V::load_unaligned(b + v * W);
    for (int r = 0; r < MR; ++r) {
      const V av(a[k * MR + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v].store_unaligned(out + r * ld + v * W);
}

// shifted_block for 1 to 6 channels, by the channel count less one.
template <class T, int NV, std::size_t... R>
constexpr auto shifted_kernel_table(std::index_sequence<R...>) {
  return std::array{&shifted_block<T, static_cast<int>(R) + 1, NV>...};
}
template <class T, int NV>
constexpr auto shifted_kernels = shifted_kernel_table<T, NV>(std::make_index_sequence<6>());

// xp (C/G sh sw, Hp, L) and its tail: the group's planes xg (C/G, H, W) inside zeros, each
// channel split into its phases.
template <class T>
void pad_planes(const T* xg, T* xp, const ConvGeometry& g, const Shifted& s) {
  std::fill(xp, xp + s.xp_size, T(0));
  for (std::int64_t c = 0; c < g.cg(); ++c)
    for (std::int64_t h = 0; h < g.H; ++h) {
      const T* in = xg + (c * g.H + h) * g.W;
      T* row = xp + ((c * g.sh + h % g.sh) * g.sw * s.Hp + h / g.sh + s.top) * s.L + s.left;
      if (g.sw == 1) {
        std::copy(in, in + g.W, row);
        continue;
      }
      for (std::int64_t b = 0; b < g.sw; ++b, row += s.Hp * s.L)
        for (std::int64_t x = b, t = 0; x < g.W; x += g.sw, ++t) row[t] = in[x];
    }
}

// One group of one image through the shifted kernel: xg (C/G, H, W) -> yg (O/G, P, Q).
template <class T>
void shifted_group(const T* xg, const T* packed, const std::int64_t* off, const T* bias, T* yg, const ConvGeometry& g,
                   const Shifted& s, T* scratch) {
  T* xp = scratch;              // (C/G sh sw, Hp, L) and a zero tail
  T* yw = scratch + s.xp_size;  // (O/G, n_wide)
  pad_planes(xg, xp, g, s);
  const std::int64_t K = g.K(), W = static_cast<std::int64_t>(detail::Batch<T>::size);
  const auto columns = [&](auto nv, std::int64_t n0) {
    constexpr int NV = decltype(nv)::value;
    const T* a = packed;
    const T* xn = xp + n0;
    channel_blocks(g.og(), [&](std::int64_t o0, std::int64_t rows) {
      T* out = yw + o0 * s.n_wide + n0;
      shifted_kernels<T, NV>[rows - 1](a, xn, off, K, out, s.n_wide);
      a += K * rows;
    });
  };
  std::int64_t n0 = 0;
  for (; n0 + 2 * W <= s.n_wide; n0 += 2 * W) columns(std::integral_constant<int, 2>(), n0);
  if (n0 < s.n_wide) columns(std::integral_constant<int, 1>(), n0);
  for (std::int64_t o = 0; o < g.og(); ++o) {
    const T add = bias ? bias[o] : T(0);
    for (std::int64_t p = 0; p < g.P; ++p) {
      const T* __restrict in = yw + o * s.n_wide + p * s.L;
      T* __restrict row = yg + (o * g.P + p) * g.Q;
      for (std::int64_t q = 0; q < g.Q; ++q) row[q] = in[q] + add;
    }
  }
}

// The weight gradient the same way, as outer products over the channels: dW[g]^T[k, o] = sum
// over images and outputs (p, q) of xp[off[k] + p L + q] gyt[p Q + q, o], with gy transposed to
// gyt (P Q, Op), Op = O/G rounded up to whole SIMD vectors (the channels past O/G zero). Register
// blocks of 6 taps by two vectors of channels (then one): each output adds a broadcast of xp
// times a row of gyt, as the forward's blocks, and reads no column past Q. The inner products
// over n that this replaced (4 taps by 3 channels, reduced across lanes at the end) read 7
// vectors per 12 multiply-adds to the forward's 2 and ran at 23 against 31 GFLOP/s on one Zen
// core at 32 channels on 14x14 (13 against 28 at 7x7, 28 against 30 at 28x28). The images of a
// call lie `slot` elements apart in the scratch, each an xp and its gyt.
template <class T, int MK, int NV>
inline void shifted_weight_block(const T* xp, const std::int64_t* off, const T* gyt, std::int64_t images,
                                 std::int64_t slot, const ConvGeometry& g, const Shifted& s, std::int64_t op, T* out) {
  using V = detail::Batch<T>;
  constexpr std::int64_t W = static_cast<std::int64_t>(V::size);
  V acc[MK][NV];
  for (int a = 0; a < MK; ++a)
    for (int v = 0; v < NV; ++v) acc[a][v] = V::load_unaligned(out + a * op + v * W);
  for (std::int64_t i = 0; i < images; ++i)
    for (std::int64_t p = 0; p < g.P; ++p) {
      const T* x[MK];
      for (int a = 0; a < MK; ++a) x[a] = xp + i * slot + off[a] + p * s.L;
      const T* gr = gyt + i * slot + p * g.Q * op;
      for (std::int64_t q = 0; q < g.Q; ++q, gr += op) {
        V gv[NV];
        for (int v = 0; v < NV; ++v) gv[v] = V::load_unaligned(gr + v * W);
        for (int a = 0; a < MK; ++a) {
          const V xv(x[a][q]);
          for (int v = 0; v < NV; ++v) acc[a][v] = xsimd::fma(xv, gv[v], acc[a][v]);
        }
      }
    }
  for (int a = 0; a < MK; ++a)
    for (int v = 0; v < NV; ++v) acc[a][v].store_unaligned(out + a * op + v * W);
}

// O/G rounded up to whole SIMD vectors: gyt's row and the weight-gradient sums' row.
template <class T>
std::int64_t padded_channels(const ConvGeometry& g) {
  const std::int64_t W = static_cast<std::int64_t>(detail::Batch<T>::size);
  return (g.og() + W - 1) / W * W;
}

// Images a weight-gradient call takes together: enough for 512 outputs.
std::int64_t shifted_weight_images(const ConvGeometry& g) {
  return std::clamp<std::int64_t>(512 / g.PQ(), 1, kImageBlock);
}

// The scratch (in elements) shifted_weight_group needs: the sums (K, Op), then each image's xp
// and gyt.
template <class T>
std::size_t shifted_weight_scratch(const ConvGeometry& g, const Shifted& s) {
  const std::int64_t op = padded_channels<T>(g);
  return static_cast<std::size_t>(g.K() * op + (s.xp_size + g.PQ() * op) * shifted_weight_images(g));
}

// Adds dW[g]^T (K, O/G) of `images` images into dwt: their group's planes from xg and gradients
// (O/G, P Q) from gyg, image after image x_stride and gy_stride apart.
template <class T>
void shifted_weight_group(const T* xg, std::int64_t x_stride, const T* gyg, std::int64_t gy_stride, std::int64_t images,
                          const std::int64_t* off, T* dwt, const ConvGeometry& g, const Shifted& s, T* scratch) {
  const std::int64_t K = g.K(), og = g.og(), op = padded_channels<T>(g), PQ = g.PQ();
  const std::int64_t W = static_cast<std::int64_t>(detail::Batch<T>::size);
  T* sums = scratch;                // (K, Op)
  T* images_at = scratch + K * op;  // each image: xp, then gyt (P Q, Op)
  const std::int64_t slot = s.xp_size + PQ * op;
  for (std::int64_t i = 0; i < images; ++i) {
    T* xp = images_at + i * slot;
    T* gyt = xp + s.xp_size;
    const T* gy = gyg + i * gy_stride;
    pad_planes(xg + i * x_stride, xp, g, s);
    for (std::int64_t n = 0; n < PQ; ++n) {
      for (std::int64_t o = 0; o < og; ++o) gyt[n * op + o] = gy[o * PQ + n];
      std::fill(gyt + n * op + og, gyt + (n + 1) * op, T(0));
    }
  }
  std::fill(sums, sums + K * op, T(0));
  const auto taps = [&](auto nv, std::int64_t o) {
    constexpr int NV = decltype(nv)::value;
    std::int64_t k = 0;
    for (; k + 6 <= K; k += 6)
      shifted_weight_block<T, 6, NV>(images_at, off + k, images_at + s.xp_size + o, images, slot, g, s, op,
                                     sums + k * op + o);
    for (; k < K; ++k)
      shifted_weight_block<T, 1, NV>(images_at, off + k, images_at + s.xp_size + o, images, slot, g, s, op,
                                     sums + k * op + o);
  };
  std::int64_t o = 0;
  for (; o + 2 * W <= op; o += 2 * W) taps(std::integral_constant<int, 2>(), o);
  if (o < op) taps(std::integral_constant<int, 1>(), o);
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t c = 0; c < og; ++c) dwt[k * og + c] += sums[k * op + c];
}

// The scratch (in elements) one thread needs for forward_image.
template <class T>
std::size_t forward_scratch(const ConvGeometry& g) {
  if (shifted_applies(g)) {
    const Shifted s = shifted_geometry<T>(g);
    return static_cast<std::size_t>(s.xp_size + g.og() * s.n_wide);
  }
  return static_cast<std::size_t>((g.direct() ? 0 : g.K() * g.PQ()) + (transposed_forward(g) ? g.PQ() * g.og() : 0));
}

// y[b] = conv(x[b]) (+ bias): per group, the shifted kernel where it applies, else im2col and
// one GEMM in the orientation transposed_forward picks. x points at the image's (C, H, W), y at
// its (O, P, Q).
template <class T>
void forward_image(T* x, const ConvWeights<T>& weights, const T* bias, T* y, const ConvGeometry& g, T* scratch) {
  const T* w = weights.w;
  if (weights.shifted) {
    const Shifted& s = *weights.shifted;
    for (std::int64_t gi = 0; gi < g.G; ++gi)
      shifted_group(x + gi * g.cg() * g.H * g.W, weights.packed.data() + gi * g.og() * g.K(), weights.offsets.data(),
                    bias ? bias + gi * g.og() : nullptr, y + gi * g.og() * g.PQ(), g, s, scratch);
    return;
  }
  const bool transposed = transposed_forward(g);
  T* cols = scratch;
  T* yt = scratch + (g.direct() ? 0 : g.K() * g.PQ());  // (P Q, O/G) when transposed
  for (std::int64_t gi = 0; gi < g.G; ++gi) {
    T* xg = x + gi * g.cg() * g.H * g.W;
    T* yg = y + gi * g.og() * g.PQ();  // (O/G, P Q)
    const T* wg = w + gi * g.og() * g.K();
    const T* bg = bias ? bias + gi * g.og() : nullptr;
    if (!g.direct()) im2col<T, true>(xg, cols, g);
    const T* c = g.direct() ? xg : cols;
    if (transposed) {  // y^T (P Q, O/G) = cols^T W^T, then transposed into y with the bias
      blas::gemm(true, true, g.PQ(), g.og(), g.K(), T(1), c, g.PQ(), wg, g.K(), T(0), yt, g.og());
      transpose_into(yt, yg, g.PQ(), g.og(), bg);
      continue;
    }
    if (bg)
      for (std::int64_t r = 0; r < g.og(); ++r) std::fill(yg + r * g.PQ(), yg + (r + 1) * g.PQ(), bg[r]);
    blas::gemm(false, false, g.og(), g.PQ(), g.K(), T(1), wg, g.K(), c, g.PQ(), bg ? T(1) : T(0), yg, g.PQ());
  }
}

// At stride 1 the input's gradient is itself a stride-1 convolution: of gy, over the full
// window (padding d (k - 1) - pad on each side, which gives back H x W), with the kernel flipped
// and its channel axes swapped, W'[g][c, o, i, j] = W[g o', c, kh-1-i, kw-1-j]. That is the
// forward path again (the shifted kernel), in place of a GEMM with only O/G terms per sum and a
// scatter-add (col2im). The geometry of that convolution, when it applies: not when the padding
// exceeds the kernel's reach, nor for a 1x1 kernel without padding (whose gradient is one GEMM),
// nor for few input channels per group, which would give the convolution as few output channels
// (a 3-channel stem, through im2col and GEMMs: 18 against 25 GFLOP/s forward and backward).
bool gradient_as_convolution(const ConvGeometry& g) {
  return g.sh == 1 && g.sw == 1 && !g.direct() && g.cg() >= 16 && g.ph <= g.dh * (g.kh - 1) &&
         g.pw <= g.dw * (g.kw - 1);
}
ConvGeometry gradient_geometry(const ConvGeometry& g) {
  return {g.B,  g.O,  g.P, g.Q, g.C, g.G, g.kh, g.kw, 1, 1, g.dh * (g.kh - 1) - g.ph, g.dw * (g.kw - 1) - g.pw,
          g.dh, g.dw, g.H, g.W};
}
template <class T>
std::vector<T> flipped_kernel(const T* w, const ConvGeometry& g) {
  std::vector<T> out(static_cast<std::size_t>(g.O * g.K()));
  const std::int64_t taps = g.kh * g.kw;
  for (std::int64_t gi = 0; gi < g.G; ++gi)
    for (std::int64_t o = 0; o < g.og(); ++o)
      for (std::int64_t c = 0; c < g.cg(); ++c)
        for (std::int64_t t = 0; t < taps; ++t)
          out[static_cast<std::size_t>(((gi * g.cg() + c) * g.og() + o) * taps + taps - 1 - t)] =
              w[((gi * g.og() + o) * g.cg() + c) * taps + t];
  return out;
}

}  // namespace

// ------------------------------------------------------------------------- conv2d

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  check_image("conv2d", x);
  if (!weight.defined() || weight.dim() != 4)
    throw std::invalid_argument("conv2d: weight " + (weight.defined() ? shape_str(weight.shape()) : "undefined") +
                                " must be (O, C / groups, kh, kw)");
  detail::check_same_float("conv2d", x, weight);
  const std::int64_t G = o.groups, O = weight.size(0);
  if (G < 1 || x.size(1) % G != 0 || O % G != 0 || weight.size(1) * G != x.size(1))
    throw std::invalid_argument("conv2d: input " + shape_str(x.shape()) + ", weight " + shape_str(weight.shape()) +
                                " and groups " + std::to_string(G) +
                                ": the input's channels and the weight's first dim must divide by groups, and the "
                                "weight's second dim be channels / groups");
  for (const auto& [name, v, least] :
       {std::tuple{"stride", o.stride, 1}, {"padding", o.padding, 0}, {"dilation", o.dilation, 1}})
    if (v[0] < least || v[1] < least)
      throw std::invalid_argument(std::string("conv2d: ") + name + " " + pair_str(v) + " must be at least " +
                                  std::to_string(least));
  if (bias.defined()) {
    if (bias.shape() != Shape{O})
      throw std::invalid_argument("conv2d: bias " + shape_str(bias.shape()) + " must be " + shape_str({O}));
    detail::check_same_float("conv2d", x, bias);
  }
  ConvGeometry g{x.size(0),
                 x.size(1),
                 x.size(2),
                 x.size(3),
                 O,
                 G,
                 weight.size(2),
                 weight.size(3),
                 o.stride[0],
                 o.stride[1],
                 o.padding[0],
                 o.padding[1],
                 o.dilation[0],
                 o.dilation[1],
                 0,
                 0};
  g.P = (g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  g.Q = (g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  if (g.H + 2 * g.ph < g.dh * (g.kh - 1) + 1 || g.W + 2 * g.pw < g.dw * (g.kw - 1) + 1)
    throw std::invalid_argument("conv2d: the kernel " + pair_str({g.kh, g.kw}) + " (dilation " + pair_str(o.dilation) +
                                ") is larger than the padded input " + pair_str({g.H + 2 * g.ph, g.W + 2 * g.pw}));
  const Tensor xc = detail::contiguous_data(x), wc = detail::contiguous_data(weight);
  const Tensor bc = bias.defined() ? detail::contiguous_data(bias) : Tensor();
  Tensor y = empty({g.B, O, g.P, g.Q}, x.dtype());
  const std::int64_t work = g.B * O * g.PQ() * g.K();
  detail::dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    T* px = const_cast<T*>(xc.data<T>());  // read only (im2col's signature serves both ways)
    const T* pw = wc.data<T>();
    const T* pb = bc.defined() ? bc.data<T>() : nullptr;
    T* py = y.data<T>();
    const ConvWeights<T> weights(pw, g);
    over_image_blocks<T>(g.B, work, forward_scratch<T>(g),
                         [&](std::int64_t, std::int64_t first, std::int64_t last, T* scratch) {
                           for (std::int64_t b = first; b < last; ++b)
                             forward_image(px + b * g.C * g.H * g.W, weights, pb, py + b * O * g.PQ(), g, scratch);
                         });
  });
  record(Op::conv2d, y, {x, weight, bias}, [xc = xc.detach(), wc = wc.detach(), g](const Tensor& gy, Grads& grads) {
    // dx = col2im(W^T @ gy), or at stride 1 the convolution of gy with the flipped kernel;
    // dW^T = sum over images of cols @ gy^T;  db = sum of gy over images and positions
    const Tensor gc = detail::contiguous_data(gy);
    const bool need_x = grads.needs(0), need_w = grads.needs(1), need_b = grads.needs(2);
    const bool scatter = !g.direct() && !gradient_as_convolution(g);  // col2im adds into a zeroed dx
    Tensor gx = need_x ? (scatter ? zeros({g.B, g.C, g.H, g.W}, gy.dtype()) : empty({g.B, g.C, g.H, g.W}, gy.dtype()))
                       : Tensor();
    Tensor gw = need_w ? empty({g.O, g.cg(), g.kh, g.kw}, gy.dtype()) : Tensor();
    Tensor gb = need_b ? zeros({g.O}, gy.dtype()) : Tensor();
    detail::dispatch_float(gy.dtype(), "conv2d backward", [&](auto tag) {
      using T = decltype(tag);
      T* px = const_cast<T*>(xc.data<T>());
      const T* pw = wc.data<T>();
      const T* pg = gc.data<T>();
      const std::int64_t blocks = (g.B + kImageBlock - 1) / kImageBlock, OK = g.O * g.K();
      std::vector<T> partial(need_w ? static_cast<std::size_t>(blocks * OK) : 0, T(0));  // dW^T of each block
      const bool as_conv = need_x && gradient_as_convolution(g);
      const ConvGeometry gg = as_conv ? gradient_geometry(g) : g;
      const std::vector<T> flipped = as_conv ? flipped_kernel(pw, g) : std::vector<T>();
      std::optional<ConvWeights<T>> flipped_weights;  // packed for the shifted kernel when it applies
      if (as_conv) flipped_weights.emplace(flipped.data(), gg);
      const bool shifted_w = need_w && shifted_applies(g);
      const Shifted sw = shifted_w ? shifted_geometry<T>(g) : Shifted{};
      const std::vector<std::int64_t> off = shifted_w ? shifted_offsets(g, sw) : std::vector<std::int64_t>();
      const std::size_t cols_size =  // dW's cols, or the shifted kernel's planes
          !need_w || g.direct() ? 0
          : shifted_w           ? shifted_weight_scratch<T>(g, sw)
                                : static_cast<std::size_t>(g.K() * g.PQ());
      const std::size_t dx_size = !need_x || g.direct() ? 0
                                  : as_conv             ? forward_scratch<T>(gg)
                                                        : static_cast<std::size_t>(g.K() * g.PQ());  // dcols
      over_image_blocks<T>(
          g.B, 2 * g.B * g.O * g.PQ() * g.K(), cols_size + dx_size,
          [&](std::int64_t block, std::int64_t first, std::int64_t last, T* scratch) {
            T* cols = scratch;
            T* dx_scratch = scratch + cols_size;  // dcols, or the gradient convolution's scratch
            if (shifted_w)  // dW[g]^T (K, O/G) += the shifted kernel's sums, a few images at a time
              for (std::int64_t b0 = first, step = shifted_weight_images(g); b0 < last; b0 += step)
                for (std::int64_t gi = 0; gi < g.G; ++gi)
                  shifted_weight_group(px + (b0 * g.C + gi * g.cg()) * g.H * g.W, g.C * g.H * g.W,
                                       pg + (b0 * g.O + gi * g.og()) * g.PQ(), g.O * g.PQ(), std::min(step, last - b0),
                                       off.data(), partial.data() + block * OK + gi * g.og() * g.K(), g, sw, cols);
            for (std::int64_t b = first; b < last; ++b) {
              if (need_x && as_conv)
                forward_image(const_cast<T*>(pg) + b * g.O * g.PQ(), *flipped_weights, static_cast<const T*>(nullptr),
                              gx.template data<T>() + b * g.C * g.H * g.W, gg, dx_scratch);
              for (std::int64_t gi = 0; gi < g.G; ++gi) {
                const T* gyg = pg + (b * g.O + gi * g.og()) * g.PQ();  // (O/G, P Q)
                T* xg = px + (b * g.C + gi * g.cg()) * g.H * g.W;
                if (need_w && !shifted_w) {  // dW[g]^T (K, O/G) += cols gy^T
                  if (!g.direct()) im2col<T, true>(xg, cols, g);
                  blas::gemm(false, true, g.K(), g.og(), g.PQ(), T(1), g.direct() ? xg : cols, g.PQ(), gyg, g.PQ(),
                             T(1), partial.data() + block * OK + gi * g.og() * g.K(), g.og());
                }
                if (need_x && !as_conv) {  // dcols = W[g]^T gy, scattered back into dx
                  T* gxg = gx.template data<T>() + (b * g.C + gi * g.cg()) * g.H * g.W;
                  blas::gemm(true, false, g.K(), g.PQ(), g.og(), T(1), pw + gi * g.og() * g.K(), g.K(), gyg, g.PQ(),
                             T(0), g.direct() ? gxg : dx_scratch, g.PQ());
                  if (!g.direct()) im2col<T, false>(gxg, dx_scratch, g);
                }
              }
            }
          });
      if (need_w) {  // the blocks' dW^T summed in order, then transposed into dW per group
        T* sum = partial.data();
        for (std::int64_t block = 1; block < blocks; ++block)
          for (std::int64_t i = 0; i < OK; ++i) sum[i] += partial[static_cast<std::size_t>(block * OK + i)];
        for (std::int64_t gi = 0; gi < g.G; ++gi)
          transpose_into(sum + gi * g.og() * g.K(), gw.template data<T>() + gi * g.og() * g.K(), g.K(), g.og(),
                         static_cast<const T*>(nullptr));
      }
      if (need_b) {
        T* out = gb.template data<T>();
        for (std::int64_t b = 0; b < g.B; ++b)
          for (std::int64_t oc = 0; oc < g.O; ++oc) out[oc] += detail::sum_simd(pg + (b * g.O + oc) * g.PQ(), g.PQ());
      }
    });
    if (need_x) grads.set(0, gx);
    if (need_w) grads.set(1, gw);
    if (need_b) grads.set(2, gb);
  });
  return y;
}

// ------------------------------------------------------------------------- batch_norm

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  if (!x.defined()) throw std::invalid_argument("batch_norm: undefined input");
  if (!is_floating(x.dtype())) detail::throw_dtype("batch_norm", x.dtype(), "a floating dtype");
  if (x.dim() < 2) throw std::invalid_argument("batch_norm: input " + shape_str(x.shape()) + " must be (B, C, ...)");
  const std::int64_t B = x.size(0), C = x.size(1), S = C == 0 || B == 0 ? 0 : x.numel() / (B * C);
  for (const auto& [name, t] :
       {std::pair{"running_mean", &running_mean}, {"running_var", &running_var}, {"weight", &weight}, {"bias", &bias}})
    if (t->defined()) {
      if (t->shape() != Shape{C})
        throw std::invalid_argument(std::string("batch_norm: ") + name + " " + shape_str(t->shape()) + " must be " +
                                    shape_str({C}) + " for the input " + shape_str(x.shape()));
      detail::check_same_float("batch_norm", x, *t);
    }
  if (running_mean.defined() != running_var.defined())
    throw std::invalid_argument("batch_norm: running_mean and running_var come together");
  if (!training && !running_mean.defined())
    throw std::invalid_argument("batch_norm: evaluation needs the running statistics");
  const std::int64_t n = B * S;  // values per channel
  if (training && n <= 1)
    throw std::invalid_argument("batch_norm: training needs more than one value per channel, the input is " +
                                shape_str(x.shape()));
  const Tensor xc = detail::contiguous_data(x);
  const Tensor wc = weight.defined() ? detail::contiguous_data(weight) : Tensor();
  const Tensor bc = bias.defined() ? detail::contiguous_data(bias) : Tensor();
  Tensor y = empty(x.shape(), x.dtype());
  Tensor mean_t = empty({C}, x.dtype()), rstd_t = empty({C}, x.dtype());  // what normalised x
  detail::dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
    T* py = y.data<T>();
    T* pm = mean_t.data<T>();
    T* pr = rstd_t.data<T>();
    const int threads = detail::num_threads_for(2 * x.numel());
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t c = 0; c < C; ++c) {
      double mean = 0, var = 0;
      if (training) {
        // two passes: the channel's mean, then the squares about it (no cancellation); each row's
        // sum in lanes of T, the rows' sums added in double
        for (std::int64_t b = 0; b < B; ++b) mean += static_cast<double>(detail::sum_simd(px + (b * C + c) * S, S));
        mean /= static_cast<double>(n);
        for (std::int64_t b = 0; b < B; ++b)
          var += static_cast<double>(detail::centred_square_sum(px + (b * C + c) * S, S, static_cast<T>(mean)));
        var /= static_cast<double>(n);
        if (running_mean.defined()) {  // the running variance is the unbiased one, as torch's
          T* rm = running_mean.data<T>();
          T* rv = running_var.data<T>();
          rm[c] = static_cast<T>((1 - momentum) * rm[c] + momentum * mean);
          rv[c] = static_cast<T>((1 - momentum) * rv[c] + momentum * var * n / (n - 1));
        }
      } else {
        mean = running_mean.data<T>()[c];
        var = running_var.data<T>()[c];
      }
      const T rstd = static_cast<T>(1.0 / std::sqrt(var + eps));
      const T scale = wc.defined() ? wc.data<T>()[c] * rstd : rstd, shift = bc.defined() ? bc.data<T>()[c] : T(0);
      const T m = static_cast<T>(mean);
      pm[c] = m;
      pr[c] = rstd;
      for (std::int64_t b = 0; b < B; ++b) {
        const T* in = px + (b * C + c) * S;
        T* out = py + (b * C + c) * S;
        for (std::int64_t s = 0; s < S; ++s) out[s] = (in[s] - m) * scale + shift;
      }
    }
  });
  record(Op::batch_norm, y, {x, weight, bias},
         [xc = xc.detach(), wc = wc.defined() ? wc.detach() : Tensor(), mean_t, rstd_t, training, B, C, S](
             const Tensor& gy, Grads& g) {
           // xhat = (x - mean) rstd;  dw = sum gy xhat;  db = sum gy (over batch and space, per channel)
           // training (mean and rstd depend on x): dx = w rstd (gy - db / n - xhat dw / n)
           // evaluation (running statistics, constants): dx = w rstd gy
           const Tensor gc = detail::contiguous_data(gy);
           const bool need_x = g.needs(0), need_w = g.needs(1), need_b = g.needs(2);
           Tensor gx = need_x ? empty(gy.shape(), gy.dtype()) : Tensor();
           Tensor gw = need_w ? empty({C}, gy.dtype()) : Tensor();
           Tensor gb = need_b ? empty({C}, gy.dtype()) : Tensor();
           detail::dispatch_float(gy.dtype(), "batch_norm backward", [&](auto tag) {
             using T = decltype(tag);
             const T* px = xc.data<T>();
             const T* pg = gc.data<T>();
             const double count = static_cast<double>(B * S);
             const int threads = detail::num_threads_for(3 * B * C * S);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
             for (std::int64_t c = 0; c < C; ++c) {
               const T mean = mean_t.data<T>()[c], rstd = rstd_t.data<T>()[c];
               // each row's sums in lanes of T, the rows' sums added in double
               double sum_gy = 0, sum_gy_xc = 0;  // sum gy, sum gy (x - mean)
               for (std::int64_t b = 0; b < B; ++b) {
                 const T* in = px + (b * C + c) * S;
                 const T* gr = pg + (b * C + c) * S;
                 sum_gy += static_cast<double>(detail::sum_simd(gr, S));
                 sum_gy_xc += static_cast<double>(detail::centred_dot(gr, in, S, mean));
               }
               const double sum_gy_xhat = sum_gy_xc * static_cast<double>(rstd);
               if (need_w) gw.template data<T>()[c] = static_cast<T>(sum_gy_xhat);
               if (need_b) gb.template data<T>()[c] = static_cast<T>(sum_gy);
               if (!need_x) continue;
               const T k = (wc.defined() ? wc.data<T>()[c] : T(1)) * rstd;
               const T mean_gy = training ? static_cast<T>(sum_gy / count) : T(0);
               const T mean_gy_xhat = training ? static_cast<T>(sum_gy_xhat / count) : T(0);
               for (std::int64_t b = 0; b < B; ++b) {
                 const T* in = px + (b * C + c) * S;
                 const T* gr = pg + (b * C + c) * S;
                 T* out = gx.template data<T>() + (b * C + c) * S;
                 for (std::int64_t s = 0; s < S; ++s)
                   out[s] = k * (gr[s] - mean_gy - (in[s] - mean) * rstd * mean_gy_xhat);
               }
             }
           });
           if (need_x) g.set(0, gx);
           if (need_w) g.set(1, gw);
           if (need_b) g.set(2, gb);
         });
  return y;
}

// ------------------------------------------------------------------------- pooling

namespace {

// torch's pooling output size: floor (or ceil) of (n + 2 pad - dilation (k - 1) - 1) / stride + 1,
// where with ceil_mode the last window must start inside the input or its left padding.
std::int64_t pooled_size(std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t pad, std::int64_t d,
                         bool ceil_mode) {
  const std::int64_t span = n + 2 * pad - d * (k - 1) - 1;
  std::int64_t out = (ceil_mode ? span + s - 1 : span) / s + 1;
  if (ceil_mode && (out - 1) * s >= n + pad) --out;
  return out;
}

struct PoolGeometry {
  std::int64_t planes, H, W, P, Q, kh, kw, sh, sw, ph, pw, dh, dw;
};

PoolGeometry pool_geometry(const char* op, const Tensor& x, const Pool2dOptions& o, bool dilated) {
  check_image(op, x);
  const std::array<std::int64_t, 2> stride = o.stride[0] == 0 && o.stride[1] == 0 ? o.kernel_size : o.stride;
  const auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(op) + ": " + what); };
  if (o.kernel_size[0] < 1 || o.kernel_size[1] < 1)
    fail("kernel_size " + pair_str(o.kernel_size) + " must be positive");
  if (stride[0] < 1 || stride[1] < 1) fail("stride " + pair_str(stride) + " must be positive");
  if (o.dilation[0] < 1 || o.dilation[1] < 1) fail("dilation " + pair_str(o.dilation) + " must be positive");
  if (!dilated && (o.dilation[0] != 1 || o.dilation[1] != 1)) fail("has no dilation");
  for (int a = 0; a < 2; ++a)
    if (o.padding[a] < 0 || o.padding[a] > o.kernel_size[a] / 2)
      fail("padding " + pair_str(o.padding) + " must be at most half the kernel " + pair_str(o.kernel_size));
  PoolGeometry g{x.size(0) * x.size(1), x.size(2),        x.size(3),    0,         0,
                 o.kernel_size[0],      o.kernel_size[1], stride[0],    stride[1], o.padding[0],
                 o.padding[1],          o.dilation[0],    o.dilation[1]};
  g.P = pooled_size(g.H, g.kh, g.sh, g.ph, g.dh, o.ceil_mode);
  g.Q = pooled_size(g.W, g.kw, g.sw, g.pw, g.dw, o.ceil_mode);
  if (g.P < 1 || g.Q < 1)
    fail("input " + shape_str(x.shape()) + " is smaller than the kernel " + pair_str(o.kernel_size) + " (output " +
         pair_str({g.P, g.Q}) + ")");
  return g;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o) {
  const PoolGeometry g = pool_geometry("max_pool2d", x, o, true);
  const Tensor xc = detail::contiguous_data(x);
  Tensor y = empty({x.size(0), x.size(1), g.P, g.Q}, x.dtype());
  Tensor arg = empty({g.planes * g.P * g.Q}, DType::int64);  // the pixel each output took, h W + w
  detail::dispatch_float(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
    T* py = y.data<T>();
    std::int64_t* pa = arg.data<std::int64_t>();
    const int threads = detail::num_threads_for(g.planes * g.P * g.Q * g.kh * g.kw);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t pl = 0; pl < g.planes; ++pl) {
      const T* in = px + pl * g.H * g.W;
      for (std::int64_t p = 0; p < g.P; ++p)
        for (std::int64_t q = 0; q < g.Q; ++q) {
          // the first maximum wins; a NaN wins over any number (torch's rule)
          T best = -std::numeric_limits<T>::infinity();
          std::int64_t at = -1;
          for (std::int64_t i = 0; i < g.kh; ++i) {
            const std::int64_t h = p * g.sh - g.ph + i * g.dh;
            if (h < 0 || h >= g.H) continue;
            for (std::int64_t j = 0; j < g.kw; ++j) {
              const std::int64_t w = q * g.sw - g.pw + j * g.dw;
              if (w < 0 || w >= g.W) continue;
              const T v = in[h * g.W + w];
              if (at < 0 || v > best || std::isnan(v)) {
                best = v, at = h * g.W + w;
                if (std::isnan(v)) break;
              }
            }
            if (at >= 0 && std::isnan(best)) break;
          }
          const std::int64_t out = (pl * g.P + p) * g.Q + q;
          py[out] = best;
          pa[out] = at;
        }
    }
  });
  record(Op::max_pool2d, y, {x}, [arg, g, xs = x.shape()](const Tensor& gy, Grads& grads) {
    // dx[argmax] += gy: each output's gradient goes to the pixel it took
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = zeros(xs, gy.dtype());
    detail::dispatch_float(gy.dtype(), "max_pool2d backward", [&](auto tag) {
      using T = decltype(tag);
      const T* pg = gc.data<T>();
      const std::int64_t* pa = arg.data<std::int64_t>();
      T* out = gx.template data<T>();
      const int threads = detail::num_threads_for(g.planes * g.P * g.Q);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
      for (std::int64_t pl = 0; pl < g.planes; ++pl)
        for (std::int64_t i = pl * g.P * g.Q; i < (pl + 1) * g.P * g.Q; ++i)
          if (pa[i] >= 0) out[pl * g.H * g.W + pa[i]] += pg[i];  // -1: a window of padding alone
    });
    grads.set(0, gx);
  });
  return y;
}

namespace {

// One axis of an average pool: each output's window [start, end) clipped to the input, and the
// size it divides by (torch: the window clipped to the padded input, or to the input alone
// without count_include_pad).
struct Windows {
  std::vector<std::int64_t> start, end, divisor;
};
Windows pool_windows(std::int64_t out, std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t pad,
                     bool count_include_pad) {
  Windows w;
  for (std::int64_t o = 0; o < out; ++o) {
    std::int64_t lo = o * s - pad, hi = std::min(lo + k, n + pad);
    const std::int64_t padded = hi - lo;
    lo = std::max<std::int64_t>(lo, 0), hi = std::min(hi, n);
    w.start.push_back(lo), w.end.push_back(hi), w.divisor.push_back(count_include_pad ? padded : hi - lo);
  }
  return w;
}

// Adaptive pooling's windows: output o of `out` covers [floor(o n / out), ceil((o + 1) n / out)).
Windows adaptive_windows(std::int64_t out, std::int64_t n) {
  Windows w;
  for (std::int64_t o = 0; o < out; ++o) {
    w.start.push_back(o * n / out), w.end.push_back(((o + 1) * n + out - 1) / out);
    w.divisor.push_back(w.end.back() - w.start.back());
  }
  return w;
}

// y[p, q] = the mean of x over rows[p] x cols[q] (each plane), and its backward: the gradient
// spread evenly back over the window. Shared by avg_pool2d and adaptive_avg_pool2d.
Tensor average_windows(Op op, const char* name, const Tensor& x, const Windows& rows, const Windows& cols) {
  struct Sizes {
    std::int64_t planes, H, W, P, Q;
  };
  const Sizes z{x.size(0) * x.size(1), x.size(2), x.size(3), static_cast<std::int64_t>(rows.start.size()),
                static_cast<std::int64_t>(cols.start.size())};
  const Tensor xc = detail::contiguous_data(x);
  Tensor y = empty({x.size(0), x.size(1), z.P, z.Q}, x.dtype());
  detail::dispatch_float(x.dtype(), name, [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
    T* py = y.data<T>();
    const int threads = detail::num_threads_for(z.planes * z.H * z.W);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (std::int64_t pl = 0; pl < z.planes; ++pl)
      for (std::int64_t p = 0; p < z.P; ++p)
        for (std::int64_t q = 0; q < z.Q; ++q) {
          T sum = 0;
          for (std::int64_t h = rows.start[p]; h < rows.end[p]; ++h)
            for (std::int64_t w = cols.start[q]; w < cols.end[q]; ++w) sum += px[(pl * z.H + h) * z.W + w];
          py[(pl * z.P + p) * z.Q + q] = sum / static_cast<T>(rows.divisor[p] * cols.divisor[q]);
        }
  });
  record(op, y, {x}, [rows, cols, z, xs = x.shape(), name](const Tensor& gy, Grads& grads) {
    // dx[h, w] += gy[p, q] / divisor over every window (p, q) that holds (h, w)
    const Tensor gc = detail::contiguous_data(gy);
    Tensor gx = zeros(xs, gy.dtype());
    detail::dispatch_float(gy.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      const T* pg = gc.data<T>();
      T* out = gx.template data<T>();
      const int threads = detail::num_threads_for(z.planes * z.H * z.W);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
      for (std::int64_t pl = 0; pl < z.planes; ++pl)
        for (std::int64_t p = 0; p < z.P; ++p)
          for (std::int64_t q = 0; q < z.Q; ++q) {
            const T v = pg[(pl * z.P + p) * z.Q + q] / static_cast<T>(rows.divisor[p] * cols.divisor[q]);
            for (std::int64_t h = rows.start[p]; h < rows.end[p]; ++h)
              for (std::int64_t w = cols.start[q]; w < cols.end[q]; ++w) out[(pl * z.H + h) * z.W + w] += v;
          }
    });
    grads.set(0, gx);
  });
  return y;
}

}  // namespace

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o) {
  const PoolGeometry g = pool_geometry("avg_pool2d", x, o, false);
  return average_windows(Op::avg_pool2d, "avg_pool2d", x, pool_windows(g.P, g.H, g.kh, g.sh, g.ph, o.count_include_pad),
                         pool_windows(g.Q, g.W, g.kw, g.sw, g.pw, o.count_include_pad));
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::int64_t out_h, std::int64_t out_w) {
  check_image("adaptive_avg_pool2d", x);
  if (out_h < 1 || out_w < 1)
    throw std::invalid_argument("adaptive_avg_pool2d: output size " + pair_str({out_h, out_w}) + " must be positive");
  return average_windows(Op::adaptive_avg_pool2d, "adaptive_avg_pool2d", x, adaptive_windows(out_h, x.size(2)),
                         adaptive_windows(out_w, x.size(3)));
}

// ------------------------------------------------------------------------- references

namespace reference {

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& o) {
  const auto as_double = [](const Tensor& t) {
    return t.defined() ? to_dtype(detail::contiguous_data(t).detach(), DType::float64) : Tensor();
  };
  const Tensor xd = as_double(x), wd = as_double(weight), bd = as_double(bias);
  const std::int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = weight.size(0);
  const std::int64_t kh = weight.size(2), kw = weight.size(3), cg = C / o.groups, og = O / o.groups;
  const std::int64_t P = (H + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
  const std::int64_t Q = (W + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
  Tensor y = empty({B, O, P, Q}, DType::float64);
  const double* px = xd.data<double>();
  const double* pw = wd.data<double>();
  double* py = y.data<double>();
  // y[b, oc, p, q] = bias[oc] + sum over the group's channels c and taps (i, j) of
  //                  w[oc, c, i, j] x[b, group c, p stride - pad + i dilation, q ...] (0 outside)
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t oc = 0; oc < O; ++oc)
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < Q; ++q) {
          double sum = bd.defined() ? bd.data<double>()[oc] : 0.0;
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t i = 0; i < kh; ++i)
              for (std::int64_t j = 0; j < kw; ++j) {
                const std::int64_t h = p * o.stride[0] - o.padding[0] + i * o.dilation[0];
                const std::int64_t w = q * o.stride[1] - o.padding[1] + j * o.dilation[1];
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                sum += pw[((oc * cg + c) * kh + i) * kw + j] * px[((b * C + oc / og * cg + c) * H + h) * W + w];
              }
          py[((b * O + oc) * P + p) * Q + q] = sum;
        }
  return to_dtype(y, x.dtype());
}

}  // namespace reference

}  // namespace rune
