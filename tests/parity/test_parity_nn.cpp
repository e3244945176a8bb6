// PyTorch parity of every layer: the fixtures in tests/parity/fixtures/ hold inputs, PyTorch's
// parameters (state_dict names), its float64 outputs and the gradients of a fixed random-weighted
// loss (make_fixtures.py writes them). Each test loads the parameters by name, strictly, so the
// names and shapes must be PyTorch's exactly, runs our float32 forward and backward, and compares
// outputs (1e-5) and the gradients of every input and parameter (1e-4), relative to the
// reference's magnitude.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "nn/attention.hpp"
#include "nn/causal_lm.hpp"
#include "nn/conv.hpp"
#include "nn/embedding.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/resnet.hpp"
#include "nn/transformer.hpp"
#include "nn/vit.hpp"
#include "tests/parity/fixture.hpp"

namespace rune {
namespace {

using parity::Fixture;
using Named = std::vector<std::pair<std::string, Tensor>>;
using Inputs = std::map<std::string, Tensor>;

// For the functional cases: a module with no parameters.
struct Functional : nn::Module {
  std::string repr() const override { return "Functional"; }
};

// Loads `m` from the fixture (strict), feeds the named float inputs as leaves needing grad (and
// the other inputs as they are), runs `forward`, and compares outputs and all gradients.
void check_parity(const std::string& file, nn::Module& m, const std::vector<std::string>& float_inputs,
                  const std::vector<std::string>& other_inputs, const std::function<Named(const Inputs&)>& forward) {
  SCOPED_TRACE(file);
  const Fixture f(file);
  nn::NamedTensors state;
  for (const std::string& name : f.param_names()) state.emplace_back(name, f.param(name));
  m.load_state_dict(state);  // throws, listing every name, unless they match PyTorch's exactly
  Inputs in;
  for (const std::string& name : float_inputs) in[name] = f.input(name).requires_grad_();
  for (const std::string& name : other_inputs) in[name] = f.input(name);
  const Named outputs = forward(in);
  ASSERT_EQ(outputs.size(), f.output_names().size()) << "outputs compared vs outputs in the fixture";
  for (const auto& [name, out] : outputs)
    EXPECT_TRUE(parity::close_to_reference(out, f.output(name), parity::kOutputTol, "output " + name));
  parity::weighted_loss(f, outputs).backward();
  for (const std::string& name : float_inputs)
    EXPECT_TRUE(
        parity::close_to_reference(in[name].grad(), f.input_grad(name), parity::kGradTol, "d loss / d " + name));
  for (const auto& [name, p] : m.named_parameters())
    EXPECT_TRUE(parity::close_to_reference(p.grad(), f.param_grad(name), parity::kGradTol, "d loss / d " + name));
}

AttentionMask padding(const Inputs& in, const std::string& name) {
  AttentionMask m;
  m.key_padding_mask = in.at(name);
  return m;
}

// ------------------------------------------------------------------------- basic layers

TEST(ParityLayers, Linear) {
  nn::Linear lin(16, 12);
  check_parity("linear.h5", lin, {"x"}, {}, [&](const Inputs& in) { return Named{{"y", lin.forward(in.at("x"))}}; });
  nn::Linear nobias(16, 12, false);
  check_parity("linear_nobias.h5", nobias, {"x"}, {}, [&](const Inputs& in) {
    return Named{{"y", nobias.forward(in.at("x"))}};
  });
}

TEST(ParityLayers, LayerNorm) {
  nn::LayerNorm ln(24);
  check_parity("layer_norm.h5", ln, {"x"}, {}, [&](const Inputs& in) { return Named{{"y", ln.forward(in.at("x"))}}; });
  const Fixture f("layer_norm_noaffine.h5");
  nn::LayerNorm plain(24, f.attr_double("eps"), false);
  check_parity("layer_norm_noaffine.h5", plain, {"x"}, {}, [&](const Inputs& in) {
    return Named{{"y", plain.forward(in.at("x"))}};
  });
}

TEST(ParityLayers, Embedding) {
  nn::Embedding emb(20, 8, 0);
  check_parity("embedding.h5", emb, {}, {"ids"}, [&](const Inputs& in) {
    return Named{{"y", emb.forward(in.at("ids"))}};
  });
}

TEST(ParityLayers, GeluSoftmaxCrossEntropy) {
  Functional none;
  check_parity("gelu.h5", none, {"x"}, {}, [](const Inputs& in) { return Named{{"y", gelu(in.at("x"))}}; });
  check_parity("gelu_tanh.h5", none, {"x"}, {}, [](const Inputs& in) {
    return Named{{"y", gelu(in.at("x"), GeluApproximation::tanh)}};
  });
  check_parity("softmax.h5", none, {"x"}, {}, [](const Inputs& in) { return Named{{"y", softmax(in.at("x"), -1)}}; });
  for (const char* file : {"cross_entropy.h5", "cross_entropy_sum.h5"}) {
    const Fixture f(file);
    CrossEntropyOptions o;
    o.ignore_index = f.attr_int("ignore_index");
    o.label_smoothing = f.attr_double("label_smoothing");
    o.reduction = f.attr_string("reduction") == "sum" ? Reduction::sum : Reduction::mean;
    check_parity(file, none, {"logits"}, {"target"}, [&](const Inputs& in) {
      return Named{{"loss", cross_entropy(in.at("logits"), in.at("target"), o)}};
    });
  }
}

// ------------------------------------------------------------------------- attention

TEST(ParityAttention, ScaledDotProductAttentionWithEveryMaskKind) {
  Functional none;
  for (const char* file :
       {"sdpa_plain.h5", "sdpa_causal.h5", "sdpa_causal_offset.h5", "sdpa_key_padding.h5", "sdpa_blocked_mask.h5",
        "sdpa_float_mask.h5", "sdpa_all_masked_row.h5", "sdpa_gqa.h5", "sdpa_mqa.h5"}) {
    const Fixture f(file);
    std::vector<std::string> others;
    for (const char* name : {"key_padding_mask", "blocked_mask", "attn_bias"})
      if (f.has_input(name)) others.push_back(name);
    const double scale = f.attr_double("scale");
    for (const bool fused : {true, false}) {  // the fused op and the weights-returning path
      check_parity(file, none, {"q", "k", "v"}, others, [&](const Inputs& in) {
        AttentionMask m;
        m.causal = f.attr_int("is_causal") != 0;
        if (in.count("key_padding_mask")) m.key_padding_mask = in.at("key_padding_mask");
        if (in.count("blocked_mask")) m.blocked = in.at("blocked_mask");
        if (in.count("attn_bias")) m.bias = in.at("attn_bias");
        if (fused)  // weights from their own op, the output from the fused one
          return Named{{"out", attention(in.at("q"), in.at("k"), in.at("v"), m, scale)},
                       {"weights", attention_weights(in.at("q"), in.at("k"), m, scale)}};
        const nn::AttentionResult r = nn::scaled_dot_product_attention(in.at("q"), in.at("k"), in.at("v"), m, 0.0,
                                                                       nn::AttentionWeights::per_head, scale);
        return Named{{"out", r.output}, {"weights", r.weights}};
      });
    }
  }
}

// Rotary embedding against the Hugging Face LLaMA formula (make_fixtures.py: reference_rope):
// all features from position 0, and part of them at an offset with another base.
TEST(ParityAttention, RotaryEmbeddingIsLlamasRotateHalf) {
  Functional none;
  for (const char* file : {"rope_full.h5", "rope_partial_offset.h5"}) {
    const Fixture f(file);
    check_parity(file, none, {"x"}, {}, [&](const Inputs& in) {
      return Named{{"out", rope(in.at("x"), f.attr_int("offset"), f.attr_double("base"), f.attr_int("rotary_dim"))}};
    });
  }
}

// ------------------------------------------------------------------------- CNN layers (functional)

TEST(ParityConv, Conv2dWithGroupsDilationAndAResNetKernel) {
  Functional none;
  for (const char* file : {"conv2d_groups.h5", "conv2d_resnet.h5"}) {
    const Fixture f(file);
    Conv2dOptions o;
    o.stride = {f.attr_int("stride_h"), f.attr_int("stride_w")};
    o.padding = {f.attr_int("padding_h"), f.attr_int("padding_w")};
    o.dilation = {f.attr_int("dilation_h"), f.attr_int("dilation_w")};
    o.groups = f.attr_int("groups");
    check_parity(file, none, {"x", "weight", "bias"}, {}, [&](const Inputs& in) {
      return Named{{"out", conv2d(in.at("x"), in.at("weight"), in.at("bias"), o)}};
    });
  }
}

// Training (batch statistics, the running ones updated: outputs too) and evaluation.
TEST(ParityConv, BatchNormTrainingAndEvaluation) {
  Functional none;
  for (const char* file : {"batch_norm_train.h5", "batch_norm_eval.h5"}) {
    const Fixture f(file);
    check_parity(file, none, {"x", "weight", "bias"}, {"running_mean_in", "running_var_in"}, [&](const Inputs& in) {
      const Tensor mean = in.at("running_mean_in").clone(), var = in.at("running_var_in").clone();
      const Tensor out = batch_norm(in.at("x"), mean, var, in.at("weight"), in.at("bias"), f.attr_int("training") != 0,
                                    f.attr_double("momentum"), f.attr_double("eps"));
      return Named{{"out", out}, {"running_mean", mean}, {"running_var", var}};
    });
  }
}

TEST(ParityConv, MaxAverageAndAdaptivePools) {
  Functional none;
  check_parity("pooling.h5", none, {"x"}, {}, [&](const Inputs& in) {
    const Tensor& x = in.at("x");
    Pool2dOptions max;
    max.kernel_size = {3, 3}, max.stride = {2, 2}, max.padding = {1, 1};
    Pool2dOptions dilated;
    dilated.kernel_size = {2, 3}, dilated.stride = {2, 2}, dilated.dilation = {2, 1}, dilated.ceil_mode = true;
    Pool2dOptions avg = max;
    avg.ceil_mode = true;
    Pool2dOptions exclude;
    exclude.kernel_size = {2, 3}, exclude.stride = {1, 2}, exclude.padding = {1, 1}, exclude.count_include_pad = false;
    return Named{{"max", max_pool2d(x, max)},
                 {"max_dilated_ceil", max_pool2d(x, dilated)},
                 {"avg", avg_pool2d(x, avg)},
                 {"avg_exclude_pad", avg_pool2d(x, exclude)},
                 {"adaptive", adaptive_avg_pool2d(x, 3, 4)},
                 {"adaptive_global", adaptive_avg_pool2d(x, 1, 1)}};
  });
}

// torch.nn.Conv2d with stride, padding, dilation and groups: the same parameter names and shapes.
TEST(ParityConv, Conv2dModule) {
  Conv2dOptions o;
  o.stride = {2, 1}, o.padding = {1, 1}, o.dilation = {1, 2}, o.groups = 2;
  nn::Conv2d conv(4, 6, {3, 2}, o);
  check_parity("conv2d_module.h5", conv, {"x"}, {}, [&](const Inputs& in) {
    return Named{{"out", conv.forward(in.at("x"))}};
  });
}

// torch.nn.BatchNorm2d loaded with its buffers (running statistics, num_batches_tracked = 5): a
// training step, the buffers it moved, then evaluation by them.
TEST(ParityConv, BatchNorm2dModuleTrainsThenEvaluates) {
  const Fixture f("batch_norm2d_module.h5");
  nn::BatchNorm2d bn(3, f.attr_double("eps"), f.attr_double("momentum"));
  check_parity("batch_norm2d_module.h5", bn, {"x", "x_eval"}, {}, [&](const Inputs& in) {
    bn.train();
    Named out{{"train", bn.forward(in.at("x"))}};
    out.emplace_back("running_mean", bn.running_mean.clone());
    out.emplace_back("running_var", bn.running_var.clone());
    out.emplace_back("num_batches_tracked", to_dtype(bn.num_batches_tracked, DType::float32));
    bn.eval();
    out.emplace_back("eval", bn.forward(in.at("x_eval")));
    return out;
  });
}

// Every CNN module in one torch.nn.Sequential: the names "0.weight", "1.running_mean", ...
struct CnnBlock : nn::Module {
  CnnBlock() {
    Conv2dOptions same;
    same.padding = {1, 1};
    Pool2dOptions avg = nn::pool_options(3, 2, 1);
    layers = {register_module("0", std::make_shared<nn::Conv2d>(3, 8, std::array<std::int64_t, 2>{3, 3}, same, false)),
              register_module("1", std::make_shared<nn::BatchNorm2d>(8)),
              register_module("3", std::make_shared<nn::MaxPool2d>(nn::pool_options(2))),
              register_module("4", std::make_shared<nn::Conv2d>(8, 8, std::array<std::int64_t, 2>{3, 3}, same)),
              register_module("5", std::make_shared<nn::AvgPool2d>(avg)),
              register_module("6", std::make_shared<nn::AdaptiveAvgPool2d>(std::array<std::int64_t, 2>{1, 1}))};
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = relu(static_cast<const nn::BatchNorm2d&>(*layers[1])
                        .forward(static_cast<const nn::Conv2d&>(*layers[0]).forward(x)));  // "2" is the ReLU
    h = static_cast<const nn::MaxPool2d&>(*layers[2]).forward(h);
    h = static_cast<const nn::Conv2d&>(*layers[3]).forward(h);
    h = static_cast<const nn::AvgPool2d&>(*layers[4]).forward(h);
    return static_cast<const nn::AdaptiveAvgPool2d&>(*layers[5]).forward(h);
  }
  std::string repr() const override { return "CnnBlock"; }
  std::vector<std::shared_ptr<nn::Module>> layers;
};

TEST(ParityConv, ConvBatchNormPoolBlockInTraining) {
  CnnBlock block;
  check_parity("cnn_block.h5", block, {"x"}, {}, [&](const Inputs& in) {
    return Named{{"out", block.forward(in.at("x"))}};
  });
}

// nn/resnet.hpp against runestone_torch.ResNet: a training step (logits, every gradient, the
// running statistics it moved in a downsample and a block), then evaluation by those statistics.
TEST(ParityConv, ResNetTrainingStepThenEvaluation) {
  const Fixture f("resnet_module.h5");
  nn::ResNetOptions o;
  o.in_chans = f.attr_int("in_chans");
  o.num_classes = f.attr_int("num_classes");
  o.widths = {4, 8};
  o.blocks = {2, 1};
  nn::ResNet net(o);
  check_parity("resnet_module.h5", net, {"x", "x_eval"}, {}, [&](const Inputs& in) {
    Named out{{"train", net.forward(in.at("x"))}};
    out.emplace_back("running_mean", (*net.layers[1])[0].downsample->bn->running_mean.clone());
    out.emplace_back("running_var", (*net.layers[0])[1].bn2->running_var.clone());
    net.eval();
    out.emplace_back("eval", net.forward(in.at("x_eval")));
    return out;
  });
}

nn::MultiheadAttentionOptions mha_options(const Fixture& f) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = f.attr_int("embed_dim");
  o.num_heads = f.attr_int("num_heads");
  if (f.has_attr("num_kv_heads")) o.num_kv_heads = f.attr_int("num_kv_heads");
  if (f.has_attr("kdim")) o.kdim = f.attr_int("kdim");
  if (f.has_attr("vdim")) o.vdim = f.attr_int("vdim");
  if (f.has_attr("bias")) o.bias = f.attr_int("bias") != 0;
  return o;
}

Named mha_outputs(const nn::AttentionResult& r) { return Named{{"out", r.output}, {"weights", r.weights}}; }

TEST(ParityAttention, MultiheadAttentionSelfCausalCrossAndKdim) {
  {
    nn::MultiheadAttention mha(mha_options(Fixture("mha_self.h5")));
    check_parity("mha_self.h5", mha, {"x"}, {"key_padding_mask"}, [&](const Inputs& in) {
      const Tensor& x = in.at("x");
      return mha_outputs(mha.forward(x, x, x, padding(in, "key_padding_mask"), nn::AttentionWeights::per_head));
    });
  }
  {
    nn::MultiheadAttention mha(mha_options(Fixture("mha_causal.h5")));
    check_parity("mha_causal.h5", mha, {"x"}, {}, [&](const Inputs& in) {
      const Tensor& x = in.at("x");
      return mha_outputs(mha.forward(x, x, x, AttentionMask{true, {}, {}, {}}, nn::AttentionWeights::per_head));
    });
  }
  for (const char* file : {"mha_cross.h5", "mha_cross_kdim.h5"}) {
    nn::MultiheadAttention mha(mha_options(Fixture(file)));
    const bool padded = Fixture(file).has_input("key_padding_mask");
    check_parity(file, mha, {"query", "memory"},
                 padded ? std::vector<std::string>{"key_padding_mask"} : std::vector<std::string>{},
                 [&](const Inputs& in) {
                   const AttentionMask m = padded ? padding(in, "key_padding_mask") : AttentionMask{};
                   return mha_outputs(mha.forward(in.at("query"), in.at("memory"), in.at("memory"), m,
                                                  nn::AttentionWeights::per_head));
                 });
  }
  {
    nn::MultiheadAttention mha(mha_options(Fixture("mha_bias_false.h5")));
    check_parity("mha_bias_false.h5", mha, {"x"}, {}, [&](const Inputs& in) {
      const Tensor& x = in.at("x");
      return mha_outputs(mha.forward(x, x, x, {}, nn::AttentionWeights::per_head));
    });
  }
}

TEST(ParityAttention, GroupedAndMultiQueryAttention) {
  for (const char* file : {"gqa.h5", "mqa.h5"}) {
    nn::MultiheadAttention mha(mha_options(Fixture(file)));
    check_parity(file, mha, {"x"}, {}, [&](const Inputs& in) {
      const Tensor& x = in.at("x");
      return mha_outputs(mha.forward(x, x, x, AttentionMask{true, {}, {}, {}}, nn::AttentionWeights::per_head));
    });
  }
}

// ------------------------------------------------------------------------- Transformer

nn::TransformerLayerOptions layer_options(const Fixture& f) {
  nn::TransformerLayerOptions o;
  o.d_model = f.attr_int("d_model");
  o.nhead = f.attr_int("nhead");
  o.dim_feedforward = f.attr_int("dim_feedforward");
  o.dropout = 0.0;
  o.activation = nn::activation_from_name(f.attr_string("activation"));
  o.norm_first = f.attr_int("norm_first") != 0;
  o.layer_norm_eps = f.attr_double("layer_norm_eps");
  return o;
}

TEST(ParityTransformer, EncoderLayerPostAndPreNorm) {
  for (const char* file : {"encoder_layer_post.h5", "encoder_layer_pre.h5"}) {
    nn::TransformerEncoderLayer layer(layer_options(Fixture(file)));
    check_parity(file, layer, {"src"}, {"src_key_padding_mask"}, [&](const Inputs& in) {
      return Named{{"out", layer.forward(in.at("src"), padding(in, "src_key_padding_mask"))}};
    });
  }
}

TEST(ParityTransformer, DecoderLayerPostAndPreNorm) {
  for (const char* file : {"decoder_layer_post.h5", "decoder_layer_pre.h5"}) {
    nn::TransformerDecoderLayer layer(layer_options(Fixture(file)));
    check_parity(
        file, layer, {"tgt", "memory"}, {"tgt_blocked_mask", "memory_key_padding_mask"}, [&](const Inputs& in) {
          AttentionMask tgt_mask;
          tgt_mask.blocked = in.at("tgt_blocked_mask");
          return Named{
              {"out", layer.forward(in.at("tgt"), in.at("memory"), tgt_mask, padding(in, "memory_key_padding_mask"))}};
        });
  }
}

TEST(ParityTransformer, TwoPlusTwoLayerTransformerLoadsTorchWeightsByName) {
  const Fixture f("transformer.h5");
  nn::TransformerOptions o;
  o.d_model = f.attr_int("d_model");
  o.nhead = f.attr_int("nhead");
  o.num_encoder_layers = f.attr_int("num_encoder_layers");
  o.num_decoder_layers = f.attr_int("num_decoder_layers");
  o.dim_feedforward = f.attr_int("dim_feedforward");
  o.dropout = 0.0;
  nn::Transformer model(o);
  // every torch name has ours and the other way round (load_state_dict is strict)
  EXPECT_EQ(model.named_parameters().size(), f.param_names().size());
  check_parity("transformer.h5", model, {"src", "tgt"}, {"src_key_padding_mask", "tgt_blocked_mask"},
               [&](const Inputs& in) {
                 AttentionMask tgt_mask;
                 tgt_mask.blocked = in.at("tgt_blocked_mask");
                 const AttentionMask src_mask = padding(in, "src_key_padding_mask");
                 return Named{{"out", model.forward(in.at("src"), in.at("tgt"), src_mask, tgt_mask, src_mask)}};
               });
}

// ------------------------------------------------------------------------- decoder-only LM

TEST(ParityCausalLM, LogitsAndGradientsForEachKindOfPosition) {
  for (const char* file : {"causal_lm_learned_tied.h5", "causal_lm_sinusoidal.h5", "causal_lm_rotary.h5"}) {
    const Fixture f(file);
    nn::CausalLMOptions o;
    o.vocab = f.attr_int("vocab");
    o.max_len = f.attr_int("max_len");
    o.num_layers = f.attr_int("num_layers");
    o.positions = nn::position_kind_from_name(f.attr_string("positions"));
    o.tie_output = f.attr_int("tie_output") != 0;
    o.layer.d_model = f.attr_int("d_model");
    o.layer.nhead = f.attr_int("nhead");
    o.layer.dim_feedforward = f.attr_int("dim_feedforward");
    o.layer.rope_base = f.attr_double("rope_base");
    o.layer.dropout = 0.0;
    nn::CausalLM model(o);
    EXPECT_EQ(model.named_parameters().size(), f.param_names().size()) << file;
    check_parity(file, model, {}, {"ids"}, [&](const Inputs& in) {
      return Named{{"logits", model.forward(in.at("ids"))}};
    });
  }
}

// ------------------------------------------------------------------------- ViT

TEST(ParityVit, PositionEmbeddingResizeIsTimmsBicubic) {
  Functional none;
  for (const char* file :
       {"interpolate_up.h5", "interpolate_down.h5", "interpolate_nonsquare.h5", "interpolate_nonsquare_mixed.h5"}) {
    const Fixture f(file);
    check_parity(file, none, {"pos_embed"}, {}, [&](const Inputs& in) {
      return Named{{"out", nn::resize_pos_embed(in.at("pos_embed"), f.attr_int("old_h"), f.attr_int("old_w"),
                                                f.attr_int("new_h"), f.attr_int("new_w"))}};
    });
  }
  for (const char* file : {"interpolate_image_up.h5", "interpolate_image_down.h5"}) {
    const Fixture f(file);
    const Shape out = f.output("out").shape();
    check_parity(file, none, {"x"}, {}, [&](const Inputs& in) {
      return Named{{"out", interpolate_bicubic(in.at("x"), out[2], out[3], false)}};
    });
  }
}

TEST(ParityVit, VisionTransformerForwardAndBackward) {
  for (const char* file : {"vit_cls.h5", "vit_mean.h5"}) {
    const Fixture f(file);
    nn::VisionTransformerOptions o;
    o.image_size = f.attr_int("image_size");
    o.patch_size = f.attr_int("patch_size");
    o.in_chans = f.attr_int("in_chans");
    o.embed_dim = f.attr_int("embed_dim");
    o.depth = f.attr_int("depth");
    o.num_heads = f.attr_int("num_heads");
    o.mlp_dim = f.attr_int("mlp_dim");
    o.num_classes = f.attr_int("num_classes");
    o.pool = nn::pool_from_name(f.attr_string("pool"));
    nn::VisionTransformer vit(o);
    check_parity(file, vit, {"x"}, {}, [&](const Inputs& in) { return Named{{"logits", vit.forward(in.at("x"))}}; });
  }
}

}  // namespace
}  // namespace rune
