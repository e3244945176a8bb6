// Transformer layers and stacks (nn/transformer.hpp): names, the pre-LN / post-LN wiring, masks,
// dropout modes, KV-cache decoding against the full prefix (the decoder, and a causal encoder
// stack with rotary positions as a decoder-only model's body), and the encoder-decoder's
// log-probability of a target (nn/seq2seq.hpp). PyTorch parity (values and
// gradients of torch.nn.TransformerEncoderLayer, DecoderLayer and Transformer) is in tests/parity/.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "nn/seq2seq.hpp"
#include "nn/transformer.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

nn::TransformerLayerOptions small(bool norm_first, nn::Activation a = nn::Activation::relu, double dropout = 0.0) {
  nn::TransformerLayerOptions o;
  o.d_model = 16;
  o.nhead = 4;
  o.dim_feedforward = 32;
  o.dropout = dropout;
  o.activation = a;
  o.norm_first = norm_first;
  return o;
}

TEST(Transformer, NamesAreTorchNn) {
  Generator g(0);
  nn::TransformerOptions o;
  o.d_model = 16;
  o.nhead = 4;
  o.num_encoder_layers = 2;
  o.num_decoder_layers = 1;
  o.dim_feedforward = 32;
  const nn::Transformer t(o, g);
  std::vector<std::string> names;
  for (const auto& [n, p] : t.named_parameters()) names.push_back(n);
  const std::vector<std::string> want = {"encoder.layers.0.self_attn.in_proj_weight",
                                         "encoder.layers.0.self_attn.in_proj_bias",
                                         "encoder.layers.0.self_attn.out_proj.weight",
                                         "encoder.layers.0.self_attn.out_proj.bias",
                                         "encoder.layers.0.linear1.weight",
                                         "encoder.layers.0.linear1.bias",
                                         "encoder.layers.0.linear2.weight",
                                         "encoder.layers.0.linear2.bias",
                                         "encoder.layers.0.norm1.weight",
                                         "encoder.layers.0.norm1.bias",
                                         "encoder.layers.0.norm2.weight",
                                         "encoder.layers.0.norm2.bias"};
  ASSERT_GE(names.size(), want.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 12), want);
  EXPECT_EQ(names[12], "encoder.layers.1.self_attn.in_proj_weight");
  EXPECT_EQ(names[24], "encoder.norm.weight");
  EXPECT_EQ(names[26], "decoder.layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(names[30], "decoder.layers.0.multihead_attn.in_proj_weight");
  EXPECT_EQ(names.back(), "decoder.norm.bias");
  EXPECT_EQ(names.size(), 26u + 4 + 4 + 4 + 6 + 2);
}

// parameter_count() from the options equals the built module's count: bias or not, grouped-query
// attention, both stacks; and Seq2SeqTransformer with tied or untied output, learned positions.
TEST(Transformer, ParameterCountsFromOptionsMatchTheBuiltModules) {
  Generator g(0);
  for (const bool bias : {true, false})
    for (const std::int64_t kv_heads : {0, 1, 2}) {
      nn::TransformerOptions o;
      o.d_model = 16;
      o.nhead = 4;
      o.num_kv_heads = kv_heads;
      o.bias = bias;
      o.num_encoder_layers = 2;
      o.num_decoder_layers = 3;
      o.dim_feedforward = 24;
      EXPECT_EQ(nn::parameter_count(o.layer(), false),
                static_cast<double>(nn::TransformerEncoderLayer(o.layer(), g).num_parameters()));
      EXPECT_EQ(nn::parameter_count(o.layer(), true),
                static_cast<double>(nn::TransformerDecoderLayer(o.layer(), g).num_parameters()));
      EXPECT_EQ(nn::parameter_count(o), static_cast<double>(nn::Transformer(o, g).num_parameters()))
          << "bias " << bias << ", kv heads " << kv_heads;
    }
  for (const bool tied : {false, true})
    for (const bool learned : {false, true}) {
      nn::Seq2SeqOptions o;
      o.src_vocab = 11;
      o.tgt_vocab = 13;
      o.max_len = 9;
      o.tie_output = tied;
      o.learned_positions = learned;
      o.transformer.d_model = 8;
      o.transformer.nhead = 2;
      o.transformer.num_encoder_layers = 1;
      o.transformer.num_decoder_layers = 2;
      o.transformer.dim_feedforward = 16;
      EXPECT_EQ(nn::parameter_count(o), static_cast<double>(nn::Seq2SeqTransformer(o, g).num_parameters()))
          << "tied " << tied << ", learned positions " << learned;
    }
  nn::TransformerOptions huge;
  huge.d_model = 1000000000;
  huge.dim_feedforward = 4000000000;
  EXPECT_GT(nn::parameter_count(huge), 1e19) << "sizes never wrap around";
}

TEST(Transformer, EncoderLayerWiringPreAndPostNorm) {
  for (bool pre : {false, true}) {
    Generator g(1);
    const nn::TransformerEncoderLayer layer(small(pre, nn::Activation::gelu), g);
    const Tensor x = randn({2, 5, 16}, g);
    const auto sa = [&](const Tensor& t) { return layer.self_attn->forward(t, t, t).output; };
    const auto ff = [&](const Tensor& t) { return layer.linear2->forward(gelu(layer.linear1->forward(t))); };
    Tensor want;
    if (pre) {
      const Tensor h = x + sa(layer.norm1->forward(x));
      want = h + ff(layer.norm2->forward(h));
    } else {
      const Tensor h = layer.norm1->forward(x + sa(x));
      want = layer.norm2->forward(h + ff(h));
    }
    EXPECT_LT(max_abs_diff(layer.forward(x), want), 1e-6) << (pre ? "pre-LN" : "post-LN");
  }
}

TEST(Transformer, KeyPaddingChangesNothingForUnpaddedSequences) {
  Generator g(2);
  const nn::TransformerEncoderLayer layer(small(false), g);
  const Tensor x = randn({2, 6, 16}, g);
  AttentionMask pad;
  pad.key_padding_mask =
      to_dtype(from_vector(std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, {2, 6}), DType::bool_);
  const Tensor masked = layer.forward(x, pad), plain = layer.forward(x);
  EXPECT_LT(max_abs_diff(slice(masked, 0, 0, 1), slice(plain, 0, 0, 1)), 1e-6);
  EXPECT_GT(max_abs_diff(slice(masked, 0, 1, 2), slice(plain, 0, 1, 2)), 1e-4);
  // the padded batch entry equals running its 4 real tokens alone
  const Tensor alone = layer.forward(slice(slice(x, 0, 1, 2), 1, 0, 4));
  EXPECT_LT(max_abs_diff(slice(slice(masked, 0, 1, 2), 1, 0, 4), alone), 1e-5);
}

// Step-by-step decoding with caches gives the logits of running the whole prefix at once.
void expect_cached_decoder_matches(bool norm_first, std::int64_t num_kv_heads) {
  Generator g(3);
  nn::TransformerLayerOptions o = small(norm_first);
  o.num_kv_heads = num_kv_heads;
  const nn::TransformerDecoder dec(o, 2, true, g);
  const Tensor memory = randn({2, 7, 16}, g), tgt = randn({2, 6, 16}, g);
  AttentionMask causal, memory_mask;
  causal.causal = true;
  memory_mask.key_padding_mask =
      to_dtype(from_vector(std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, {2, 7}), DType::bool_);
  const Tensor full = dec.forward(tgt, memory, causal, memory_mask);  // (B, T, C)
  NoGradGuard no_grad;
  nn::DecoderCache cache = dec.make_cache();
  for (std::int64_t t = 0; t < 6; ++t) {
    const Tensor step = dec.forward(slice(tgt, 1, t, t + 1), memory, causal, memory_mask, &cache);
    EXPECT_LT(max_abs_diff(step, slice(full, 1, t, t + 1)), 1e-5)
        << (norm_first ? "pre-LN" : "post-LN") << ", kv heads " << num_kv_heads << ", step " << t;
  }
  EXPECT_EQ(cache.length(), 6);
  EXPECT_EQ(cache.layers[1].cross_attn.length(), 7);
}

TEST(Transformer, CachedDecodingMatchesTheFullPrefix) {
  expect_cached_decoder_matches(false, 0);
  expect_cached_decoder_matches(true, 0);
  expect_cached_decoder_matches(false, 2);  // grouped-query
  expect_cached_decoder_matches(true, 1);   // multi-query
}

// A causal encoder stack is a decoder-only model's body: decoding it a step at a time with its
// caches gives the full prefix's outputs, with learned-style (none) or rotary positions, MHA or
// grouped or multi-query heads; also when the first call holds a prompt of several positions.
void expect_cached_encoder_stack_matches(bool rotary, std::int64_t num_kv_heads, std::int64_t prompt) {
  Generator g(4);
  nn::TransformerLayerOptions o = small(true, nn::Activation::gelu);
  o.num_kv_heads = num_kv_heads;
  o.rotary = rotary;
  o.rope_dim = rotary && num_kv_heads == 1 ? 2 : 0;
  const nn::TransformerEncoder stack(o, 3, true, g);
  const Tensor x = randn({2, 7, 16}, g);
  AttentionMask causal;
  causal.causal = true;
  const Tensor full = stack.forward(x, causal);
  NoGradGuard no_grad;
  nn::EncoderCache cache = stack.make_cache();
  const Tensor first = stack.forward(slice(x, 1, 0, prompt), causal, &cache);
  EXPECT_LT(max_abs_diff(first, slice(full, 1, 0, prompt)), 1e-5) << "the prompt";
  for (std::int64_t t = prompt; t < 7; ++t) {
    const Tensor step = stack.forward(slice(x, 1, t, t + 1), causal, &cache);
    EXPECT_LT(max_abs_diff(step, slice(full, 1, t, t + 1)), 1e-5)
        << "rotary " << rotary << ", kv heads " << num_kv_heads << ", prompt " << prompt << ", step " << t;
  }
  EXPECT_EQ(cache.length(), 7);
}

TEST(Transformer, ACausalEncoderStackDecodesWithItsCachesAsItRunsTheWholePrefix) {
  expect_cached_encoder_stack_matches(false, 0, 1);
  expect_cached_encoder_stack_matches(true, 0, 1);
  expect_cached_encoder_stack_matches(true, 2, 3);  // grouped-query, a prompt of 3
  expect_cached_encoder_stack_matches(true, 1, 4);  // multi-query, part of each head rotating
  // rotary positions go to the self-attention only, never to a decoder's cross-attention
  nn::TransformerLayerOptions o = small(true);
  o.rotary = true;
  const nn::TransformerDecoderLayer layer(o);
  EXPECT_TRUE(layer.self_attn->options.rotary);
  EXPECT_FALSE(layer.multihead_attn->options.rotary);
  // a cache made for another stack is refused by name
  const nn::TransformerEncoder two(o, 2, false), three(o, 3, false);
  nn::EncoderCache wrong = two.make_cache();
  try {
    (void)three.forward(zeros({1, 1, 16}), {}, &wrong);
    FAIL() << "a 2-layer cache on a 3-layer stack";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the cache has 2 layers, the encoder 3"), std::string::npos) << e.what();
  }
}

TEST(Transformer, CausalDecoderOutputsDoNotSeeTheFuture) {
  Generator g(4);
  const nn::TransformerDecoderLayer layer(small(true), g);
  const Tensor memory = randn({1, 4, 16}, g);
  const Tensor tgt = randn({1, 5, 16}, g).requires_grad_();
  AttentionMask causal;
  causal.causal = true;
  const Tensor y = layer.forward(tgt, memory, causal);
  sum(slice(y, 1, 2, 3)).backward();  // output 2 depends on inputs 0..2 only
  const Tensor gt = to_dtype(tgt.grad(), DType::float64).contiguous();
  for (std::int64_t t = 0; t < 5; ++t) {
    double m = 0;
    for (std::int64_t c = 0; c < 16; ++c) m = std::max(m, std::abs(gt.data<double>()[t * 16 + c]));
    if (t <= 2)
      EXPECT_GT(m, 0.0) << t;
    else
      EXPECT_EQ(m, 0.0) << t;
  }
}

TEST(Transformer, DropoutIsActiveInTrainingOnly) {
  Generator g(5);
  nn::TransformerEncoder enc(small(false, nn::Activation::relu, 0.3), 2, true, g);
  const Tensor x = randn({2, 5, 16}, g);
  enc.eval();
  EXPECT_EQ(max_abs_diff(enc.forward(x), enc.forward(x)), 0.0);
  enc.train();
  EXPECT_GT(max_abs_diff(enc.forward(x), enc.forward(x)), 1e-3);
}

TEST(Transformer, BadOptionsAndShapesNameTheProblem) {
  nn::TransformerLayerOptions o = small(false);
  o.d_model = 18;
  try {
    nn::TransformerEncoderLayer bad(o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("d_model 18 is not divisible by nhead 4"), std::string::npos) << e.what();
  }
  EXPECT_EQ(nn::activation_from_name("gelu"), nn::Activation::gelu);
  EXPECT_THROW(nn::activation_from_name("swish"), std::invalid_argument);
  Generator g(6);
  nn::TransformerOptions t;
  t.d_model = 16;
  t.nhead = 4;
  t.num_encoder_layers = t.num_decoder_layers = 1;
  t.dim_feedforward = 32;
  const nn::Transformer model(t, g);
  EXPECT_THROW(model.forward(zeros({2, 3, 16}), zeros({3, 3, 16})), std::invalid_argument);
  const nn::TransformerDecoder dec(small(false), 2, false, g);
  nn::DecoderCache wrong;
  wrong.layers.resize(1);
  EXPECT_THROW(dec.forward(zeros({1, 1, 16}), zeros({1, 2, 16}), {}, {}, &wrong), std::invalid_argument);
}

// log P(tgt_out | src): the log-softmax of each target token, summed over the positions that are
// not padding; a row padded in a batch scores as it does alone.
TEST(Seq2Seq, LogProbabilitySumsTheTargetTokensSkippingPadding) {
  nn::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = 9;
  o.transformer.d_model = 16;
  o.transformer.nhead = 2;
  o.transformer.num_encoder_layers = o.transformer.num_decoder_layers = 1;
  o.transformer.dim_feedforward = 32;
  o.transformer.dropout = 0.0;
  Generator g(4);
  nn::Seq2SeqTransformer model(o, g);
  model.eval();
  const auto ids = [](std::vector<std::int64_t> v, std::int64_t rows) {
    const auto n = static_cast<std::int64_t>(v.size());
    return from_vector(v, {rows, n / rows});
  };
  const Tensor src = ids({5, 6, 2, 7, 2, 0}, 2), tgt_in = ids({1, 4, 8, 1, 3, 0}, 2),
               tgt_out = ids({4, 8, 2, 3, 2, 0}, 2);
  const std::vector<double> lp = model.log_probability(src, tgt_in, tgt_out);
  ASSERT_EQ(lp.size(), 2u);
  const Tensor all = to_dtype(log_softmax(model.forward(src, tgt_in), -1), DType::float64).contiguous();  // (2, 3, 9)
  const auto at = [&](std::int64_t b, std::int64_t t, std::int64_t v) {
    return all.data<double>()[(b * 3 + t) * 9 + v];
  };
  EXPECT_NEAR(lp[0], at(0, 0, 4) + at(0, 1, 8) + at(0, 2, 2), 1e-12);
  EXPECT_NEAR(lp[1], at(1, 0, 3) + at(1, 1, 2), 1e-12);  // the padded last position is skipped
  const std::vector<double> alone = model.log_probability(ids({7, 2}, 1), ids({1, 3}, 1), ids({3, 2}, 1));
  EXPECT_NEAR(alone.at(0), lp[1], 1e-5);
  EXPECT_LT(lp[0], 0.0);
}

TEST(Seq2Seq, EmbeddingInitDrawsNormalOrXavierAndZeroesThePadRow) {
  for (const auto init : {nn::Seq2SeqOptions::EmbeddingInit::normal, nn::Seq2SeqOptions::EmbeddingInit::xavier_uniform})
    for (const bool learned : {false, true}) {
      nn::Seq2SeqOptions o;
      o.src_vocab = 300;
      o.tgt_vocab = 500;
      o.max_len = 100;
      o.learned_positions = learned;
      o.embedding_init = init;
      o.transformer.d_model = 64;
      o.transformer.nhead = 2;
      o.transformer.num_encoder_layers = 1;
      o.transformer.num_decoder_layers = 1;
      o.transformer.dim_feedforward = 16;
      Generator g(3);
      const nn::Seq2SeqTransformer m(o, g);
      const bool xavier = init == nn::Seq2SeqOptions::EmbeddingInit::xavier_uniform;
      std::vector<std::pair<Tensor, double>> drawn{{m.src_embed->weight, 300}, {m.tgt_embed->weight, 500}};
      for (const auto& [w, rows] : drawn) {
        const auto v = w.to_vector<float>();
        for (std::int64_t c = 0; c < 64; ++c) EXPECT_EQ(v[static_cast<std::size_t>(o.pad_id * 64 + c)], 0.0f);
        double sq = 0, top = 0;
        for (float x : v) {
          sq += static_cast<double>(x) * x;
          top = std::max(top, std::abs(static_cast<double>(x)));
        }
        const double rms = std::sqrt(sq / static_cast<double>(v.size() - 64));
        // xavier_uniform: U(+-sqrt(6 / (rows + 64))), std = bound / sqrt(3); normal: N(0, 1/64)
        const double bound = std::sqrt(6.0 / (rows + 64));
        const double want = xavier ? bound / std::sqrt(3.0) : 1.0 / 8.0;
        EXPECT_NEAR(rms, want, 0.05 * want) << (xavier ? "xavier" : "normal") << ", " << rows << " rows";
        if (xavier)
          EXPECT_LE(top, bound);
        else
          EXPECT_GT(top, 3 * want) << "a normal draw of 20,000 values reaches past 3 std";
      }
      if (learned) {
        const auto p = m.positions->weight.to_vector<float>();
        double sq = 0;
        for (float x : p) sq += static_cast<double>(x) * x;
        const double want = xavier ? std::sqrt(6.0 / (100 + 64)) / std::sqrt(3.0) : 1.0 / 8.0;
        EXPECT_NEAR(std::sqrt(sq / static_cast<double>(p.size())), want, 0.05 * want);
      }
    }
}

}  // namespace
}  // namespace rune
