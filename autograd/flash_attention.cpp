// Memory-efficient attention: the FlashAttention algorithm (Dao et al., 2022) with
// FlashAttention-2's loop order (Dao, 2023), on CPU. The (Tq, Tk) weights are never stored: the
// forward runs over tiles of keys with an online softmax, keeping per query row its running
// maximum m, its running sum l and an unnormalised output; the backward recomputes each tile's
// weights from the row's log-sum-exp L = m + log l saved by the forward.
//
// Legend as attention.cpp: B batch, H query heads, Hkv key/value heads (query head h reads kv
// head h / G), Tq queries, Tk keys, D head dim, Dv value dim; Br x Bc a tile (queries x keys).
//
// forward, per query tile i and key tile j:
//   S = scale Q_i K_j^T, masked entries -inf
//   m' = max(m, rowmax S);  P~ = exp(S - m');  l = exp(m - m') l + rowsum P~
//   A = exp(m - m') A + P~ V_j;  m = m'
//   at the end: O_i = A / l, L_i = m + log l (a row with no key: O = 0, L = +inf)
// backward, per (batch, kv head), key tile j outer, query tiles inner (dK_j, dV_j stay in cache):
//   Di = rowsum(dO_i * O_i);  P = exp(S - L_i)
//   dV_j += P^T dO_i;  dP = dO_i V_j^T;  dS = P * (dP - Di)
//   dQ_i += scale dS K_j;  dK_j += scale dS^T Q_i
// Memory: O, L and one tile per thread, O(T) per head where the plain kernel keeps O(T^2).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/attention_heads.hpp"
#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/simd.hpp"
#include "autograd/small_gemm.hpp"

namespace rune {
namespace {

using namespace attention_detail;

constexpr std::int64_t kStackedRows = 128;  // at most twice this many query rows share a key tile

// The masks the tiled kernel takes: causal (aligned to the end of the keys) and key padding.
struct TileMasks {
  bool causal = false;
  std::int64_t offset = 0;  // query i sees keys j <= i + offset
  Tensor padding;           // bool (B, Tk), or undefined
  const bool* pad = nullptr;
  std::int64_t pad_sb = 0, pad_sj = 0;

  // Keys [j0, j0 + cols) of query i: how many leading ones are visible; masked ones in s[0, that)
  // set to -inf, and s[that, cols) too.
  template <class T>
  std::int64_t apply(T* s, std::int64_t b, std::int64_t i, std::int64_t j0, std::int64_t cols) const {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    std::int64_t visible = cols;
    if (causal) visible = std::clamp<std::int64_t>(i + offset + 1 - j0, 0, cols);
    for (std::int64_t c = visible; c < cols; ++c) s[c] = ninf;
    if (pad) {
      const bool* r = pad + b * pad_sb + j0 * pad_sj;
      for (std::int64_t c = 0; c < visible; ++c)
        if (r[c * pad_sj]) s[c] = ninf;
    }
    return visible;
  }
  // The keys a tile of query rows [i0, i0 + rows) can see at all: [0, end).
  std::int64_t key_end(std::int64_t i0, std::int64_t rows, std::int64_t Tk) const {
    return causal ? std::clamp<std::int64_t>(i0 + rows + offset, 0, Tk) : Tk;
  }
  // The first query row that sees key j0: later key tiles skip the rows before it.
  std::int64_t first_query(std::int64_t j0) const { return causal ? std::max<std::int64_t>(0, j0 - offset) : 0; }
};

TileMasks tile_masks(const AttentionMask& m, const Geometry& g) {
  if (m.blocked.defined() || m.bias.defined())
    throw std::invalid_argument(
        "flash_attention: takes the causal mask and key_padding_mask only; a blocked or bias mask needs attention()");
  TileMasks t;
  t.causal = m.causal;
  t.offset = g.Tk - g.Tq;
  if (m.key_padding_mask.defined()) {
    detail::check_dtype("flash_attention", m.key_padding_mask, DType::bool_, "key_padding_mask");
    if (m.key_padding_mask.shape() != Shape{g.B, g.Tk})
      throw std::invalid_argument(
          "flash_attention: key_padding_mask has shape " + shape_str(m.key_padding_mask.shape()) +
          " but must be (B, Tk) = " + shape_str(Shape{g.B, g.Tk}) + " (true marks a padding key)");
    t.padding = m.key_padding_mask.detach();
    t.pad = t.padding.data<bool>();
    t.pad_sb = t.padding.stride(0);
    t.pad_sj = t.padding.stride(1);
  }
  return t;
}

// One query tile of `heads` query heads sharing a key/value head (heads = 1, or the whole group
// of G): their rows stacked, (heads x rows) queries against each key tile in one product, so the
// tile of K and V is read once for the group (a decoding step's single query per head becomes a
// product of G rows instead of G vector products). q[r] is head r's first row (ld ldq), o[r] and
// lse[r] its outputs (rows of O with ld ldo; rows values of L). Scratch: qs (heads Br x D),
// s (heads Br x Bc), a (heads Br x Dv), m and l (heads Br).
template <class T>
void forward_tile(const Geometry& g, const TileMasks& masks, std::int64_t b, std::int64_t i0, std::int64_t rows,
                  std::int64_t heads, const T* const* q, std::int64_t ldq, const T* k, std::int64_t ldk, const T* v,
                  std::int64_t ldv, T scale, std::int64_t Bc, T* qs, T* s, T* a, T* m, T* l, T* const* o,
                  std::int64_t ldo, T* const* lse) {
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const std::int64_t n = heads * rows;  // stacked rows: head r's query i0 + t is row r * rows + t
  const T* qa = q[0];
  std::int64_t lda = ldq;
  if (heads > 1) {
    for (std::int64_t r = 0; r < heads; ++r)
      for (std::int64_t t = 0; t < rows; ++t) std::copy_n(q[r] + t * ldq, g.D, qs + (r * rows + t) * g.D);
    qa = qs;
    lda = g.D;
  }
  std::fill(m, m + n, ninf);
  std::fill(l, l + n, T(0));
  std::fill(a, a + n * g.Dv, T(0));
  const std::int64_t end = masks.key_end(i0, rows, g.Tk);
  for (std::int64_t j0 = 0; j0 < end; j0 += Bc) {
    const std::int64_t cols = std::min(Bc, end - j0);
    detail::gemm_by_size(false, true, n, cols, g.D, scale, qa, lda, k + j0 * ldk, ldk, T(0), s, Bc);
    for (std::int64_t r = 0; r < n; ++r) {
      T* row = s + r * Bc;
      const std::int64_t visible = masks.apply(row, b, i0 + r % rows, j0, cols);
      const T mt = detail::row_max(row, visible);
      const T mn = std::max(m[r], mt);
      if (mn == ninf) {  // no key of this row seen yet
        std::fill(row, row + cols, T(0));
        continue;
      }
      const T alpha = std::exp(m[r] - mn);  // 0 on the row's first keys
      l[r] = alpha * l[r] + detail::exp_shifted(row, row, visible, mn);
      std::fill(row + visible, row + cols, T(0));
      if (alpha != T(1)) {
        T* ar = a + r * g.Dv;
        for (std::int64_t d = 0; d < g.Dv; ++d) ar[d] *= alpha;
      }
      m[r] = mn;
    }
    detail::gemm_by_size(false, false, n, g.Dv, cols, T(1), s, Bc, v + j0 * ldv, ldv, T(1), a, g.Dv);
  }
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t head = r / rows, t = r % rows;
    T* orow = o[head] + t * ldo;
    const T* ar = a + r * g.Dv;
    if (l[r] == T(0)) {  // a query with no key: zeros, and a log-sum-exp that zeroes its weights
      std::fill(orow, orow + g.Dv, T(0));
      lse[head][t] = std::numeric_limits<T>::infinity();
      continue;
    }
    const T inv = T(1) / l[r];
    for (std::int64_t d = 0; d < g.Dv; ++d) orow[d] = ar[d] * inv;
    lse[head][t] = m[r] + std::log(l[r]);
  }
}

}  // namespace

Tensor flash_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionMask& mask,
                       std::optional<double> scale_opt, AttentionTiles tiles) {
  const Geometry g = check_qkv("flash_attention", q_in, k_in, &v_in);
  const double scale = resolve_scale("flash_attention", scale_opt, g.D);
  if (tiles.queries < 1 || tiles.keys < 1)
    throw std::invalid_argument("flash_attention: tiles must be at least 1 x 1, got " + std::to_string(tiles.queries) +
                                " x " + std::to_string(tiles.keys));
  const TileMasks masks = tile_masks(mask, g);
  const Tensor q = gemm_ready(q_in.detach()), k = gemm_ready(k_in.detach()), v = gemm_ready(v_in.detach());
  const std::int64_t Br = std::min(tiles.queries, std::max<std::int64_t>(g.Tq, 1)),
                     Bc = std::min(tiles.keys, std::max<std::int64_t>(g.Tk, 1));
  Tensor storage = empty({g.B, g.Tq, g.H, g.Dv}, q.dtype());  // O in combined-heads memory order
  Tensor lse = empty({g.B, g.H, g.Tq}, q.dtype());
  detail::dispatch_float(q.dtype(), "flash_attention", [&](auto tag) {
    using T = decltype(tag);
    const Heads<T> hq = heads_of<T>(q), hk = heads_of<T>(k), hv = heads_of<T>(v);
    const std::int64_t qtiles = (g.Tq + Br - 1) / Br;
    const int threads = detail::num_threads_for(g.B * g.H * g.Tq * g.Tk * (g.D + g.Dv));
    // a whole group of query heads per work item when that still leaves every thread work and
    // the stacked rows stay a tile's size (decoding steps: one row per head)
    const bool grouped = g.B * g.Hkv * qtiles >= threads && std::min(Br, g.Tq) * g.G <= 2 * kStackedRows;
    const std::int64_t heads = grouped ? g.G : 1, work = g.B * (g.H / heads) * qtiles;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const std::int64_t n = heads * Br;
      std::vector<T> qs(static_cast<std::size_t>(heads > 1 ? n * g.D : 0)), s(static_cast<std::size_t>(n * Bc)),
          a(static_cast<std::size_t>(n * g.Dv)), m(static_cast<std::size_t>(n)), l(static_cast<std::size_t>(n));
      std::vector<const T*> qp(static_cast<std::size_t>(heads));
      std::vector<T*> op(static_cast<std::size_t>(heads)), lp(static_cast<std::size_t>(heads));
#pragma omp for schedule(dynamic)
      for (std::int64_t w = 0; w < work; ++w) {
        const std::int64_t bh = w / qtiles, b = bh / (g.H / heads), h0 = bh % (g.H / heads) * heads;
        const std::int64_t i0 = (w % qtiles) * Br, rows = std::min(Br, g.Tq - i0), ldo = g.H * g.Dv;
        for (std::int64_t r = 0; r < heads; ++r) {
          const std::int64_t h = h0 + r;
          qp[static_cast<std::size_t>(r)] = hq.at(b, h) + i0 * hq.ld;
          op[static_cast<std::size_t>(r)] = storage.data<T>() + (b * g.Tq + i0) * ldo + h * g.Dv;
          lp[static_cast<std::size_t>(r)] = lse.data<T>() + (b * g.H + h) * g.Tq + i0;
        }
        forward_tile<T>(g, masks, b, i0, rows, heads, qp.data(), hq.ld, hk.at(b, h0 / g.G), hk.ld, hv.at(b, h0 / g.G),
                        hv.ld, T(scale), Bc, qs.data(), s.data(), a.data(), m.data(), l.data(), op.data(), ldo,
                        lp.data());
      }
    }
  });
  Tensor out = permute(storage, {0, 2, 1, 3});  // (B, H, Tq, Dv) view
  record(Op::flash_attention, out, {q_in, k_in, v_in},
         [g, q, k, v, storage, lse, masks, scale, Br, Bc](const Tensor& gy, Grads& grads) {
           const bool need_q = grads.needs(0), need_k = grads.needs(1), need_v = grads.needs(2);
           const Tensor go = gemm_ready(gy);
           const Tensor dq = permute(zeros({g.B, g.Tq, g.H, g.D}, q.dtype()), {0, 2, 1, 3});  // accumulated
           Tensor dk = empty_heads_major(g.B, g.Hkv, g.Tk, g.D, k.dtype());
           Tensor dv = empty_heads_major(g.B, g.Hkv, g.Tk, g.Dv, v.dtype());
           const Tensor o = permute(storage, {0, 2, 1, 3});
           detail::dispatch_float(q.dtype(), "flash_attention backward", [&](auto tag) {
             using T = decltype(tag);
             const Heads<T> hq = heads_of<T>(q), hk = heads_of<T>(k), hv = heads_of<T>(v), hg = heads_of<T>(go),
                            ho = heads_of<T>(o), hdq = heads_of<T>(dq), hdk = heads_of<T>(dk), hdv = heads_of<T>(dv);
             const std::int64_t groups = g.B * g.Hkv;
             const int threads = detail::num_threads_for(g.B * g.H * g.Tq * g.Tk * (g.D + g.Dv));
#pragma omp parallel num_threads(threads) if (threads > 1)
             {
               std::vector<T> p(static_cast<std::size_t>(Br * Bc)), ds(static_cast<std::size_t>(Br * Bc)),
                   dk_acc(static_cast<std::size_t>(Bc * g.D)), dv_acc(static_cast<std::size_t>(Bc * g.Dv)),
                   di(static_cast<std::size_t>(g.G * g.Tq));
#pragma omp for schedule(dynamic)
               for (std::int64_t bk = 0; bk < groups; ++bk) {
                 const std::int64_t b = bk / g.Hkv, kh = bk % g.Hkv;
                 // Di = rowsum(dO * O) for each query head of the group
                 for (std::int64_t r = 0; r < g.G; ++r)
                   for (std::int64_t i = 0; i < g.Tq; ++i) {
                     const T* gr = hg.at(b, kh * g.G + r) + i * hg.ld;
                     const T* orow = ho.at(b, kh * g.G + r) + i * ho.ld;
                     T sum = 0;
                     for (std::int64_t d = 0; d < g.Dv; ++d) sum += gr[d] * orow[d];
                     di[static_cast<std::size_t>(r * g.Tq + i)] = sum;
                   }
                 for (std::int64_t j0 = 0; j0 < g.Tk; j0 += Bc) {
                   const std::int64_t cols = std::min(Bc, g.Tk - j0);
                   std::fill(dk_acc.begin(), dk_acc.end(), T(0));
                   std::fill(dv_acc.begin(), dv_acc.end(), T(0));
                   const T* kj = hk.at(b, kh) + j0 * hk.ld;
                   const T* vj = hv.at(b, kh) + j0 * hv.ld;
                   for (std::int64_t r = 0; r < g.G; ++r) {
                     const std::int64_t h = kh * g.G + r;
                     const T* lrow = lse.data<T>() + (b * g.H + h) * g.Tq;
                     for (std::int64_t i0 = masks.first_query(j0) / Br * Br; i0 < g.Tq; i0 += Br) {
                       const std::int64_t rows = std::min(Br, g.Tq - i0);
                       const T* qi = hq.at(b, h) + i0 * hq.ld;
                       const T* gi = hg.at(b, h) + i0 * hg.ld;
                       // P = exp(scale Q_i K_j^T - L_i), masked entries 0
                       detail::gemm_by_size(false, true, rows, cols, g.D, T(scale), qi, hq.ld, kj, hk.ld, T(0),
                                            p.data(), Bc);
                       for (std::int64_t rr = 0; rr < rows; ++rr) {
                         T* row = p.data() + rr * Bc;
                         const std::int64_t visible = masks.apply(row, b, i0 + rr, j0, cols);
                         detail::exp_shifted(row, row, visible, lrow[i0 + rr]);
                         std::fill(row + visible, row + cols, T(0));
                       }
                       if (need_v)  // dV_j += P^T dO_i
                         detail::gemm_by_size(true, false, cols, g.Dv, rows, T(1), p.data(), Bc, gi, hg.ld, T(1),
                                              dv_acc.data(), g.Dv);
                       if (!need_q && !need_k) continue;
                       // dP = dO_i V_j^T; dS = P * (dP - Di)
                       detail::gemm_by_size(false, true, rows, cols, g.Dv, T(1), gi, hg.ld, vj, hv.ld, T(0), ds.data(),
                                            Bc);
                       for (std::int64_t rr = 0; rr < rows; ++rr) {
                         const T dirow = di[static_cast<std::size_t>(r * g.Tq + i0 + rr)];
                         T* dr = ds.data() + rr * Bc;
                         detail::row_map2(dr, p.data() + rr * Bc, dr, cols,
                                          [&](auto dpv, auto pv) { return pv * (dpv - dirow); });
                       }
                       if (need_q)  // dQ_i += scale dS K_j
                         detail::gemm_by_size(false, false, rows, g.D, cols, T(scale), ds.data(), Bc, kj, hk.ld, T(1),
                                              hdq.at(b, h) + i0 * hdq.ld, hdq.ld);
                       if (need_k)  // dK_j += scale dS^T Q_i
                         detail::gemm_by_size(true, false, cols, g.D, rows, T(scale), ds.data(), Bc, qi, hq.ld, T(1),
                                              dk_acc.data(), g.D);
                     }
                   }
                   for (std::int64_t c = 0; c < cols; ++c) {
                     if (need_k) std::copy_n(dk_acc.data() + c * g.D, g.D, hdk.at(b, kh) + (j0 + c) * hdk.ld);
                     if (need_v) std::copy_n(dv_acc.data() + c * g.Dv, g.Dv, hdv.at(b, kh) + (j0 + c) * hdv.ld);
                   }
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
