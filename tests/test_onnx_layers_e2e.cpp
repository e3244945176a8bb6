// onnx/graph.hpp's builders that no exported task exercises, run in ONNX Runtime (e2e: Node.js,
// tests/onnx/check.mjs tensors) against rune's own forward on the same inputs: a small CNN
// (Conv2d with padding, stride, dilation and groups, BatchNorm2d by its running statistics, ReLU,
// MaxPool2d, AvgPool2d without counting padding, AdaptiveAvgPool2d to 1x1), and grouped-query
// attention (4 query heads over 2 key/value heads) with a padding mask.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "onnx/graph.hpp"
#include "tests/helpers.hpp"
#include "tests/onnx_check.hpp"

namespace rune::onnx_export {
namespace {

namespace fs = std::filesystem;

void write_floats(const fs::path& path, const Tensor& t) {
  const Tensor c = to_dtype(t.detach(), DType::float32).contiguous();
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(c.raw_data()), static_cast<std::streamsize>(c.numel() * 4));
}

// Writes the inputs, rune's outputs and spec.json into dir; runs the check on model.onnx there.
RunResult check_in_runtime(const fs::path& dir, const std::vector<std::pair<std::string, Tensor>>& inputs,
                           const std::vector<std::pair<std::string, Tensor>>& outputs) {
  nlohmann::json spec;
  for (const auto& [name, t] : inputs) {
    write_floats(dir / (name + ".f32"), t);
    spec["inputs"].push_back({{"name", name}, {"file", name + ".f32"}, {"dims", t.shape()}});
  }
  for (const auto& [name, t] : outputs) {
    write_floats(dir / (name + ".f32"), t);
    spec["outputs"].push_back({{"name", name}, {"file", name + ".f32"}});
  }
  std::ofstream(dir / "spec.json") << spec.dump();
  return run_onnx_check("tensors --model model.onnx --spec spec.json --tolerance 1e-5", dir.string());
}

TEST(OnnxLayers, ConvolutionalLayersComputeAsRunesInOnnxRuntime) {
  Generator gen(7);
  Conv2dOptions strided;
  strided.stride = {2, 2};
  strided.padding = {1, 1};
  strided.dilation = {1, 2};
  strided.groups = 2;
  Conv2dOptions padded;
  padded.padding = {1, 1};
  const nn::Conv2d conv1(3, 4, {3, 3}, padded, true, gen), conv2(4, 6, {3, 3}, strided, false, gen);
  nn::BatchNorm2d bn(4);
  {  // running statistics and affine parameters away from their initial ones
    NoGradGuard no_grad;
    bn.running_mean.copy_(randn({4}, gen));
    bn.running_var.copy_(rand({4}, gen) + 0.5);
    bn.weight.copy_(randn({4}, gen));
    bn.bias.copy_(randn({4}, gen));
  }
  bn.eval();
  const nn::MaxPool2d max_pool(nn::pool_options(2));
  Pool2dOptions avg;
  avg.kernel_size = {3, 3};
  avg.stride = {1, 1};
  avg.padding = {1, 1};
  avg.count_include_pad = false;
  const nn::AvgPool2d avg_pool(avg);
  const nn::AdaptiveAvgPool2d global({1, 1});

  const Tensor x = randn({2, 3, 9, 9}, gen);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = global.forward(avg_pool.forward(conv2.forward(max_pool.forward(relu(bn.forward(conv1.forward(x)))))));
  }
  GraphBuilder g("cnn");
  const std::string in = g.input("x", kFloat, {"batch", 3, 9, 9});
  std::string h = batch_norm(g, bn, "bn", conv2d(g, conv1, "conv1", in));
  h = max_pool2d(g, max_pool, activation(g, nn::Activation::relu, h));
  h = adaptive_avg_pool2d(g, global, avg_pool2d(g, avg_pool, conv2d(g, conv2, "conv2", h)));
  g.output(h, "y", kFloat, {"batch", 6, 1, 1});
  const fs::path dir = scratch_dir("onnx_cnn");
  write_model(make_model(g, {}), (dir / "model.onnx").string());

  const RunResult r = check_in_runtime(dir, {{"x", x}}, {{"y", y}});
  ASSERT_NE(r.status, 3) << r.output;  // node or npm missing: the output names scripts/install-deps.sh
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("y [2,6,1,1]: max |difference|"), std::string::npos) << r.output;
  // what ONNX cannot say is refused by name
  EXPECT_NE(error_of([&] {
              adaptive_avg_pool2d(g, nn::AdaptiveAvgPool2d({2, 2}), h);
            }).find("(2, 2)"),
            std::string::npos);
  nn::BatchNorm2d untracked(4, 1e-5, 0.1, true, false);
  EXPECT_NE(error_of([&] { batch_norm(g, untracked, "untracked", h); }).find("untracked: a BatchNorm2d without"),
            std::string::npos);
}

TEST(OnnxLayers, GroupedQueryAttentionWithPaddingComputesAsRunesInOnnxRuntime) {
  Generator gen(8);
  nn::MultiheadAttentionOptions o;
  o.embed_dim = 16;
  o.num_heads = 4;
  o.num_kv_heads = 2;
  const nn::MultiheadAttention mha(o, gen);
  {  // biases away from their zero init
    NoGradGuard no_grad;
    Tensor b = mha.in_proj_bias;
    b.copy_(randn(b.shape(), gen));
  }
  const Tensor query = randn({2, 3, 16}, gen), memory = randn({2, 5, 16}, gen);
  // row 0 reads all 5 keys, row 1 the first 3
  const Tensor pad = from_vector(std::vector<float>{0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, {2, 5});
  AttentionMask mask;
  mask.key_padding_mask = gt(pad, full({}, 0.5));
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mha.forward(query, memory, memory, mask).output;
  }
  GraphBuilder g("gqa");
  const std::string q = g.input("query", kFloat, {"batch", "length", 16});
  const std::string kv = g.input("memory", kFloat, {"batch", "keys", 16});
  const std::string p = g.input("pad", kFloat, {"batch", "keys"});
  const std::string bias = padding_bias(g, g.node("Greater", {p, g.scalar(0.5f)}));
  g.output(multihead_attention(g, mha, "attn", q, kv, bias).output, "out", kFloat, {"batch", "length", 16});
  const fs::path dir = scratch_dir("onnx_gqa");
  write_model(make_model(g, {}), (dir / "model.onnx").string());

  const RunResult r = check_in_runtime(dir, {{"query", query}, {"memory", memory}, {"pad", pad}}, {{"out", out}});
  ASSERT_NE(r.status, 3) << r.output;
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("out [2,3,16]: max |difference|"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace rune::onnx_export
