#include "cli/plot.hpp"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace rune::cli {
namespace {

struct Box {
  double x, y, w, h;  // the plotting area in pixels
};

// "Nice" tick spacing: 1, 2 or 5 times a power of ten, about `count` ticks over the range.
double tick_step(double range, int count) {
  const double raw = range / count;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / mag;
  return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

std::string label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

void text(cairo_t* cr, double x, double y, const std::string& s, double align_x, double align_y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_move_to(cr, x - e.width * align_x - e.x_bearing, y + e.height * align_y);
  cairo_show_text(cr, s.c_str());
}

const double kColours[][3] = {{0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16}, {0.58, 0.4, 0.74}};

void panel(cairo_t* cr, const Box& b, const std::string& title, const std::vector<Series>& series, bool faint_first) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(y)) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 15);
  text(cr, b.x + b.w / 2, b.y - 32, title, 0.5, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, b.x, b.y, b.w, b.h);
  cairo_stroke(cr);
  if (!(x0 <= x1)) {
    cairo_set_font_size(cr, 13);
    text(cr, b.x + b.w / 2, b.y + b.h / 2, "no points yet", 0.5, 0.5);
    return;
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1, y0 -= 1;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  const auto X = [&](double x) { return b.x + (x - x0) / (x1 - x0) * b.w; };
  const auto Y = [&](double y) { return b.y + b.h - (y - y0) / (y1 - y0) * b.h; };
  cairo_set_font_size(cr, 11);
  const double xs = tick_step(x1 - x0, 6), ys = tick_step(y1 - y0, 6);
  for (double t = std::ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, X(t), b.y);
    cairo_line_to(cr, X(t), b.y + b.h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, X(t), b.y + b.h + 16, label(t), 0.5, 0);
  }
  for (double t = std::ceil(y0 / ys) * ys; t <= y1 + 1e-9; t += ys) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, b.x, Y(t));
    cairo_line_to(cr, b.x + b.w, Y(t));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x - 6, Y(t), label(t), 1.0, 0.5);
  }
  text(cr, b.x + b.w / 2, b.y + b.h + 34, "step", 0.5, 0);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const double* c = kColours[i % 5];
    const bool faint = faint_first && i == 0;
    cairo_set_source_rgba(cr, c[0], c[1], c[2], faint ? 0.35 : 1.0);
    cairo_set_line_width(cr, faint ? 1 : 2);
    bool started = false;
    for (const auto& [x, y] : series[i].points) {
      if (!std::isfinite(y)) continue;
      if (started)
        cairo_line_to(cr, X(x), Y(y));
      else
        cairo_move_to(cr, X(x), Y(y));
      started = true;
    }
    cairo_stroke(cr);
    if (series[i].points.size() <= 30)  // few points (evaluations): mark them
      for (const auto& [x, y] : series[i].points)
        if (std::isfinite(y)) {
          cairo_arc(cr, X(x), Y(y), 3, 0, 2 * M_PI);
          cairo_fill(cr);
        }
    // legend: one row above the panel, clear of the curves
    const double lx = b.x + 150 * static_cast<double>(i), ly = b.y - 10;
    cairo_rectangle(cr, lx, ly - 2, 14, 4);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, lx + 20, ly, series[i].name, 0, 0.5);
  }
}

// The colour of a weight in [0, 1]: white through blue to dark navy.
void weight_colour(cairo_t* cr, double w) {
  w = std::clamp(w, 0.0, 1.0);
  cairo_set_source_rgb(cr, 1.0 - 0.95 * w, 1.0 - 0.8 * w, 1.0 - 0.45 * w);
}

// Writes and frees the surface; path.tmp first, then renamed.
void write_png(cairo_surface_t* surface, const std::string& path, const char* what) {
  const std::string tmp = path + ".tmp";
  const cairo_status_t status = cairo_surface_write_to_png(surface, tmp.c_str());
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + " " + path + ": cairo cannot write it: " + cairo_status_to_string(status));
  std::filesystem::rename(tmp, path);
}

}  // namespace

void plot_attention(const std::string& path, const std::string& title, const std::vector<Heatmap>& maps, int per_row) {
  std::size_t longest_rows = 1, longest_cols = 1, cells = 1;
  for (const Heatmap& m : maps) {
    longest_rows = std::max(longest_rows, m.rows.size());
    longest_cols = std::max(longest_cols, m.columns.size());
    cells = std::max({cells, m.rows.size(), m.columns.size()});
  }
  const double cell = std::clamp(260.0 / static_cast<double>(cells), 8.0, 28.0);
  const double label_w = 90, label_h = 90, gap = 30;  // room for the token labels
  const double panel_w = label_w + cell * static_cast<double>(longest_cols) + gap;
  const double panel_h = 24 + cell * static_cast<double>(longest_rows) + label_h + gap;
  const int columns = std::max(1, per_row), rows = (static_cast<int>(maps.size()) + columns - 1) / columns;
  const int W = static_cast<int>(panel_w * columns + 100), H = static_cast<int>(panel_h * rows + 60);
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 16);
  text(cr, W / 2.0, 20, title, 0.5, 0.5);
  const double font = std::clamp(cell * 0.6, 7.0, 12.0);
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const Heatmap& m = maps[i];
    const double x0 = 10 + panel_w * static_cast<double>(static_cast<int>(i) % columns) + label_w;
    const double y0 = 50 + panel_h * static_cast<double>(static_cast<int>(i) / columns) + 24;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 12);
    text(cr, x0 + cell * static_cast<double>(m.columns.size()) / 2, y0 - 12, m.title, 0.5, 0);
    for (std::size_t q = 0; q < m.weights.size(); ++q)
      for (std::size_t k = 0; k < m.weights[q].size(); ++k) {
        weight_colour(cr, m.weights[q][k]);
        cairo_rectangle(cr, x0 + cell * static_cast<double>(k), y0 + cell * static_cast<double>(q), cell, cell);
        cairo_fill(cr);
      }
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0, y0, cell * static_cast<double>(m.columns.size()), cell * static_cast<double>(m.rows.size()));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, font);
    for (std::size_t q = 0; q < m.rows.size(); ++q)  // query tokens, right-aligned left of the rows
      text(cr, x0 - 4, y0 + cell * (static_cast<double>(q) + 0.5), m.rows[q], 1.0, 0.5);
    for (std::size_t k = 0; k < m.columns.size(); ++k) {  // key tokens, turned down under the columns
      cairo_save(cr);
      cairo_move_to(cr, x0 + cell * (static_cast<double>(k) + 0.5) + font / 3, y0 + cell * static_cast<double>(m.rows.size()) + 4);
      cairo_rotate(cr, M_PI / 2);
      cairo_show_text(cr, m.columns[k].c_str());
      cairo_restore(cr);
    }
  }
  // the colour scale
  const double sx = W - 60, sy = 60, sh = 200;
  for (int i = 0; i < 100; ++i) {
    weight_colour(cr, 1.0 - i / 99.0);
    cairo_rectangle(cr, sx, sy + sh * i / 100.0, 16, sh / 100.0 + 0.5);
    cairo_fill(cr);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 11);
  text(cr, sx + 20, sy, "1", 0, 0.5);
  text(cr, sx + 20, sy + sh / 2, "0.5", 0, 0.5);
  text(cr, sx + 20, sy + sh, "0", 0, 0.5);
  cairo_destroy(cr);
  write_png(surface, path, "attention map");
}

void plot_curves(const std::string& path, const std::string& title, const Series& loss, const Series& val_loss,
                 const std::vector<Series>& metrics) {
  const int W = 1200, H = 530;
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 17);
  text(cr, W / 2.0, 20, title, 0.5, 0.5);
  // the loss and its centred moving average over about a twentieth of the points
  Series smooth{"smoothed", {}};
  const auto n = static_cast<std::ptrdiff_t>(loss.points.size());
  const std::ptrdiff_t half = std::max<std::ptrdiff_t>(1, n / 40);
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    double total = 0;
    int count = 0;
    for (std::ptrdiff_t j = std::max<std::ptrdiff_t>(0, i - half); j <= std::min(n - 1, i + half); ++j)
      if (std::isfinite(loss.points[static_cast<std::size_t>(j)].second)) {
        total += loss.points[static_cast<std::size_t>(j)].second;
        ++count;
      }
    if (count) smooth.points.emplace_back(loss.points[static_cast<std::size_t>(i)].first, total / count);
  }
  panel(cr, {80, 90, 470, 360}, "loss", {loss, smooth, val_loss}, true);
  panel(cr, {690, 90, 470, 360}, "validation", metrics, false);
  cairo_destroy(cr);
  write_png(surface, path, "plot");
}

}  // namespace rune::cli
