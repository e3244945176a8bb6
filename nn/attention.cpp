// Scaled dot-product attention, the KV cache and MultiheadAttention: projections, heads and
// cache, attention, head gates and DropHead, output projection, each a step of its own.
#include "nn/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "autograd/tape.hpp"
#include "nn/init.hpp"

namespace rune::nn {

// ------------------------------------------------------------------------- functional

std::string attention_kernel_name(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::automatic:
      return "auto";
    case AttentionKernel::plain:
      return "plain";
    case AttentionKernel::tiled:
      return "tiled";
  }
  return "?";
}

AttentionKernel attention_kernel_from_name(const std::string& name) {
  if (name == "auto") return AttentionKernel::automatic;
  if (name == "plain") return AttentionKernel::plain;
  if (name == "tiled") return AttentionKernel::tiled;
  throw std::invalid_argument("attention kernel '" + name + "' is not auto, plain or tiled");
}

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionMask& mask, double dropout_p, AttentionWeights weights,
                                             std::optional<double> scale, Generator* gen) {
  if (weights == AttentionWeights::none) return {attention(q, k, v, mask, scale, dropout_p, gen), Tensor()};
  // The composed path: the weights are a result of their own, so they can take a gradient.
  const Tensor p = attention_weights(q, k, mask, scale);  // (B, H, Tq, Tk)
  if (v.dim() != 4 || v.size(1) == 0 || p.size(1) % v.size(1) != 0 || v.size(2) != p.size(3))
    throw std::invalid_argument("scaled_dot_product_attention: v " + shape_str(v.shape()) + " does not fit weights " +
                                shape_str(p.shape()));
  const Tensor pd = dropout_p > 0 ? dropout(p, dropout_p, true, gen ? *gen : default_generator()) : p;
  const std::int64_t B = p.size(0), H = p.size(1), Tq = p.size(2), Tk = p.size(3), Hkv = v.size(1);
  // Query heads of one group are adjacent, so (B, H, Tq, Tk) is (B, Hkv, G*Tq, Tk) in memory.
  const Tensor out =
      Hkv == H ? matmul(pd, v) : reshape(matmul(reshape(pd, {B, Hkv, (H / Hkv) * Tq, Tk}), v), {B, H, Tq, v.size(3)});
  return {out, weights == AttentionWeights::averaged ? mean(p, {1}) : p};
}

Tensor split_heads(const Tensor& x, std::int64_t heads) {
  if (x.dim() != 3 || heads <= 0 || x.size(2) % heads != 0)
    throw std::invalid_argument("split_heads: input " + shape_str(x.shape()) +
                                " is not (B, T, H * D) for H = " + std::to_string(heads));
  // (B, T, H, D) -> (B, H, T, D); a view, also of a column slice of a fused projection
  return permute(reshape(x, {x.size(0), x.size(1), heads, x.size(2) / heads}), {0, 2, 1, 3});
}

Tensor combine_heads(const Tensor& x) {
  if (x.dim() != 4)
    throw std::invalid_argument("combine_heads: input " + shape_str(x.shape()) + " is not (B, H, T, D)");
  return reshape(permute(x, {0, 2, 1, 3}), {x.size(0), x.size(2), x.size(1) * x.size(3)});  // (B, T, H * D)
}

// ------------------------------------------------------------------------- KVCache

void KVCache::append(const Tensor& k, const Tensor& v) {
  if (k.dim() != 4 || v.dim() != 4 || k.size(0) != v.size(0) || k.size(1) != v.size(1) || k.size(2) != v.size(2))
    throw std::invalid_argument("KVCache::append: keys " + shape_str(k.shape()) + " and values " +
                                shape_str(v.shape()) + " must be (B, Hkv, T, D) with equal B, Hkv and T");
  if (!empty()) {
    const bool fits =
        k.size(0) == k_.size(0) && k.size(1) == k_.size(1) && k.size(3) == k_.size(3) && v.size(3) == v_.size(3);
    if (!fits)
      throw std::invalid_argument("KVCache::append: new keys " + shape_str(k.shape()) + " do not continue the cached " +
                                  shape_str(k_.shape()));
  }
  const std::int64_t t_new = k.size(2), total = length_ + t_new;
  if (is_grad_enabled() && (k.requires_grad() || v.requires_grad())) {
    // differentiable: the cached prefix and the new step are joined by an op on the tape
    k_ = empty() ? k : concat({k_, k}, 2);
    v_ = empty() ? v : concat({v_, v}, 2);
    k_buf_ = v_buf_ = Tensor();
    length_ = total;
    return;
  }
  const bool buffered = k_buf_.defined() && k_buf_.dtype() == k.dtype() && v_buf_.dtype() == v.dtype() &&
                        k_buf_.size(0) == k.size(0) && k_buf_.size(1) == k.size(1) && k_buf_.size(3) == k.size(3) &&
                        v_buf_.size(3) == v.size(3);
  if (!buffered || k_buf_.size(2) < total) {
    // grow by doubling: appending T tokens one by one copies O(T) elements in all
    const std::int64_t capacity = std::max<std::int64_t>({total, 2 * (buffered ? k_buf_.size(2) : 0), 16});
    Tensor kb = rune::empty({k.size(0), k.size(1), capacity, k.size(3)}, k.dtype());
    Tensor vb = rune::empty({v.size(0), v.size(1), capacity, v.size(3)}, v.dtype());
    NoGradGuard no_grad;
    if (!empty()) {
      kb.slice(2, 0, length_).copy_(k_);
      vb.slice(2, 0, length_).copy_(v_);
    }
    k_buf_ = kb;
    v_buf_ = vb;
  }
  NoGradGuard no_grad;
  k_buf_.slice(2, length_, total).copy_(k);
  v_buf_.slice(2, length_, total).copy_(v);
  k_ = k_buf_.slice(2, 0, total);  // (B, Hkv, T, D): each head a row-major matrix, read in place
  v_ = v_buf_.slice(2, 0, total);
  length_ = total;
}

void KVCache::truncate(std::int64_t length) {
  if (length < 0 || length > length_)
    throw std::out_of_range("KVCache::truncate: length " + std::to_string(length) + " is outside [0, " +
                            std::to_string(length_) + "]");
  if (length == 0) {
    k_ = v_ = Tensor();  // the buffers stay for reuse
  } else {
    k_ = slice(k_, 2, 0, length);
    v_ = slice(v_, 2, 0, length);
  }
  length_ = length;
}

void KVCache::reorder(const Tensor& index) {
  if (empty()) return;
  if (k_buf_.defined()) {
    // new buffers of the same capacity, each (row, head) gathering only the valid prefix of its old
    // row: a beam search reorders every step, and copying the unused capacity too doubled its cost
    if (index.dtype() != DType::int64 || index.dim() != 1)
      throw std::invalid_argument("KVCache::reorder: the index must be a 1-d int64 tensor, not " +
                                  shape_str(index.shape()));
    const Tensor idx = index.contiguous();
    const std::int64_t rows = idx.size(0), old_rows = k_buf_.size(0);
    const auto gather = [&](const Tensor& buf) {
      Tensor out = rune::empty({rows, buf.size(1), buf.size(2), buf.size(3)}, buf.dtype());
      const std::size_t elem = dtype_size(buf.dtype());
      const std::int64_t heads = buf.size(1), block = buf.size(2) * buf.size(3);  // one head's capacity
      const std::size_t bytes = static_cast<std::size_t>(length_ * buf.size(3)) * elem;
      const auto* from = static_cast<const char*>(buf.raw_data());
      auto* to = static_cast<char*>(out.raw_data());
      for (std::int64_t i = 0; i < rows; ++i) {
        const std::int64_t src = idx.data<std::int64_t>()[i];
        if (src < 0 || src >= old_rows)
          throw std::out_of_range("KVCache::reorder: row " + std::to_string(src) + " of " + std::to_string(old_rows));
        for (std::int64_t h = 0; h < heads; ++h)
          std::memcpy(to + static_cast<std::size_t>((i * heads + h) * block) * elem,
                      from + static_cast<std::size_t>((src * heads + h) * block) * elem, bytes);
      }
      return out;
    };
    k_buf_ = gather(k_buf_);
    v_buf_ = gather(v_buf_);
    k_ = k_buf_.slice(2, 0, length_);
    v_ = v_buf_.slice(2, 0, length_);
  } else {
    k_ = index_select(k_, 0, index);
    v_ = index_select(v_, 0, index);
  }
}

void KVCache::reset() {
  k_ = v_ = k_buf_ = v_buf_ = Tensor();
  length_ = 0;
}

// ------------------------------------------------------------------------- MultiheadAttention

namespace {
MultiheadAttentionOptions checked(MultiheadAttentionOptions o) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("MultiheadAttention: " + what); };
  if (o.embed_dim <= 0 || o.num_heads <= 0) fail("embed_dim and num_heads must be positive");
  if (o.embed_dim % o.num_heads != 0)
    fail("embed_dim " + std::to_string(o.embed_dim) + " is not divisible by num_heads " + std::to_string(o.num_heads));
  if (o.num_kv_heads == 0) o.num_kv_heads = o.num_heads;
  if (o.num_kv_heads < 0 || o.num_heads % o.num_kv_heads != 0)
    fail("num_heads " + std::to_string(o.num_heads) + " is not a multiple of num_kv_heads " +
         std::to_string(o.num_kv_heads));
  if (o.kdim == 0) o.kdim = o.embed_dim;
  if (o.vdim == 0) o.vdim = o.embed_dim;
  if (o.kdim < 0 || o.vdim < 0) fail("kdim and vdim must be positive");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) fail("dropout must be in [0, 1)");
  if (!(o.drophead >= 0.0 && o.drophead < 1.0)) fail("drophead must be in [0, 1)");
  if (o.rotary) {
    const std::int64_t D = o.embed_dim / o.num_heads;
    if (o.rope_dim < 0 || o.rope_dim > D || o.rope_dim % 2 != 0 || (o.rope_dim == 0 && D % 2 != 0))
      fail("rope_dim " + std::to_string(o.rope_dim) + " must be even and at most the head dim " + std::to_string(D) +
           " (0: all of it, when it is even)");
    if (!(o.rope_base > 1.0) || !std::isfinite(o.rope_base)) fail("rope_base must be finite and above 1");
    if (o.kdim != o.embed_dim || o.vdim != o.embed_dim)
      fail("rotary positions are for self-attention: kdim and vdim must be embed_dim");
  }
  return o;
}

// Rows [begin, end) of a weight or bias: the part of a fused projection for q, k or v.
Tensor rows(const Tensor& t, std::int64_t begin, std::int64_t end) {
  return t.defined() ? slice(t, 0, begin, end) : Tensor();
}

void check_input(const Tensor& t, const char* name, std::int64_t width) {
  if (!t.defined() || t.dim() != 3 || t.size(2) != width)
    throw std::invalid_argument(std::string("MultiheadAttention: ") + name + " of shape " +
                                (t.defined() ? shape_str(t.shape()) : "undefined") + " is not (B, T, " +
                                std::to_string(width) + ")");
}
}  // namespace

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& o, Generator& gen)
    : options(checked(o)),
      head_dim(options.embed_dim / options.num_heads),
      num_kv_heads(options.num_kv_heads),
      drophead_(options.drophead) {
  const std::int64_t C = options.embed_dim, KV = num_kv_heads * head_dim;
  const bool same = options.kdim == C && options.vdim == C && num_kv_heads == options.num_heads;
  if (same) {
    in_proj_weight = register_parameter("in_proj_weight", empty({3 * C, C}));
    init::xavier_uniform_(in_proj_weight, 1.0, gen);
  } else {
    q_proj_weight = register_parameter("q_proj_weight", empty({C, C}));
    k_proj_weight = register_parameter("k_proj_weight", empty({KV, options.kdim}));
    v_proj_weight = register_parameter("v_proj_weight", empty({KV, options.vdim}));
    init::xavier_uniform_(q_proj_weight, 1.0, gen);
    init::xavier_uniform_(k_proj_weight, 1.0, gen);
    init::xavier_uniform_(v_proj_weight, 1.0, gen);
  }
  if (options.bias) in_proj_bias = register_parameter("in_proj_bias", zeros({C + 2 * KV}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(C, C, options.bias, gen));
  if (options.bias) init::zeros_(out_proj->bias);
}

AttentionResult MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const AttentionMask& mask, AttentionWeights weights, KVCache* cache) const {
  if (!has_forward_hooks()) return forward_impl(query, key, value, mask, weights, cache);
  MultiheadAttentionKwargs kwargs;
  kwargs.mask = mask;
  kwargs.weights = weights;
  kwargs.cache = cache;
  ForwardCall call{*this, {query, key, value}, &kwargs};
  const std::vector<Tensor> out = call_with_hooks(call, [&](const ForwardCall& c) {
    AttentionResult r = forward_impl(c.inputs[0], c.inputs[1], c.inputs[2], kwargs.mask, kwargs.weights, kwargs.cache);
    return r.weights.defined() ? std::vector<Tensor>{r.output, r.weights} : std::vector<Tensor>{r.output};
  });
  // weights a pre-hook asked for are the hooks' business, not the caller's
  const bool give_weights = weights != AttentionWeights::none && out.size() > 1;
  return {out[0], give_weights ? out[1] : Tensor()};
}

AttentionResult MultiheadAttention::forward_impl(const Tensor& query, const Tensor& key, const Tensor& value,
                                                 const AttentionMask& mask, AttentionWeights weights,
                                                 KVCache* cache) const {
  const bool reuse_memory = cache && cache->kind() == KVCache::Kind::memory && !cache->empty();
  check_inputs(query, key, value, reuse_memory);
  const Projections heads_in =
      split_into_heads(project(query, key, value, reuse_memory), cache, reuse_memory, query.size(0));
  const double p = is_training() ? options.dropout : 0.0;
  // averaged weights are the mean of the per-head ones, taken after the output (below)
  const AttentionWeights asked = weights == AttentionWeights::none ? weights : AttentionWeights::per_head;
  const bool weights_needed =
      asked != AttentionWeights::none || p > 0.0 || mask.blocked.defined() || mask.bias.defined();
  if (options.kernel == AttentionKernel::tiled && weights_needed)
    throw std::invalid_argument(
        "MultiheadAttention: the tiled kernel never forms the attention weights, which this call needs (weights "
        "asked for, dropout on them in training, or a blocked or bias mask): use the plain or automatic kernel");
  const bool tiled =
      !weights_needed && (options.kernel == AttentionKernel::tiled ||
                          (options.kernel == AttentionKernel::automatic && heads_in.k.size(2) >= kTiledFromKeys));
  AttentionResult r =
      tiled ? AttentionResult{flash_attention(heads_in.q, heads_in.k, heads_in.v, mask, options.scale), Tensor()}
            : scaled_dot_product_attention(heads_in.q, heads_in.k, heads_in.v, mask, p, asked, options.scale,
                                           options.dropout_generator);
  const Tensor heads = gate_heads(combine_heads(r.output));  // (B, Tq, C), head h in columns h D .. (h + 1) D
  r.output = out_proj->forward(heads);                       // (B, Tq, C)
  if (weights == AttentionWeights::averaged) r.weights = mean(r.weights, {1});  // (B, Tq, Tk)
  return r;
}

void MultiheadAttention::check_inputs(const Tensor& query, const Tensor& key, const Tensor& value,
                                      bool reuse_memory) const {
  check_input(query, "query", options.embed_dim);
  if (reuse_memory) return;  // key and value are not read
  check_input(key, "key", options.kdim);
  check_input(value, "value", options.vdim);
  if (key.size(0) != query.size(0) || value.size(0) != query.size(0) || value.size(1) != key.size(1))
    throw std::invalid_argument("MultiheadAttention: query " + shape_str(query.shape()) + ", key " +
                                shape_str(key.shape()) + " and value " + shape_str(value.shape()) +
                                " need one batch size, and key and value one length");
}

MultiheadAttention::Projections MultiheadAttention::project(const Tensor& query, const Tensor& key, const Tensor& value,
                                                            bool reuse_memory) const {
  // One matmul for q, k and v in self-attention, one for k and v when they share an input; the
  // pieces are column slices of its (B, T, 3C) result, split into heads later as views.
  const std::int64_t C = options.embed_dim, KV = num_kv_heads * head_dim;
  const Tensor& b = in_proj_bias;
  Projections p;
  if (!packed()) {
    p.q = linear(query, q_proj_weight, rows(b, 0, C));
    if (!reuse_memory) {
      p.k = linear(key, k_proj_weight, rows(b, C, C + KV));
      p.v = linear(value, v_proj_weight, rows(b, C + KV, C + 2 * KV));
    }
    return p;
  }
  const Tensor& w = in_proj_weight;
  if (!reuse_memory && query.impl() == key.impl() && key.impl() == value.impl()) {
    const Tensor qkv = linear(query, w, b);  // (B, T, 3C)
    p.q = slice(qkv, 2, 0, C);
    p.k = slice(qkv, 2, C, 2 * C);
    p.v = slice(qkv, 2, 2 * C, 3 * C);
    return p;
  }
  p.q = linear(query, rows(w, 0, C), rows(b, 0, C));
  if (reuse_memory) return p;
  if (key.impl() == value.impl()) {
    const Tensor kv = linear(key, rows(w, C, 3 * C), rows(b, C, 3 * C));  // (B, Tk, 2C)
    p.k = slice(kv, 2, 0, C);
    p.v = slice(kv, 2, C, 2 * C);
  } else {
    p.k = linear(key, rows(w, C, 2 * C), rows(b, C, 2 * C));
    p.v = linear(value, rows(w, 2 * C, 3 * C), rows(b, 2 * C, 3 * C));
  }
  return p;
}

MultiheadAttention::Projections MultiheadAttention::split_into_heads(const Projections& p, KVCache* cache,
                                                                     bool reuse_memory, std::int64_t batch) const {
  Projections h;
  h.q = split_heads(p.q, options.num_heads);  // (B, H, Tq, D)
  if (!reuse_memory) {
    h.k = split_heads(p.k, num_kv_heads);  // (B, Hkv, Tk, D)
    h.v = split_heads(p.v, num_kv_heads);
  }
  if (options.rotary) {  // the new positions start after those the cache holds
    if (cache && cache->kind() == KVCache::Kind::memory)
      throw std::invalid_argument("MultiheadAttention: rotary positions are for self-attention, not a memory cache");
    const std::int64_t past = cache ? cache->length() : 0;
    h.q = rope(h.q, past, options.rope_base, options.rope_dim);
    h.k = rope(h.k, past, options.rope_base, options.rope_dim);
  }
  if (!cache) return h;
  if (!reuse_memory) cache->append(h.k, h.v);
  if (cache->keys().size(0) != batch)
    throw std::invalid_argument("MultiheadAttention: the cache holds batch " + std::to_string(cache->keys().size(0)) +
                                " but the query has batch " + std::to_string(batch));
  h.k = cache->keys();  // (B, Hkv, T cached, D)
  h.v = cache->values();
  return h;
}

Tensor MultiheadAttention::gate_heads(const Tensor& heads) const {
  const bool drop = is_training() && drophead_ > 0.0;
  if (!head_gate_.defined() && !drop) return heads;
  const std::int64_t B = heads.size(0), Tq = heads.size(1), H = options.num_heads;
  Tensor scale;  // (B or 1, 1, H, 1)
  if (head_gate_.defined()) {
    if (head_gate_.dim() == 2 && head_gate_.size(0) != B)
      throw std::invalid_argument("MultiheadAttention: the head gate " + shape_str(head_gate_.shape()) +
                                  " is per example, but the query has batch " + std::to_string(B));
    const Tensor gate = head_gate_.dtype() == heads.dtype() ? head_gate_ : to_dtype(head_gate_, heads.dtype());
    scale = reshape(gate, {head_gate_.dim() == 2 ? B : 1, 1, H, 1});
  }
  if (drop) {
    // one keep/drop draw per (example, head); the kept heads of an example scaled to H in sum
    Generator& gen = options.dropout_generator ? *options.dropout_generator : default_generator();
    std::vector<double> row(static_cast<std::size_t>(H));
    std::vector<double> factors;
    factors.reserve(static_cast<std::size_t>(B * H));
    for (std::int64_t i = 0; i < B; ++i) {
      std::int64_t kept = 0;
      for (double& head : row) {
        head = gen.uniform() >= drophead_ ? 1.0 : 0.0;
        kept += head > 0.0;
      }
      for (double head : row) factors.push_back(kept ? head * static_cast<double>(H) / static_cast<double>(kept) : 0.0);
    }
    const Tensor keep = to_dtype(from_vector(factors, {B, 1, H, 1}), heads.dtype());
    scale = scale.defined() ? scale * keep : keep;
  }
  return reshape(reshape(heads, {B, Tq, H, head_dim}) * scale, {B, Tq, options.embed_dim});
}

void MultiheadAttention::set_head_gate(const Tensor& gate) {
  if (!gate.defined()) {
    head_gate_ = Tensor();
    return;
  }
  const std::int64_t H = options.num_heads;
  if (gate.dim() < 1 || gate.dim() > 2 || gate.size(gate.dim() - 1) != H || !is_floating(gate.dtype()))
    throw std::invalid_argument("MultiheadAttention: a head gate must be float, (" + std::to_string(H) +
                                ") for every example or (B, " + std::to_string(H) + ") per example, got " +
                                shape_str(gate.shape()));
  head_gate_ = gate;
}

void MultiheadAttention::set_drophead(double p) {
  if (!(p >= 0.0 && p < 1.0))
    throw std::invalid_argument("MultiheadAttention: the DropHead probability must be in [0, 1), got " +
                                std::to_string(p));
  drophead_ = p;
}

std::string MultiheadAttention::repr() const {
  std::ostringstream os;
  os << "MultiheadAttention(embed_dim=" << options.embed_dim << ", num_heads=" << options.num_heads;
  if (num_kv_heads != options.num_heads) os << ", num_kv_heads=" << num_kv_heads;
  if (options.kdim != options.embed_dim) os << ", kdim=" << options.kdim;
  if (options.vdim != options.embed_dim) os << ", vdim=" << options.vdim;
  os << ", bias=" << (options.bias ? "true" : "false") << ", dropout=" << options.dropout;
  if (options.rotary)
    os << ", rotary=true, rope_base=" << options.rope_base
       << (options.rope_dim ? ", rope_dim=" + std::to_string(options.rope_dim) : std::string());
  os << ")";
  return os.str();
}

std::vector<std::pair<std::string, MultiheadAttention*>> attention_modules(Module& model) {
  std::vector<std::pair<std::string, MultiheadAttention*>> out;
  for (const auto& [name, module] : model.named_modules())
    if (const auto* mha = dynamic_cast<const MultiheadAttention*>(module))
      out.emplace_back(name, const_cast<MultiheadAttention*>(mha));  // reached from a non-const model
  return out;
}

}  // namespace rune::nn
