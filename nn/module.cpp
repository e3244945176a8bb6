// The module tree: registration, traversal, modes, summary, loading by name, and forward hooks.
#include "nn/module.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "autograd/ops.hpp"

namespace rune::nn {

std::string LoadReport::message() const {
  std::string out;
  for (const auto& n : missing) out += "  missing: " + n + "\n";
  for (const auto& n : unexpected) out += "  unexpected: " + n + "\n";
  for (const auto& n : mismatched) out += "  shape mismatch: " + n + "\n";
  return out;
}

void Module::check_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw std::invalid_argument("register: name '" + name + "' must be non-empty and contain no '.'");
  for (const auto& p : params_)
    if (p.first == name) throw std::invalid_argument("register: '" + name + "' is already a parameter");
  for (const auto& b : buffers_)
    if (b.first == name) throw std::invalid_argument("register: '" + name + "' is already a buffer");
  for (const auto& c : children_)
    if (c.first == name) throw std::invalid_argument("register: '" + name + "' is already a submodule");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_name(name);
  if (!t.defined()) throw std::invalid_argument("register_parameter: '" + name + "' is undefined");
  t = t.detach();  // a leaf of its own, whatever computed it
  t.requires_grad_(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_name(name);
  if (!t.defined()) throw std::invalid_argument("register_buffer: '" + name + "' is undefined");
  t = t.detach();
  buffers_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, NamedTensors& out, bool buffers) const {
  for (const auto& [name, t] : buffers ? buffers_ : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out, buffers);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out, false);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", out, true);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  collect("", out, true);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (const auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

Tensor Module::parameter(const std::string& path) const {
  for (auto& [name, t] : named_parameters())
    if (name == path) return t;
  throw std::out_of_range(repr() + " has no parameter '" + path + "'");
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (const Tensor& t : parameters()) {
    if (set_to_none)
      t.clear_grad();
    else
      t.zero_grad();
  }
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

std::string Module::summary() const {
  const NamedTensors params = named_parameters();
  std::size_t width = 9;
  for (const auto& [name, t] : params) width = std::max(width, name.size());
  std::ostringstream os;
  os << repr() << "\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-18s %12s\n", static_cast<int>(width), "parameter", "shape", "count");
  os << line;
  for (const auto& [name, t] : params) {
    std::snprintf(line, sizeof line, "%-*s  %-18s %12lld\n", static_cast<int>(width), name.c_str(),
                  shape_str(t.shape()).c_str(), static_cast<long long>(t.numel()));
    os << line;
  }
  std::snprintf(line, sizeof line, "%-*s  %-18s %12lld\n", static_cast<int>(width), "total", "",
                static_cast<long long>(num_parameters()));
  os << line;
  return os.str();
}

LoadReport Module::load_state_dict(const NamedTensors& state, bool strict) {
  LoadReport report;
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given[name] = &t;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (auto& [name, param] : state_dict()) {
    const auto it = given.find(name);
    if (it == given.end()) {
      report.missing.push_back(name);
      continue;
    }
    if (it->second->shape() != param.shape())
      report.mismatched.push_back(name + ": " + shape_str(it->second->shape()) + " given, " + shape_str(param.shape()) +
                                  " expected");
    else
      copies.emplace_back(param, it->second);
    given.erase(it);
  }
  for (const auto& [name, t] : given) report.unexpected.push_back(name);
  if (strict && !report.ok()) throw std::invalid_argument("load_state_dict into " + repr() + ":\n" + report.message());
  NoGradGuard no_grad;
  for (auto& [param, value] : copies) param.copy_(*value);
  return report;
}

// ------------------------------------------------------------------------- forward hooks

namespace {
template <class Entries>
bool erase_id(Entries& entries, std::uint64_t id) {
  const auto it = std::find_if(entries.begin(), entries.end(), [id](const auto& e) { return e.id == id; });
  if (it == entries.end()) return false;
  entries.erase(it);
  return true;
}
}  // namespace

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    remove();
    hooks_ = std::move(other.hooks_);
    id_ = other.id_;
    other.hooks_.reset();
  }
  return *this;
}

void HookHandle::remove() {
  if (const auto hooks = hooks_.lock())
    if (!erase_id(hooks->pre, id_)) erase_id(hooks->post, id_);
  hooks_.reset();
}

bool HookHandle::active() const {
  const auto hooks = hooks_.lock();
  if (!hooks) return false;
  const auto has = [this](const auto& entries) {
    return std::any_of(entries.begin(), entries.end(), [this](const auto& e) { return e.id == id_; });
  };
  return has(hooks->pre) || has(hooks->post);
}

HookHandle Module::register_forward_pre_hook(ForwardPreHook hook) {
  if (!hook) throw std::invalid_argument(repr() + ": register_forward_pre_hook got an empty function");
  if (!hooks_) hooks_ = std::make_shared<ForwardHooks>();
  const std::uint64_t id = hooks_->next_id++;
  hooks_->pre.push_back({id, std::make_shared<const ForwardPreHook>(std::move(hook))});
  return HookHandle(hooks_, id);
}

HookHandle Module::register_forward_hook(ForwardHook hook) {
  if (!hook) throw std::invalid_argument(repr() + ": register_forward_hook got an empty function");
  if (!hooks_) hooks_ = std::make_shared<ForwardHooks>();
  const std::uint64_t id = hooks_->next_id++;
  hooks_->post.push_back({id, std::make_shared<const ForwardHook>(std::move(hook))});
  return HookHandle(hooks_, id);
}

std::vector<Tensor> Module::call_with_hooks(ForwardCall& call,
                                            const std::function<std::vector<Tensor>(const ForwardCall&)>& body) const {
  // snapshots: a hook that registers or removes hooks changes the next call, not this one
  const auto pre = hooks_ ? hooks_->pre : decltype(hooks_->pre){};
  const auto post = hooks_ ? hooks_->post : decltype(hooks_->post){};
  const std::size_t n_inputs = call.inputs.size();
  for (const auto& e : pre) {
    (*e.fn)(call);
    if (call.inputs.size() != n_inputs)
      throw std::logic_error(repr() + ": a forward pre-hook changed the number of inputs from " +
                             std::to_string(n_inputs) + " to " + std::to_string(call.inputs.size()));
  }
  std::vector<Tensor> outputs = body(call);
  const std::size_t n_outputs = outputs.size();
  for (const auto& e : post) {
    (*e.fn)(call, outputs);
    if (outputs.size() != n_outputs)
      throw std::logic_error(repr() + ": a forward hook changed the number of outputs from " +
                             std::to_string(n_outputs) + " to " + std::to_string(outputs.size()));
  }
  return outputs;
}

}  // namespace rune::nn
