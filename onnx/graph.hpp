// Building ONNX graphs (opset 17) from Runestone modules: a GraphBuilder that names values and
// holds initializers, and one builder per piece of a Transformer or a CNN, each computing what the
// module's forward computes (nn/) in standard ONNX operators only. The graph is plain data
// (onnx/model.hpp); Debian's libonnx checks and serialises it (onnx/protobuf.hpp).
//
// Legend: B batch, T length (Tq queries, Tk keys), C d_model, H query heads, Hkv key/value heads,
// D = C / H head dim, F feed-forward width, V vocabulary.
//
// Contract:
// - Initializers carry the checkpoint's parameter names ("encoder.layers.0.self_attn.in_proj_weight"),
//   the dotted prefix a builder is given plus the module's own names; a parameter used twice (a
//   tied output projection) is one initializer. What a parameter needs to be read differently (a
//   Linear's W^T, the q/k/v rows of in_proj_weight) is a Transpose or Split node over it, which a
//   runtime folds into a constant once.
// - Attention is plain MatMul / Softmax / Transpose / Reshape nodes (no custom or contrib ops);
//   LayerNorm is LayerNormalization (opset 17); GELU is the exact 0.5 x (1 + erf(x / sqrt 2)) as
//   nodes (the Gelu op is opset 20).
// - A mask is an additive float bias broadcast over the scores, (B, 1, 1, Tk): 0 for a key that
//   is read, the lowest float for a padding key (its weight is exactly 0 after the softmax).
// - Every builder returns the name of the value it produced. Intermediate names are unique
//   ("<hint>:<n>", a form no parameter, graph input or output name has).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "nn/attention.hpp"
#include "nn/conv.hpp"
#include "nn/embedding.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/transformer.hpp"
#include "onnx/model.hpp"

namespace rune::onnx_export {

constexpr std::int64_t kOpset = 17;  // LayerNormalization's; libonnx 1.12 knows up to 17

class GraphBuilder {
 public:
  explicit GraphBuilder(const std::string& name);

  // A graph input or output of element type `type` (kFloat, kInt64, kBool).
  // output() gives `value` the output's name through an Identity node.
  std::string input(const std::string& name, int type, const std::vector<Dim>& dims);
  void output(const std::string& value, const std::string& name, int type, const std::vector<Dim>& dims);

  // A float32 (or int64) tensor as an initializer named `name`, once: a second call with the same
  // name returns it again (shared weights), and a different tensor under a taken name throws.
  std::string initializer(const std::string& name, const Tensor& t);
  // Small constants, named "<hint>:<n>" unless the same values were added before.
  std::string ints(const std::vector<std::int64_t>& values, const std::string& hint = "shape");
  std::string scalar(float value, const std::string& hint = "const");

  // A node of `op` over `inputs` (an empty name skips an optional input); its one output, or
  // `outputs` outputs.
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::vector<Attribute>& attributes = {}, const std::string& hint = "");
  std::vector<std::string> nodes(const std::string& op, const std::vector<std::string>& inputs, int outputs,
                                 const std::vector<Attribute>& attributes = {}, const std::string& hint = "");

  Graph& graph() { return graph_; }

 private:
  std::string fresh(const std::string& hint);
  Graph graph_;
  std::map<std::string, const void*> initializers_;  // name -> the tensor's storage it was made from
  std::map<std::string, std::string> constants_;     // "i:1,2" / "f:0.5" -> name
  std::map<std::string, int> counts_;
};

// ------------------------------------------------------------------------- layers

// y = x W^T + b (nn::Linear): MatMul with Transpose(prefix.weight), then Add prefix.bias.
std::string linear(GraphBuilder& g, const nn::Linear& m, const std::string& prefix, const std::string& x);
// The same for initializers `weight` (out, in) and `bias` (out) or "" for none: a projection whose
// weight belongs to another module (an output tied to the embedding).
std::string linear(GraphBuilder& g, const std::string& x, const std::string& weight, const std::string& bias);
// LayerNormalization over the last dim with prefix.weight and prefix.bias (ones and zeros when
// the norm has no affine parameters).
std::string layer_norm(GraphBuilder& g, const nn::LayerNorm& m, const std::string& prefix, const std::string& x);
// Exact GELU (erf) or ReLU.
std::string activation(GraphBuilder& g, nn::Activation a, const std::string& x);
// Rows of an embedding table (Gather): ids int64 (...) -> (..., C).
std::string embedding(GraphBuilder& g, const nn::Embedding& m, const std::string& prefix, const std::string& ids);
// The additive attention bias (B, 1, 1, Tk) of a key padding mask, bool (B, Tk), true = padding.
std::string padding_bias(GraphBuilder& g, const std::string& key_padding_mask);

// Multi-head attention (nn::MultiheadAttention, grouped-query heads included) of `query` (B, Tq,
// C) over `key_value` (B, Tk, C). With `past_key` and `past_value` ((B, Hkv, T_past, D), a
// self-attention cache), this call's keys and values are appended after them and attention runs
// over all. `bias` is an additive mask (B or 1, 1, 1, Tk), or empty. Returns the output
// (B, Tq, C) and the keys and values attended (B, Hkv, Tk, D): the present cache.
struct AttentionValues {
  std::string output, key, value;
};
AttentionValues multihead_attention(GraphBuilder& g, const nn::MultiheadAttention& m, const std::string& prefix,
                                    const std::string& query, const std::string& key_value,
                                    const std::string& bias = "", const std::string& past_key = "",
                                    const std::string& past_value = "");

// An encoder layer (pre- or post-LN, as its options say) over x (B, T, C) with self-attention bias.
std::string encoder_layer(GraphBuilder& g, const nn::TransformerEncoderLayer& m, const std::string& prefix,
                          const std::string& x, const std::string& bias);
// The encoder stack: prefix.layers.N in turn, then prefix.norm when it has one.
std::string encoder(GraphBuilder& g, const nn::TransformerEncoder& m, const std::string& prefix, const std::string& x,
                    const std::string& bias);

// A decoder layer over new positions x (B, T, C) with its self-attention cache (past_key and
// past_value, or empty for none) and cross-attention over memory (B, S, C) with memory_bias.
// Returns the output and the present self-attention keys and values. The self-attention is
// unmasked: it is meant for one new position at a time, which may read every cached one.
AttentionValues decoder_layer(GraphBuilder& g, const nn::TransformerDecoderLayer& m, const std::string& prefix,
                              const std::string& x, const std::string& memory, const std::string& memory_bias,
                              const std::string& past_key, const std::string& past_value);

// ------------------------------------------------------------------------- convolutional layers
// x (B, C, H, W) -> (B, O, P, Q), as the modules compute in eval mode.

// Conv with the module's stride, padding, dilation and groups; prefix.weight and prefix.bias.
std::string conv2d(GraphBuilder& g, const nn::Conv2d& m, const std::string& prefix, const std::string& x);
// BatchNormalization by the running statistics (prefix.running_mean, prefix.running_var: the
// checkpoint's buffers), as evaluation normalises; a norm without running statistics (it
// normalises by each batch's, always) is refused.
std::string batch_norm(GraphBuilder& g, const nn::BatchNorm2d& m, const std::string& prefix, const std::string& x);
// MaxPool and AveragePool with the module's kernel, stride (0: the kernel), padding, ceil_mode
// and count_include_pad; AveragePool has no dilation before opset 19 (a dilated one is refused).
std::string max_pool2d(GraphBuilder& g, const nn::MaxPool2d& m, const std::string& x);
std::string avg_pool2d(GraphBuilder& g, const nn::AvgPool2d& m, const std::string& x);
// AdaptiveAvgPool2d to (1, 1) as GlobalAveragePool; another output size, whose cells depend on
// the input's size, is refused.
std::string adaptive_avg_pool2d(GraphBuilder& g, const nn::AdaptiveAvgPool2d& m, const std::string& x);

// ------------------------------------------------------------------------- models

// A model of the graph with opset kOpset, the producer's name and `metadata` as metadata_props.
Model make_model(GraphBuilder& g, const std::map<std::string, std::string>& metadata);

// The ONNX checker's full check (onnx/protobuf.hpp); std::runtime_error names `what` and the
// checker's complaint.
void check_model(const Model& model, const std::string& what);

// check_model, then the serialised model written atomically (train/files.hpp) to `path`.
void write_model(const Model& model, const std::string& path);

}  // namespace rune::onnx_export
