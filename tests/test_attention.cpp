// Attention: the fused ops (autograd/attention.cpp) against attention composed from primitive
// ops, forward and gradients, for every mask kind, grouped heads, strided inputs and dropout;
// rows with every key masked; the KV cache; MultiheadAttention's behaviour, head gates and
// DropHead (PyTorch parity is in tests/parity/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "nn/attention.hpp"
#include "nn/transformer.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

using nn::AttentionWeights;

bool all_finite(const Tensor& t) {
  const Tensor c = to_dtype(t, DType::float64).contiguous();
  const double* p = c.data<double>();
  for (std::int64_t i = 0; i < c.numel(); ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

Tensor bool_mask(const std::vector<std::int64_t>& v, const Shape& shape) {
  return to_dtype(from_vector(v, shape), DType::bool_);
}

// softmax(q k^T * scale + bias, masked) v from primitive ops; kv heads repeated for grouped
// queries. Rows must keep at least one key (a fully masked row is NaN here, as in PyTorch).
Tensor reference_weights(const Tensor& q, const Tensor& k, const AttentionMask& m) {
  const std::int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Tk = k.size(2), G = H / k.size(1);
  std::vector<Tensor> heads;
  for (std::int64_t h = 0; h < H; ++h) heads.push_back(slice(k, 1, h / G, h / G + 1));
  const Tensor kr = concat(heads, 1);  // (B, H, Tk, D)
  Tensor s = matmul(q, transpose(kr, -1, -2)) * (1.0 / std::sqrt(static_cast<double>(q.size(3))));
  if (m.bias.defined()) s = s + m.bias;
  std::vector<std::int64_t> blocked(static_cast<std::size_t>(B * H * Tq * Tk), 0);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < Tq; ++i)
        for (std::int64_t j = 0; j < Tk; ++j) {
          bool x = m.causal && j > i + Tk - Tq;
          if (m.key_padding_mask.defined())
            x = x || to_dtype(m.key_padding_mask, DType::int64).data<std::int64_t>()[b * Tk + j];
          if (m.blocked.defined()) {
            const Tensor e = expand(m.blocked, {B, H, Tq, Tk}).contiguous();
            x = x || e.data<bool>()[((b * H + h) * Tq + i) * Tk + j];
          }
          blocked[static_cast<std::size_t>(((b * H + h) * Tq + i) * Tk + j)] = x;
        }
  s = masked_fill(s, bool_mask(blocked, {B, H, Tq, Tk}), -std::numeric_limits<double>::infinity());
  return softmax(s, -1);
}

Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& m) {
  const std::int64_t H = q.size(1), G = H / k.size(1);
  std::vector<Tensor> heads;
  for (std::int64_t h = 0; h < H; ++h) heads.push_back(slice(v, 1, h / G, h / G + 1));
  return matmul(reference_weights(q, k, m), concat(heads, 1));
}

struct Case {
  const char* name;
  std::int64_t B, H, Hkv, Tq, Tk, D;
  std::function<AttentionMask(std::int64_t B, std::int64_t H, std::int64_t Tq, std::int64_t Tk)> mask;
};
// gtest names a case by this, not by the bytes of the struct (which hold addresses)
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  return {
      {"plain", 2, 4, 4, 5, 7, 8, [](auto, auto, auto, auto) { return AttentionMask{}; }},
      {"causal", 2, 3, 3, 6, 6, 4,
       [](auto, auto, auto, auto) {
         return AttentionMask{true, {}, {}, {}};
       }},
      {"causal_offset", 2, 2, 2, 3, 7, 4,
       [](auto, auto, auto, auto) {
         return AttentionMask{true, {}, {}, {}};
       }},
      {"key_padding", 2, 2, 2, 4, 6, 4,
       [](auto, auto, auto, auto) {
         return AttentionMask{false, bool_mask({0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1}, {2, 6}), {}, {}};
       }},
      {"blocked_2d", 1, 2, 2, 3, 4, 4,
       [](auto, auto, auto, auto) {
         return AttentionMask{false, {}, bool_mask({0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1}, {3, 4}), {}};
       }},
      {"bias_4d", 2, 2, 2, 3, 5, 4,
       [](std::int64_t B, std::int64_t H, std::int64_t Tq, std::int64_t Tk) {
         Generator g(7);
         return AttentionMask{false, {}, {}, randn({B, H, Tq, Tk}, g, DType::float64)};
       }},
      {"gqa_causal_padding", 2, 4, 2, 5, 5, 4,
       [](auto, auto, auto, auto) {
         return AttentionMask{true, bool_mask({0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, {2, 5}), {}, {}};
       }},
      {"mqa_bias_2d", 1, 4, 1, 3, 6, 8,
       [](std::int64_t, std::int64_t, std::int64_t Tq, std::int64_t Tk) {
         Generator g(9);
         return AttentionMask{false, {}, {}, randn({Tq, Tk}, g, DType::float64)};
       }},
  };
}

class AttentionOps : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionOps, FusedAndWeightsOpsMatchTheComposition) {
  const Case& c = GetParam();
  Generator g(1);
  const Tensor q = randn({c.B, c.H, c.Tq, c.D}, g, DType::float64).requires_grad_();
  const Tensor k = randn({c.B, c.Hkv, c.Tk, c.D}, g, DType::float64).requires_grad_();
  const Tensor v = randn({c.B, c.Hkv, c.Tk, c.D}, g, DType::float64).requires_grad_();
  const Tensor w_out = randn({c.B, c.H, c.Tq, c.D}, g, DType::float64);
  const Tensor w_p = randn({c.B, c.H, c.Tq, c.Tk}, g, DType::float64);
  const AttentionMask m = c.mask(c.B, c.H, c.Tq, c.Tk);

  const auto grads = [&](const Tensor& loss) {
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
    loss.backward();
    return std::vector<Tensor>{q.grad().clone(), k.grad().clone(), v.grad().clone()};
  };
  const Tensor ref_out = reference_attention(q, k, v, m);
  const auto ref_g = grads(sum(ref_out * w_out));
  const Tensor fused = attention(q, k, v, m);
  const auto fused_g = grads(sum(fused * w_out));
  EXPECT_LT(max_abs_diff(fused, ref_out), 1e-12) << c.name;
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(fused_g[i], ref_g[i]), 1e-12) << c.name << " grad " << i;

  const Tensor ref_p = reference_weights(q, k, m);
  const auto ref_pg = grads(sum(ref_p * w_p));
  const Tensor p = attention_weights(q, k, m);
  const auto pg = grads(sum(p * w_p));
  EXPECT_LT(max_abs_diff(p, ref_p), 1e-12) << c.name;
  EXPECT_LT(max_abs_diff(pg[0], ref_pg[0]), 1e-12) << c.name;
  EXPECT_LT(max_abs_diff(pg[1], ref_pg[1]), 1e-12) << c.name;

  // the functional form's two paths agree, and its weights are the probabilities
  const nn::AttentionResult r = nn::scaled_dot_product_attention(q, k, v, m, 0.0, AttentionWeights::per_head);
  EXPECT_LT(max_abs_diff(r.output, fused), 1e-12) << c.name;
  EXPECT_LT(max_abs_diff(r.weights, p), 1e-15) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionOps, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Attention, Float32FusedKernelMatchesFloat64OnLargeShapes) {
  // big enough for the per-head parallel path: 8 x 8 heads of 64 x 64
  Generator g(3);
  const Tensor q = randn({8, 8, 64, 32}, g, DType::float64), k = randn({8, 8, 64, 32}, g, DType::float64),
               v = randn({8, 8, 64, 32}, g, DType::float64);
  const AttentionMask m{true, {}, {}, {}};
  const Tensor want = attention(q, k, v, m);
  const Tensor got =
      attention(to_dtype(q, DType::float32), to_dtype(k, DType::float32), to_dtype(v, DType::float32), m);
  EXPECT_LT(max_abs_diff(got, want), 2e-5);
}

TEST(Attention, StridedHeadsAreReadInPlaceWithTheSameResult) {
  // q, k, v as head views of one fused (B, T, 3C) projection, as MultiheadAttention makes them
  Generator g(4);
  const Tensor qkv = randn({2, 5, 3 * 12}, g, DType::float64).requires_grad_();
  const Tensor q = nn::split_heads(slice(qkv, 2, 0, 12), 3), k = nn::split_heads(slice(qkv, 2, 12, 24), 3),
               v = nn::split_heads(slice(qkv, 2, 24, 36), 3);
  EXPECT_FALSE(q.is_contiguous());
  EXPECT_EQ(q.stride(2), 36) << "split_heads of a column slice must stay a view";
  const Tensor w = randn({2, 3, 5, 4}, g, DType::float64);
  const Tensor out = attention(q, k, v, AttentionMask{true, {}, {}, {}});
  sum(out * w).backward();
  const Tensor grad_views = qkv.grad().clone();
  qkv.zero_grad();
  const auto contiguous_head = [&](std::int64_t begin) {
    return nn::split_heads(slice(qkv, 2, begin, begin + 12), 3).contiguous();
  };
  const Tensor out2 =
      attention(contiguous_head(0), contiguous_head(12), contiguous_head(24), AttentionMask{true, {}, {}, {}});
  sum(out2 * w).backward();
  EXPECT_LT(max_abs_diff(out, out2), 1e-15);
  EXPECT_LT(max_abs_diff(qkv.grad(), grad_views), 1e-15);
  // the fused result is laid out (B, Tq, H, D): combining heads is a view
  EXPECT_TRUE(permute(out, {0, 2, 1, 3}).is_contiguous());
}

TEST(Attention, AQueryWithEveryKeyMaskedGivesZerosNotNaN) {
  Generator g(5);
  const Tensor q = randn({2, 2, 3, 4}, g, DType::float64).requires_grad_();
  const Tensor k = randn({2, 2, 4, 4}, g, DType::float64).requires_grad_();
  const Tensor v = randn({2, 2, 4, 4}, g, DType::float64).requires_grad_();
  // batch 0 pads every key; in batch 1 query 1 is blocked from all keys by the general mask
  AttentionMask m;
  m.key_padding_mask = bool_mask({1, 1, 1, 1, 0, 0, 0, 0}, {2, 4});
  m.blocked = bool_mask({0, 0, 0, 0, /**/ 1, 1, 1, 1, /**/ 0, 1, 0, 0}, {3, 4});
  for (bool fused : {true, false}) {
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
    const nn::AttentionResult r =
        nn::scaled_dot_product_attention(q, k, v, m, 0.0, fused ? AttentionWeights::none : AttentionWeights::per_head);
    sum(r.output * r.output).backward();
    EXPECT_TRUE(all_finite(r.output));
    EXPECT_TRUE(all_finite(q.grad()) && all_finite(k.grad()) && all_finite(v.grad()));
    EXPECT_EQ(max_abs(slice(r.output, 0, 0, 1)), 0.0) << "batch 0 attends nothing";
    EXPECT_EQ(max_abs(slice(slice(r.output, 0, 1, 2), 2, 1, 2)), 0.0) << "query 1 of batch 1";
    EXPECT_GT(max_abs(slice(slice(r.output, 0, 1, 2), 2, 0, 1)), 0.0) << "other rows are untouched";
    EXPECT_EQ(max_abs(slice(q.grad(), 0, 0, 1)), 0.0);
    EXPECT_EQ(max_abs(slice(k.grad(), 0, 0, 1)), 0.0);
    EXPECT_EQ(max_abs(slice(slice(q.grad(), 0, 1, 2), 2, 1, 2)), 0.0);
    if (!fused) {
      EXPECT_EQ(max_abs(slice(r.weights, 0, 0, 1)), 0.0);
    }
  }
  // an additive mask of -inf everywhere in a row behaves the same
  AttentionMask inf_row;
  std::vector<double> bias(12, 0.0);
  for (int j = 0; j < 4; ++j) bias[4 + j] = -std::numeric_limits<double>::infinity();
  inf_row.bias = from_vector(bias, {3, 4});
  const Tensor out = attention(q, k, v, inf_row);
  EXPECT_TRUE(all_finite(out));
  EXPECT_EQ(max_abs(slice(out, 2, 1, 2)), 0.0);
}

TEST(Attention, DropoutDropsTheSameWeightsInTheFusedAndComposedPaths) {
  Generator g(6);
  const Tensor q = randn({2, 4, 6, 8}, g, DType::float64).requires_grad_();
  const Tensor k = randn({2, 2, 6, 8}, g, DType::float64).requires_grad_();
  const Tensor v = randn({2, 2, 6, 8}, g, DType::float64).requires_grad_();
  const Tensor w = randn({2, 4, 6, 8}, g, DType::float64);
  const AttentionMask m{true, {}, {}, {}};
  Generator d1(42), d2(42);
  const Tensor fused = attention(q, k, v, m, std::nullopt, 0.3, &d1);
  sum(fused * w).backward();
  const Tensor gq = q.grad().clone(), gk = k.grad().clone(), gv = v.grad().clone();
  q.zero_grad();
  k.zero_grad();
  v.zero_grad();
  const nn::AttentionResult composed =
      nn::scaled_dot_product_attention(q, k, v, m, 0.3, AttentionWeights::per_head, std::nullopt, &d2);
  sum(composed.output * w).backward();
  EXPECT_LT(max_abs_diff(fused, composed.output), 1e-12);
  EXPECT_LT(max_abs_diff(gq, q.grad()), 1e-12);
  EXPECT_LT(max_abs_diff(gk, k.grad()), 1e-12);
  EXPECT_LT(max_abs_diff(gv, v.grad()), 1e-12);
  EXPECT_GT(max_abs_diff(fused, attention(q, k, v, m)), 1e-3) << "dropout changed nothing";
  // the returned weights are the probabilities before dropout: rows sum to 1
  EXPECT_LT(max_abs_diff(sum(composed.weights, {-1}), ones({2, 4, 6}, DType::float64)), 1e-12);
}

TEST(Attention, BadShapesAndMasksAreRefusedByName) {
  const Tensor q = zeros({2, 4, 3, 8}), k = zeros({2, 2, 5, 8}), v = zeros({2, 2, 5, 8});
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([&] {
              attention(q, zeros({2, 3, 5, 8}), zeros({2, 3, 5, 8}));
            }).find("multiple of the key/value heads"),
            std::string::npos);
  EXPECT_NE(message([&] { attention(q, zeros({2, 2, 5, 4}), v); }).find("q [2,4,3,8], k [2,2,5,4]"), std::string::npos);
  EXPECT_NE(message([&] { attention(zeros({4, 3, 8}), k, v); }).find("(B, H, T, D)"), std::string::npos);
  AttentionMask pad;
  pad.key_padding_mask = zeros({2, 4}, DType::bool_);
  EXPECT_NE(
      message([&] { attention(q, k, v, pad); }).find("key_padding_mask has shape [2,4] but must be (B, Tk) = [2,5]"),
      std::string::npos);
  AttentionMask blocked;
  blocked.blocked = zeros({3, 4}, DType::bool_);
  EXPECT_NE(message([&] { attention(q, k, v, blocked); }).find("blocked mask of shape [3,4] does not broadcast"),
            std::string::npos);
  AttentionMask float_as_bool;
  float_as_bool.blocked = zeros({3, 5});
  EXPECT_NE(message([&] { attention(q, k, v, float_as_bool); }).find("blocked mask"), std::string::npos);
  AttentionMask bool_as_bias;
  bool_as_bias.bias = zeros({3, 5}, DType::bool_);
  EXPECT_NE(message([&] { attention(q, k, v, bool_as_bias); }).find("AttentionMask::blocked"), std::string::npos);
  EXPECT_NE(message([&] { attention(q, k, v, {}, std::nullopt, 1.0); }).find("dropout_p"), std::string::npos);
}

// ------------------------------------------------------------------------- KV cache

TEST(KVCache, GrowsInPlaceWithoutGradAndByConcatenationWithGrad) {
  Generator g(8);
  nn::KVCache cache;
  std::vector<Tensor> ks, vs;
  NoGradGuard no_grad;
  for (int step = 0; step < 40; ++step) {  // crosses the initial capacity of 16 twice
    ks.push_back(randn({2, 3, step % 3 + 1, 4}, g));
    vs.push_back(randn({2, 3, step % 3 + 1, 5}, g));
    cache.append(ks.back(), vs.back());
  }
  EXPECT_EQ(cache.length(), concat(ks, 2).size(2));
  EXPECT_EQ(max_abs_diff(cache.keys(), concat(ks, 2)), 0.0);
  EXPECT_EQ(max_abs_diff(cache.values(), concat(vs, 2)), 0.0);
  EXPECT_THROW(cache.append(randn({2, 3, 1, 6}, g), randn({2, 3, 1, 5}, g)), std::invalid_argument);
  cache.reset();
  EXPECT_TRUE(cache.empty());
}

TEST(KVCache, ReorderGathersRowsAndKeepsGrowingInPlace) {
  // beam search's reorder: row i becomes old row index[i], in the buffers and in the concatenations
  Generator g(10);
  for (const bool grad : {false, true}) {
    nn::KVCache cache;
    std::vector<Tensor> ks, vs;
    for (int step = 0; step < 20; ++step) {  // past the initial capacity of 16
      ks.push_back(randn({3, 2, 1, 4}, g).requires_grad_(grad));
      vs.push_back(randn({3, 2, 1, 5}, g).requires_grad_(grad));
      cache.append(ks.back(), vs.back());
    }
    const Tensor index = from_vector(std::vector<std::int64_t>{2, 0, 0, 1}, {4});
    NoGradGuard no_grad;
    const Tensor want_k = index_select(concat(ks, 2), 0, index), want_v = index_select(concat(vs, 2), 0, index);
    cache.reorder(index);
    EXPECT_EQ(cache.length(), 20);
    EXPECT_EQ(max_abs_diff(cache.keys(), want_k), 0.0) << "grad " << grad;
    EXPECT_EQ(max_abs_diff(cache.values(), want_v), 0.0) << "grad " << grad;
    // the next steps continue the reordered rows
    const Tensor k = randn({4, 2, 3, 4}, g), v = randn({4, 2, 3, 5}, g);
    cache.append(k, v);
    EXPECT_EQ(max_abs_diff(cache.keys(), concat({want_k, k}, 2)), 0.0);
    EXPECT_EQ(max_abs_diff(cache.values(), concat({want_v, v}, 2)), 0.0);
    EXPECT_THROW(cache.reorder(from_vector(std::vector<std::int64_t>{4}, {1})), std::out_of_range);
  }
}

TEST(KVCache, KeepsGradientsFlowingUnderGradMode) {
  Generator g(9);
  const Tensor k1 = randn({1, 1, 2, 3}, g).requires_grad_(), k2 = randn({1, 1, 1, 3}, g).requires_grad_();
  nn::KVCache cache;
  cache.append(k1, k1 * 2.0);
  cache.append(k2, k2 * 2.0);
  sum(cache.keys() + cache.values()).backward();
  EXPECT_LT(max_abs_diff(k1.grad(), full({1, 1, 2, 3}, 3.0)), 1e-7);
  EXPECT_LT(max_abs_diff(k2.grad(), full({1, 1, 1, 3}, 3.0)), 1e-7);
}

// ------------------------------------------------------------------------- MultiheadAttention

nn::MultiheadAttentionOptions mha_options(std::int64_t C, std::int64_t H, std::int64_t Hkv = 0) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = C;
  o.num_heads = H;
  o.num_kv_heads = Hkv;
  return o;
}

TEST(MultiheadAttention, ParameterNamesAndShapesArePyTorchs) {
  Generator g(1);
  const nn::MultiheadAttention packed(mha_options(32, 4), g);
  std::vector<std::string> names;
  for (const auto& [n, t] : packed.named_parameters()) names.push_back(n + " " + shape_str(t.shape()));
  EXPECT_EQ(names, (std::vector<std::string>{"in_proj_weight [96,32]", "in_proj_bias [96]", "out_proj.weight [32,32]",
                                             "out_proj.bias [32]"}));
  const nn::MultiheadAttention gqa(mha_options(32, 4, 2), g);
  names.clear();
  for (const auto& [n, t] : gqa.named_parameters()) names.push_back(n + " " + shape_str(t.shape()));
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj_weight [32,32]", "k_proj_weight [16,32]", "v_proj_weight [16,32]",
                                             "in_proj_bias [64]", "out_proj.weight [32,32]", "out_proj.bias [32]"}));
  auto o = mha_options(32, 4);
  o.kdim = 20;
  o.bias = false;
  const nn::MultiheadAttention cross(o, g);
  names.clear();
  for (const auto& [n, t] : cross.named_parameters()) names.push_back(n + " " + shape_str(t.shape()));
  EXPECT_EQ(names, (std::vector<std::string>{"q_proj_weight [32,32]", "k_proj_weight [32,20]", "v_proj_weight [32,32]",
                                             "out_proj.weight [32,32]"}));
  // PyTorch's init: zero biases, xavier-uniform projections within sqrt(6 / (fan_in + fan_out))
  EXPECT_EQ(max_abs(packed.in_proj_bias), 0.0);
  EXPECT_EQ(max_abs(packed.out_proj->bias), 0.0);
  const double bound = std::sqrt(6.0 / (32 + 96));
  EXPECT_LE(max_abs(packed.in_proj_weight), bound);
  EXPECT_GT(max_abs(packed.in_proj_weight), 0.9 * bound);
}

TEST(MultiheadAttention, InvalidOptionsNameTheProblem) {
  EXPECT_THROW(nn::MultiheadAttention(mha_options(30, 4)), std::invalid_argument);
  try {
    nn::MultiheadAttention bad(mha_options(32, 4, 3));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("num_heads 4 is not a multiple of num_kv_heads 3"), std::string::npos);
  }
}

TEST(MultiheadAttention, SelfCrossAndSeparateInputsAgree) {
  // the same math whether q, k, v share one projection matmul, k and v share one, or none do
  Generator g(2);
  const nn::MultiheadAttention mha(mha_options(16, 4), g);
  const Tensor x = randn({2, 5, 16}, g);
  const Tensor fused = mha.forward(x, x, x).output;
  const Tensor kv_shared = mha.forward(x.clone(), x, x).output;
  const Tensor separate = mha.forward(x.clone(), x.clone(), x.clone()).output;
  EXPECT_LT(max_abs_diff(fused, kv_shared), 1e-6);
  EXPECT_LT(max_abs_diff(fused, separate), 1e-6);
  const nn::AttentionResult avg = mha.forward(x, x, x, {}, AttentionWeights::averaged);
  const nn::AttentionResult per = mha.forward(x, x, x, {}, AttentionWeights::per_head);
  EXPECT_EQ(avg.weights.shape(), (Shape{2, 5, 5}));
  EXPECT_EQ(per.weights.shape(), (Shape{2, 4, 5, 5}));
  EXPECT_LT(max_abs_diff(avg.weights, mean(per.weights, {1})), 1e-7);
  EXPECT_LT(max_abs_diff(per.output, fused), 1e-6);
}

// scale = 1 (model.attention_scale = "none") is the default 1/sqrt(D) with the query projection
// multiplied by sqrt(D), in both kernels; and a scale far from the default changes the output.
TEST(MultiheadAttention, AScaleOfOneIsTheDefaultWithQueriesTimesSqrtD) {
  for (const nn::AttentionKernel kernel : {nn::AttentionKernel::plain, nn::AttentionKernel::tiled}) {
    Generator g1(4), g2(4);
    nn::MultiheadAttentionOptions o = mha_options(16, 4);
    o.kernel = kernel;
    const nn::MultiheadAttention standard(o, g1);
    o.scale = 1.0;
    const nn::MultiheadAttention unscaled(o, g2);
    Generator g(5);
    const Tensor x = randn({2, 6, 16}, g);
    const Tensor before = unscaled.forward(x, x, x).output;
    EXPECT_GT(max_abs_diff(before, standard.forward(x, x, x).output), 1e-3) << "the scale changed nothing";
    {
      NoGradGuard no_grad;
      const double root_d = 2.0;  // D = 16 / 4
      Tensor wq = slice(standard.in_proj_weight, 0, 0, 16), bq = slice(standard.in_proj_bias, 0, 0, 16);
      wq.copy_(mul(wq, root_d));
      bq.copy_(mul(bq, root_d));
    }
    EXPECT_LT(max_abs_diff(before, standard.forward(x, x, x).output), 2e-6) << nn::attention_kernel_name(kernel);
  }
}

// Decoding with the cache, one token at a time, equals running the whole prefix causally (with
// rotary positions too: each step's query and key rotated by the positions the cache holds).
void expect_cached_decoding_matches(std::int64_t H, std::int64_t Hkv, bool rotary = false) {
  Generator g(3);
  nn::MultiheadAttentionOptions o = mha_options(24, H, Hkv);
  o.rotary = rotary;
  const nn::MultiheadAttention mha(o, g);
  const Tensor x = randn({2, 7, 24}, g);
  const Tensor full_out = mha.forward(x, x, x, AttentionMask{true, {}, {}, {}}).output;  // (B, T, C)
  NoGradGuard no_grad;
  nn::KVCache cache;
  for (std::int64_t t = 0; t < 7; ++t) {
    const Tensor step = slice(x, 1, t, t + 1);
    const Tensor out =
        mha.forward(step, step, step, AttentionMask{true, {}, {}, {}}, AttentionWeights::none, &cache).output;
    EXPECT_LT(max_abs_diff(out, slice(full_out, 1, t, t + 1)), 1e-5)
        << "H " << H << " Hkv " << Hkv << " rotary " << rotary << " step " << t;
  }
  EXPECT_EQ(cache.length(), 7);
}

TEST(MultiheadAttention, CachedDecodingMatchesTheFullPrefix) {
  expect_cached_decoding_matches(4, 4);
  expect_cached_decoding_matches(4, 2);
  expect_cached_decoding_matches(4, 1);
}

TEST(MultiheadAttention, CachedDecodingWithRotaryPositionsMatchesTheFullPrefix) {
  expect_cached_decoding_matches(4, 4, true);
  expect_cached_decoding_matches(4, 2, true);
  expect_cached_decoding_matches(4, 1, true);
}

// With rotary positions the module is: project, split into heads, rotate q and k by their
// positions, attend, combine, out_proj (here grouped-query, part of each head rotating, base 100).
TEST(MultiheadAttention, RotaryRotatesQueriesAndKeysBetweenProjectionAndAttention) {
  Generator g(5);
  nn::MultiheadAttentionOptions o = mha_options(24, 4, 2);
  o.rotary = true;
  o.rope_base = 100.0;
  o.rope_dim = 4;
  nn::MultiheadAttention mha(o, g);
  {
    NoGradGuard no_grad;
    Tensor(mha.in_proj_bias).copy_(randn(mha.in_proj_bias.shape(), g));  // zero at init: make it count
  }
  const Tensor x = randn({2, 6, 24}, g);
  const AttentionMask causal{true, {}, {}, {}};
  const Tensor q = linear(x, mha.q_proj_weight, slice(mha.in_proj_bias, 0, 0, 24));
  const Tensor k = linear(x, mha.k_proj_weight, slice(mha.in_proj_bias, 0, 24, 36));
  const Tensor v = linear(x, mha.v_proj_weight, slice(mha.in_proj_bias, 0, 36, 48));
  const Tensor heads = attention(rope(nn::split_heads(q, 4), 0, 100.0, 4), rope(nn::split_heads(k, 2), 0, 100.0, 4),
                                 nn::split_heads(v, 2), causal);
  const Tensor want = mha.out_proj->forward(nn::combine_heads(heads));
  const Tensor got = mha.forward(x, x, x, causal).output;
  EXPECT_LT(max_abs_diff(got, want), 1e-6);
  o.rotary = false;
  nn::MultiheadAttention plain(o, g);
  plain.load_state_dict(mha.named_parameters());
  EXPECT_GT(max_abs_diff(plain.forward(x, x, x, causal).output, got), 1e-3) << "the rotation changes the output";
  // what rotary cannot do is refused by name
  for (const std::int64_t bad_dim : {3, 8}) {
    o.rotary = true;
    o.rope_dim = bad_dim;
    EXPECT_THROW(nn::MultiheadAttention(o, g), std::invalid_argument) << bad_dim;
  }
  o.rope_dim = 0;
  o.kdim = 12;
  EXPECT_THROW(nn::MultiheadAttention(o, g), std::invalid_argument);
  nn::KVCache memory(nn::KVCache::Kind::memory);
  EXPECT_THROW(mha.forward(x, x, x, {}, AttentionWeights::none, &memory), std::invalid_argument);
}

TEST(MultiheadAttention, TheTiledKernelGivesThePlainOnesOutputsGradientsAndCachedSteps) {
  Generator g(6);
  nn::MultiheadAttentionOptions o = mha_options(32, 4, 2);
  nn::MultiheadAttention plain(o, g);
  o.kernel = nn::AttentionKernel::tiled;
  nn::MultiheadAttention tiled(o, g);
  tiled.load_state_dict(plain.named_parameters());
  const Tensor x0 = randn({2, 9, 32}, g), w = randn({2, 9, 32}, g);
  AttentionMask m;
  m.causal = true;
  m.key_padding_mask =
      gt(from_vector(std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 9}),
         from_vector(std::vector<std::int64_t>{0}, {1}));
  std::vector<Tensor> out, dx;
  for (nn::MultiheadAttention* mha : {&plain, &tiled}) {
    const Tensor x = x0.clone().requires_grad_();
    out.push_back(mha->forward(x, x, x, m).output);
    sum(out.back() * w).backward();
    dx.push_back(x.grad());
  }
  EXPECT_LT(max_abs_diff(out[1], out[0]), 1e-5);
  EXPECT_LT(max_abs_diff(dx[1], dx[0]), 1e-5);
  const auto& pp = plain.named_parameters();
  const auto& tp = tiled.named_parameters();
  for (std::size_t i = 0; i < pp.size(); ++i)
    EXPECT_LT(max_abs_diff(tp[i].second.grad(), pp[i].second.grad()), 1e-5) << pp[i].first;
  // decoding with the cache, a prompt of 4 then one step at a time
  NoGradGuard no_grad;
  nn::KVCache cache;
  std::vector<Tensor> steps{tiled
                                .forward(slice(x0, 1, 0, 4), slice(x0, 1, 0, 4), slice(x0, 1, 0, 4),
                                         AttentionMask{true, {}, {}, {}}, AttentionWeights::none, &cache)
                                .output};
  for (std::int64_t t = 4; t < 9; ++t) {
    const Tensor xt = slice(x0, 1, t, t + 1);
    steps.push_back(tiled.forward(xt, xt, xt, AttentionMask{true, {}, {}, {}}, AttentionWeights::none, &cache).output);
  }
  EXPECT_LT(max_abs_diff(concat(steps, 1), plain.forward(x0, x0, x0, AttentionMask{true, {}, {}, {}}).output), 1e-5);
}

TEST(MultiheadAttention, TheTiledKernelRefusesCallsThatNeedTheWeights) {
  Generator g(7);
  nn::MultiheadAttentionOptions o = mha_options(16, 2);
  o.kernel = nn::AttentionKernel::tiled;
  o.dropout = 0.1;
  nn::MultiheadAttention mha(o, g);
  const Tensor x = randn({1, 5, 16}, g);
  std::string e = error_of([&] { (void)mha.forward(x, x, x); });  // dropout on the weights in training
  EXPECT_NE(e.find("the tiled kernel never forms the attention weights"), std::string::npos) << e;
  e = error_of([&] { (void)mha.forward(x, x, x, {}, AttentionWeights::per_head); });
  EXPECT_NE(e.find("use the plain or automatic kernel"), std::string::npos) << e;
  mha.eval();  // no dropout, no weights asked for: tiled
  EXPECT_EQ(mha.forward(x, x, x).output.shape(), (Shape{1, 5, 16}));
  EXPECT_EQ(nn::attention_kernel_from_name("auto"), nn::AttentionKernel::automatic);
  EXPECT_EQ(nn::attention_kernel_name(nn::AttentionKernel::tiled), "tiled");
  EXPECT_THROW(nn::attention_kernel_from_name("fast"), std::invalid_argument);
}

TEST(MultiheadAttention, MemoryCacheProjectsTheEncoderOutputOnce) {
  Generator g(4);
  auto o = mha_options(16, 2);
  o.kdim = o.vdim = 12;
  const nn::MultiheadAttention mha(o, g);
  const Tensor memory = randn({2, 6, 12}, g), q1 = randn({2, 1, 16}, g), q2 = randn({2, 1, 16}, g);
  nn::KVCache cache(nn::KVCache::Kind::memory);
  const Tensor a = mha.forward(q1, memory, memory, {}, AttentionWeights::none, &cache).output;
  EXPECT_EQ(cache.length(), 6);
  // the second call ignores key/value: the cached projection is used
  const Tensor b = mha.forward(q2, Tensor(), Tensor(), {}, AttentionWeights::none, &cache).output;
  EXPECT_EQ(cache.length(), 6);
  EXPECT_LT(max_abs_diff(a, mha.forward(q1, memory, memory).output), 1e-6);
  EXPECT_LT(max_abs_diff(b, mha.forward(q2, memory, memory).output), 1e-6);
}

TEST(MultiheadAttention, DropoutOnlyInTrainingMode) {
  Generator g(5);
  auto o = mha_options(16, 4);
  o.dropout = 0.5;
  nn::MultiheadAttention mha(o, g);
  const Tensor x = randn({2, 5, 16}, g);
  mha.eval();
  const Tensor a = mha.forward(x, x, x).output, b = mha.forward(x, x, x).output;
  EXPECT_EQ(max_abs_diff(a, b), 0.0);
  mha.train();
  EXPECT_GT(max_abs_diff(mha.forward(x, x, x).output, a), 1e-3);
}

// ---- head gates and DropHead: a masked head contributes nothing and receives no gradient, the
// gate's gradient is the loss's derivative (finite differences), DropHead drops whole heads per
// example and rescales the rest

namespace gates {

constexpr std::int64_t C = 16, H = 4, D = C / H;

nn::MultiheadAttention make_attention(std::uint64_t seed, double drophead = 0.0, Generator* drop_gen = nullptr) {
  Generator g(seed);
  nn::MultiheadAttentionOptions o;
  o.embed_dim = C;
  o.num_heads = H;
  o.drophead = drophead;
  o.dropout_generator = drop_gen;
  return nn::MultiheadAttention(o, g);
}

// Rows [r0, r1) of a (rows, cols) tensor as doubles.
std::vector<double> rows_of(const Tensor& t, std::int64_t r0, std::int64_t r1) {
  return values(slice(t.detach(), 0, r0, r1));
}
std::vector<double> cols_of(const Tensor& t, std::int64_t c0, std::int64_t c1) {
  return values(slice(t.detach(), 1, c0, c1));
}
bool all_zero(const std::vector<double>& v) {
  for (double x : v)
    if (x != 0.0) return false;
  return true;
}

TEST(HeadGate, AMaskedHeadContributesNothingAndReceivesNoGradient) {
  nn::MultiheadAttention mha = make_attention(1);
  Generator g(2);
  const Tensor x = randn({3, 5, C}, g).requires_grad_();
  const std::int64_t masked = 2;
  mha.set_head_gate(from_vector(std::vector<float>{1, 1, 0, 1}, {H}));
  const Tensor y = mha.forward(x, x, x).output;

  // the output does not move when the masked head's q, k and v projections change
  {
    NoGradGuard no_grad;
    Tensor w = mha.in_proj_weight;
    for (int part = 0; part < 3; ++part) {
      Tensor block = slice(w, 0, part * C + masked * D, part * C + (masked + 1) * D);
      block.copy_(randn(block.shape(), g));
    }
    EXPECT_EQ(max_abs_diff(mha.forward(x, x, x).output, y), 0.0);
  }

  sum(y * y).backward();
  for (int part = 0; part < 3; ++part) {
    const std::int64_t r0 = part * C;
    EXPECT_TRUE(all_zero(rows_of(mha.in_proj_weight.grad(), r0 + masked * D, r0 + (masked + 1) * D))) << part;
    EXPECT_TRUE(
        all_zero(rows_of(reshape(mha.in_proj_bias.grad(), {3 * C, 1}), r0 + masked * D, r0 + (masked + 1) * D)));
    EXPECT_FALSE(all_zero(rows_of(mha.in_proj_weight.grad(), r0, r0 + D))) << "head 0 must still learn";
  }
  EXPECT_TRUE(all_zero(cols_of(mha.out_proj->weight.grad(), masked * D, (masked + 1) * D)));
  EXPECT_FALSE(all_zero(cols_of(mha.out_proj->weight.grad(), 0, D)));
}

TEST(HeadGate, AllOnesIsTheUngatedModuleAndBadGatesAreRefused) {
  nn::MultiheadAttention mha = make_attention(3);
  Generator g(4);
  const Tensor x = randn({2, 6, C}, g);
  const Tensor plain = mha.forward(x, x, x).output;
  mha.set_head_gate(ones({H}));
  EXPECT_EQ(max_abs_diff(mha.forward(x, x, x).output, plain), 0.0);
  mha.clear_head_gate();
  EXPECT_FALSE(mha.head_gate().defined());
  EXPECT_THROW(mha.set_head_gate(ones({H + 1})), std::invalid_argument);
  EXPECT_THROW(mha.set_head_gate(ones({2, H + 1})), std::invalid_argument);
  EXPECT_THROW(mha.set_head_gate(ones({1, 2, H})), std::invalid_argument);
  EXPECT_THROW(mha.set_head_gate(ones({H}, DType::int64)), std::invalid_argument);
  mha.set_head_gate(ones({3, H}));  // per example, for a batch of 3: this batch has 2
  EXPECT_THROW(mha.forward(x, x, x), std::invalid_argument);
  EXPECT_THROW(mha.set_drophead(1.0), std::invalid_argument);
  EXPECT_THROW(mha.set_drophead(-0.1), std::invalid_argument);
}

// dL/dgate_h is what Michel et al.'s head importance averages: against central differences of
// the loss in each gate.
TEST(HeadGate, GateGradientMatchesFiniteDifferences) {
  nn::MultiheadAttention mha = make_attention(5);  // float32, the loss summed in double
  Generator g(6);
  const Tensor x = randn({2, 7, C}, g);
  const Tensor target = randn({2, 7, C}, g);
  const auto loss = [&](const Tensor& gate) {
    mha.set_head_gate(gate);
    const Tensor y = to_dtype(mha.forward(x, x, x).output, DType::float64);
    const Tensor d = y - to_dtype(target, DType::float64);
    return sum(d * d * d * d);  // not quadratic in the gate: the difference quotient is not exact
  };
  const std::vector<double> at{0.9, 0.3, 1.0, 0.6};
  const Tensor gate = from_vector(at, {H}).requires_grad_();
  loss(gate).backward();
  const std::vector<double> analytic = values(gate.grad());
  const double eps = 1e-2;  // the float32 forward's rounding stays far below eps * gradient
  for (std::int64_t h = 0; h < H; ++h) {
    std::vector<double> up = at, down = at;
    up[h] += eps;
    down[h] -= eps;
    NoGradGuard no_grad;
    const double numeric = (loss(from_vector(up, {H})).item() - loss(from_vector(down, {H})).item()) / (2 * eps);
    EXPECT_NEAR(analytic[h], numeric, 1e-3 * (1.0 + std::abs(numeric))) << "head " << h;
  }
}

// A (B, H) gate gates each example on its own: example b's output is the module's output for
// that example alone under gate row b, and with the examples' losses summed, row b of the
// gradient is example b's own d loss / d gate.
TEST(HeadGate, PerExampleGatesActOnTheirOwnExample) {
  nn::MultiheadAttention mha = make_attention(12);
  Generator g(13);
  const std::int64_t B = 3, T = 5;
  const Tensor x = randn({B, T, C}, g);
  const std::vector<double> rows{1, 0, 1, 1, 0.5, 1, 0.25, 1, 1, 1, 1, 0};
  const Tensor gate = from_vector(rows, {B, H}).requires_grad_();
  mha.set_head_gate(gate);
  const Tensor y = mha.forward(x, x, x).output;
  sum(y * y).backward();
  const std::vector<double> together = values(y), grad = values(gate.grad());
  for (std::int64_t b = 0; b < B; ++b) {
    const Tensor xb = slice(x, 0, b, b + 1);
    const std::vector<double> row(rows.begin() + b * H, rows.begin() + (b + 1) * H);
    const Tensor gate_b = from_vector(row, {H}).requires_grad_();
    mha.set_head_gate(gate_b);
    const Tensor yb = mha.forward(xb, xb, xb).output;
    sum(yb * yb).backward();
    const std::vector<double> alone = values(yb), grad_b = values(gate_b.grad());
    for (std::int64_t i = 0; i < T * C; ++i) ASSERT_NEAR(together[b * T * C + i], alone[i], 1e-5) << b;
    for (std::int64_t h = 0; h < H; ++h)
      EXPECT_NEAR(grad[b * H + h], grad_b[h], 1e-4 * (1 + std::abs(grad_b[h]))) << b << " " << h;
  }
  EXPECT_NE(grad[0 * H + 1], 0.0);  // a closed gate still has a gradient: the loss's slope at 0
}

// With out_proj the identity and no bias, the output's columns are the heads themselves, so
// each (example, head) block of a DropHead output is the plain block times 0 or H / kept.
TEST(DropHead, DropsWholeHeadsPerExampleAndRescalesTheRest) {
  Generator drop(11);
  nn::MultiheadAttention mha = make_attention(7, 0.5, &drop);
  {
    NoGradGuard no_grad;
    std::vector<float> identity(C * C, 0.0f);
    for (std::int64_t i = 0; i < C; ++i) identity[i * C + i] = 1.0f;
    mha.out_proj->weight.copy_(from_vector(identity, {C, C}));
    mha.out_proj->bias.copy_(zeros({C}));
  }
  Generator g(8);
  const std::int64_t B = 400, T = 3;
  const Tensor x = randn({B, T, C}, g);
  mha.eval();
  const std::vector<double> plain = values(mha.forward(x, x, x).output);
  mha.train();
  const std::vector<double> dropped = values(mha.forward(x, x, x).output);
  std::int64_t zeros_seen = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    std::vector<double> factor(H);
    std::int64_t kept = 0;
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t at = (b * T) * C + h * D;  // the first element of the block in row 0
      factor[h] = dropped[at] / plain[at];
      kept += std::abs(factor[h]) > 1e-6;
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t d = 0; d < D; ++d) {
          const std::int64_t i = (b * T + t) * C + h * D + d;
          ASSERT_NEAR(dropped[i], factor[h] * plain[i], 1e-5 * (1 + std::abs(plain[i]))) << b << " " << h;
        }
    }
    zeros_seen += H - kept;
    for (std::int64_t h = 0; h < H; ++h) {
      if (std::abs(factor[h]) > 1e-6) {
        EXPECT_NEAR(factor[h], double(H) / double(kept), 1e-5) << b;
      }
    }
  }
  const double rate = double(zeros_seen) / double(B * H);
  EXPECT_NEAR(rate, 0.5, 0.05);  // 1,600 draws: 4 standard deviations
  // eval mode and rate 0 are the plain module
  mha.eval();
  EXPECT_EQ(values(mha.forward(x, x, x).output), plain);
  mha.train();
  mha.set_drophead(0.0);
  EXPECT_EQ(values(mha.forward(x, x, x).output), plain);
}

// Every attention block of a model is reachable by its path, for gates and DropHead rates.
TEST(HeadGate, AttentionModulesAreFoundByPath) {
  Generator g(9);
  nn::TransformerOptions o;
  o.d_model = C;
  o.nhead = H;
  o.num_encoder_layers = 2;
  o.num_decoder_layers = 1;
  o.dim_feedforward = 32;
  nn::Transformer model(o, g);
  std::vector<std::string> names;
  for (const auto& [name, mha] : nn::attention_modules(model)) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.layers.0.self_attn", "encoder.layers.1.self_attn",
                                             "decoder.layers.0.self_attn", "decoder.layers.0.multihead_attn"}));
}

}  // namespace gates

}  // namespace
}  // namespace rune
