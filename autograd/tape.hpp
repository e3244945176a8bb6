// The reverse-mode tape.
//
// Every differentiable op, when grad mode is on and some input needs a gradient, records one Node
// holding its backward closure, written in the op's own file right below its forward. Nodes carry
// a creation sequence number: creation order is a topological order, so backward() collects the
// nodes reachable from the output, sorts them by sequence (newest first) and runs each once; no
// recursion. Nodes are owned by the tensors they produced and by the nodes that consume those
// tensors, so a graph nobody runs backward through is freed when its tensors go away, and a graph
// that was run is released (closures and saved activations dropped) unless retain_graph is asked.
//
// Gradients always accumulate: into a node's pending output gradient while the pass runs, and
// into a leaf's lazily allocated `.grad`, which only zero_grad() resets.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace rune {

// Every differentiable op, by the name its nodes carry. tests/test_gradcheck.cpp runs a gradient
// check per entry and fails when an entry has none, so a new op cannot go unchecked.
// (kept out of clang-format, which re-flows the list differently on every pass)
// clang-format off
#define RUNE_DIFFERENTIABLE_OPS(X)                                                                 \
  X(add) X(sub) X(mul) X(div) X(neg) X(pow) X(pow_tensor) X(exp) X(log) X(sqrt) X(tanh)           \
  X(sigmoid) X(relu) X(gelu) X(erf) X(where) X(masked_fill)                                        \
  X(sum) X(mean) X(max)                                                                            \
  X(reshape) X(transpose) X(permute) X(expand) X(contiguous) X(slice) X(concat) X(index_select)    \
  X(gather) X(cast)                                                                                \
  X(matmul) X(linear) X(softmax) X(log_softmax) X(layer_norm) X(dropout) X(cross_entropy)          \
  X(mse_loss) X(attention) X(attention_weights) X(flash_attention) X(embedding) X(patchify)          \
  X(interpolate_bicubic) X(rope) X(conv2d) X(batch_norm) X(max_pool2d) X(avg_pool2d)                \
  X(adaptive_avg_pool2d)
// clang-format on

enum class Op : std::uint8_t {
#define RUNE_OP_ENUM(name) name,
  RUNE_DIFFERENTIABLE_OPS(RUNE_OP_ENUM)
#undef RUNE_OP_ENUM
      count_
};
constexpr std::size_t kOpCount = static_cast<std::size_t>(Op::count_);
const char* op_name(Op op);

// How many nodes of each op were recorded since the last reset (the gradient-check coverage test
// uses it to see that every op was exercised).
std::array<std::uint64_t, kOpCount> recorded_op_counts();
void reset_recorded_op_counts();

// ---- grad mode (thread-local, on by default)
bool is_grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : previous_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;     // null for leaves
  std::shared_ptr<TensorImpl> grad;  // leaves only: the accumulated gradient
};

// What a backward closure receives: which inputs want a gradient, and where to put it.
class Grads {
 public:
  explicit Grads(const Node& node);
  bool needs(std::size_t input) const;
  // Hands over the gradient for `input`. Its shape must equal that input's shape (checked).
  void set(std::size_t input, Tensor grad);
  // Hands over the gradient of a slice of `input` (Tensor::slice's arguments), zero elsewhere:
  // `grad` has the slice's shape. The engine adds it into the input's gradient in place when it
  // can, so that the pieces of a split tensor (q, k and v of one projection) fill one buffer
  // instead of each writing a full-size one of zeros around itself.
  void set_slice(std::size_t input, Tensor grad, std::int64_t dim, std::int64_t start, std::int64_t end,
                 std::int64_t step);
  struct Slice {
    std::int64_t dim = 0, start = 0, end = 0, step = 1;
    bool active = false;  // the gradient held for this input covers this slice only
  };
  std::vector<Tensor>& values() { return grads_; }
  const Slice& slice_of(std::size_t input) const { return slices_[input]; }

 private:
  const Node& node_;
  std::vector<Tensor> grads_;
  std::vector<Slice> slices_;
};

using BackwardFn = std::function<void(const Tensor& grad_output, Grads& grads)>;

class Node {
 public:
  struct Edge {
    std::shared_ptr<Node> node;          // the input's producer, or
    std::shared_ptr<AutogradMeta> leaf;  // the input itself when it is a leaf needing a grad
    bool needs_grad() const { return node || leaf; }
  };

  Node(Op op, std::vector<Edge> edges, std::vector<Shape> input_shapes, Shape output_shape, DType output_dtype,
       BackwardFn fn);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  Op op() const { return op_; }
  const char* name() const { return op_name(op_); }
  std::uint64_t sequence() const { return sequence_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const Shape& input_shape(std::size_t i) const { return input_shapes_[i]; }
  bool released() const { return released_; }

  static std::int64_t live_count();

 private:
  friend void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);
  Op op_;
  std::uint64_t sequence_;
  std::vector<Edge> edges_;
  std::vector<Shape> input_shapes_;
  Shape output_shape_;
  DType output_dtype_;
  BackwardFn fn_;
  Tensor pending_grad_;  // sum of the gradients flowing into the output, during a pass
  std::uint64_t visit_mark_ = 0;
  bool released_ = false;
};

// True when grad mode is on and some input requires a gradient: the op must record.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches a node for `op` to `output` when any input requires grad (and grad mode is on).
// The closure must capture only what backward needs, as detached tensors (`t.detach()`) or
// plain containers: capturing the output itself un-detached would make a reference cycle.
void record(Op op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn);

void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);

// ---- gradient-ready hook (thread-local)
// While a GradReadyHook lives, every backward() on this thread calls it once for each leaf the
// graph reaches, as soon as that leaf's gradient is final for the pass: every node that could add
// to it has run (a leaf used twice, a tied embedding say, is called after its second use). The
// leaf's grad may still be undefined when no gradient actually flowed into it. Data-parallel
// training starts reducing a bucket of gradients from here while the rest of backward runs.
using GradReadyFn = std::function<void(const AutogradMeta& leaf)>;
class GradReadyHook {
 public:
  explicit GradReadyHook(GradReadyFn fn);
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

 private:
  GradReadyFn fn_;
  GradReadyFn* previous_;
};

}  // namespace rune
