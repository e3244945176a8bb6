#include "analysis/attention_maps.hpp"

#include <stdexcept>

#include "autograd/ops.hpp"

namespace rune::analysis {

std::vector<double> attention_rollout(const std::vector<Tensor>& layers) {
  if (layers.empty()) throw std::invalid_argument("attention_rollout: no layers");
  const std::int64_t T = layers.front().size(1);
  std::vector<double> rollout(static_cast<std::size_t>(T * T), 0.0), next(rollout.size()), a(rollout.size());
  for (std::int64_t i = 0; i < T; ++i) rollout[static_cast<std::size_t>(i * T + i)] = 1.0;
  for (const Tensor& layer : layers) {
    if (layer.dim() != 3 || layer.size(1) != T || layer.size(2) != T)
      throw std::invalid_argument("attention_rollout: layer weights " + shape_str(layer.shape()) + " are not (H, " +
                                  std::to_string(T) + ", " + std::to_string(T) + ")");
    const Tensor w = to_dtype(layer, DType::float64).contiguous();
    const std::int64_t H = w.size(0);
    const double* p = w.data<double>();
    // A' = (mean_h A_h + I) / 2, rows renormalised
    for (std::int64_t i = 0; i < T; ++i) {
      double row = 0;
      for (std::int64_t j = 0; j < T; ++j) {
        double m = 0;
        for (std::int64_t h = 0; h < H; ++h) m += p[(h * T + i) * T + j];
        const double v = 0.5 * m / static_cast<double>(H) + (i == j ? 0.5 : 0.0);
        a[static_cast<std::size_t>(i * T + j)] = v;
        row += v;
      }
      for (std::int64_t j = 0; j < T; ++j) a[static_cast<std::size_t>(i * T + j)] /= row;
    }
    // R <- A' R
    for (std::int64_t i = 0; i < T; ++i)
      for (std::int64_t j = 0; j < T; ++j) {
        double s = 0;
        for (std::int64_t k = 0; k < T; ++k)
          s += a[static_cast<std::size_t>(i * T + k)] * rollout[static_cast<std::size_t>(k * T + j)];
        next[static_cast<std::size_t>(i * T + j)] = s;
      }
    rollout.swap(next);
  }
  return rollout;
}

}  // namespace rune::analysis
