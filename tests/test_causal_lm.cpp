// nn/causal_lm: the decoder-only model's names, sizes, initialisation, causality and cached decoding.
// Its values and gradients against PyTorch: tests/parity (ParityCausalLM).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "nn/causal_lm.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

nn::CausalLMOptions small(nn::PositionKind positions, bool tie = true, std::int64_t kv_heads = 0) {
  nn::CausalLMOptions o;
  o.vocab = 13;
  o.max_len = 16;
  o.num_layers = 2;
  o.positions = positions;
  o.tie_output = tie;
  o.layer.d_model = 16;
  o.layer.nhead = 4;
  o.layer.num_kv_heads = kv_heads;
  o.layer.dim_feedforward = 32;
  o.layer.dropout = 0.0;
  return o;
}

Tensor random_ids(std::int64_t B, std::int64_t T, std::int64_t V, Generator& g) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(B * T));
  for (auto& id : ids) id = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(V)));
  return from_vector(ids, {B, T});
}

TEST(CausalLM, NamesItsParametersAsDocumentedAndCountsThemFromItsOptions) {
  for (const nn::PositionKind p : {nn::PositionKind::learned, nn::PositionKind::sinusoidal, nn::PositionKind::rotary})
    for (const bool tie : {true, false})
      for (const std::int64_t kv : {0, 1}) {
        const nn::CausalLMOptions o = small(p, tie, kv);
        const nn::CausalLM model(o);
        double count = 0;
        bool has_positions = false, has_head = false, has_final_norm = false;
        for (const auto& [name, t] : model.named_parameters()) {
          count += static_cast<double>(t.numel());
          has_positions = has_positions || name == "positions.weight";
          has_head = has_head || name == "lm_head.weight";
          has_final_norm = has_final_norm || name == "decoder.norm.weight";
        }
        SCOPED_TRACE(nn::position_kind_name(p) + (tie ? " tied" : " untied") + " kv " + std::to_string(kv));
        EXPECT_EQ(count, nn::parameter_count(o));
        EXPECT_EQ(has_positions, p == nn::PositionKind::learned);
        EXPECT_EQ(has_head, !tie);
        EXPECT_TRUE(has_final_norm);
        const auto& block = (*model.decoder->layers)[0];
        EXPECT_TRUE(block.options.norm_first);
        EXPECT_EQ(block.self_attn->options.rotary, p == nn::PositionKind::rotary);
      }
}

TEST(CausalLM, StartsFromGpt2sInitialisation) {
  nn::CausalLMOptions o = small(nn::PositionKind::learned, false);
  o.layer.d_model = 128;
  o.layer.nhead = 4;
  o.layer.dim_feedforward = 512;
  o.vocab = 500;
  o.num_layers = 8;
  Generator g(3);
  const nn::CausalLM model(o, g);
  const auto stddev = [](const Tensor& t) {
    const std::vector<double> v = values(t);
    double s = 0, s2 = 0;
    for (const double x : v) s += x, s2 += x * x;
    const double n = static_cast<double>(v.size()), mean = s / n;
    return std::sqrt(s2 / n - mean * mean);
  };
  const auto& block = (*model.decoder->layers)[3];
  const double residual = 0.02 / std::sqrt(16.0);
  EXPECT_NEAR(stddev(model.embed->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(model.positions->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(model.lm_head->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(block.self_attn->in_proj_weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(block.linear1->weight), 0.02, 0.001);
  EXPECT_NEAR(stddev(block.self_attn->out_proj->weight), residual, residual / 20);
  EXPECT_NEAR(stddev(block.linear2->weight), residual, residual / 20);
  EXPECT_EQ(max_abs(block.self_attn->in_proj_bias), 0.0);
  EXPECT_EQ(max_abs(block.linear1->bias), 0.0);
  EXPECT_EQ(stddev(block.norm1->weight), 0.0);  // LayerNorm's ones
}

TEST(CausalLM, LogitsAtAPositionDoNotDependOnLaterTokens) {
  for (const nn::PositionKind p : {nn::PositionKind::learned, nn::PositionKind::sinusoidal, nn::PositionKind::rotary}) {
    Generator g(5);
    const nn::CausalLM model(small(p), g);
    const Tensor ids = random_ids(1, 9, 13, g);
    std::vector<std::int64_t> changed =
        std::vector<std::int64_t>(ids.data<std::int64_t>(), ids.data<std::int64_t>() + 9);
    changed[6] = (changed[6] + 1) % 13;
    NoGradGuard no_grad;
    const Tensor a = model.forward(ids), b = model.forward(from_vector(changed, {1, 9}));
    SCOPED_TRACE(nn::position_kind_name(p));
    EXPECT_EQ(max_abs_diff(slice(a, 1, 0, 6), slice(b, 1, 0, 6)), 0.0);
    EXPECT_GT(max_abs_diff(slice(a, 1, 6, 9), slice(b, 1, 6, 9)), 1e-4);
  }
}

TEST(CausalLM, CachedDecodingEqualsTheFullRecomputeForEveryKindOfPosition) {
  for (const nn::PositionKind p : {nn::PositionKind::learned, nn::PositionKind::sinusoidal, nn::PositionKind::rotary})
    for (const std::int64_t kv : {0, 2, 1}) {
      Generator g(7);
      const nn::CausalLM model(small(p, kv != 2, kv), g);
      const Tensor ids = random_ids(3, 11, 13, g);
      NoGradGuard no_grad;
      const Tensor full = model.forward(ids);  // (3, 11, V)
      nn::EncoderCache cache = model.make_cache();
      // a prompt of 4 positions at once, then one at a time
      std::vector<Tensor> steps{model.forward(slice(ids, 1, 0, 4).contiguous(), &cache)};
      for (std::int64_t t = 4; t < 11; ++t)
        steps.push_back(model.forward(slice(ids, 1, t, t + 1).contiguous(), &cache));
      SCOPED_TRACE(nn::position_kind_name(p) + " kv " + std::to_string(kv));
      EXPECT_EQ(cache.length(), 11);
      EXPECT_LT(max_abs_diff(concat(steps, 1), full), 1e-5);
    }
}

TEST(CausalLM, RefusesPositionsBeyondItsContext) {
  const nn::CausalLM model(small(nn::PositionKind::rotary));
  NoGradGuard no_grad;
  nn::EncoderCache cache = model.make_cache();
  (void)model.forward(zeros({1, 10}, DType::int64), &cache);
  const std::string e = error_of([&] { (void)model.forward(zeros({1, 7}, DType::int64), &cache); });
  EXPECT_NE(e.find("10 cached and 7 new positions exceed the model's context of 16"), std::string::npos) << e;
}

}  // namespace
}  // namespace rune
