#include "optim/optimizer.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"

namespace rune::optim {

bool glob_match(const std::string& pattern, const std::string& name) {
  // iterative wildcard match: remember the last '*' and retry from one character later
  std::size_t p = 0, n = 0, star = std::string::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<ParamGroup> param_groups_by_weight_decay(const NamedTensors& params, double lr, double weight_decay,
                                                     const std::vector<std::string>& no_decay_patterns) {
  ParamGroup decay{"decay", {}, lr, lr, weight_decay}, no_decay{"no_decay", {}, lr, lr, 0.0};
  for (const auto& [name, t] : params) {
    const bool excluded = std::any_of(no_decay_patterns.begin(), no_decay_patterns.end(),
                                      [&](const std::string& pat) { return glob_match(pat, name); });
    (excluded ? no_decay : decay).params.emplace_back(name, t);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  std::set<std::string> seen;
  for (const ParamGroup& g : groups_) {
    if (!(g.lr >= 0) || !(g.weight_decay >= 0))
      throw std::invalid_argument("optimizer: group '" + g.name + "' needs lr >= 0 and weight_decay >= 0");
    for (const auto& [name, t] : g.params) {
      if (!t.defined() || !is_floating(t.dtype()))
        throw std::invalid_argument("optimizer: parameter '" + name + "' is not a floating tensor");
      if (!seen.insert(name).second)
        throw std::invalid_argument("optimizer: parameter '" + name + "' is in two groups");
    }
  }
}

Optimizer::ParamState& Optimizer::state_for(const std::string& name, const Tensor& param) {
  for (ParamState& st : state_)
    if (st.name == name) return st;
  ParamState st{name, 0, {}};
  for (std::size_t i = 0; i < slot_names().size(); ++i) st.slots.push_back(zeros(param.shape(), param.dtype()));
  state_.push_back(std::move(st));
  return state_.back();
}

void Optimizer::step() {
  NoGradGuard no_grad;
  ++steps_;
  // An elementwise update runs on pieces of at most kPiece elements of every parameter, shared
  // out between the threads at once: a model's tensors are mostly too small to be worth a
  // parallel loop each, yet together they are millions of elements. Any other update gets each
  // parameter whole, one after another. The views are made here, on this thread, where grad
  // mode is off.
  constexpr std::int64_t kPiece = 1 << 15;
  const bool elementwise = updates_elementwise();
  struct Piece {
    const ParamGroup* group;
    Tensor param, grad;
    std::vector<Tensor> slots;  // views of a piece of the state's slots (elementwise)
    std::size_t state;          // the parameter's state, whose slots a whole update gets
    std::int64_t step;
  };
  std::vector<Piece> pieces;
  for (const ParamGroup& g : groups_)
    for (const auto& [name, t] : g.params) {
      const Tensor grad = t.grad();
      if (!grad.defined()) continue;
      if (!t.is_contiguous()) throw std::invalid_argument("optimizer: parameter '" + name + "' is not contiguous");
      const Tensor gc = grad.dtype() == t.dtype() ? grad.contiguous() : to_dtype(grad, t.dtype()).contiguous();
      ParamState& st = state_for(name, t);
      const auto state = static_cast<std::size_t>(&st - state_.data());
      const std::int64_t step = ++st.step, n = t.numel();
      if (!elementwise) {
        pieces.push_back({&g, t, gc, {}, state, step});
        continue;
      }
      const auto flat = [n](const Tensor& x, std::int64_t b, std::int64_t e) { return reshape(x, {n}).slice(0, b, e); };
      for (std::int64_t b = 0; b < n; b += kPiece) {
        const std::int64_t e = std::min(n, b + kPiece);
        Piece piece{&g, flat(t, b, e), flat(gc, b, e), {}, state, step};
        for (const Tensor& slot : st.slots) piece.slots.push_back(flat(slot, b, e));
        pieces.push_back(std::move(piece));
      }
    }
  const auto count = static_cast<std::int64_t>(pieces.size());
#pragma omp parallel for schedule(static) if (elementwise && count > 1)
  for (std::int64_t i = 0; i < count; ++i) {
    Piece& piece = pieces[static_cast<std::size_t>(i)];
    update(*piece.group, piece.param, piece.grad, elementwise ? piece.slots : state_[piece.state].slots, piece.step);
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (const ParamGroup& g : groups_)
    for (const auto& [name, t] : g.params) {
      if (set_to_none)
        t.clear_grad();
      else
        t.zero_grad();
    }
}

void Optimizer::set_lr_factor(double factor) {
  for (ParamGroup& g : groups_) g.lr = factor * g.base_lr;
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  const std::vector<std::string> slots = slot_names();
  for (const ParamState& st : state_) {
    out.emplace_back(st.name + "/step", full({}, static_cast<double>(st.step), DType::int64));
    for (std::size_t i = 0; i < slots.size(); ++i) out.emplace_back(st.name + "/" + slots[i], st.slots[i]);
  }
  return out;
}

void Optimizer::load_state(const NamedTensors& state, std::int64_t steps) {
  std::map<std::string, Tensor> params;
  for (const ParamGroup& g : groups_)
    for (const auto& [name, t] : g.params) params[name] = t;
  const std::vector<std::string> slots = slot_names();
  std::map<std::string, ParamState> loaded;
  std::string problems;
  for (const auto& [key, t] : state) {
    const std::size_t cut = key.rfind('/');
    const std::string pname = cut == std::string::npos ? key : key.substr(0, cut);
    const std::string slot = cut == std::string::npos ? "" : key.substr(cut + 1);
    const auto s = std::find(slots.begin(), slots.end(), slot);
    const auto p = params.find(pname);
    if ((s == slots.end() && slot != "step") || p == params.end()) {
      problems += "  unexpected: " + key + "\n";
      continue;
    }
    ParamState& st = loaded[pname];
    st.name = pname;
    st.slots.resize(slots.size());
    if (slot == "step") {
      if (t.dim() != 0 || t.dtype() != DType::int64 || t.item() < 1)
        problems += "  " + key + " must be a positive int64 scalar\n";
      else
        st.step = static_cast<std::int64_t>(t.item());
      continue;
    }
    if (t.shape() != p->second.shape()) {
      problems += "  shape mismatch: " + key + ": " + shape_str(t.shape()) + " given, " + shape_str(p->second.shape()) +
                  " expected\n";
      continue;
    }
    st.slots[static_cast<std::size_t>(s - slots.begin())] = to_dtype(t, p->second.dtype()).contiguous().clone();
  }
  for (const auto& [pname, st] : loaded) {
    if (st.step == 0) problems += "  missing: " + pname + "/step\n";
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (!st.slots[i].defined()) problems += "  missing: " + pname + "/" + slots[i] + "\n";
  }
  if (steps < 0) problems += "  the step count is negative\n";
  if (!problems.empty()) throw std::invalid_argument(name() + " state:\n" + problems);
  state_.clear();
  for (const ParamGroup& g : groups_)  // parameters without state (never updated) stay lazy
    for (const auto& [pname, t] : g.params)
      if (const auto it = loaded.find(pname); it != loaded.end()) state_.push_back(it->second);
  steps_ = steps;
}

}  // namespace rune::optim
