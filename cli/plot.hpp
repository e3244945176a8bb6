// Training curves as a PNG (cairo): the training loss per step (raw and smoothed) and the
// validation loss on the left, the other validation metrics on the right, with axes, ticks,
// labels and legends.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rune::cli {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

// Writes a two-panel plot to `path` (atomically: path.tmp, then rename). Panels with no points
// say so. Throws std::runtime_error naming the path when cairo cannot write it.
void plot_curves(const std::string& path, const std::string& title, const Series& loss, const Series& val_loss,
                 const std::vector<Series>& metrics);

}  // namespace rune::cli
