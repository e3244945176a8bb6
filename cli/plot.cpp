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

}  // namespace

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
  const std::string tmp = path + ".tmp";
  const cairo_status_t status = cairo_surface_write_to_png(surface, tmp.c_str());
  cairo_surface_destroy(surface);
  if (status != CAIRO_STATUS_SUCCESS)
    throw std::runtime_error("plot " + path + ": cairo cannot write it: " + cairo_status_to_string(status));
  std::filesystem::rename(tmp, path);
}

}  // namespace rune::cli
