// Forward hooks (nn/module.hpp) and what is built on them (analysis/attention_recorder.hpp): the
// order and arguments of the calls, pre-hooks changing inputs and kwargs, forward hooks
// replacing outputs, handles (remove, destruction, detach, a handle outliving its module),
// every module's forward calling them, MultiheadAttention's weights seen by a hook, and that
// hooks change neither the outputs nor the gradients of a model they only observe.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "analysis/attention_recorder.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "autograd/tape.hpp"
#include "nn/attention.hpp"
#include "nn/linear.hpp"
#include "nn/seq2seq.hpp"
#include "nn/transformer.hpp"
#include "nn/vit.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

nn::MultiheadAttentionOptions attention_options(std::int64_t C, std::int64_t H) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = C;
  o.num_heads = H;
  return o;
}

nn::TransformerOptions small_transformer() {
  nn::TransformerOptions o;
  o.d_model = 16;
  o.nhead = 4;
  o.num_encoder_layers = 2;
  o.num_decoder_layers = 1;
  o.dim_feedforward = 32;
  o.dropout = 0.0;
  return o;
}

// ---------------------------------------------------------------- the mechanism

TEST(ForwardHooks, RunInRegistrationOrderWithTheCallsInputsAndOutputs) {
  Generator g(1);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({4, 3}, g);
  const Tensor want = lin.forward(x);
  std::vector<std::string> log;
  std::vector<Tensor> seen_inputs, seen_outputs;
  const auto pre = [&](const std::string& name) {
    return [&, name](nn::ForwardCall& call) {
      log.push_back(name);
      EXPECT_EQ(&call.module, &lin);
      EXPECT_EQ(call.kwargs, nullptr) << "Linear has no kwargs";
      ASSERT_EQ(call.inputs.size(), 1u);
      seen_inputs.push_back(call.inputs[0]);
    };
  };
  const auto post = [&](const std::string& name) {
    return [&, name](const nn::ForwardCall& call, std::vector<Tensor>& outputs) {
      log.push_back(name);
      ASSERT_EQ(call.inputs.size(), 1u);
      ASSERT_EQ(outputs.size(), 1u);
      seen_inputs.push_back(call.inputs[0]);
      seen_outputs.push_back(outputs[0]);
    };
  };
  // registered interleaved: pre-hooks still all run before the forward, each kind in its order
  nn::HookHandle h1 = lin.register_forward_hook(post("post 1"));
  nn::HookHandle h2 = lin.register_forward_pre_hook(pre("pre 1"));
  nn::HookHandle h3 = lin.register_forward_hook(post("post 2"));
  nn::HookHandle h4 = lin.register_forward_pre_hook(pre("pre 2"));
  EXPECT_TRUE(lin.has_forward_hooks());
  const Tensor y = lin.forward(x);
  EXPECT_EQ(log, (std::vector<std::string>{"pre 1", "pre 2", "post 1", "post 2"}));
  ASSERT_EQ(seen_inputs.size(), 4u);
  for (const Tensor& t : seen_inputs) EXPECT_EQ(t.impl(), x.impl()) << "the caller's tensor itself";
  ASSERT_EQ(seen_outputs.size(), 2u);
  EXPECT_EQ(seen_outputs[0].impl(), y.impl()) << "the forward hook sees what the caller gets";
  EXPECT_EQ(values(y), values(want));
}

TEST(ForwardHooks, APreHookChangingAnInputChangesTheOutput) {
  Generator g(2);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({4, 3}, g);
  const Tensor doubled = lin.forward(x * 2.0), plus_one = lin.forward(x * 2.0 + 1.0);
  nn::HookHandle a = lin.register_forward_pre_hook([](nn::ForwardCall& c) { c.inputs[0] = c.inputs[0] * 2.0; });
  EXPECT_EQ(values(lin.forward(x)), values(doubled));
  // the second pre-hook sees the first one's input, and the forward hook the final one
  nn::HookHandle b = lin.register_forward_pre_hook([](nn::ForwardCall& c) { c.inputs[0] = c.inputs[0] + 1.0; });
  Tensor final_input;
  nn::HookHandle c = lin.register_forward_hook(
      [&](const nn::ForwardCall& call, std::vector<Tensor>&) { final_input = call.inputs[0]; });
  EXPECT_EQ(values(lin.forward(x)), values(plus_one));
  EXPECT_EQ(values(final_input), values(x * 2.0 + 1.0));
}

TEST(ForwardHooks, AForwardHookReplacesTheOutput) {
  Generator g(3);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({4, 3}, g);
  const Tensor plain = lin.forward(x);
  nn::HookHandle first =
      lin.register_forward_hook([](const nn::ForwardCall&, std::vector<Tensor>& out) { out[0] = out[0] * 3.0; });
  std::vector<double> seen_by_second;
  nn::HookHandle second = lin.register_forward_hook(
      [&](const nn::ForwardCall&, std::vector<Tensor>& out) { seen_by_second = values(out[0]); });
  const Tensor y = lin.forward(x);
  EXPECT_EQ(values(y), values(plain * 3.0));
  EXPECT_EQ(seen_by_second, values(plain * 3.0)) << "later hooks see the replacement";
}

TEST(ForwardHooks, AHookChangingHowManyTensorsThereAreIsRefusedByName) {
  Generator g(4);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({4, 3}, g);
  {
    nn::HookHandle h = lin.register_forward_pre_hook([](nn::ForwardCall& c) { c.inputs.push_back(c.inputs[0]); });
    const std::string e = error_of([&] { lin.forward(x); });
    EXPECT_NE(e.find("Linear(in_features=3"), std::string::npos) << e;
    EXPECT_NE(e.find("number of inputs from 1 to 2"), std::string::npos) << e;
  }
  {
    nn::HookHandle h = lin.register_forward_hook([](const nn::ForwardCall&, std::vector<Tensor>& out) { out.clear(); });
    EXPECT_NE(error_of([&] { lin.forward(x); }).find("number of outputs from 1 to 0"), std::string::npos);
  }
  EXPECT_THROW((void)lin.register_forward_hook(nn::ForwardHook()), std::invalid_argument);
}

TEST(HookHandle, RemoveDestructionAndDetach) {
  Generator g(5);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({1, 3}, g);
  int pre_calls = 0, post_calls = 0;
  nn::HookHandle pre = lin.register_forward_pre_hook([&](nn::ForwardCall&) { ++pre_calls; });
  {
    nn::HookHandle post =
        lin.register_forward_hook([&](const nn::ForwardCall&, std::vector<Tensor>&) { ++post_calls; });
    EXPECT_TRUE(post.active());
    lin.forward(x);
    EXPECT_EQ(pre_calls, 1);
    EXPECT_EQ(post_calls, 1);
  }  // post's handle is gone: its hook with it
  lin.forward(x);
  EXPECT_EQ(pre_calls, 2);
  EXPECT_EQ(post_calls, 1);
  EXPECT_TRUE(pre.active());
  pre.remove();
  EXPECT_FALSE(pre.active());
  pre.remove();  // twice is harmless
  lin.forward(x);
  EXPECT_EQ(pre_calls, 2);
  EXPECT_FALSE(lin.has_forward_hooks());

  // detach: the hook stays after its handle is gone
  lin.register_forward_pre_hook([&](nn::ForwardCall&) { ++pre_calls; }).detach();
  lin.forward(x);
  EXPECT_EQ(pre_calls, 3);
  // moving a handle moves the ownership; assigning over a handle removes its old hook
  nn::HookHandle a = lin.register_forward_hook([&](const nn::ForwardCall&, std::vector<Tensor>&) { ++post_calls; });
  nn::HookHandle b = std::move(a);
  EXPECT_FALSE(a.active());
  EXPECT_TRUE(b.active());
  lin.forward(x);
  EXPECT_EQ(post_calls, 2);
  b = lin.register_forward_hook([&](const nn::ForwardCall&, std::vector<Tensor>&) { post_calls += 10; });
  lin.forward(x);
  EXPECT_EQ(post_calls, 12) << "only the newer hook runs";
}

TEST(HookHandle, AHandleOutlivingItsModuleIsHarmless) {
  Generator g(6);
  auto lin = std::make_shared<nn::Linear>(3, 2, true, g);
  std::weak_ptr<nn::Linear> watch = lin;
  nn::HookHandle h = lin->register_forward_hook([](const nn::ForwardCall&, std::vector<Tensor>&) {});
  nn::HookHandle detached_later = lin->register_forward_pre_hook([](nn::ForwardCall&) {});
  lin.reset();
  EXPECT_TRUE(watch.expired()) << "a handle does not keep its module alive";
  EXPECT_FALSE(h.active());
  h.remove();  // and the destructors of h and detached_later run after this, on a dead module
  detached_later.detach();
  EXPECT_FALSE(detached_later.active());
}

TEST(ForwardHooks, AHookRemovingItselfOrAddingOthersChangesTheNextCall) {
  Generator g(7);
  nn::Linear lin(3, 2, true, g);
  const Tensor x = randn({1, 3}, g);
  int once = 0, added = 0;
  nn::HookHandle self;
  std::vector<nn::HookHandle> more;
  self = lin.register_forward_pre_hook([&](nn::ForwardCall&) {
    ++once;
    self.remove();
    more.push_back(lin.register_forward_hook([&](const nn::ForwardCall&, std::vector<Tensor>&) { ++added; }));
  });
  lin.forward(x);
  EXPECT_EQ(once, 1);
  EXPECT_EQ(added, 0) << "a hook added during a call waits for the next call";
  lin.forward(x);
  EXPECT_EQ(once, 1);
  EXPECT_EQ(added, 1);
}

// ---------------------------------------------------------------- the modules

// Counts the calls of every module of a model by path, through hooks on all of them.
struct CallCounter {
  std::map<std::string, int> calls;
  std::vector<nn::HookHandle> handles;
  explicit CallCounter(nn::Module& model) {
    for (const auto& [path, m] : model.named_modules()) {
      calls[path] = 0;
      int* count = &calls[path];
      // reached from the non-const model: registering is the caller's change to make
      handles.push_back(const_cast<nn::Module*>(m)->register_forward_hook(
          [count](const nn::ForwardCall&, std::vector<Tensor>&) { ++*count; }));
    }
  }
  std::set<std::string> never_called() const {
    std::set<std::string> out;
    for (const auto& [path, n] : calls)
      if (n == 0) out.insert(path);
    return out;
  }
};

TEST(ForwardHooks, EveryModuleOfAViTAndASeq2SeqModelCallsThem) {
  Generator g(8);
  nn::VisionTransformerOptions v;
  v.image_size = 8;
  v.patch_size = 4;
  v.in_chans = 1;
  v.num_classes = 3;
  v.embed_dim = 8;
  v.depth = 2;
  v.num_heads = 2;
  v.mlp_dim = 16;
  nn::VisionTransformer vit(v, g);
  CallCounter vit_calls(vit);
  vit.forward(randn({2, 1, 8, 8}, g));
  // only the list of layers has no forward
  EXPECT_EQ(vit_calls.never_called(), (std::set<std::string>{"encoder.layers"}));
  EXPECT_EQ(vit_calls.calls.at(""), 1);
  EXPECT_EQ(vit_calls.calls.at("encoder.layers.1.self_attn.out_proj"), 1);

  nn::Seq2SeqOptions s;
  s.src_vocab = 7;
  s.tgt_vocab = 6;
  s.max_len = 16;
  s.transformer = small_transformer();
  nn::Seq2SeqTransformer model(s, g);
  CallCounter seq_calls(model);
  model.forward(randint(3, 7, {2, 5}, g), randint(3, 6, {2, 4}, g));
  // the model runs its transformer's encoder and decoder, not the nn.Transformer as a whole
  EXPECT_EQ(seq_calls.never_called(),
            (std::set<std::string>{"transformer", "transformer.encoder.layers", "transformer.decoder.layers"}));
  EXPECT_EQ(seq_calls.calls.at("positions"), 2) << "source and target";
  EXPECT_EQ(seq_calls.calls.at("transformer.decoder.layers.0.multihead_attn"), 1);
}

TEST(ForwardHooks, ModulesKwargsAreThereToChange) {
  Generator g(9);
  const nn::TransformerOptions o = small_transformer();
  nn::TransformerEncoderLayer layer(o.layer(), g);
  layer.eval();
  const Tensor x = randn({2, 5, 16}, g);
  AttentionMask causal;
  causal.causal = true;
  const Tensor want = layer.forward(x, causal);
  const Tensor plain = layer.forward(x);
  ASSERT_GT(max_abs_diff(want, plain), 1e-3) << "the mask must matter for this test to mean anything";
  // on the layer: its EncoderKwargs
  {
    nn::HookHandle h = layer.register_forward_pre_hook([](nn::ForwardCall& c) {
      ASSERT_NE(c.kwargs_as<nn::EncoderKwargs>(), nullptr);
      EXPECT_EQ(c.kwargs_as<nn::DecoderLayerKwargs>(), nullptr) << "another module's kwargs type is null";
      c.kwargs_as<nn::EncoderKwargs>()->src_mask.causal = true;
    });
    EXPECT_EQ(values(layer.forward(x)), values(want));
  }
  // on its attention: MultiheadAttentionKwargs
  {
    nn::HookHandle h = layer.self_attn->register_forward_pre_hook(
        [](nn::ForwardCall& c) { c.kwargs_as<nn::MultiheadAttentionKwargs>()->mask.causal = true; });
    EXPECT_EQ(values(layer.forward(x)), values(want));
  }
  EXPECT_EQ(values(layer.forward(x)), values(plain)) << "the hooks are gone";
}

// ---------------------------------------------------------------- MultiheadAttention's weights

TEST(ForwardHooks, AttentionWeightsSeenByAHookAreThoseForwardReturns) {
  Generator g(10);
  const nn::MultiheadAttention reference(attention_options(16, 4), g);
  nn::MultiheadAttention mha(attention_options(16, 4), g);
  mha.load_state_dict(reference.named_parameters());
  const Tensor q = randn({2, 3, 16}, g), kv = randn({2, 5, 16}, g);
  AttentionMask mask;
  mask.key_padding_mask = gt(from_vector(std::vector<float>{0, 0, 0, 1, 1, 0, 0, 0, 0, 1}, {2, 5}), full({}, 0.5));
  const nn::AttentionResult asked = reference.forward(q, kv, kv, mask, nn::AttentionWeights::per_head);
  const Tensor fused = reference.forward(q, kv, kv, mask).output;

  Tensor seen;
  nn::HookHandle pre = mha.register_forward_pre_hook([](nn::ForwardCall& c) {
    c.kwargs_as<nn::MultiheadAttentionKwargs>()->weights = nn::AttentionWeights::per_head;
  });
  nn::HookHandle post = mha.register_forward_hook([&](const nn::ForwardCall&, std::vector<Tensor>& out) {
    ASSERT_EQ(out.size(), 2u) << "the weights are the second output";
    seen = out[1];
  });
  const nn::AttentionResult r = mha.forward(q, kv, kv, mask);  // the caller asks for none
  ASSERT_TRUE(seen.defined());
  EXPECT_EQ(seen.shape(), (Shape{2, 4, 3, 5}));
  EXPECT_EQ(values(seen), values(asked.weights));
  EXPECT_FALSE(r.weights.defined()) << "the caller gets what it asked for";
  EXPECT_EQ(values(r.output), values(asked.output));
  EXPECT_LT(max_abs_diff(r.output, fused), 1e-6) << "the composed path agrees with the fused kernel";
}

TEST(AttentionRecorder, RecordsEveryModulesPerHeadWeightsAndGivesCallersWhatTheyAsked) {
  Generator g(11);
  nn::Transformer model(small_transformer(), g);
  model.eval();
  const Tensor src = randn({2, 5, 16}, g), tgt = randn({2, 3, 16}, g);
  AttentionMask causal;
  causal.causal = true;
  const Tensor plain = model.forward(src, tgt, {}, causal);

  // each module's own call, seen by a hook of the test's: its inputs and mask
  std::vector<std::vector<Tensor>> inputs(4);
  std::vector<AttentionMask> masks(4);
  std::vector<nn::HookHandle> handles;
  const auto modules = nn::attention_modules(model);
  ASSERT_EQ(modules.size(), 4u);
  for (std::size_t i = 0; i < modules.size(); ++i)
    handles.push_back(modules[i].second->register_forward_hook([&, i](const nn::ForwardCall& c, std::vector<Tensor>&) {
      inputs[i] = c.inputs;
      masks[i] = c.kwargs_as<nn::MultiheadAttentionKwargs>()->mask;
    }));
  std::vector<Tensor> recorded;
  {
    analysis::AttentionRecorder recorder(model);
    ASSERT_EQ(recorder.size(), 4u);
    EXPECT_EQ(recorder.path(3), "decoder.layers.0.multihead_attn");
    EXPECT_FALSE(recorder.weights(0).defined()) << "nothing before a forward";
    const Tensor out = model.forward(src, tgt, {}, causal);
    EXPECT_LT(max_abs_diff(out, plain), 1e-5);
    for (std::size_t i = 0; i < 4; ++i) recorded.push_back(recorder.weights(i));
    EXPECT_EQ(recorder.weights("decoder.layers.0.self_attn").impl(), recorded[2].impl());
    EXPECT_THROW(recorder.weights("decoder.layers.9.self_attn"), std::out_of_range);
    EXPECT_EQ(recorded[0].shape(), (Shape{2, 4, 5, 5}));
    EXPECT_EQ(recorded[2].shape(), (Shape{2, 4, 3, 3}));
    EXPECT_EQ(recorded[3].shape(), (Shape{2, 4, 3, 5}));
    for (const Tensor& w : recorded) EXPECT_FALSE(w.requires_grad());
    // a caller asking for averaged weights still gets them, and the recorder the heads
    const nn::MultiheadAttention& cross = *modules[3].second;
    const Tensor avg =
        cross.forward(inputs[3][0], inputs[3][1], inputs[3][2], masks[3], nn::AttentionWeights::averaged).weights;
    EXPECT_EQ(avg.shape(), (Shape{2, 3, 5}));
    EXPECT_EQ(values(avg), values(mean(recorder.weights(3), {1})));
    recorder.clear();
    EXPECT_FALSE(recorder.weights(3).defined());
  }
  for (const auto& [path, m] : modules) EXPECT_EQ(m->has_forward_hooks(), true) << "the test's own hook stays";
  handles.clear();
  for (const auto& [path, m] : modules) EXPECT_FALSE(m->has_forward_hooks()) << path;
  // the recorded weights are each module's own, asked for directly on the same call
  for (std::size_t i = 0; i < 4; ++i) {
    const Tensor want =
        modules[i]
            .second->forward(inputs[i][0], inputs[i][1], inputs[i][2], masks[i], nn::AttentionWeights::per_head)
            .weights;
    EXPECT_EQ(values(recorded[i]), values(want)) << modules[i].first;
  }
  // causal self-attention in the decoder: nothing above the diagonal
  EXPECT_EQ(values(slice(slice(recorded[2], 2, 0, 1), 3, 1, 3)), std::vector<double>(2 * 4 * 2, 0.0));
}

TEST(AttentionRecorder, OutlivingItsModelIsHarmless) {
  Generator g(12);
  auto mha = std::make_shared<nn::MultiheadAttention>(attention_options(8, 2), g);
  analysis::AttentionRecorder recorder(*mha);
  const Tensor x = randn({1, 3, 8}, g);
  mha->forward(x, x, x);
  EXPECT_EQ(recorder.weights(0).shape(), (Shape{1, 2, 3, 3}));
  mha.reset();  // the recorder's handles now point at nothing; its destructor must cope
  EXPECT_EQ(recorder.weights(0).shape(), (Shape{1, 2, 3, 3}));
}

// ---------------------------------------------------------------- hooks that only observe

// The loss sum(out^2) of a Transformer and every parameter's gradient.
struct Pass {
  std::vector<double> output;
  std::vector<std::vector<double>> grads;
};
Pass run_pass(nn::Transformer& model, const Tensor& src, const Tensor& tgt) {
  model.zero_grad();
  AttentionMask causal;
  causal.causal = true;
  const Tensor out = model.forward(src, tgt, {}, causal);
  sum(out * out).backward();
  Pass p;
  p.output = values(out);
  for (const Tensor& t : model.parameters()) p.grads.push_back(values(t.grad()));
  return p;
}

TEST(ForwardHooks, ObservingHooksChangeNeitherOutputsNorGradients) {
  Generator g(13), drop(14);
  nn::TransformerOptions o = small_transformer();
  o.dropout = 0.1;
  o.dropout_generator = &drop;
  nn::Transformer model(o, g);
  const Tensor src = randn({2, 5, 16}, g), tgt = randn({2, 3, 16}, g);
  // training mode with dropout: each pass starts from the same generator state
  const Generator start = drop;
  const Pass plain = run_pass(model, src, tgt);
  ASSERT_GT(max_abs(from_vector(plain.grads.back(), {static_cast<std::int64_t>(plain.grads.back().size())})), 0.0);

  // hooks on every module that read inputs and outputs: bit for bit the same
  drop = start;
  std::size_t observed = 0;
  {
    std::vector<nn::HookHandle> handles;
    for (const auto& [path, m] : model.named_modules()) {
      auto* module = const_cast<nn::Module*>(m);
      handles.push_back(module->register_forward_pre_hook([&](nn::ForwardCall& c) { observed += c.inputs.size(); }));
      handles.push_back(module->register_forward_hook(
          [&](const nn::ForwardCall&, std::vector<Tensor>& out) { observed += out.size(); }));
    }
    const Pass hooked = run_pass(model, src, tgt);
    EXPECT_EQ(hooked.output, plain.output);
    EXPECT_EQ(hooked.grads, plain.grads);
  }
  EXPECT_GT(observed, 0u);
  drop = start;
  EXPECT_EQ(run_pass(model, src, tgt).grads, plain.grads) << "and after the hooks are gone";

  // the recorder asks for weights, so attention takes the composed path: equal to rounding
  drop = start;
  analysis::AttentionRecorder recorder(model);
  const Pass recorded = run_pass(model, src, tgt);
  ASSERT_EQ(recorded.grads.size(), plain.grads.size());
  EXPECT_LT(max_abs_diff(from_vector(recorded.output, {static_cast<std::int64_t>(recorded.output.size())}),
                         from_vector(plain.output, {static_cast<std::int64_t>(plain.output.size())})),
            1e-5);
  for (std::size_t i = 0; i < plain.grads.size(); ++i) {
    const auto n = static_cast<std::int64_t>(plain.grads[i].size());
    EXPECT_LT(max_abs_diff(from_vector(recorded.grads[i], {n}), from_vector(plain.grads[i], {n})), 1e-4)
        << model.named_parameters()[i].first;
  }
}

}  // namespace
}  // namespace rune
