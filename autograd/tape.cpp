// The backward pass: collect the nodes reachable from the root, run them newest first, accumulate.
#include "autograd/tape.hpp"

#include <algorithm>
#include <stdexcept>
#include <unordered_map>

#include "autograd/kernels.hpp"
#include "autograd/ops.hpp"

namespace rune {
namespace {

const char* const kOpNames[] = {
#define RUNE_OP_NAME(name) #name,
    RUNE_DIFFERENTIABLE_OPS(RUNE_OP_NAME)
#undef RUNE_OP_NAME
};

thread_local bool t_grad_enabled = true;
thread_local GradReadyFn* t_grad_ready = nullptr;
std::atomic<std::uint64_t> g_sequence{0};
std::atomic<std::uint64_t> g_visit_epoch{0};
std::atomic<std::int64_t> g_live_nodes{0};
std::array<std::atomic<std::uint64_t>, kOpCount> g_op_counts{};

// A gradient buffer only the engine holds, which may be updated in place.
bool exclusive(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1 && t.is_contiguous();
}

// Gradients reaching one tensor from several consumers add up. A buffer only the engine holds
// is updated in place; anything that may be shared (a view, a tensor also handed to another
// input) is combined out of place.
void accumulate(Tensor& into, Tensor g) {
  if (!into.defined()) {
    into = std::move(g);
    return;
  }
  if (exclusive(into) && detail::broadcast_shapes(into.shape(), g.shape(), "accumulate") == into.shape())
    into.add_(g);
  else
    into = add(into, g);
}

// The full-size gradient of an input of `shape` whose slice `s` is g, zero elsewhere.
Tensor scattered(const Shape& shape, const Tensor& g, const Grads::Slice& s) {
  Tensor full = zeros(shape, g.dtype());
  full.slice(s.dim, s.start, s.end, s.step).copy_(g);
  return full;
}

// accumulate() for a gradient that covers slice `s` of an input of `shape`: added into that
// slice of `into` when the engine holds `into` alone, zeros written around it only otherwise.
void accumulate_slice(Tensor& into, const Shape& shape, const Tensor& g, const Grads::Slice& s) {
  if (into.defined() && exclusive(into) && into.shape() == shape)
    into.slice(s.dim, s.start, s.end, s.step).add_(g);
  else
    accumulate(into, scattered(shape, g, s));
}

// Leaves own their .grad buffer: the first gradient is copied in, later ones are added to it.
void accumulate_into_leaf(AutogradMeta& leaf, const Tensor& g) {
  if (leaf.grad) {
    Tensor(leaf.grad).add_(g);
  } else if (g.impl_ptr().use_count() == 1 && g.impl()->storage.use_count() == 1 && g.is_contiguous() &&
             g.offset() == 0) {
    leaf.grad = g.impl_ptr();  // a fresh buffer nobody else sees: take it over
  } else {
    const Tensor c = detail::contiguous_data(g);
    leaf.grad = (c.shares_storage(g) ? c.clone() : c).impl_ptr();
  }
}

// accumulate_into_leaf() for a gradient that covers slice `s` of a leaf of `shape`.
void accumulate_slice_into_leaf(AutogradMeta& leaf, const Shape& shape, const Tensor& g, const Grads::Slice& s) {
  if (leaf.grad)
    Tensor(leaf.grad).slice(s.dim, s.start, s.end, s.step).add_(g);
  else
    leaf.grad = scattered(shape, g, s).impl_ptr();
}

}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<std::size_t>(op)]; }

std::array<std::uint64_t, kOpCount> recorded_op_counts() {
  std::array<std::uint64_t, kOpCount> out{};
  for (std::size_t i = 0; i < kOpCount; ++i) out[i] = g_op_counts[i].load();
  return out;
}

void reset_recorded_op_counts() {
  for (auto& c : g_op_counts) c = 0;
}

bool is_grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

// ------------------------------------------------------------------------- Grads

Grads::Grads(const Node& node) : node_(node), grads_(node.edges().size()), slices_(node.edges().size()) {}

bool Grads::needs(std::size_t input) const { return node_.edges()[input].needs_grad(); }

void Grads::set(std::size_t input, Tensor grad) {
  if (!needs(input)) return;
  if (grad.shape() != node_.input_shape(input))
    throw std::logic_error(std::string("backward of '") + node_.name() + "': gradient for input " +
                           std::to_string(input) + " has shape " + shape_str(grad.shape()) +
                           " but the input has shape " + shape_str(node_.input_shape(input)));
  Slice& s = slices_[input];
  if (s.active) {  // a slice given before: make it full-size first
    grads_[input] = scattered(node_.input_shape(input), grads_[input], s);
    s.active = false;
  }
  accumulate(grads_[input], std::move(grad));
}

void Grads::set_slice(std::size_t input, Tensor grad, std::int64_t dim, std::int64_t start, std::int64_t end,
                      std::int64_t step) {
  if (!needs(input)) return;
  const Shape& shape = node_.input_shape(input);
  Shape piece = shape;
  piece[static_cast<std::size_t>(dim)] = (end - start + step - 1) / step;
  if (grad.shape() != piece)
    throw std::logic_error(std::string("backward of '") + node_.name() + "': gradient for a slice of input " +
                           std::to_string(input) + " has shape " + shape_str(grad.shape()) +
                           " but the slice has shape " + shape_str(piece));
  const Slice s{dim, start, end, step, true};
  if (grads_[input].defined()) {  // a second contribution to this input: go full-size
    set(input, scattered(shape, grad, s));
    return;
  }
  grads_[input] = std::move(grad);
  slices_[input] = s;
}

// ------------------------------------------------------------------------- Node

Node::Node(Op op, std::vector<Edge> edges, std::vector<Shape> input_shapes, Shape output_shape, DType output_dtype,
           BackwardFn fn)
    : op_(op),
      sequence_(g_sequence.fetch_add(1)),
      edges_(std::move(edges)),
      input_shapes_(std::move(input_shapes)),
      output_shape_(std::move(output_shape)),
      output_dtype_(output_dtype),
      fn_(std::move(fn)) {
  ++g_live_nodes;
  ++g_op_counts[static_cast<std::size_t>(op)];
}

Node::~Node() {
  --g_live_nodes;
  // A long chain (a loop of 100k ops) would otherwise be destroyed by nested destructor calls,
  // one stack frame per node. Take over the producers only this node holds and free them from a
  // work list instead, so that each destructor runs at depth one.
  std::vector<std::shared_ptr<Node>> pending;
  auto adopt = [&pending](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.node && e.node.use_count() == 1) pending.push_back(std::move(e.node));
  };
  adopt(edges_);
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    adopt(n->edges_);
  }  // n is destroyed here with no uniquely held producer left to recurse into
}

std::int64_t Node::live_count() { return g_live_nodes.load(); }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(Op op, Tensor& output, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return;
  std::vector<Node::Edge> edges(inputs.size());
  std::vector<Shape> shapes(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined()) continue;
    shapes[i] = in.shape();
    if (!in.requires_grad()) continue;
    if (in.grad_fn())
      edges[i].node = in.grad_fn();
    else
      edges[i].leaf = in.impl()->meta;
  }
  auto node =
      std::make_shared<Node>(op, std::move(edges), std::move(shapes), output.shape(), output.dtype(), std::move(fn));
  // The output must be a fresh handle: give it its own metadata.
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  output.impl()->meta = std::move(meta);
}

// ------------------------------------------------------------------------- backward

void run_backward(const Tensor& root, const Tensor& seed_in, bool retain_graph) {
  if (!root.requires_grad())
    throw std::logic_error(
        "backward: the tensor does not require grad and has no grad_fn "
        "(no input of the computation called requires_grad_())");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    if (root.numel() != 1)
      throw std::logic_error("backward: output has shape " + shape_str(root.shape()) +
                             "; backward() without a gradient needs a single-element output. "
                             "Pass the upstream gradient: y.backward(grad_y)");
    seed = ones(root.shape(), root.dtype());
  } else if (seed.shape() != root.shape() || seed.dtype() != root.dtype()) {
    throw std::invalid_argument("backward: gradient of shape " + shape_str(seed.shape()) + " (" +
                                dtype_name(seed.dtype()) + ") given for an output of shape " + shape_str(root.shape()) +
                                " (" + dtype_name(root.dtype()) + ")");
  }

  NoGradGuard no_grad;  // backward closures compute with ops but record nothing
  if (root.is_leaf()) {
    accumulate_into_leaf(*root.impl()->meta, seed);
    if (t_grad_ready) (*t_grad_ready)(*root.impl()->meta);
    return;
  }

  // Collect the reachable nodes (iteratively), then order them newest first.
  const std::uint64_t mark = ++g_visit_epoch;
  std::vector<Node*> order;
  std::vector<Node*> stack{root.grad_fn().get()};
  root.grad_fn()->visit_mark_ = mark;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const auto& e : n->edges_)
      if (e.node && e.node->visit_mark_ != mark) {
        e.node->visit_mark_ = mark;
        stack.push_back(e.node.get());
      }
  }
  std::sort(order.begin(), order.end(), [](const Node* a, const Node* b) { return a->sequence_ > b->sequence_; });

  // A backward that throws part-way (a freed graph, a failing closure) must leave no gradient
  // pending on the nodes it did not reach: a later backward through them would add it in.
  struct ClearPendingOnError {
    const std::vector<Node*>& nodes;
    bool done = false;
    ~ClearPendingOnError() {
      if (!done)
        for (Node* n : nodes) n->pending_grad_ = Tensor();
    }
  } clear_on_error{order};

  // with a gradient-ready hook: how many nodes still to run hold an edge to each leaf
  std::unordered_map<AutogradMeta*, int> leaf_uses;
  if (t_grad_ready)
    for (Node* n : order)
      for (const auto& e : n->edges_)
        if (e.leaf) ++leaf_uses[e.leaf.get()];
  const auto leaves_done = [&](const Node& n) {
    if (!t_grad_ready) return;
    for (const auto& e : n.edges_)
      if (e.leaf && --leaf_uses[e.leaf.get()] == 0) (*t_grad_ready)(*e.leaf);
  };

  Node* root_node = root.grad_fn().get();
  root_node->pending_grad_ = seed;
  for (Node* n : order) {
    if (!n->pending_grad_.defined()) {  // nothing flowed into it
      leaves_done(*n);
      continue;
    }
    if (n->released_)
      throw std::logic_error(std::string("backward: the graph through '") + n->name() +
                             "' was already freed by an earlier backward(); call "
                             "backward(grad, /*retain_graph=*/true) the first time to run "
                             "backward through it again");
    Tensor gy = std::move(n->pending_grad_);
    n->pending_grad_ = Tensor();
    Grads grads(*n);
    n->fn_(gy, grads);
    for (std::size_t i = 0; i < n->edges_.size(); ++i) {
      Tensor& g = grads.values()[i];
      if (!g.defined()) continue;
      const Node::Edge& e = n->edges_[i];
      const Grads::Slice& s = grads.slice_of(i);
      if (s.active && e.node) {
        accumulate_slice(e.node->pending_grad_, n->input_shapes_[i], g, s);
      } else if (s.active && e.leaf) {
        accumulate_slice_into_leaf(*e.leaf, n->input_shapes_[i], g, s);
      } else if (e.node) {
        accumulate(e.node->pending_grad_, std::move(g));
      } else if (e.leaf) {
        accumulate_into_leaf(*e.leaf, g);
      }
    }
    leaves_done(*n);
    if (!retain_graph) {
      n->fn_ = nullptr;  // frees the saved activations
      n->released_ = true;
    }
  }
  clear_on_error.done = true;
}

GradReadyHook::GradReadyHook(GradReadyFn fn) : fn_(std::move(fn)), previous_(t_grad_ready) { t_grad_ready = &fn_; }
GradReadyHook::~GradReadyHook() { t_grad_ready = previous_; }

}  // namespace rune
