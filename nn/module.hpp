// The module base: a named tree of parameters and submodules, as torch.nn.Module.
//
// A module registers its parameters and children in its constructor; named_parameters() walks
// the tree in registration order and joins names with dots ("encoder.layers.0.self_attn.
// in_proj_weight"). Those names are PyTorch's exactly, so they are also the checkpoint format
// and a state_dict from PyTorch loads by name (load_state_dict). Modules are non-copyable and
// held by shared_ptr; a parameter is a Tensor handle shared between the member and the registry,
// so updating it in place (an optimizer step, a load) is seen through both.
//
// Forward hooks, as torch.nn.Module's: what observes or alters a module's forward from outside
// (attention maps, head analysis), so the module keeps no state for it. A call is a ForwardCall:
// the forward's tensor arguments in order (`inputs`) and, for modules with other arguments, a
// module-specific ForwardKwargs (masks, caches, which weights to return) a hook may change; the
// outputs are a list of tensors. Per call: the pre-hooks in registration order (each may change
// the inputs and kwargs), the forward, then the forward hooks in registration order (each sees
// the call as the forward saw it and may replace outputs). Hooks may replace tensors but not
// change how many there are. Hooks registered or removed during a call take effect from the
// next call (the call runs over a snapshot, as PyTorch). Only forward() calls hooks (not
// helpers such as encode/decode, greedy, forward_features). Registering is not thread-safe.
//
// Which modules call hooks, and with what (inputs -> outputs; kwargs):
//   Linear, LayerNorm, Dropout, GELU, ReLU, FeedForward, PatchConv2d, PatchEmbedding
//                                   (x) -> (y)
//   Embedding                       (ids) -> (y)
//   Sinusoidal/LearnedPositional*   (x) -> (y); PositionKwargs
//   MultiheadAttention              (query, key, value) -> (output[, weights]); MultiheadAttentionKwargs
//   TransformerEncoderLayer         (src) -> (y); EncoderKwargs
//   TransformerEncoder              (src) -> (y); EncoderStackKwargs
//   TransformerDecoderLayer         (tgt, memory) -> (y); DecoderLayerKwargs
//   TransformerDecoder              (tgt, memory) -> (y); DecoderKwargs
//   Transformer                     (src, tgt) -> (y); TransformerKwargs
//   VisionTransformer               (images) -> (logits)
//   Seq2SeqTransformer              (src, tgt_in) -> (logits)
// Without a hook a forward costs one inline check (has_forward_hooks()) more than the bare
// computation: no ForwardCall is built.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found: names the module has and the state lacks, names the state has and
// the module lacks, and names present in both with different shapes ("name: [a, b] vs [c, d]").
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string message() const;  // one line per problem, empty when ok()
};

class Module;

// A module's arguments besides its tensors, which a pre-hook may change (PyTorch's kwargs):
// each module with such arguments derives its own (MultiheadAttentionKwargs, EncoderKwargs, ...).
struct ForwardKwargs {
  virtual ~ForwardKwargs() = default;
};

// One forward call as hooks see it.
struct ForwardCall {
  const Module& module;
  std::vector<Tensor> inputs;       // the forward's tensor arguments, in order
  ForwardKwargs* kwargs = nullptr;  // null for a module without other arguments
  // The kwargs as the module's own type, or null for another type (a hook on many modules).
  template <class K>
  K* kwargs_as() const {
    return dynamic_cast<K*>(kwargs);
  }
};

// May change call.inputs (same count) and *call.kwargs before the forward runs.
using ForwardPreHook = std::function<void(ForwardCall& call)>;
// Sees the call as the forward saw it and its outputs; may replace outputs (same count).
using ForwardHook = std::function<void(const ForwardCall& call, std::vector<Tensor>& outputs)>;

// A module's hooks; shared with the handles weakly, so a handle outliving its module is harmless.
struct ForwardHooks {
  template <class F>
  struct Entry {
    std::uint64_t id;
    std::shared_ptr<const F> fn;  // shared: a call's snapshot copies pointers, not closures
  };
  std::vector<Entry<ForwardPreHook>> pre;
  std::vector<Entry<ForwardHook>> post;
  std::uint64_t next_id = 0;
  bool empty() const { return pre.empty() && post.empty(); }
};

// What register_forward_(pre_)hook returns. RAII: the hook is removed when the handle is
// destroyed or remove() is called, whichever comes first, like a scoped connection; detach()
// keeps the hook for the module's lifetime instead. Move-only. Every operation is safe after
// the module is gone (the handle holds the hook list weakly).
class HookHandle {
 public:
  HookHandle() = default;  // owns no hook
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  HookHandle(HookHandle&& other) noexcept : hooks_(std::move(other.hooks_)), id_(other.id_) { other.hooks_.reset(); }
  HookHandle& operator=(HookHandle&& other) noexcept;
  ~HookHandle() { remove(); }

  void remove();                     // unregisters the hook; nothing if already removed or detached
  void detach() { hooks_.reset(); }  // the hook stays; this handle no longer owns it
  bool active() const;               // the hook is registered and owned by this handle

 private:
  friend class Module;
  HookHandle(std::weak_ptr<ForwardHooks> hooks, std::uint64_t id) : hooks_(std::move(hooks)), id_(id) {}
  std::weak_ptr<ForwardHooks> hooks_;
  std::uint64_t id_ = 0;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The class name with its options, e.g. "Linear(in_features=16, out_features=12, bias=true)".
  virtual std::string repr() const = 0;

  NamedTensors named_parameters() const;  // dotted paths, registration order, depth first
  // Buffers: state that is not trained but saved and loaded with the parameters (a batch norm's
  // running statistics), as torch's register_buffer.
  NamedTensors named_buffers() const;
  // The parameters, then the buffers: what a checkpoint holds and load_state_dict takes.
  NamedTensors state_dict() const;
  std::vector<Tensor> parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // This module ("") and every descendant with its dotted path, depth first.
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  // The parameter at a dotted path; throws std::out_of_range naming the path.
  Tensor parameter(const std::string& path) const;

  // Training mode (dropout active) for this module and all its descendants.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Resets every parameter's gradient: dropped (set_to_none, PyTorch's default, so the next
  // backward writes it afresh) or filled with zeros in place.
  void zero_grad(bool set_to_none = true);
  std::int64_t num_parameters() const;  // total element count
  // A table: one row per parameter (name, shape, count) and the total.
  std::string summary() const;

  // Copies values into the parameters and buffers of the same names (no grad recorded),
  // converting dtype.
  // Strict: any missing, unexpected or mis-shaped name throws std::invalid_argument listing every
  // problem, and nothing is copied. Non-strict: copies what matches and returns the rest.
  LoadReport load_state_dict(const NamedTensors& state, bool strict = true);

  // Hooks on this module's forward (see the file's header). Keep the handle: dropping it removes
  // the hook at once (hence nodiscard); `.detach()` keeps the hook for the module's lifetime. A
  // hook must not hold the module's shared_ptr (a cycle); ForwardCall::module names it.
  [[nodiscard]] HookHandle register_forward_pre_hook(ForwardPreHook hook);
  [[nodiscard]] HookHandle register_forward_hook(ForwardHook hook);
  bool has_forward_hooks() const { return hooks_ && !hooks_->empty(); }

 protected:
  // Registers t (made a leaf that requires grad) under `name`; returns it for the member.
  Tensor register_parameter(const std::string& name, Tensor t);
  // Registers t (never requiring grad) as a buffer under `name`; returns it for the member, whose
  // values the module updates in place.
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    check_name(name);
    if (!module) throw std::invalid_argument("register_module: '" + name + "' is null");
    children_.emplace_back(name, module);
    return module;
  }

  // A forward's hooked path: the pre-hooks on `call`, body(call) for the outputs, the forward
  // hooks. Throws std::logic_error when a hook changes the number of inputs or outputs.
  std::vector<Tensor> call_with_hooks(ForwardCall& call,
                                      const std::function<std::vector<Tensor>(const ForwardCall&)>& body) const;
  // The hooked path of a forward of several tensors and keyword arguments, one tensor out:
  // f(inputs, kwargs) after the pre-hooks (which may change both), then the forward hooks. The
  // caller takes it only when has_forward_hooks(), and calls its body directly otherwise.
  template <class Kwargs, class F>
  Tensor with_hooks(std::vector<Tensor> inputs, Kwargs& kwargs, F&& f) const {
    ForwardCall call{*this, std::move(inputs), &kwargs};
    return call_with_hooks(call, [&](const ForwardCall& c) { return std::vector<Tensor>{f(c.inputs, kwargs)}; })[0];
  }
  // The forward of a module of one tensor in, one out, no kwargs: f(x) with the hooks around it
  // when there are any, else just f(x).
  template <class F>
  Tensor with_hooks(const Tensor& x, F&& f) const {
    if (!has_forward_hooks()) return f(x);
    ForwardCall call{*this, {x}};
    return call_with_hooks(call, [&f](const ForwardCall& c) { return std::vector<Tensor>{f(c.inputs[0])}; })[0];
  }

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, NamedTensors& out, bool buffers) const;

  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
  std::shared_ptr<ForwardHooks> hooks_;  // null until the first registration
};

// An indexable list of modules named "0", "1", ... (torch.nn.ModuleList).
template <class M>
class ModuleList : public Module {
 public:
  void push_back(std::shared_ptr<M> m) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(m)));
  }
  M& operator[](std::size_t i) const { return *items_.at(i); }
  std::size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  std::string repr() const override { return "ModuleList(" + std::to_string(items_.size()) + ")"; }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace rune::nn
