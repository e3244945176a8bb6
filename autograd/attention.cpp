// Fused scaled dot-product attention: the masked softmax of the scores and, in `attention`, the
// weighted sum of the values, forward and backward, one gemm per head on raw (strided) buffers
// (in registers when small, detail::gemm_by_size) with the masks applied row by row in between.
//
// Legend: B batch, H query heads, Hkv key/value heads (H = G * Hkv: query head h reads kv head
// h / G), Tq queries, Tk keys, D head dim (Dv for values), P the attention probabilities.
//
//   S = scale * Q K^T + bias, blocked entries -inf      (B, H, Tq, Tk)
//   P = softmax over keys, a row with no key left = 0   (never NaN)
//   O = dropout(P) V                                    (B, H, Tq, Dv)
//
// Q, K and V are read in place when their last dim is contiguous: a head of a (B, T, H, D) view
// (split_heads of a projection, no copy) is a row-major (T, D) matrix with leading dim H * D.
// `attention` writes O in (B, Tq, H, Dv) memory and returns the (B, H, Tq, Dv) view of it, so
// combining the heads afterwards is free.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/attention_heads.hpp"
#include "autograd/blas.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/simd.hpp"
#include "autograd/small_gemm.hpp"

namespace rune {
namespace {

using namespace attention_detail;

// The masks of one call resolved to per-row pointers. Broadcastable masks are expanded views
// (stride 0 where they broadcast), so a row is a base offset plus a stride per key.
template <class T>
struct RowMasks {
  bool causal = false;
  std::int64_t causal_offset = 0;  // query i sees keys j <= i + Tk - Tq
  Tensor padding, blocked, bias;   // (B, Tk) bool; (B, H, Tq, Tk) bool and T views, or undefined
  const bool* pad = nullptr;
  const bool* blk = nullptr;
  const T* bia = nullptr;

  // S row (b, h, i): blocked keys to -inf, bias added. Returns how many leading keys the causal
  // limit leaves (keys at or past it are -inf).
  std::int64_t apply(T* s, std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t Tk) const {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    std::int64_t visible = Tk;
    if (causal) visible = std::clamp<std::int64_t>(i + causal_offset + 1, 0, Tk);
    for (std::int64_t j = visible; j < Tk; ++j) s[j] = ninf;
    if (pad) {
      const bool* r = pad + b * padding.stride(0);
      const std::int64_t st = padding.stride(1);
      for (std::int64_t j = 0; j < visible; ++j)
        if (r[j * st]) s[j] = ninf;
    }
    if (blk) {
      const bool* r = blk + b * blocked.stride(0) + h * blocked.stride(1) + i * blocked.stride(2);
      const std::int64_t st = blocked.stride(3);
      for (std::int64_t j = 0; j < visible; ++j)
        if (r[j * st]) s[j] = ninf;
    }
    if (bia) {
      const T* r = bia + b * bias.stride(0) + h * bias.stride(1) + i * bias.stride(2);
      const std::int64_t st = bias.stride(3);
      for (std::int64_t j = 0; j < visible; ++j) s[j] += r[j * st];
    }
    return visible;
  }
};

template <class T>
RowMasks<T> resolve_masks(const char* op, const AttentionMask& m, const Geometry& g) {
  RowMasks<T> r;
  r.causal = m.causal;
  r.causal_offset = g.Tk - g.Tq;
  const Shape full{g.B, g.H, g.Tq, g.Tk};
  const auto broadcast = [&](const Tensor& t, const char* name) {
    const Shape& s = t.shape();
    bool fits = s.size() <= 4;
    for (std::size_t d = 0; fits && d < s.size(); ++d) {
      const std::int64_t want = full[4 - s.size() + d];
      fits = s[d] == want || s[d] == 1;
    }
    if (!fits)
      throw std::invalid_argument(std::string(op) + ": " + name + " of shape " + shape_str(s) +
                                  " does not broadcast to (B, H, Tq, Tk) = " + shape_str(full) +
                                  "; give (Tq, Tk), (B, 1, Tq, Tk) or (B, H, Tq, Tk)");
    return expand(t.detach(), full);
  };
  if (m.key_padding_mask.defined()) {
    detail::check_dtype(op, m.key_padding_mask, DType::bool_, "key_padding_mask");
    if (m.key_padding_mask.shape() != Shape{g.B, g.Tk})
      throw std::invalid_argument(
          std::string(op) + ": key_padding_mask has shape " + shape_str(m.key_padding_mask.shape()) +
          " but must be (B, Tk) = " + shape_str(Shape{g.B, g.Tk}) + " (true marks a padding key)");
    r.padding = m.key_padding_mask.detach();
    r.pad = r.padding.template data<bool>();
  }
  if (m.blocked.defined()) {
    detail::check_dtype(op, m.blocked, DType::bool_, "blocked mask");
    r.blocked = broadcast(m.blocked, "blocked mask");
    r.blk = r.blocked.template data<bool>();
  }
  if (m.bias.defined()) {
    if (!is_floating(m.bias.dtype()))
      throw std::invalid_argument(std::string(op) +
                                  ": bias must be a floating tensor (a boolean mask goes "
                                  "in AttentionMask::blocked)");
    r.bias = broadcast(
        m.bias.dtype() == detail::dtype_of<T>::value ? m.bias : to_dtype(m.bias.detach(), detail::dtype_of<T>::value),
        "bias");
    r.bia = r.bias.template data<T>();
  }
  return r;
}

// One row of scores to probabilities in place: softmax over the visible, unmasked keys; a row
// with none gives zeros (so no NaN reaches the output or the gradient).
template <class T>
void softmax_row(T* s, std::int64_t visible, std::int64_t Tk) {
  const T m = detail::row_max(s, visible);
  if (m == -std::numeric_limits<T>::infinity()) {
    std::fill(s, s + Tk, T(0));
    return;
  }
  const T inv = T(1) / detail::exp_shifted(s, s, visible, m);
  for (std::int64_t j = 0; j < visible; ++j) s[j] *= inv;
  std::fill(s + visible, s + Tk, T(0));
}

// P (B, H, Tq, Tk) = masked softmax(scale * Q K^T + bias). Heads run in parallel, each gemm on
// its thread; with fewer heads than threads the gemms use the threads instead.
template <class T>
void probabilities(const Geometry& g, const Heads<T>& q, const Heads<T>& k, const RowMasks<T>& masks, T scale, T* p) {
  const std::int64_t pairs = g.B * g.H;
  const int threads = omp_get_max_threads();
  const bool per_head = pairs >= threads && g.Tq * g.Tk * g.D * pairs >= detail::kParallelGrain;
#pragma omp parallel for num_threads(threads) schedule(static) if (per_head)
  for (std::int64_t bh = 0; bh < pairs; ++bh) {
    const std::int64_t b = bh / g.H, h = bh % g.H, hk = h / g.G;
    T* pb = p + bh * g.Tq * g.Tk;
    detail::gemm_by_size(false, true, g.Tq, g.Tk, g.D, scale, q.at(b, h), q.ld, k.at(b, hk), k.ld, T(0), pb, g.Tk);
    for (std::int64_t i = 0; i < g.Tq; ++i) {
      T* row = pb + i * g.Tk;
      softmax_row(row, masks.apply(row, b, h, i, g.Tk), g.Tk);
    }
  }
}

// Backward of P = softmax(scale * Q K^T + ...) for the heads of one (batch, kv head) group,
// given dP in `ds` (overwritten with dS): dS = P * (dP - rowsum(dP * P)), then
// dQ = scale * dS K and dK += scale * dS^T Q. Masked entries have P = 0, hence dS = 0.
template <class T>
void scores_backward(const Geometry& g, std::int64_t b, std::int64_t h, const T* pb, T* ds, const Heads<T>& q,
                     const Heads<T>& k, T scale, const Heads<T>* dq, const Heads<T>* dk, bool first_in_group) {
  for (std::int64_t i = 0; i < g.Tq; ++i) {
    const T* pr = pb + i * g.Tk;
    T* dr = ds + i * g.Tk;
    const detail::Batch<T> dot(detail::dot_simd(dr, pr, g.Tk));
    detail::row_map2(dr, pr, dr, g.Tk, [&](auto d, auto v) { return v * (d - dot); });
  }
  const std::int64_t hk = h / g.G;
  if (dq)
    detail::gemm_by_size(false, false, g.Tq, g.D, g.Tk, scale, ds, g.Tk, k.at(b, hk), k.ld, T(0), dq->at(b, h), dq->ld);
  if (dk)
    detail::gemm_by_size(true, false, g.Tk, g.D, g.Tq, scale, ds, g.Tk, q.at(b, h), q.ld, first_in_group ? T(0) : T(1),
                         dk->at(b, hk), dk->ld);
}

}  // namespace

// ------------------------------------------------------------------------- attention_weights

Tensor attention_weights(const Tensor& q_in, const Tensor& k_in, const AttentionMask& mask,
                         std::optional<double> scale_opt) {
  const Geometry g = check_qkv("attention_weights", q_in, k_in, nullptr);
  const double scale = resolve_scale("attention_weights", scale_opt, g.D);
  const Tensor q = gemm_ready(q_in.detach()), k = gemm_ready(k_in.detach());
  Tensor p = empty({g.B, g.H, g.Tq, g.Tk}, q.dtype());  // (B, H, Tq, Tk)
  detail::dispatch_float(q.dtype(), "attention_weights", [&](auto tag) {
    using T = decltype(tag);
    probabilities<T>(g, heads_of<T>(q), heads_of<T>(k), resolve_masks<T>("attention_weights", mask, g), T(scale),
                     p.data<T>());
  });
  const Tensor saved_p = p.detach();
  record(Op::attention_weights, p, {q_in, k_in}, [g, q, k, saved_p, scale](const Tensor& gy, Grads& grads) {
    // dS = P * (dP - rowsum(dP * P)); dQ = scale dS K; dK = scale dS^T Q (summed over a kv group)
    const bool need_q = grads.needs(0), need_k = grads.needs(1);
    Tensor ds = gy.contiguous().clone();  // overwritten with dS, head by head
    Tensor dq = need_q ? empty_heads_major(g.B, g.H, g.Tq, g.D, q.dtype()) : Tensor();
    Tensor dk = need_k ? empty_heads_major(g.B, g.Hkv, g.Tk, g.D, k.dtype()) : Tensor();
    detail::dispatch_float(q.dtype(), "attention_weights backward", [&](auto tag) {
      using T = decltype(tag);
      const Heads<T> hq = heads_of<T>(q), hk = heads_of<T>(k);
      const Heads<T> hdq = need_q ? heads_of<T>(dq) : Heads<T>{}, hdk = need_k ? heads_of<T>(dk) : Heads<T>{};
      const std::int64_t groups = g.B * g.Hkv, plane = g.Tq * g.Tk;
      const int threads = detail::num_threads_for(g.B * g.H * plane * g.D);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
      for (std::int64_t bk = 0; bk < groups; ++bk) {
        const std::int64_t b = bk / g.Hkv, kh = bk % g.Hkv;
        for (std::int64_t r = 0; r < g.G; ++r) {
          const std::int64_t h = kh * g.G + r, bh = b * g.H + h;
          scores_backward<T>(g, b, h, saved_p.data<T>() + bh * plane, ds.data<T>() + bh * plane, hq, hk, T(scale),
                             need_q ? &hdq : nullptr, need_k ? &hdk : nullptr, r == 0);
        }
      }
    });
    if (need_q) grads.set(0, dq);
    if (need_k) grads.set(1, dk);
  });
  return p;
}

// ------------------------------------------------------------------------- attention

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionMask& mask,
                 std::optional<double> scale_opt, double dropout_p, Generator* gen) {
  const Geometry g = check_qkv("attention", q_in, k_in, &v_in);
  const double scale = resolve_scale("attention", scale_opt, g.D);
  if (!(dropout_p >= 0.0 && dropout_p < 1.0))
    throw std::invalid_argument("attention: dropout_p must be in [0, 1), got " + std::to_string(dropout_p));
  const Tensor q = gemm_ready(q_in.detach()), k = gemm_ready(k_in.detach()), v = gemm_ready(v_in.detach());
  const std::int64_t plane = g.Tq * g.Tk;
  Tensor p = empty({g.B, g.H, g.Tq, g.Tk}, q.dtype());        // probabilities, kept for backward
  Tensor storage = empty({g.B, g.Tq, g.H, g.Dv}, q.dtype());  // O in combined-heads memory order
  Tensor keep;                                                // dropout's kept entries, or undefined
  if (dropout_p > 0.0) {
    keep = empty(p.shape(), DType::bool_);
    Generator& rng = gen ? *gen : default_generator();
    bool* pk = keep.data<bool>();
    // The mask dropout(P) would draw from the same generator state: the fused and the composed
    // path drop the same weights.
    bernoulli_keep(pk, keep.numel(), dropout_p, rng);
  }
  const double keep_scale = 1.0 / (1.0 - dropout_p);
  detail::dispatch_float(q.dtype(), "attention", [&](auto tag) {
    using T = decltype(tag);
    const Heads<T> hq = heads_of<T>(q), hk = heads_of<T>(k), hv = heads_of<T>(v);
    probabilities<T>(g, hq, hk, resolve_masks<T>("attention", mask, g), T(scale), p.data<T>());
    const std::int64_t pairs = g.B * g.H;
    const int threads = omp_get_max_threads();
    const bool per_head = pairs >= threads && plane * g.Dv * pairs >= detail::kParallelGrain;
#pragma omp parallel num_threads(threads) if (per_head)
    {
      std::vector<T> dropped(keep.defined() ? static_cast<std::size_t>(plane) : 0);
#pragma omp for schedule(static)
      for (std::int64_t bh = 0; bh < pairs; ++bh) {
        const std::int64_t b = bh / g.H, h = bh % g.H;
        const T* pb = p.data<T>() + bh * plane;
        if (keep.defined()) {  // dropout(P) = P * keep / (1 - p)
          const bool* kb = keep.data<bool>() + bh * plane;
          detail::keep_scaled(pb, kb, T(keep_scale), dropped.data(), plane);
          pb = dropped.data();
        }
        // O[b, :, h, :] (Tq, Dv), rows H * Dv apart in the (B, Tq, H, Dv) storage
        detail::gemm_by_size(false, false, g.Tq, g.Dv, g.Tk, T(1), pb, g.Tk, hv.at(b, h / g.G), hv.ld, T(0),
                             storage.data<T>() + b * g.Tq * g.H * g.Dv + h * g.Dv, g.H * g.Dv);
      }
    }
  });
  Tensor out = permute(storage, {0, 2, 1, 3});  // (B, H, Tq, Dv) view
  const Tensor saved_p = p;
  record(Op::attention, out, {q_in, k_in, v_in},
         [g, q, k, v, saved_p, keep, scale, keep_scale](const Tensor& gy, Grads& grads) {
           // dV = dropout(P)^T dO; dP = (dO V^T) * keep / (1 - p); then softmax and score backward
           const bool need_q = grads.needs(0), need_k = grads.needs(1), need_v = grads.needs(2);
           const Tensor go = gemm_ready(gy);
           Tensor dq = need_q ? empty_heads_major(g.B, g.H, g.Tq, g.D, q.dtype()) : Tensor();
           Tensor dk = need_k ? empty_heads_major(g.B, g.Hkv, g.Tk, g.D, k.dtype()) : Tensor();
           Tensor dv = need_v ? empty_heads_major(g.B, g.Hkv, g.Tk, g.Dv, v.dtype()) : Tensor();
           detail::dispatch_float(q.dtype(), "attention backward", [&](auto tag) {
             using T = decltype(tag);
             const Heads<T> hq = heads_of<T>(q), hk = heads_of<T>(k), hv = heads_of<T>(v), hg = heads_of<T>(go);
             const Heads<T> hdq = need_q ? heads_of<T>(dq) : Heads<T>{}, hdk = need_k ? heads_of<T>(dk) : Heads<T>{},
                            hdv = need_v ? heads_of<T>(dv) : Heads<T>{};
             const std::int64_t groups = g.B * g.Hkv, pl = g.Tq * g.Tk;
             const int threads = omp_get_max_threads();
             const bool per_group = groups >= threads && g.B * g.H * pl * g.D >= detail::kParallelGrain;
#pragma omp parallel num_threads(threads) if (per_group)
             {
               std::vector<T> ds(static_cast<std::size_t>(pl));  // dP, then dS
               std::vector<T> dropped(keep.defined() ? static_cast<std::size_t>(pl) : 0);
#pragma omp for schedule(static)
               for (std::int64_t bk = 0; bk < groups; ++bk) {
                 const std::int64_t b = bk / g.Hkv, kh = bk % g.Hkv;
                 for (std::int64_t r = 0; r < g.G; ++r) {
                   const std::int64_t h = kh * g.G + r, bh = b * g.H + h;
                   const T* pb = saved_p.data<T>() + bh * pl;
                   const bool* kb = keep.defined() ? keep.data<bool>() + bh * pl : nullptr;
                   const T* pd = pb;  // dropout(P)
                   if (kb) {
                     detail::keep_scaled(pb, kb, T(keep_scale), dropped.data(), pl);
                     pd = dropped.data();
                   }
                   if (need_v)
                     detail::gemm_by_size(true, false, g.Tk, g.Dv, g.Tq, T(1), pd, g.Tk, hg.at(b, h), hg.ld,
                                          r == 0 ? T(0) : T(1), hdv.at(b, kh), hdv.ld);
                   if (!need_q && !need_k) continue;
                   detail::gemm_by_size(false, true, g.Tq, g.Tk, g.Dv, T(1), hg.at(b, h), hg.ld, hv.at(b, kh), hv.ld,
                                        T(0), ds.data(), g.Tk);
                   if (kb) detail::keep_scaled(ds.data(), kb, T(keep_scale), ds.data(), pl);
                   scores_backward<T>(g, b, h, pb, ds.data(), hq, hk, T(scale), need_q ? &hdq : nullptr,
                                      need_k ? &hdk : nullptr, r == 0);
                 }
               }
             }
           });
           if (need_q) grads.set(0, dq);
           if (need_k) grads.set(1, dk);
           if (need_v) grads.set(2, dv);
         });
  return out;
}

}  // namespace rune
