#include "onnx/graph.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "onnx/protobuf.hpp"
#include "train/files.hpp"

namespace rune::onnx_export {

namespace {

std::string join_values(const std::vector<std::int64_t>& v) {
  std::string s;
  for (std::int64_t x : v) s += std::to_string(x) + ",";
  return s;
}

std::string bytes_of(const void* data, std::size_t size) { return std::string(static_cast<const char*>(data), size); }

}  // namespace

GraphBuilder::GraphBuilder(const std::string& name) { graph_.name = name; }

std::string GraphBuilder::fresh(const std::string& hint) {
  const std::string base = hint.empty() ? "v" : hint;
  // "<hint>:<n>": no parameter, graph input or output has a colon in its name
  return base + ":" + std::to_string(counts_[base]++);
}

std::string GraphBuilder::input(const std::string& name, int type, const std::vector<Dim>& dims) {
  graph_.inputs.push_back({name, type, dims});
  return name;
}

void GraphBuilder::output(const std::string& value, const std::string& name, int type, const std::vector<Dim>& dims) {
  graph_.nodes.push_back({"Identity", name, {value}, {name}, {}});
  graph_.outputs.push_back({name, type, dims});
}

std::string GraphBuilder::initializer(const std::string& name, const Tensor& t) {
  if (const auto it = initializers_.find(name); it != initializers_.end()) {
    if (it->second != t.impl())
      throw std::logic_error("GraphBuilder: two different tensors for the initializer '" + name + "'");
    return name;
  }
  initializers_[name] = t.impl();
  Initializer init{name, kFloat, t.shape(), ""};
  if (t.dtype() == DType::int64) {
    const Tensor c = t.contiguous();
    init.type = kInt64;
    init.raw = bytes_of(c.raw_data(), static_cast<std::size_t>(c.numel()) * 8);
  } else {
    // float64 and float32 parameters alike become float32, the graph's one float type
    const Tensor c = to_dtype(t.detach(), DType::float32).contiguous();
    init.raw = bytes_of(c.raw_data(), static_cast<std::size_t>(c.numel()) * 4);
  }
  graph_.initializers.push_back(std::move(init));
  return name;
}

std::string GraphBuilder::ints(const std::vector<std::int64_t>& values, const std::string& hint) {
  const std::string key = "i:" + join_values(values);
  if (const auto it = constants_.find(key); it != constants_.end()) return it->second;
  const std::string name = fresh(hint);
  graph_.initializers.push_back({name,
                                 kInt64,
                                 {static_cast<std::int64_t>(values.size())},
                                 bytes_of(values.data(), values.size() * sizeof(std::int64_t))});
  return constants_[key] = name;
}

std::string GraphBuilder::scalar(float value, const std::string& hint) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const std::string key = "f:" + std::to_string(bits);
  if (const auto it = constants_.find(key); it != constants_.end()) return it->second;
  const std::string name = fresh(hint);
  graph_.initializers.push_back({name, kFloat, {}, bytes_of(&value, sizeof value)});  // rank 0: broadcasts
  return constants_[key] = name;
}

std::vector<std::string> GraphBuilder::nodes(const std::string& op, const std::vector<std::string>& inputs, int outputs,
                                             const std::vector<Attribute>& attributes, const std::string& hint) {
  const std::string base = fresh(hint.empty() ? op : hint);
  Node n{op, base, inputs, {}, attributes};
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(outputs == 1 ? base : base + "." + std::to_string(i));
  graph_.nodes.push_back(n);
  return n.outputs;
}

std::string GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                               const std::vector<Attribute>& attributes, const std::string& hint) {
  return nodes(op, inputs, 1, attributes, hint).front();
}

// ------------------------------------------------------------------------- layers

namespace {

std::string transpose(GraphBuilder& g, const std::string& x, const std::vector<std::int64_t>& perm,
                      const std::string& hint = "") {
  return g.node("Transpose", {x}, {{"perm", perm}}, hint);
}

}  // namespace

std::string linear(GraphBuilder& g, const std::string& x, const std::string& weight, const std::string& bias) {
  const std::string y = g.node("MatMul", {x, transpose(g, weight, {1, 0}, "weight_t")});
  return bias.empty() ? y : g.node("Add", {y, bias});
}

std::string linear(GraphBuilder& g, const nn::Linear& m, const std::string& prefix, const std::string& x) {
  const std::string w = g.initializer(prefix + ".weight", m.weight);
  return linear(g, x, w, m.bias.defined() ? g.initializer(prefix + ".bias", m.bias) : "");
}

std::string layer_norm(GraphBuilder& g, const nn::LayerNorm& m, const std::string& prefix, const std::string& x) {
  const std::int64_t C = m.normalized_shape;
  const std::string scale = m.weight.defined() ? g.initializer(prefix + ".weight", m.weight)
                                               : g.initializer(prefix + ".unit_weight", ones({C}));
  const std::string bias =
      m.bias.defined() ? g.initializer(prefix + ".bias", m.bias) : g.initializer(prefix + ".zero_bias", zeros({C}));
  return g.node("LayerNormalization", {x, scale, bias},
                {{"axis", std::int64_t{-1}}, {"epsilon", static_cast<float>(m.eps)}}, "layer_norm");
}

std::string activation(GraphBuilder& g, nn::Activation a, const std::string& x) {
  if (a == nn::Activation::relu) return g.node("Relu", {x});
  // 0.5 x (1 + erf(x / sqrt 2)), the exact GELU
  const std::string e = g.node("Erf", {g.node("Mul", {x, g.scalar(static_cast<float>(M_SQRT1_2))})});
  const std::string one_plus = g.node("Add", {e, g.scalar(1.0f)});
  return g.node("Mul", {g.node("Mul", {x, one_plus}), g.scalar(0.5f)}, {}, "gelu");
}

std::string embedding(GraphBuilder& g, const nn::Embedding& m, const std::string& prefix, const std::string& ids) {
  return g.node("Gather", {g.initializer(prefix + ".weight", m.weight), ids}, {{"axis", std::int64_t{0}}}, "embed");
}

std::string padding_bias(GraphBuilder& g, const std::string& key_padding_mask) {
  // the lowest float rather than -inf: a row of padding alone stays finite (it never happens here:
  // every source ends in <eos>)
  const std::string bias = g.node(
      "Where", {key_padding_mask, g.scalar(std::numeric_limits<float>::lowest(), "masked"), g.scalar(0.0f, "zero")});
  return g.node("Unsqueeze", {bias, g.ints({1, 2}, "axes")}, {}, "padding_bias");  // (B, 1, 1, Tk)
}

AttentionValues multihead_attention(GraphBuilder& g, const nn::MultiheadAttention& m, const std::string& prefix,
                                    const std::string& query, const std::string& key_value, const std::string& bias,
                                    const std::string& past_key, const std::string& past_value) {
  const nn::MultiheadAttentionOptions& o = m.options;
  if (o.rotary)
    throw std::invalid_argument(prefix + ": rotary positions are not exported to ONNX (only absolute positions are)");
  const std::int64_t C = o.embed_dim, H = o.num_heads, Hkv = m.num_kv_heads, D = m.head_dim, KV = Hkv * D;
  // the q, k and v weights and biases: rows of the packed ones, or the separate ones
  std::string wq, wk, wv, bq, bk, bv;
  const std::string sizes = g.ints({C, KV, KV}, "qkv_sizes");
  if (m.in_proj_weight.defined()) {
    const auto w = g.nodes("Split", {g.initializer(prefix + ".in_proj_weight", m.in_proj_weight), sizes}, 3,
                           {{"axis", std::int64_t{0}}}, "in_proj_weight");
    wq = w[0], wk = w[1], wv = w[2];
  } else {
    wq = g.initializer(prefix + ".q_proj_weight", m.q_proj_weight);
    wk = g.initializer(prefix + ".k_proj_weight", m.k_proj_weight);
    wv = g.initializer(prefix + ".v_proj_weight", m.v_proj_weight);
  }
  if (m.in_proj_bias.defined()) {
    const auto b = g.nodes("Split", {g.initializer(prefix + ".in_proj_bias", m.in_proj_bias), sizes}, 3,
                           {{"axis", std::int64_t{0}}}, "in_proj_bias");
    bq = b[0], bk = b[1], bv = b[2];
  }
  // (B, T, heads * D) -> (B, heads, T, D)
  const auto heads = [&](const std::string& x, std::int64_t n) {
    return transpose(g, g.node("Reshape", {x, g.ints({0, 0, n, D})}), {0, 2, 1, 3}, "heads");
  };
  const std::string q = heads(linear(g, query, wq, bq), H);  // (B, H, Tq, D)
  std::string k = heads(linear(g, key_value, wk, bk), Hkv);  // (B, Hkv, Tk, D)
  std::string v = heads(linear(g, key_value, wv, bv), Hkv);
  if (!past_key.empty()) {
    k = g.node("Concat", {past_key, k}, {{"axis", std::int64_t{2}}}, "present_key");
    v = g.node("Concat", {past_value, v}, {{"axis", std::int64_t{2}}}, "present_value");
  }
  // grouped-query heads: the G = H / Hkv query heads of a key/value head are adjacent, so
  // (B, H, Tq, D) read as (B, Hkv, G Tq, D) meets its keys in one MatMul
  const bool grouped = Hkv != H;
  const std::string qg = grouped ? g.node("Reshape", {q, g.ints({0, Hkv, -1, D})}) : q;
  std::string scores = g.node("MatMul", {qg, transpose(g, k, {0, 1, 3, 2}, "keys_t")}, {}, "scores");
  scores = g.node("Mul", {scores, g.scalar(static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))), "scale")});
  if (!bias.empty()) scores = g.node("Add", {scores, bias}, {}, "masked_scores");
  const std::string p = g.node("Softmax", {scores}, {{"axis", std::int64_t{-1}}}, "attention_weights");
  std::string out = g.node("MatMul", {p, v}, {}, "attention");                                    // (B, Hkv, G Tq, D)
  if (grouped) out = g.node("Reshape", {out, g.ints({0, H, -1, D})});                             // (B, H, Tq, D)
  out = g.node("Reshape", {transpose(g, out, {0, 2, 1, 3}), g.ints({0, 0, C})}, {}, "combined");  // (B, Tq, C)
  return {linear(g, *m.out_proj, prefix + ".out_proj", out), k, v};
}

namespace {

std::string feed_forward(GraphBuilder& g, const nn::Linear& linear1, const nn::Linear& linear2, nn::Activation a,
                         const std::string& prefix, const std::string& x) {
  return linear(g, linear2, prefix + ".linear2", activation(g, a, linear(g, linear1, prefix + ".linear1", x)));
}

}  // namespace

std::string encoder_layer(GraphBuilder& g, const nn::TransformerEncoderLayer& m, const std::string& prefix,
                          const std::string& x, const std::string& bias) {
  const auto sa = [&](const std::string& in) {
    return multihead_attention(g, *m.self_attn, prefix + ".self_attn", in, in, bias).output;
  };
  const auto ff = [&](const std::string& in) {
    return feed_forward(g, *m.linear1, *m.linear2, m.options.activation, prefix, in);
  };
  const auto norm = [&](const nn::LayerNorm& n, const char* name, const std::string& in) {
    return layer_norm(g, n, prefix + "." + name, in);
  };
  if (m.options.norm_first) {  // x = x + sa(norm1(x)); x + ff(norm2(x))
    const std::string h = g.node("Add", {x, sa(norm(*m.norm1, "norm1", x))}, {}, "residual");
    return g.node("Add", {h, ff(norm(*m.norm2, "norm2", h))}, {}, "residual");
  }
  // x = norm1(x + sa(x)); norm2(x + ff(x))
  const std::string h = norm(*m.norm1, "norm1", g.node("Add", {x, sa(x)}, {}, "residual"));
  return norm(*m.norm2, "norm2", g.node("Add", {h, ff(h)}, {}, "residual"));
}

std::string encoder(GraphBuilder& g, const nn::TransformerEncoder& m, const std::string& prefix, const std::string& x,
                    const std::string& bias) {
  std::string h = x;
  for (std::size_t i = 0; i < m.layers->size(); ++i)
    h = encoder_layer(g, (*m.layers)[i], prefix + ".layers." + std::to_string(i), h, bias);
  return m.norm ? layer_norm(g, *m.norm, prefix + ".norm", h) : h;
}

AttentionValues decoder_layer(GraphBuilder& g, const nn::TransformerDecoderLayer& m, const std::string& prefix,
                              const std::string& x, const std::string& memory, const std::string& memory_bias,
                              const std::string& past_key, const std::string& past_value) {
  AttentionValues self;
  const auto sa = [&](const std::string& in) {
    self = multihead_attention(g, *m.self_attn, prefix + ".self_attn", in, in, "", past_key, past_value);
    return self.output;
  };
  const auto ca = [&](const std::string& in) {
    return multihead_attention(g, *m.multihead_attn, prefix + ".multihead_attn", in, memory, memory_bias).output;
  };
  const auto ff = [&](const std::string& in) {
    return feed_forward(g, *m.linear1, *m.linear2, m.options.activation, prefix, in);
  };
  const auto norm = [&](const nn::LayerNorm& n, const char* name, const std::string& in) {
    return layer_norm(g, n, prefix + "." + name, in);
  };
  const auto add = [&](const std::string& a, const std::string& b) { return g.node("Add", {a, b}, {}, "residual"); };
  std::string h;
  if (m.options.norm_first) {  // x + sa(norm1(x)); + ca(norm2(x)); + ff(norm3(x))
    h = add(x, sa(norm(*m.norm1, "norm1", x)));
    h = add(h, ca(norm(*m.norm2, "norm2", h)));
    h = add(h, ff(norm(*m.norm3, "norm3", h)));
  } else {  // norm1(x + sa(x)); norm2(x + ca(x)); norm3(x + ff(x))
    h = norm(*m.norm1, "norm1", add(x, sa(x)));
    h = norm(*m.norm2, "norm2", add(h, ca(h)));
    h = norm(*m.norm3, "norm3", add(h, ff(h)));
  }
  return {h, self.key, self.value};
}

// ------------------------------------------------------------------------- convolutional layers

namespace {

std::vector<std::int64_t> pair(const std::array<std::int64_t, 2>& a) { return {a[0], a[1]}; }

// ONNX's pads: the begins of every spatial axis, then their ends
std::vector<std::int64_t> pads(const std::array<std::int64_t, 2>& p) { return {p[0], p[1], p[0], p[1]}; }

std::vector<Attribute> pool_attributes(const rune::Pool2dOptions& o) {
  const std::array<std::int64_t, 2> stride = o.stride[0] == 0 && o.stride[1] == 0 ? o.kernel_size : o.stride;
  return {{"kernel_shape", pair(o.kernel_size)},
          {"strides", pair(stride)},
          {"pads", pads(o.padding)},
          {"ceil_mode", std::int64_t{o.ceil_mode}}};
}

}  // namespace

std::string conv2d(GraphBuilder& g, const nn::Conv2d& m, const std::string& prefix, const std::string& x) {
  std::vector<std::string> inputs{x, g.initializer(prefix + ".weight", m.weight)};
  if (m.bias.defined()) inputs.push_back(g.initializer(prefix + ".bias", m.bias));
  return g.node("Conv", inputs,
                {{"kernel_shape", pair(m.kernel_size)},
                 {"strides", pair(m.options.stride)},
                 {"pads", pads(m.options.padding)},
                 {"dilations", pair(m.options.dilation)},
                 {"group", m.options.groups}},
                "conv");
}

std::string batch_norm(GraphBuilder& g, const nn::BatchNorm2d& m, const std::string& prefix, const std::string& x) {
  if (!m.running_mean.defined())
    throw std::invalid_argument(prefix +
                                ": a BatchNorm2d without running statistics normalises by each batch's, "
                                "which an exported (evaluation) graph does not do");
  const std::int64_t C = m.num_features;
  const std::string scale = m.weight.defined() ? g.initializer(prefix + ".weight", m.weight)
                                               : g.initializer(prefix + ".unit_weight", ones({C}));
  const std::string bias =
      m.bias.defined() ? g.initializer(prefix + ".bias", m.bias) : g.initializer(prefix + ".zero_bias", zeros({C}));
  return g.node("BatchNormalization",
                {x, scale, bias, g.initializer(prefix + ".running_mean", m.running_mean),
                 g.initializer(prefix + ".running_var", m.running_var)},
                {{"epsilon", static_cast<float>(m.eps)}}, "batch_norm");
}

std::string max_pool2d(GraphBuilder& g, const nn::MaxPool2d& m, const std::string& x) {
  std::vector<Attribute> a = pool_attributes(m.options);
  a.push_back({"dilations", pair(m.options.dilation)});
  return g.node("MaxPool", {x}, a, "max_pool");
}

std::string avg_pool2d(GraphBuilder& g, const nn::AvgPool2d& m, const std::string& x) {
  if (m.options.dilation[0] != 1 || m.options.dilation[1] != 1)
    throw std::invalid_argument("AvgPool2d: a dilated average pool has no ONNX operator before opset 19");
  std::vector<Attribute> a = pool_attributes(m.options);
  a.push_back({"count_include_pad", std::int64_t{m.options.count_include_pad}});
  return g.node("AveragePool", {x}, a, "avg_pool");
}

std::string adaptive_avg_pool2d(GraphBuilder& g, const nn::AdaptiveAvgPool2d& m, const std::string& x) {
  if (m.output_size[0] != 1 || m.output_size[1] != 1)
    throw std::invalid_argument("AdaptiveAvgPool2d: output size (" + std::to_string(m.output_size[0]) + ", " +
                                std::to_string(m.output_size[1]) +
                                ") is exported only as (1, 1) (GlobalAveragePool); its cells depend on the input size");
  return g.node("GlobalAveragePool", {x}, {}, "global_avg_pool");
}

// ------------------------------------------------------------------------- models

Model make_model(GraphBuilder& g, const std::map<std::string, std::string>& metadata) {
  return Model{g.graph(), kOpset, "runestone", RUNE_ONNX_PRODUCER_VERSION, metadata};
}

void check_model(const Model& model, const std::string& what) {
  try {
    serialize(model);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": " + e.what());
  }
}

void write_model(const Model& model, const std::string& path) {
  std::string bytes;
  try {
    bytes = serialize(model);
  } catch (const std::exception& e) {
    throw std::runtime_error("ONNX model " + path + " (graph " + model.graph.name + "): " + e.what());
  }
  train::write_file(path, bytes, "ONNX model");
}

}  // namespace rune::onnx_export
