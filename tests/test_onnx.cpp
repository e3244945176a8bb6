// onnx/: the graphs of small models pass the ONNX checker's full check and read back as written, with dynamic batch and
// length dimensions, the checkpoint's parameter names and values as initializers, only standard
// operators, and the decoder step's cache inputs and outputs; the checker refuses a broken graph
// and the writer leaves nothing behind then. That the graphs compute what the models compute is
// checked in ONNX Runtime (tests/onnx/check.mjs, the tasks' *_onnx_e2e tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "autograd/ops.hpp"
#include "onnx/export.hpp"
#include "onnx/graph.hpp"
#include "onnx/protobuf.hpp"
#include "tests/helpers.hpp"
#include "text/subword.hpp"

namespace rune::onnx_export {
namespace {

namespace fs = std::filesystem;

const ValueInfo& value(const std::vector<ValueInfo>& values, const std::string& name) {
  for (const ValueInfo& v : values)
    if (v.name == name) return v;
  throw std::runtime_error("no graph input or output named " + name);
}

// A value's dims as text: "batch,3,8,8".
std::string dims(const ValueInfo& v) {
  std::string s;
  for (const Dim& d : v.dims)
    s += (s.empty() ? "" : ",") + (std::holds_alternative<std::string>(d) ? std::get<std::string>(d)
                                                                          : std::to_string(std::get<std::int64_t>(d)));
  return s;
}

const Initializer* initializer(const Model& m, const std::string& name) {
  for (const Initializer& t : m.graph.initializers)
    if (t.name == name) return &t;
  return nullptr;
}

// Every parameter of the model is an initializer of its name, shape and float32 values.
void expect_parameters_as_initializers(const Model& m, const nn::Module& model,
                                       const std::vector<std::string>& except = {}) {
  for (const auto& [name, p] : model.named_parameters()) {
    if (std::find(except.begin(), except.end(), name) != except.end()) continue;
    const Initializer* t = initializer(m, name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->type, kFloat) << name;
    EXPECT_EQ(t->dims, p.shape()) << name;
    const Tensor c = p.contiguous();
    ASSERT_EQ(t->raw.size(), static_cast<std::size_t>(c.numel()) * 4) << name;
    EXPECT_EQ(std::memcmp(t->raw.data(), c.data<float>(), t->raw.size()), 0) << name;
  }
}

// The operators a graph uses; all of the default domain (parse() names another as "domain.Op").
std::set<std::string> operators(const Model& m) {
  std::set<std::string> ops;
  for (const Node& n : m.graph.nodes) {
    EXPECT_EQ(n.op_type.find('.'), std::string::npos) << n.op_type << " is not a standard ONNX operator";
    ops.insert(n.op_type);
  }
  return ops;
}

std::string meta(const Model& m, const std::string& key) {
  const auto it = m.metadata.find(key);
  return it == m.metadata.end() ? "(none)" : it->second;
}

// The model as the ONNX library reads it back from its serialised bytes.
Model round_trip(const Model& m) { return parse(serialize(m), "round trip"); }

nn::VisionTransformerOptions tiny_vit(nn::ViTPool pool) {
  nn::VisionTransformerOptions o;
  o.image_size = 8;
  o.patch_size = 4;
  o.in_chans = 3;
  o.num_classes = 5;
  o.embed_dim = 8;
  o.depth = 2;
  o.num_heads = 2;
  o.mlp_dim = 16;
  o.pool = pool;
  return o;
}

TEST(OnnxExport, TheViTGraphPassesTheFullCheckWithADynamicBatch) {
  for (const nn::ViTPool pool : {nn::ViTPool::cls, nn::ViTPool::mean}) {
    Generator gen(3);
    const nn::VisionTransformer vit(tiny_vit(pool), gen);
    // what the library writes and reads back, checked on the way
    const Model m = round_trip(vit_model(vit, {0.5, 0.4, 0.3}, {0.2, 0.25, 0.3}, {{"classes", "[\"a\"]"}}));
    EXPECT_EQ(m.opset, 17);
    EXPECT_EQ(m.producer_name, "runestone");
    ASSERT_EQ(m.graph.inputs.size(), 1u);
    EXPECT_EQ(dims(value(m.graph.inputs, "images")), "batch,3,8,8");
    EXPECT_EQ(dims(value(m.graph.outputs, "logits")), "batch,5");
    expect_parameters_as_initializers(m, vit);
    EXPECT_NE(initializer(m, "encoder.layers.1.self_attn.in_proj_weight"), nullptr);
    EXPECT_EQ(meta(m, "classes"), "[\"a\"]");
    const std::set<std::string> ops = operators(m);
    for (const char* op : {"MatMul", "Softmax", "Transpose", "Reshape", "LayerNormalization", "Erf", "Conv"})
      EXPECT_TRUE(ops.count(op)) << op;
    for (const char* op : {"Attention", "MultiHeadAttention", "Gelu", "FastGelu"}) EXPECT_FALSE(ops.count(op)) << op;
    EXPECT_EQ(ops.count("ReduceMean"), pool == nn::ViTPool::mean ? 1u : 0u);
  }
}

TEST(OnnxExport, TheViTRefusesStatisticsForAnotherNumberOfChannels) {
  Generator gen(3);
  const nn::VisionTransformer vit(tiny_vit(nn::ViTPool::cls), gen);
  EXPECT_EQ(error_of([&] { vit_model(vit, {0.5}, {0.2}, {}); }),
            "vit_model: mean and std for 1 and 1 channels, the model reads 3");
}

TEST(OnnxExport, TheResNetGraphPassesTheFullCheckWithTheCheckpointsNames) {
  nn::ResNetOptions o;
  o.in_chans = 3;
  o.num_classes = 5;
  o.widths = {4, 8};
  o.blocks = {2, 1};
  Generator gen(7);
  const nn::ResNet net(o, gen);
  const Model m = round_trip(resnet_model(net, 8, {0.5, 0.4, 0.3}, {0.2, 0.25, 0.3}, {{"classes", "[\"a\"]"}}));
  EXPECT_EQ(m.graph.name, "resnet");
  EXPECT_EQ(m.opset, 17);
  ASSERT_EQ(m.graph.inputs.size(), 1u);
  EXPECT_EQ(dims(value(m.graph.inputs, "images")), "batch,3,8,8");
  EXPECT_EQ(dims(value(m.graph.outputs, "logits")), "batch,5");
  EXPECT_EQ(meta(m, "classes"), "[\"a\"]");
  expect_parameters_as_initializers(m, net);
  // the batch norms' running statistics are initializers of their buffers' names; the step count is not
  for (const auto& [name, t] : net.named_buffers()) {
    const bool count = name.size() > 19 && name.compare(name.size() - 19, 19, "num_batches_tracked") == 0;
    EXPECT_EQ(initializer(m, name) != nullptr, !count) << name;
  }
  for (const char* name : {"bn1.running_mean", "layer1.1.bn2.running_var", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.running_mean", "fc.weight", "normalize.scale"})
    EXPECT_NE(initializer(m, name), nullptr) << name;
  EXPECT_EQ(initializer(m, "layer1.0.downsample.0.weight"), nullptr) << "layer1 keeps the shape: x is the shortcut";
  // conv1, 2 convolutions per block, the one downsample; a batch norm after each; no conv bias
  std::map<std::string, int> count;
  for (const Node& n : m.graph.nodes) {
    ++count[n.op_type];
    if (n.op_type == "Conv") {
      EXPECT_EQ(n.inputs.size(), 2u) << n.name << " has a bias";
    }
  }
  EXPECT_EQ(count["Conv"], 1 + 2 * 3 + 1);
  EXPECT_EQ(count["BatchNormalization"], count["Conv"]);
  EXPECT_EQ(count["Add"], 3 + 1);  // the residuals, then fc's bias
  EXPECT_EQ(count["Relu"], 1 + 2 * 3);
  EXPECT_EQ(count["GlobalAveragePool"], 1);
  EXPECT_EQ(count["Flatten"], 1);
  const std::set<std::string> ops = operators(m);  // standard operators only
  EXPECT_EQ(ops, (std::set<std::string>{"Mul", "Sub", "Conv", "BatchNormalization", "Relu", "Add", "GlobalAveragePool",
                                        "Flatten", "Transpose", "MatMul", "Identity"}));
}

TEST(OnnxExport, TheResNetRefusesStatisticsForAnotherNumberOfChannels) {
  Generator gen(7);
  const nn::ResNet net(nn::ResNetOptions{}, gen);
  EXPECT_EQ(error_of([&] { resnet_model(net, 8, {0.5}, {0.2}, {}); }),
            "resnet_model: mean and std for 1 and 1 channels, the model reads 3");
}

nn::Seq2SeqOptions tiny_seq2seq(bool norm_first, bool tied, bool learned, std::int64_t kv_heads) {
  nn::Seq2SeqOptions o;
  o.src_vocab = 11;
  o.tgt_vocab = 13;
  o.max_len = 9;
  o.learned_positions = learned;
  o.tie_output = tied;
  o.transformer.d_model = 8;
  o.transformer.nhead = 4;
  o.transformer.num_kv_heads = kv_heads;
  o.transformer.num_encoder_layers = 2;
  o.transformer.num_decoder_layers = 3;
  o.transformer.dim_feedforward = 16;
  o.transformer.norm_first = norm_first;
  o.transformer.activation = nn::Activation::relu;
  return o;
}

TEST(OnnxExport, TheEncoderAndDecoderStepGraphsPassTheFullCheck) {
  struct Case {
    bool norm_first, tied, learned;
    std::int64_t kv_heads;
  };
  for (const Case c : {Case{true, false, false, 0}, Case{false, true, true, 0}, Case{true, true, false, 2}}) {
    SCOPED_TRACE("norm_first " + std::to_string(c.norm_first) + ", tied " + std::to_string(c.tied) + ", learned " +
                 std::to_string(c.learned) + ", kv_heads " + std::to_string(c.kv_heads));
    Generator gen(5);
    const nn::Seq2SeqTransformer model(tiny_seq2seq(c.norm_first, c.tied, c.learned, c.kv_heads), gen);
    const Model enc = round_trip(seq2seq_encoder_model(model, {{"eos_id", "2"}}));
    const Model dec = round_trip(seq2seq_decoder_model(model, {{"eos_id", "2"}}));
    EXPECT_EQ(dims(value(enc.graph.inputs, "src")), "batch,source_length");
    EXPECT_EQ(dims(value(enc.graph.outputs, "memory")), "batch,source_length,8");
    EXPECT_EQ(value(enc.graph.outputs, "src_padding_mask").type, kBool);
    const std::string kv = c.kv_heads ? "2" : "4";
    EXPECT_EQ(dec.graph.inputs.size(), 4u + 2 * 3);
    EXPECT_EQ(dims(value(dec.graph.inputs, "token")), "batch,1");
    EXPECT_EQ(dims(value(dec.graph.inputs, "position")), "1");
    EXPECT_EQ(dims(value(dec.graph.inputs, "past_value_2")), "batch," + kv + ",past_length,2");
    EXPECT_EQ(dims(value(dec.graph.outputs, "present_key_0")), "batch," + kv + ",present_length,2");
    EXPECT_EQ(dims(value(dec.graph.outputs, "log_probs")), "batch,13");
    EXPECT_EQ(meta(dec, "eos_id"), "2");
    EXPECT_EQ(meta(dec, "decoder_layers"), "3");
    EXPECT_EQ(meta(dec, "kv_heads"), kv);
    EXPECT_EQ(meta(dec, "head_dim"), "2");
    // the encoder holds no decoder parameter and the decoder no encoder one; both the positions
    std::vector<std::string> not_in_encoder, not_in_decoder;
    for (const auto& [name, p] : model.named_parameters()) {
      const bool encoder_side = name.rfind("src_embed", 0) == 0 || name.rfind("transformer.encoder", 0) == 0;
      const bool both = name.rfind("positions", 0) == 0;
      if (!encoder_side && !both) not_in_encoder.push_back(name);
      if (encoder_side) not_in_decoder.push_back(name);
    }
    expect_parameters_as_initializers(enc, model, not_in_encoder);
    expect_parameters_as_initializers(dec, model, not_in_decoder);
    for (const std::string& name : not_in_encoder) EXPECT_EQ(initializer(enc, name), nullptr) << name;
    EXPECT_EQ(initializer(dec, "src_embed.weight"), nullptr);
    EXPECT_EQ(initializer(dec, "generator.weight") != nullptr, !c.tied);
    EXPECT_EQ(initializer(dec, "positions.pe") != nullptr, !c.learned) << "the sinusoids, a buffer, are a table";
    EXPECT_EQ(initializer(dec, "transformer.decoder.layers.0.self_attn.k_proj_weight") != nullptr, c.kv_heads != 0);
    if (c.tied) {  // one initializer, read by the embedding's Gather and the output projection
      std::size_t readers = 0;
      for (const Node& n : dec.graph.nodes)
        readers += static_cast<std::size_t>(std::count(n.inputs.begin(), n.inputs.end(), "tgt_embed.weight"));
      EXPECT_EQ(readers, 2u);
    }
    EXPECT_TRUE(operators(dec).count("LogSoftmax"));
  }
}

TEST(OnnxExport, RotaryPositionsAreRefusedSayingWhy) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = 8;
  o.num_heads = 2;
  o.rotary = true;
  Generator gen(1);
  const nn::MultiheadAttention mha(o, gen);
  GraphBuilder g("rotary");
  const std::string x = g.input("x", kFloat, {"batch", "length", 8});
  EXPECT_EQ(error_of([&] { multihead_attention(g, mha, "self_attn", x, x); }),
            "self_attn: rotary positions are not exported to ONNX (only absolute positions are)");
}

TEST(OnnxExport, AnInitializerNameHoldsOneTensor) {
  GraphBuilder g("names");
  const Tensor a = ones({2}), b = ones({2});
  EXPECT_EQ(g.initializer("w", a), "w");
  EXPECT_EQ(g.initializer("w", a), "w");  // shared: one initializer
  EXPECT_EQ(g.graph().initializers.size(), 1u);
  EXPECT_EQ(error_of([&] { g.initializer("w", b); }), "GraphBuilder: two different tensors for the initializer 'w'");
  EXPECT_EQ(g.ints({1, 2}), g.ints({1, 2}));  // constants are made once
  EXPECT_NE(g.ints({1, 2}), g.ints({2, 1}));
}

TEST(OnnxExport, TheCheckerRefusesABrokenGraphAndNothingIsWritten) {
  GraphBuilder g("broken");
  const std::string x = g.input("x", kFloat, {"batch", 4});
  g.output(g.node("Add", {x, "nowhere"}), "y", kFloat, {"batch", 4});
  const Model m = make_model(g, {});
  const std::string error = error_of([&] { check_model(m, "the broken model"); });
  EXPECT_EQ(error.rfind("the broken model: the ONNX checker refuses the model: ", 0), 0u) << error;
  EXPECT_NE(error.find("nowhere"), std::string::npos) << error;
  // a type error only the full check's shape inference sees: Softmax of int64
  GraphBuilder t("typed");
  const std::string ids = t.input("ids", kInt64, {"batch"});
  t.output(t.node("Softmax", {ids}), "p", kInt64, {"batch"});
  EXPECT_NE(error_of([&] { check_model(make_model(t, {}), "typed"); }), "no exception");

  const fs::path dir = scratch_dir("onnx_broken");
  const std::string path = (dir / "broken.onnx").string();
  EXPECT_NE(error_of([&] { write_model(m, path); }), "no exception");
  EXPECT_TRUE(fs::is_empty(dir)) << "neither the model nor a temporary";
}

TEST(OnnxExport, TheEncoderDecoderFilesAreNamedFromThePathAndReadBack) {
  EXPECT_EQ(seq2seq_paths("out/numbers.onnx"),
            (std::vector<std::string>{"out/numbers-encoder.onnx", "out/numbers-decoder.onnx"}));
  EXPECT_EQ(seq2seq_paths("numbers"), (std::vector<std::string>{"numbers-encoder.onnx", "numbers-decoder.onnx"}));
  Generator gen(5);
  const nn::Seq2SeqTransformer model(tiny_seq2seq(true, false, false, 0), gen);
  const fs::path dir = scratch_dir("onnx_files");
  const std::vector<std::string> written = write_seq2seq(model, {{"bos_id", "1"}}, (dir / "m.onnx").string());
  ASSERT_EQ(written.size(), 2u);
  for (const std::string& path : written) {
    const Model back = parse(read_file(path), path);
    EXPECT_NO_THROW(check_model(back, path));
    EXPECT_EQ(meta(back, "bos_id"), "1");
  }
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"m-encoder.onnx", "m-decoder.onnx"}));
}

// Debian's libsentencepiece carries a protobuf of its own; the ONNX library is loaded beside it
// (onnx/protobuf.hpp) so that both work in one process, in either order.
TEST(OnnxExport, TheOnnxLibraryAndSentencePieceWorkInOneProcess) {
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i)
    lines.push_back("seventy one two hundred and thirty four " + std::to_string(i * 7919 % 1000) + " thousand");
  const text::SubwordModel before = text::SubwordModel::train(lines, {300, "unigram", 1.0});
  Generator gen(5);
  const nn::Seq2SeqTransformer model(tiny_seq2seq(true, false, false, 0), gen);
  EXPECT_NO_THROW(check_model(seq2seq_encoder_model(model, {}), "encoder"));
  const text::SubwordModel after = text::SubwordModel::train(lines, {300, "bpe", 1.0});
  for (const text::SubwordModel* m : {&before, &after}) EXPECT_EQ(m->decode(m->encode(lines[3])), lines[3]);
  EXPECT_EQ(text::SubwordModel::from_bytes(before.bytes(), "before").encode(lines[5]), before.encode(lines[5]));
}

}  // namespace
}  // namespace rune::onnx_export
