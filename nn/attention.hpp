// Attention: scaled dot-product attention (functional), the KV cache for autoregressive decoding,
// and MultiheadAttention with grouped-query / multi-query heads.
//
// Legend: B batch, Tq queries, Tk keys, C embed_dim, H query heads, Hkv key/value heads,
// D = C / H head dim, G = H / Hkv query heads per key/value head.
//
// Masks (AttentionMask, autograd/ops.hpp) name what they block: key_padding_mask true marks a
// padding key, `blocked` true forbids a (query, key) pair, `bias` is added to the scores. A query
// left with no key attends nothing: its output and gradient are zero (PyTorch gives NaN there).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"

namespace rune::nn {

// Which attention weights to return: none (the fast fused path), one map per head (B, H, Tq, Tk),
// or their mean over heads (B, Tq, Tk) as PyTorch's average_attn_weights=True.
enum class AttentionWeights { none, per_head, averaged };

struct AttentionResult {
  Tensor output;   // (B, H, Tq, Dv) from the functional form, (B, Tq, C) from MultiheadAttention
  Tensor weights;  // the softmax probabilities before dropout; undefined unless asked for
};

// softmax(q k^T * scale + masks) v with dropout on the weights. q (B, H, Tq, D), k (B, Hkv, Tk,
// D), v (B, Hkv, Tk, Dv). Without weights this is one fused op (autograd/attention.cpp); with
// them the weights are an op of their own, then dropout and a matmul per key/value head.
AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionMask& mask = {}, double dropout_p = 0.0,
                                             AttentionWeights weights = AttentionWeights::none,
                                             std::optional<double> scale = std::nullopt, Generator* gen = nullptr);

// (B, T, H * D) -> (B, H, T, D) as a view (no copy), and back (a view when the heads were laid
// out by split_heads or by the fused attention, else a copy).
Tensor split_heads(const Tensor& x, std::int64_t heads);
Tensor combine_heads(const Tensor& x);

// Keys and values of the steps decoded so far, (B, Hkv, T, D). A self-attention cache grows by
// each step's new keys; a memory cache (cross-attention over an encoder output) is filled once,
// on the first call, and reused. Without grad mode the cache grows in place in a buffer that
// doubles, so a step costs O(1) copies; under grad mode it concatenates (differentiably).
class KVCache {
 public:
  enum class Kind { self_attention, memory };
  explicit KVCache(Kind kind = Kind::self_attention) : kind_(kind) {}
  // Move-only: copies would share the growth buffers and overwrite each other's steps.
  KVCache(const KVCache&) = delete;
  KVCache& operator=(const KVCache&) = delete;
  KVCache(KVCache&&) = default;
  KVCache& operator=(KVCache&&) = default;
  Kind kind() const { return kind_; }
  bool empty() const { return length_ == 0; }
  std::int64_t length() const { return length_; }
  const Tensor& keys() const { return k_; }
  const Tensor& values() const { return v_; }
  void append(const Tensor& k, const Tensor& v);  // (B, Hkv, Tnew, D) each
  // Keeps the first `length` positions (rolling back steps, e.g. a rejected beam or draft).
  void truncate(std::int64_t length);
  // Batch row i becomes old row index[i] (int64, any length): beam search's reordering.
  void reorder(const Tensor& index);
  void reset();

 private:
  Kind kind_;
  Tensor k_, v_;          // the valid prefix: views of the buffers, or concatenations
  Tensor k_buf_, v_buf_;  // capacity buffers (no-grad growth)
  std::int64_t length_ = 0;
};

// Which kernel computes attention (autograd/ops.hpp). plain stores the (Tq, Tk) weights for
// backward; tiled (flash_attention) stores one number per query row, at the price of computing the
// weights twice. automatic takes tiled from kTiledFromKeys keys on, where it is also the faster,
// when nothing needs the weights: no weights asked for, no dropout on them, no blocked or bias mask.
enum class AttentionKernel { automatic, plain, tiled };
std::string attention_kernel_name(AttentionKernel k);
AttentionKernel attention_kernel_from_name(const std::string& name);  // "auto", "plain" or "tiled"
constexpr std::int64_t kTiledFromKeys = 512;

struct MultiheadAttentionOptions {
  std::int64_t embed_dim = 0;
  std::int64_t num_heads = 1;
  std::int64_t num_kv_heads = 0;  // 0: num_heads. 1: multi-query; in between: grouped-query
  bool bias = true;
  double dropout = 0.0;             // on the attention weights, in training mode
  std::int64_t kdim = 0, vdim = 0;  // widths of key and value inputs; 0: embed_dim
  // DropHead (Zhou et al. 2020): in training mode each head of each example is dropped whole with
  // this probability and the example's kept heads are scaled by H / (heads kept).
  double drophead = 0.0;
  Generator* dropout_generator = nullptr;  // null: the default generator (dropout and DropHead)
  // Rotary position embedding (rope in autograd/ops.hpp) on the query and key heads, after their
  // projections and before the keys are cached: a query or key at position p (p counts the
  // positions a self-attention cache already holds) is rotated by p. Self-attention only.
  bool rotary = false;
  double rope_base = 10000.0;
  std::int64_t rope_dim = 0;  // features of a head that rotate (even); 0: all of them
  // tiled asked for where the weights are needed (returned, or dropout in training) is an error.
  AttentionKernel kernel = AttentionKernel::automatic;
  // The scores' factor, softmax(scale q k^T): 1 / sqrt(head dim) when unset (torch's scale=None,
  // Vaswani et al.'s); 1 is the unscaled dot product (docs/experiments/sqrt-dk.md).
  std::optional<double> scale;
};

// MultiheadAttention's arguments besides query, key and value, as its forward hooks see them. A
// pre-hook that sets `weights` to per_head is PyTorch's need_weights=True,
// average_attn_weights=False set by a kwargs pre-hook: the forward then computes the weights and
// the forward hooks see them as the second output, (B, H, Tq, Tk). The caller gets weights only
// when it asked for some (in the form the hooks left them).
struct MultiheadAttentionKwargs : ForwardKwargs {
  AttentionMask mask;
  AttentionWeights weights = AttentionWeights::none;
  KVCache* cache = nullptr;
};

// torch.nn.MultiheadAttention (batch_first) plus grouped-query heads and a KV cache.
// Parameters, in PyTorch's names and order:
//   same widths and heads: in_proj_weight (3C, C), in_proj_bias (3C)
//   otherwise:             q_proj_weight (C, C), k_proj_weight (Hkv D, kdim),
//                          v_proj_weight (Hkv D, vdim), in_proj_bias (C + 2 Hkv D)
//   then out_proj.weight (C, C), out_proj.bias (C). No biases at all when bias = false.
// Init as PyTorch: xavier_uniform projections, zero in_proj_bias and out_proj.bias.
class MultiheadAttention : public Module {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& options, Generator& gen = default_generator());

  // query (B, Tq, C), key (B, Tk, kdim), value (B, Tk, vdim) -> output (B, Tq, C).
  // Self-attention passes the same tensor three times (one projection matmul for q, k and v).
  // With a cache: a self_attention cache appends this call's keys and values and attends over
  // all of them (use mask.causal for a causal decoder; it aligns to the end of the keys); a
  // memory cache projects key/value on its first call only.
  // Hooks: inputs (query, key, value), kwargs MultiheadAttentionKwargs, outputs (output) or
  // (output, weights) when weights are asked for.
  AttentionResult forward(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionMask& mask = {},
                          AttentionWeights weights = AttentionWeights::none, KVCache* cache = nullptr) const;
  std::string repr() const override;

  // A gate per head (H), an input of the layer like head_mask in common Transformer libraries,
  // multiplying each head's output before out_proj: 0 masks a head (its output and every
  // gradient through it are exactly zero), 1 keeps it; any value in between scales it. A gate
  // that requires grad receives dL/dgate (head importance, Michel et al. 2019). The gate is (H),
  // one for every example, or (B, H), one per example of the next forwards' batch (per-example
  // importance: row b of the gradient is d loss_b / d gate when the loss is the sum of the
  // examples' losses).
  // Undefined (the default, and after clear_head_gate): every head kept, at no cost.
  void set_head_gate(const Tensor& gate);
  void clear_head_gate() { head_gate_ = Tensor(); }
  const Tensor& head_gate() const { return head_gate_; }
  // The DropHead probability from now on (schedules change it during training).
  void set_drophead(double p);
  double drophead() const { return drophead_; }

  const MultiheadAttentionOptions options;
  const std::int64_t head_dim, num_kv_heads;
  Tensor in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;

 private:
  struct Projections {
    Tensor q, k, v;
  };
  bool packed() const { return in_proj_weight.defined(); }
  // The forward without hooks, in the steps below.
  AttentionResult forward_impl(const Tensor& query, const Tensor& key, const Tensor& value, const AttentionMask& mask,
                               AttentionWeights weights, KVCache* cache) const;
  void check_inputs(const Tensor& query, const Tensor& key, const Tensor& value, bool reuse_memory) const;
  // q (B, Tq, C), k and v (B, Tk, Hkv D); k and v undefined when a memory cache holds them.
  Projections project(const Tensor& query, const Tensor& key, const Tensor& value, bool reuse_memory) const;
  // Heads: q (B, H, Tq, D), k and v (B, Hkv, Tk, D), the cache's keys and values when there is one.
  Projections split_into_heads(const Projections& p, KVCache* cache, bool reuse_memory, std::int64_t batch) const;
  // heads (B, Tq, C) scaled per head by the gate and DropHead's draw, when either is on.
  Tensor gate_heads(const Tensor& heads) const;
  Tensor head_gate_;
  double drophead_ = 0.0;
};

// Every MultiheadAttention in a model, with its dotted path ("encoder.layers.0.self_attn"), in
// named_modules() order: for head gates, DropHead rates and inspection across a whole model.
std::vector<std::pair<std::string, MultiheadAttention*>> attention_modules(Module& model);

}  // namespace rune::nn
