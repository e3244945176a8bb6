// AttentionRecorder: the per-head attention weights of every nn::MultiheadAttention of a model,
// observed from outside through forward hooks (the modules keep nothing for it).
//
// Legend: B batch, H heads, Tq queries, Tk keys.
//
// While a recorder lives, each watched module's pre-hook asks its forward for per-head weights
// (as PyTorch's need_weights=True, average_attn_weights=False) and its forward hook keeps them,
// detached, (B, H, Tq, Tk), from the module's latest forward; the callers of the module get what
// they asked for, as without the recorder. Asking for weights takes the composed attention path
// instead of the fused kernel: outputs agree to rounding, not bit for bit. The destructor removes
// the hooks (safe after the model is gone).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"
#include "nn/attention.hpp"

namespace rune::analysis {

class AttentionRecorder {
 public:
  // Every MultiheadAttention of the model, by path (nn::attention_modules order).
  explicit AttentionRecorder(nn::Module& model);
  // The given modules under the given paths (a model's subset, or modules of no model).
  explicit AttentionRecorder(const std::vector<std::pair<std::string, nn::MultiheadAttention*>>& modules);
  AttentionRecorder(const AttentionRecorder&) = delete;
  AttentionRecorder& operator=(const AttentionRecorder&) = delete;

  std::size_t size() const { return entries_.size(); }
  const std::string& path(std::size_t i) const { return entries_.at(i).path; }
  // (B, H, Tq, Tk) of the module's latest forward since the recorder (or clear()) began;
  // undefined if it has not run. By path: throws std::out_of_range naming an unknown path.
  const Tensor& weights(std::size_t i) const { return entries_.at(i).weights; }
  const Tensor& weights(const std::string& path) const;
  void clear();  // forgets the recorded weights (the hooks stay)

 private:
  struct Entry {
    std::string path;
    Tensor weights;
    nn::AttentionWeights caller_asked = nn::AttentionWeights::none;  // restored for the caller
    nn::HookHandle pre, post;
  };
  std::vector<Entry> entries_;  // sized once: the hooks hold pointers into it
};

}  // namespace rune::analysis
