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

// One heatmap of an attention grid: weights (rows = queries, columns = keys) with their tokens.
struct Heatmap {
  std::string title;
  std::vector<std::vector<double>> weights;  // [query][key], each in [0, 1]
  std::vector<std::string> rows, columns;
};

// Heatmaps in a grid (`per_row` to a row), each with its token labels on both axes, and one
// colour scale from 0 to 1 for all; written atomically like plot_curves.
void plot_attention(const std::string& path, const std::string& title, const std::vector<Heatmap>& maps, int per_row);

}  // namespace rune::cli
