// The two hooks per attention module behind AttentionRecorder.
#include "analysis/attention_recorder.hpp"

#include <stdexcept>

#include "autograd/ops.hpp"

namespace rune::analysis {

AttentionRecorder::AttentionRecorder(nn::Module& model) : AttentionRecorder(nn::attention_modules(model)) {}

AttentionRecorder::AttentionRecorder(const std::vector<std::pair<std::string, nn::MultiheadAttention*>>& modules)
    : entries_(modules.size()) {
  for (std::size_t i = 0; i < modules.size(); ++i) {
    Entry* e = &entries_[i];
    e->path = modules[i].first;
    nn::MultiheadAttention& m = *modules[i].second;
    e->pre = m.register_forward_pre_hook([e](nn::ForwardCall& call) {
      auto* kwargs = call.kwargs_as<nn::MultiheadAttentionKwargs>();
      if (!kwargs) return;
      e->caller_asked = kwargs->weights;
      kwargs->weights = nn::AttentionWeights::per_head;
    });
    e->post = m.register_forward_hook([e](const nn::ForwardCall&, std::vector<Tensor>& outputs) {
      if (outputs.size() < 2 || outputs[1].dim() != 4) return;  // a later pre-hook asked otherwise
      e->weights = outputs[1].detach();                         // (B, H, Tq, Tk)
      // the caller's averaged weights are the mean over heads, as the module computes them
      if (e->caller_asked == nn::AttentionWeights::averaged) outputs[1] = mean(outputs[1], {1});
    });
  }
}

const Tensor& AttentionRecorder::weights(const std::string& path) const {
  for (const Entry& e : entries_)
    if (e.path == path) return e.weights;
  throw std::out_of_range("AttentionRecorder: no attention module is recorded at '" + path + "'");
}

void AttentionRecorder::clear() {
  for (Entry& e : entries_) e.weights = Tensor();
}

}  // namespace rune::analysis
