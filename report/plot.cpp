#include "report/plot.hpp"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <utility>

#include "train/files.hpp"

namespace rune::report {
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

const double kColours[][3] = {
    {0.12, 0.47, 0.71}, {1.0, 0.5, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16}, {0.58, 0.4, 0.74}};

void panel(cairo_t* cr, const Box& b, const std::string& title, const std::vector<Series>& series, bool faint_first,
           const std::string& x_label = "step") {
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
  // a range too small to tick (flat, or 0 against 1e-232) is widened around its middle: ticks
  // spaced by it would never reach its end
  const auto flat = [](double lo, double hi) { return hi - lo <= 1e-9 * std::max({1.0, std::abs(lo), std::abs(hi)}); };
  if (flat(x0, x1)) x1 = x0 + 1;
  if (flat(y0, y1)) {
    const double mid = (y0 + y1) / 2;
    y0 = mid - 1, y1 = mid + 1;
  }
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  const auto X = [&](double x) { return b.x + (x - x0) / (x1 - x0) * b.w; };
  const auto Y = [&](double y) { return b.y + b.h - (y - y0) / (y1 - y0) * b.h; };
  cairo_set_font_size(cr, 11);
  const double xs = tick_step(x1 - x0, 6), ys = tick_step(y1 - y0, 6);
  for (double t = std::ceil(x0 / xs) * xs; t <= x1 + xs * 1e-6; t += xs) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, X(t), b.y);
    cairo_line_to(cr, X(t), b.y + b.h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, X(t), b.y + b.h + 16, label(t), 0.5, 0);
  }
  for (double t = std::ceil(y0 / ys) * ys; t <= y1 + ys * 1e-6; t += ys) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, b.x, Y(t));
    cairo_line_to(cr, b.x + b.w, Y(t));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x - 6, Y(t), label(t), 1.0, 0.5);
  }
  text(cr, b.x + b.w / 2, b.y + b.h + 34, x_label, 0.5, 0);
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

// The colours of word links drawn over a heatmap: gold links and predicted ones.
const double kGold[3] = {0.96, 0.62, 0.0};
const double kPredicted[3] = {0.86, 0.08, 0.08};

// A weight's colour on the attention maps' scale (weight_cell) as cairo's source.
void weight_colour(cairo_t* cr, double w) {
  const GridCell c = weight_cell(w, "");
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

// Owning handles: every path out of a function, an exception's included, frees what cairo made.
struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
};
using Surface = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using Context = std::unique_ptr<cairo_t, ContextDeleter>;

// cairo never returns null: a failure (no memory, a size past its limits) is a surface or context
// in an error state, which these turn into an exception.
Surface image_surface(cairo_format_t format, int w, int h) {
  Surface s(cairo_image_surface_create(format, w, h));
  if (const cairo_status_t status = cairo_surface_status(s.get()); status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error("cairo cannot make a " + std::to_string(w) + "x" + std::to_string(h) +
                             " image: " + cairo_status_to_string(status));
  return s;
}

Context context(cairo_surface_t* surface) {
  Context cr(cairo_create(surface));
  if (const cairo_status_t status = cairo_status(cr.get()); status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cairo cannot draw: ") + cairo_status_to_string(status));
  return cr;
}

// An image and the context drawing on it.
struct Page {
  Surface surface;
  Context cr;
};

// A white W x H page with `title` centred at title_y; the context is left drawing black
// sans-serif text.
Page start_page(int W, int H, const std::string& title, double title_size, double title_y) {
  Page page;
  page.surface = image_surface(CAIRO_FORMAT_RGB24, W, H);
  page.cr = context(page.surface.get());
  cairo_t* cr = page.cr.get();
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, title_size);
  text(cr, W / 2.0, title_y, title, 0.5, 0.5);
  return page;
}

// The finished page as the PNG `path`, encoded in memory and written by train::write_file
// (atomically, every write checked, the system's reason in the message). A context that went into
// an error state while drawing (cairo then stops drawing) fails it too.
void write_png(Page& page, const std::string& path, const char* what) {
  if (const cairo_status_t status = cairo_status(page.cr.get()); status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + " " + path + ": drawing it failed: " + cairo_status_to_string(status));
  page.cr.reset();
  std::string png;
  const cairo_status_t status = cairo_surface_write_to_png_stream(
      page.surface.get(),
      [](void* out, const unsigned char* data, unsigned int length) {
        static_cast<std::string*>(out)->append(reinterpret_cast<const char*>(data), length);
        return CAIRO_STATUS_SUCCESS;
      },
      &png);
  if (status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + " " + path +
                             ": cairo cannot encode it: " + cairo_status_to_string(status));
  train::write_file(path, png, what);
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
  Page page = start_page(W, H, title, 16, 20);
  cairo_t* cr = page.cr.get();
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
    cairo_rectangle(cr, x0, y0, cell * static_cast<double>(m.columns.size()),
                    cell * static_cast<double>(m.rows.size()));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, font);
    for (std::size_t q = 0; q < m.rows.size(); ++q)  // query tokens, right-aligned left of the rows
      text(cr, x0 - 4, y0 + cell * (static_cast<double>(q) + 0.5), m.rows[q], 1.0, 0.5);
    for (std::size_t k = 0; k < m.columns.size(); ++k) {  // key tokens, turned down under the columns
      cairo_save(cr);
      cairo_move_to(cr, x0 + cell * (static_cast<double>(k) + 0.5) + font / 3,
                    y0 + cell * static_cast<double>(m.rows.size()) + 4);
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
  write_png(page, path, "attention map");
}

void plot_alignment(const std::string& path, const std::string& title, const Heatmap& map,
                    const std::vector<std::pair<int, int>>& gold, const std::vector<std::pair<int, int>>& predicted) {
  const auto n_rows = static_cast<int>(map.rows.size()), n_cols = static_cast<int>(map.columns.size());
  for (const auto* links : {&gold, &predicted})
    for (const auto& [r, c] : *links)
      if (r < 0 || r >= n_rows || c < 0 || c >= n_cols)
        throw std::invalid_argument("plot_alignment: link (" + std::to_string(r) + ", " + std::to_string(c) +
                                    ") outside the " + std::to_string(n_rows) + "x" + std::to_string(n_cols) + " map");
  const double cell = std::clamp(640.0 / std::max({n_rows, n_cols, 1}), 10.0, 36.0);
  const double font = std::clamp(cell * 0.55, 7.0, 13.0);
  std::size_t longest = 1;  // room for the word labels, from their length in bytes
  for (const auto* words : {&map.rows, &map.columns})
    for (const std::string& w : *words) longest = std::max(longest, w.size());
  const double label = std::min(240.0, 12 + 0.62 * font * static_cast<double>(longest));
  const double x0 = 40 + label, y0 = 70;
  // wide enough for the titles, centred on the page (about 0.6 em per character)
  const double titles =
      std::max(0.6 * 15 * static_cast<double>(title.size()), 0.6 * 12 * static_cast<double>(map.title.size()));
  const int W = static_cast<int>(std::max({x0 + cell * n_cols + 90, titles + 40, 560.0}));
  const int H = static_cast<int>(y0 + cell * n_rows + label + 84);
  Page page = start_page(W, H, title, 15, 20);
  cairo_t* cr = page.cr.get();
  cairo_set_font_size(cr, 12);
  text(cr, W / 2.0, y0 - 24, map.title, 0.5, 0);
  for (int r = 0; r < n_rows; ++r)
    for (int c = 0; c < n_cols; ++c) {
      const auto& row = map.weights.at(static_cast<std::size_t>(r));
      weight_colour(cr, static_cast<std::size_t>(c) < row.size() ? row[static_cast<std::size_t>(c)] : 0.0);
      cairo_rectangle(cr, x0 + cell * c, y0 + cell * r, cell, cell);
      cairo_fill(cr);
    }
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, x0, y0, cell * n_cols, cell * n_rows);
  cairo_stroke(cr);
  // gold: an amber frame inside the cell; predicted: a red dot in its centre
  const double frame = std::max(2.0, cell / 8);
  const auto gold_frame = [&](double x, double y, double size) {
    cairo_set_source_rgb(cr, kGold[0], kGold[1], kGold[2]);
    cairo_set_line_width(cr, frame);
    cairo_rectangle(cr, x + frame / 2, y + frame / 2, size - frame, size - frame);
    cairo_stroke(cr);
  };
  const auto red_dot = [&](double x, double y, double size) {
    cairo_set_source_rgb(cr, kPredicted[0], kPredicted[1], kPredicted[2]);
    cairo_arc(cr, x + size / 2, y + size / 2, std::max(2.0, size / 5), 0, 2 * M_PI);
    cairo_fill(cr);
  };
  for (const auto& [r, c] : gold) gold_frame(x0 + cell * c, y0 + cell * r, cell);
  for (const auto& [r, c] : predicted) red_dot(x0 + cell * c, y0 + cell * r, cell);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, font);
  for (int r = 0; r < n_rows; ++r)  // target words, right-aligned left of the rows
    text(cr, x0 - 4, y0 + cell * (r + 0.5), map.rows[static_cast<std::size_t>(r)], 1.0, 0.5);
  for (int c = 0; c < n_cols; ++c) {  // source words, turned down under the columns
    cairo_save(cr);
    cairo_move_to(cr, x0 + cell * (c + 0.5) + font / 3, y0 + cell * n_rows + 4);
    cairo_rotate(cr, M_PI / 2);
    cairo_show_text(cr, map.columns[static_cast<std::size_t>(c)].c_str());
    cairo_restore(cr);
  }
  cairo_set_font_size(cr, 12);  // the axes' names
  text(cr, x0 + cell * n_cols / 2, y0 + cell * n_rows + label + 14, "source words", 0.5, 0.5);
  cairo_save(cr);
  cairo_translate(cr, 22, y0 + cell * n_rows / 2);
  cairo_rotate(cr, -M_PI / 2);
  text(cr, 0, 0, "target words", 0.5, 0.5);
  cairo_restore(cr);
  // the legend, and the colour scale right of the map
  const double ly = H - 30;
  gold_frame(20, ly - 9, 18);
  red_dot(200, ly - 9, 18);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 12);
  text(cr, 44, ly, "gold link", 0, 0.5);
  text(cr, 224, ly, "predicted link", 0, 0.5);
  const double sx = x0 + cell * n_cols + 24, sh = std::min(200.0, std::max(cell * n_rows, 60.0));
  for (int i = 0; i < 100; ++i) {
    weight_colour(cr, 1.0 - i / 99.0);
    cairo_rectangle(cr, sx, y0 + sh * i / 100.0, 14, sh / 100.0 + 0.5);
    cairo_fill(cr);
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 11);
  text(cr, sx + 18, y0, "1", 0, 0.5);
  text(cr, sx + 18, y0 + sh, "0", 0, 0.5);
  write_png(page, path, "alignment map");
}

void plot_curves(const std::string& path, const std::string& title, const Series& loss, const Series& val_loss,
                 const std::vector<Series>& metrics) {
  const int W = 1200, H = 530;
  Page page = start_page(W, H, title, 17, 20);
  cairo_t* cr = page.cr.get();
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
  write_png(page, path, "plot");
}

GridCell weight_cell(double w, std::string text) {
  w = std::clamp(w, 0.0, 1.0);
  return {1.0 - 0.95 * w, 1.0 - 0.8 * w, 1.0 - 0.45 * w, std::move(text)};
}

void plot_panels(const std::string& path, const std::string& title, const std::string& x_label,
                 const std::vector<std::pair<std::string, std::vector<Series>>>& panels) {
  const int n = std::max<int>(1, static_cast<int>(panels.size()));
  const int W = 610 * n - 10, H = 530;
  Page page = start_page(W, H, title, 17, 20);
  cairo_t* cr = page.cr.get();
  for (int i = 0; i < static_cast<int>(panels.size()); ++i)
    panel(cr, {80.0 + 610.0 * i, 90, 470, 360}, panels[static_cast<std::size_t>(i)].first,
          panels[static_cast<std::size_t>(i)].second, false, x_label);
  write_png(page, path, "plot");
}

void plot_error_bars(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<std::pair<double, std::string>>& x_ticks,
                     const std::vector<ErrorBarSeries>& series) {
  // the legend's width follows its longest name (the other keys' values of a sweep's line)
  double legend_w = 0;
  {
    Page probe = start_page(1, 1, "", 12, 0);
    cairo_set_font_size(probe.cr.get(), 12);
    for (const ErrorBarSeries& s : series) {
      cairo_text_extents_t e;
      cairo_text_extents(probe.cr.get(), s.name.c_str(), &e);
      legend_w = std::max(legend_w, e.x_advance);
    }
  }
  legend_w = std::min(legend_w + 40, 600.0);
  const Box b{90, 60, 620, 380};
  const int W = static_cast<int>(b.x + b.w + 30 + legend_w), H = 520;
  Page page = start_page(W, H, title, 16, 24);
  cairo_t* cr = page.cr.get();
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  const auto take_y = [&](double y) {
    if (std::isfinite(y)) y0 = std::min(y0, y), y1 = std::max(y1, y);
  };
  for (const auto& [x, name] : x_ticks) x0 = std::min(x0, x), x1 = std::max(x1, x);
  for (const ErrorBarSeries& s : series) {
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      const double spread = i < s.spread.size() && std::isfinite(s.spread[i]) ? s.spread[i] : 0.0;
      take_y(s.mean[i] - spread), take_y(s.mean[i] + spread);
    }
    for (const auto& [x, y] : s.values) take_y(y), x0 = std::min(x0, x), x1 = std::max(x1, x);
  }
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, b.x, b.y, b.w, b.h);
  cairo_stroke(cr);
  if (!(y0 <= y1) || !(x0 <= x1)) {
    cairo_set_font_size(cr, 13);
    text(cr, b.x + b.w / 2, b.y + b.h / 2, "no values yet", 0.5, 0.5);
    write_png(page, path, "plot");
    return;
  }
  // room on both sides of the outer values, so that their bars and dots are clear of the frame
  const double xpad = x1 > x0 ? (x1 - x0) * 0.08 : 0.5;
  x0 -= xpad, x1 += xpad;
  if (y1 - y0 <= 1e-9 * std::max({1.0, std::abs(y0), std::abs(y1)})) {
    const double mid = (y0 + y1) / 2, half = std::max(1e-3, std::abs(mid) * 0.05);
    y0 = mid - half, y1 = mid + half;
  }
  const double ypad = (y1 - y0) * 0.08;
  y0 -= ypad, y1 += ypad;
  const auto X = [&](double x) { return b.x + (x - x0) / (x1 - x0) * b.w; };
  const auto Y = [&](double y) { return b.y + b.h - (y - y0) / (y1 - y0) * b.h; };
  cairo_set_font_size(cr, 11);
  for (const auto& [x, name] : x_ticks) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, X(x), b.y);
    cairo_line_to(cr, X(x), b.y + b.h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, X(x), b.y + b.h + 16, name, 0.5, 0);
  }
  const double ys = tick_step(y1 - y0, 6);
  for (double t = std::ceil(y0 / ys) * ys; t <= y1 + ys * 1e-6; t += ys) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, b.x, Y(t));
    cairo_line_to(cr, b.x + b.w, Y(t));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x - 6, Y(t), label(t), 1.0, 0.5);
  }
  cairo_set_font_size(cr, 13);
  text(cr, b.x + b.w / 2, b.y + b.h + 40, x_label, 0.5, 0);
  cairo_save(cr);
  cairo_move_to(cr, 24, b.y + b.h / 2);
  cairo_rotate(cr, -M_PI / 2);
  cairo_text_extents_t e;
  cairo_text_extents(cr, y_label.c_str(), &e);
  cairo_rel_move_to(cr, -e.width / 2, 0);
  cairo_show_text(cr, y_label.c_str());
  cairo_restore(cr);
  cairo_set_font_size(cr, 12);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const ErrorBarSeries& s = series[k];
    const double* c = kColours[k % 5];
    // the series side by side at each x (seaborn's dodge), so that their bars do not hide each other
    const double dodge = 8 * (static_cast<double>(k) - static_cast<double>(series.size() - 1) / 2);
    const auto dodged = [&](double x) { return X(x) + dodge; };
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    // the means, joined in the order given
    cairo_set_line_width(cr, 2);
    bool started = false;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.mean[i])) continue;
      if (started)
        cairo_line_to(cr, dodged(s.x[i]), Y(s.mean[i]));
      else
        cairo_move_to(cr, dodged(s.x[i]), Y(s.mean[i]));
      started = true;
    }
    cairo_stroke(cr);
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.mean[i])) continue;
      const double px = dodged(s.x[i]);
      if (i < s.spread.size() && std::isfinite(s.spread[i]) && s.spread[i] > 0) {
        const double lo = Y(s.mean[i] - s.spread[i]), hi = Y(s.mean[i] + s.spread[i]);
        cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, px, lo);
        cairo_line_to(cr, px, hi);
        cairo_move_to(cr, px - 6, lo);
        cairo_line_to(cr, px + 6, lo);
        cairo_move_to(cr, px - 6, hi);
        cairo_line_to(cr, px + 6, hi);
        cairo_stroke(cr);
      }
      cairo_arc(cr, px, Y(s.mean[i]), 4.5, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    // each value beside its mean's bar rather than on it
    cairo_set_line_width(cr, 1.2);
    for (const auto& [x, y] : s.values)
      if (std::isfinite(y)) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, dodged(x) + 9, Y(y), 3, 0, 2 * M_PI);
        cairo_stroke(cr);
      }
    const double lx = b.x + b.w + 30, ly = b.y + 10 + 20 * static_cast<double>(k);
    cairo_rectangle(cr, lx, ly - 2, 14, 4);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, lx + 20, ly, s.name, 0, 0.5);
  }
  write_png(page, path, "plot");
}

void plot_stacked_bars(const std::string& path, const std::string& title, const std::string& x_label,
                       const std::vector<std::string>& rows, const std::vector<std::vector<double>>& values,
                       const std::vector<GridLegend>& legend) {
  if (values.size() != rows.size())
    throw std::invalid_argument("plot_stacked_bars: " + std::to_string(values.size()) + " rows of values for " +
                                std::to_string(rows.size()) + " row labels");
  // the labels' column as wide as the longest label
  double label_w = 0;
  {
    Page probe = start_page(1, 1, "", 12, 0);
    cairo_set_font_size(probe.cr.get(), 12);
    for (const std::string& r : rows) {
      cairo_text_extents_t e;
      cairo_text_extents(probe.cr.get(), r.c_str(), &e);
      label_w = std::max(label_w, e.x_advance);
    }
  }
  const double bar_h = 26, gap = 8;
  const Box b{std::min(label_w, 400.0) + 24, 60, 560, static_cast<double>(rows.size()) * (bar_h + gap) + gap};
  const int W = static_cast<int>(b.x + b.w + 170), H = static_cast<int>(b.y + b.h + 70);
  Page page = start_page(W, H, title, 16, 24);
  cairo_t* cr = page.cr.get();
  cairo_set_font_size(cr, 12);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (values[r].size() > legend.size())
      throw std::invalid_argument("plot_stacked_bars: row " + rows[r] + " has more shares than the legend has series");
    const double top = b.y + gap + static_cast<double>(r) * (bar_h + gap);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x - 8, top + bar_h / 2, rows[r], 1.0, 0.5);
    double left = 0;
    for (std::size_t k = 0; k < values[r].size(); ++k) {
      const double share = std::clamp(values[r][k], 0.0, 1.0 - left);
      if (share <= 0) continue;
      const GridLegend& c = legend[k];
      cairo_set_source_rgb(cr, c.r, c.g, c.b);
      cairo_rectangle(cr, b.x + left * b.w, top, share * b.w, bar_h);
      cairo_fill(cr);
      if (share >= 0.08) {
        // dark text on light colours, white on dark ones
        const double luma = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
        cairo_set_source_rgb(cr, luma > 0.55 ? 0 : 1, luma > 0.55 ? 0 : 1, luma > 0.55 ? 0 : 1);
        text(cr, b.x + (left + share / 2) * b.w, top + bar_h / 2, std::to_string(std::lround(100 * share)) + "%", 0.5,
             0.5);
      }
      left += share;
    }
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, b.x, b.y, b.w, b.h);
  cairo_stroke(cr);
  for (int t = 0; t <= 4; ++t) {
    const double x = b.x + b.w * t / 4;
    cairo_move_to(cr, x, b.y + b.h);
    cairo_line_to(cr, x, b.y + b.h + 4);
    cairo_stroke(cr);
    text(cr, x, b.y + b.h + 8, std::to_string(25 * t) + "%", 0.5, 0);
  }
  cairo_set_font_size(cr, 13);
  text(cr, b.x + b.w / 2, b.y + b.h + 30, x_label, 0.5, 0);
  cairo_set_font_size(cr, 12);
  for (std::size_t k = 0; k < legend.size(); ++k) {
    const double lx = b.x + b.w + 20, ly = b.y + 10 + 20 * static_cast<double>(k);
    cairo_set_source_rgb(cr, legend[k].r, legend[k].g, legend[k].b);
    cairo_rectangle(cr, lx, ly - 6, 14, 12);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, lx + 20, ly, legend[k].name, 0, 0.5);
  }
  write_png(page, path, "plot");
}

void plot_grid(const std::string& path, const std::string& title, const std::vector<std::string>& rows,
               const std::vector<std::string>& columns, const std::vector<std::vector<GridCell>>& cells,
               const std::vector<GridLegend>& legend) {
  if (cells.size() != rows.size())
    throw std::invalid_argument("plot_grid: " + std::to_string(cells.size()) + " rows of cells for " +
                                std::to_string(rows.size()) + " row labels");
  for (const auto& r : cells)
    if (r.size() > columns.size())
      throw std::invalid_argument("plot_grid: a row of " + std::to_string(r.size()) + " cells for " +
                                  std::to_string(columns.size()) + " columns");
  const double cell_w = 72, cell_h = 34, left = 260, top = 80;
  const auto n_rows = static_cast<double>(rows.size()), n_cols = static_cast<double>(columns.size());
  const int W = static_cast<int>(std::max(left + cell_w * n_cols + 40, 640.0));
  const int legend_rows = static_cast<int>((legend.size() + 3) / 4);
  const int H = static_cast<int>(top + cell_h * n_rows + 50 + 26 * legend_rows);
  Page page = start_page(W, H, title, 16, 24);
  cairo_t* cr = page.cr.get();
  cairo_set_font_size(cr, 12);
  for (std::size_t c = 0; c < columns.size(); ++c)
    text(cr, left + cell_w * (static_cast<double>(c) + 0.5), top - 14, columns[c], 0.5, 0);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const double y = top + cell_h * static_cast<double>(r);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, left - 8, y + cell_h / 2, rows[r], 1.0, 0.5);
    for (std::size_t c = 0; c < cells[r].size(); ++c) {
      const GridCell& g = cells[r][c];
      const double x = left + cell_w * static_cast<double>(c);
      cairo_set_source_rgb(cr, g.r, g.g, g.b);
      cairo_rectangle(cr, x, y, cell_w, cell_h);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, 1, 1, 1);
      cairo_set_line_width(cr, 2);
      cairo_rectangle(cr, x, y, cell_w, cell_h);
      cairo_stroke(cr);
      const double luma = 0.299 * g.r + 0.587 * g.g + 0.114 * g.b;  // dark cells get white text
      const double ink = luma < 0.5 ? 1.0 : 0.0;
      cairo_set_source_rgb(cr, ink, ink, ink);
      text(cr, x + cell_w / 2, y + cell_h / 2, g.text, 0.5, 0.5);
    }
  }
  for (std::size_t i = 0; i < legend.size(); ++i) {
    const double x = 20 + 220.0 * static_cast<double>(i % 4),
                 y = top + cell_h * n_rows + 30 + 26.0 * static_cast<double>(i / 4);
    cairo_set_source_rgb(cr, legend[i].r, legend[i].g, legend[i].b);
    cairo_rectangle(cr, x, y - 8, 18, 16);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, x + 26, y, legend[i].name, 0, 0.5);
  }
  write_png(page, path, "plot");
}

void plot_confusion(const std::string& path, const std::string& title, const std::vector<std::string>& classes,
                    const std::vector<std::vector<std::int64_t>>& counts) {
  const auto K = static_cast<int>(classes.size());
  if (static_cast<int>(counts.size()) != K)
    throw std::invalid_argument("plot_confusion: counts and classes differ in size");
  const double cell = std::clamp(560.0 / std::max(K, 1), 18.0, 64.0), left = 150, top = 80;
  const int W = static_cast<int>(left + cell * K + 60), H = static_cast<int>(top + cell * K + 150);
  Page page = start_page(W, H, title, 16, 20);
  cairo_t* cr = page.cr.get();
  cairo_set_font_size(cr, 13);
  text(cr, left + cell * K / 2, top - 30, "predicted", 0.5, 0.5);
  for (int y = 0; y < K; ++y) {
    std::int64_t row = 0;
    for (std::int64_t c : counts[static_cast<std::size_t>(y)]) row += c;
    for (int p = 0; p < K; ++p) {
      const std::int64_t c = counts[static_cast<std::size_t>(y)][static_cast<std::size_t>(p)];
      const double share = row > 0 ? static_cast<double>(c) / static_cast<double>(row) : 0.0;
      weight_colour(cr, share);
      cairo_rectangle(cr, left + cell * p, top + cell * y, cell, cell);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, share > 0.5 ? 1 : 0, share > 0.5 ? 1 : 0, share > 0.5 ? 1 : 0);
      cairo_set_font_size(cr, std::clamp(cell * 0.3, 7.0, 13.0));
      text(cr, left + cell * (p + 0.5), top + cell * (y + 0.5), std::to_string(c), 0.5, 0.5);
    }
  }
  cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, left, top, cell * K, cell * K);
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_set_font_size(cr, 11);
  for (int k = 0; k < K; ++k) {
    text(cr, left - 6, top + cell * (k + 0.5), classes[static_cast<std::size_t>(k)], 1.0, 0.5);  // true labels
    cairo_save(cr);
    cairo_move_to(cr, left + cell * (k + 0.5) + 4, top + cell * K + 6);
    cairo_rotate(cr, M_PI / 2);
    cairo_show_text(cr, classes[static_cast<std::size_t>(k)].c_str());
    cairo_restore(cr);
  }
  cairo_save(cr);
  cairo_move_to(cr, 18, top + cell * K / 2 + 12);
  cairo_rotate(cr, -M_PI / 2);
  cairo_set_font_size(cr, 13);
  cairo_show_text(cr, "true label");
  cairo_restore(cr);
  write_png(page, path, "confusion matrix");
}

namespace {

// A heat colour for t in [0, 1]: transparent dark red through red and yellow to opaque white-yellow.
void heat_pixel(double t, unsigned char* px) {
  t = std::clamp(t, 0.0, 1.0);
  const double r = std::min(1.0, 2.0 * t + 0.2), g = std::clamp(2.0 * t - 0.6, 0.0, 1.0),
               b = std::clamp(4.0 * t - 3.0, 0.0, 1.0);
  const double a = 0.15 + 0.7 * t;  // premultiplied ARGB32, little-endian B G R A
  px[0] = static_cast<unsigned char>(std::lround(255 * b * a));
  px[1] = static_cast<unsigned char>(std::lround(255 * g * a));
  px[2] = static_cast<unsigned char>(std::lround(255 * r * a));
  px[3] = static_cast<unsigned char>(std::lround(255 * a));
}

// Paints `surface` (w x h pixels) scaled into the box, smoothed or blocky.
void paint_scaled(cairo_t* cr, cairo_surface_t* surface, double x, double y, double box, int w, int h, bool smooth) {
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, box / w, box / h);
  cairo_set_source_surface(cr, surface, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), smooth ? CAIRO_FILTER_BILINEAR : CAIRO_FILTER_NEAREST);
  cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
  cairo_paint(cr);
  cairo_restore(cr);
}

}  // namespace

void plot_image_attention(const std::string& path, const std::string& title, const std::vector<std::uint8_t>& image,
                          int channels, int size, int grid, const std::vector<ImageOverlay>& panels, int per_row) {
  if ((channels != 1 && channels != 3) || image.size() != static_cast<std::size_t>(channels * size * size))
    throw std::invalid_argument("plot_image_attention: image of " + std::to_string(image.size()) + " bytes is not (" +
                                std::to_string(channels) + ", " + std::to_string(size) + ", " + std::to_string(size) +
                                ")");
  // the image as a cairo surface
  const Surface picture = image_surface(CAIRO_FORMAT_RGB24, size, size);
  cairo_surface_flush(picture.get());
  {
    unsigned char* d = cairo_image_surface_get_data(picture.get());
    const int stride = cairo_image_surface_get_stride(picture.get());
    const std::size_t plane = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const std::size_t i =
            static_cast<std::size_t>(y) * static_cast<std::size_t>(size) + static_cast<std::size_t>(x);
        unsigned char* px = d + y * stride + 4 * x;
        px[2] = image[i];
        px[1] = image[channels == 3 ? plane + i : i];
        px[0] = image[channels == 3 ? 2 * plane + i : i];
        px[3] = 255;
      }
  }
  cairo_surface_mark_dirty(picture.get());
  const double box = 132, gap_x = 14, title_h = 20;
  const int columns = std::max(1, per_row), rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
  const int W = static_cast<int>(20 + (box + gap_x) * columns), H = static_cast<int>(50 + (box + title_h + 12) * rows);
  Page page = start_page(W, H, title, 15, 18);
  cairo_t* cr = page.cr.get();
  const Surface heat = image_surface(CAIRO_FORMAT_ARGB32, grid, grid);
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const ImageOverlay& p = panels[i];
    const double x = 10 + (box + gap_x) * static_cast<double>(static_cast<int>(i) % columns);
    const double y = 40 + (box + title_h + 12) * static_cast<double>(static_cast<int>(i) / columns);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 11);
    text(cr, x + box / 2, y + 6, p.title, 0.5, 0.5);
    paint_scaled(cr, picture.get(), x, y + title_h, box, size, size, false);
    if (!p.heat.empty()) {
      if (p.heat.size() != static_cast<std::size_t>(grid * grid))
        throw std::invalid_argument("plot_image_attention: panel '" + p.title + "' has " +
                                    std::to_string(p.heat.size()) + " weights for a " + std::to_string(grid) + "x" +
                                    std::to_string(grid) + " grid");
      const double top = std::max(*std::max_element(p.heat.begin(), p.heat.end()), 1e-12);
      cairo_surface_flush(heat.get());
      unsigned char* d = cairo_image_surface_get_data(heat.get());
      const int stride = cairo_image_surface_get_stride(heat.get());
      for (int gy = 0; gy < grid; ++gy)
        for (int gx = 0; gx < grid; ++gx)
          heat_pixel(p.heat[static_cast<std::size_t>(gy * grid + gx)] / top, d + gy * stride + 4 * gx);
      cairo_surface_mark_dirty(heat.get());
      paint_scaled(cr, heat.get(), x, y + title_h, box, grid, grid, true);
    }
  }
  write_png(page, path, "image attention map");
}

std::vector<std::uint8_t> read_png(const std::string& path, int channels, int& height, int& width) {
  if (channels != 1 && channels != 3) throw std::invalid_argument("read_png: channels must be 1 or 3");
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + ": no such file");
  const Surface s(cairo_image_surface_create_from_png(path.c_str()));
  const cairo_status_t status = cairo_surface_status(s.get());
  if (status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error(path + ": not a readable PNG (" + cairo_status_to_string(status) + ")");
  const Surface rgb = image_surface(CAIRO_FORMAT_RGB24, cairo_image_surface_get_width(s.get()),
                                    cairo_image_surface_get_height(s.get()));
  {
    const Context cr = context(rgb.get());  // composited onto black
    cairo_set_source_rgb(cr.get(), 0, 0, 0);
    cairo_paint(cr.get());
    cairo_set_source_surface(cr.get(), s.get(), 0, 0);
    cairo_paint(cr.get());
  }
  cairo_surface_flush(rgb.get());
  width = cairo_image_surface_get_width(rgb.get());
  height = cairo_image_surface_get_height(rgb.get());
  const unsigned char* d = cairo_image_surface_get_data(rgb.get());
  const int stride = cairo_image_surface_get_stride(rgb.get());
  const std::size_t plane = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  std::vector<std::uint8_t> out(plane * static_cast<std::size_t>(channels));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const unsigned char* px = d + y * stride + 4 * x;  // B G R x
      const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x);
      if (channels == 3) {
        out[i] = px[2];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[0];
      } else {
        out[i] = static_cast<std::uint8_t>(std::lround(0.299 * px[2] + 0.587 * px[1] + 0.114 * px[0]));
      }
    }
  return out;
}

}  // namespace rune::report
