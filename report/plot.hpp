// Pictures as PNG (cairo): training curves (the training loss per step, raw and smoothed, and the
// validation loss on the left, the other validation metrics on the right), attention heatmaps
// over tokens (with word links over them), attention over an image, a confusion matrix; and reading
// a PNG image.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rune::report {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (step, value)
};

// Writes a two-panel plot to `path` (atomically: path.tmp, then rename). Panels with no points
// say so. Throws std::runtime_error naming the path when cairo cannot write it.
void plot_curves(const std::string& path, const std::string& title, const Series& loss, const Series& val_loss,
                 const std::vector<Series>& metrics);

// Panels side by side, each a (title, series) pair over the same x axis named `x_label`
// (the pruning curve: heads masked against the task's loss, and against its metrics).
void plot_panels(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::vector<std::pair<std::string, std::vector<Series>>>& panels);

// A metric against one variable, the sweep's plot: per series, its mean at each x with an error
// bar of +-spread, joined by a line, and the values it is the mean of as hollow dots. The x axis
// is labelled only at `x_ticks` (position, label): the caller places the values on it (a number
// itself, its log10, or the index of a category). A mean or spread that is NaN draws no point or
// no bar. A legend of the series' names is drawn right of the plot. Written atomically like
// plot_curves.
struct ErrorBarSeries {
  std::string name;
  std::vector<double> x, mean, spread;            // one point each
  std::vector<std::pair<double, double>> values;  // (x, value): what the means are over
};
void plot_error_bars(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<std::pair<double, std::string>>& x_ticks,
                     const std::vector<ErrorBarSeries>& series);

// A table of coloured cells with a short text in each (rows x columns; the head analysis's
// pattern-class map and importance heatmap, an attention module per row, a head per column)
// and a legend of named colours under it. Written atomically like plot_curves.
struct GridCell {
  double r = 1, g = 1, b = 1;  // in [0, 1]
  std::string text;
};
// A cell coloured as a weight in [0, 1] on the attention maps' scale (white through blue to
// dark navy; clamped).
GridCell weight_cell(double w, std::string text);
struct GridLegend {
  std::string name;
  double r, g, b;
};
void plot_grid(const std::string& path, const std::string& title, const std::vector<std::string>& rows,
               const std::vector<std::string>& columns, const std::vector<std::vector<GridCell>>& cells,
               const std::vector<GridLegend>& legend);

// Horizontal bars, one per row (top to bottom in the order given), each cut into segments of the
// given shares (a row's shares should add up to 1; a segment of 8% or more shows its percentage),
// coloured as their series in `legend`. values[row][series].
void plot_stacked_bars(const std::string& path, const std::string& title, const std::string& x_label,
                       const std::vector<std::string>& rows, const std::vector<std::vector<double>>& values,
                       const std::vector<GridLegend>& legend);

// One heatmap of an attention grid: weights (rows = queries, columns = keys) with their tokens.
struct Heatmap {
  std::string title;
  std::vector<std::vector<double>> weights;  // [query][key], each in [0, 1]
  std::vector<std::string> rows, columns;
};

// Heatmaps in a grid (`per_row` to a row), each with its token labels on both axes, and one
// colour scale from 0 to 1 for all; written atomically like plot_curves.
void plot_attention(const std::string& path, const std::string& title, const std::vector<Heatmap>& maps, int per_row);

// One heatmap (rows: target words, columns: source words) with word links drawn over it: a gold
// link as an amber frame inside its cell, a predicted link as a red dot in its centre (a right
// prediction has both), and a legend under it. Links are (row, column) cells. Written atomically
// like plot_curves.
void plot_alignment(const std::string& path, const std::string& title, const Heatmap& map,
                    const std::vector<std::pair<int, int>>& gold, const std::vector<std::pair<int, int>>& predicted);

// A confusion matrix, counts[label][predicted]: each cell coloured by its share of the row, with
// its count written in; class names on both axes. Written atomically like plot_curves.
void plot_confusion(const std::string& path, const std::string& title, const std::vector<std::string>& classes,
                    const std::vector<std::vector<std::int64_t>>& counts);

// Attention over an image: each panel draws the image, (C, S, S) bytes with C = 1 (grey) or 3
// (RGB), with `heat` (grid x grid weights, row-major) laid over it as a translucent heat map
// scaled to the panel's own maximum. `per_row` panels to a row; written atomically.
struct ImageOverlay {
  std::string title;
  std::vector<double> heat;
};
void plot_image_attention(const std::string& path, const std::string& title, const std::vector<std::uint8_t>& image,
                          int channels, int size, int grid, const std::vector<ImageOverlay>& panels, int per_row);

// The pixels of a PNG file as (C, H, W) bytes for C = 1 (luma, ITU-R 601) or 3 (RGB), any alpha
// composited onto black. Throws std::runtime_error naming the file when cairo cannot read it.
std::vector<std::uint8_t> read_png(const std::string& path, int channels, int& height, int& width);

}  // namespace rune::report
