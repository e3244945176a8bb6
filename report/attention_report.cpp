#include "report/attention_report.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "autograd/ops.hpp"
#include "report/csv.hpp"
#include "report/plot.hpp"

namespace rune::report {
namespace fs = std::filesystem;

std::vector<std::string> write_token_attention(const analysis::TokenAttention& maps, const std::string& sentence,
                                               const std::string& out_dir) {
  fs::create_directories(out_dir);
  std::vector<Heatmap> heatmaps;
  // the kind and the tokens are quoted on every row (tokens are free text)
  Csv csv({"kind", "layer", "head", "query", "query_token", "key", "key_token", "weight"});
  std::int64_t heads = 1;
  for (const auto& l : maps.layers) {
    const Tensor w = to_dtype(l.weights, DType::float64).contiguous();
    const std::int64_t H = w.size(0), Tq = w.size(1), Tk = w.size(2);
    heads = std::max(heads, H);
    const std::vector<std::string>& rows = l.kind == "encoder self" ? maps.source : maps.target;
    const std::vector<std::string>& cols = l.kind == "decoder self" ? maps.target : maps.source;
    for (std::int64_t h = 0; h < H; ++h) {
      Heatmap m{l.kind + " " + std::to_string(l.layer) + ", head " + std::to_string(h), {}, rows, cols};
      for (std::int64_t q = 0; q < Tq; ++q) {
        m.weights.emplace_back(w.data<double>() + (h * Tq + q) * Tk, w.data<double>() + (h * Tq + q + 1) * Tk);
        for (std::int64_t k = 0; k < Tk; ++k)
          csv.row({CsvField::quoted(l.kind), l.layer, h, q, CsvField::quoted(rows[q]), k, CsvField::quoted(cols[k]),
                   w.data<double>()[(h * Tq + q) * Tk + k]});
      }
      heatmaps.push_back(std::move(m));
    }
  }
  const std::string png = out_dir + "/multi_head_attention_map.png";
  plot_attention(png, "\"" + sentence + "\" -> \"" + maps.output + "\"", heatmaps, static_cast<int>(heads));
  csv.write(out_dir + "/attention_weights.csv");
  return {png, out_dir + "/attention_weights.csv"};
}

std::vector<std::string> write_image_attention(const analysis::ImageAttention& a, const std::string& image,
                                               const std::string& out_dir) {
  fs::create_directories(out_dir);
  const std::int64_t N = a.grid * a.grid;
  const auto name = [&](std::int64_t k) { return a.classes[static_cast<std::size_t>(k)]; };
  char title[256];
  std::snprintf(title, sizeof title, "%s%s: predicted %s (%.1f%%)", image.c_str(),
                a.label >= 0 ? (" (" + name(a.label) + ")").c_str() : "", name(a.predicted).c_str(),
                100 * a.confidence);
  std::vector<ImageOverlay> heads;
  Csv csv({"layer", "head", "patch", "patch_row", "patch_column", "weight"});
  std::int64_t H = 1;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const Tensor w = to_dtype(a.layers[l], DType::float64).contiguous();  // (H, 1+N, 1+N)
    H = w.size(0);
    for (std::int64_t h = 0; h < H; ++h) {
      const double* row = w.data<double>() + h * (1 + N) * (1 + N);  // the class token's query row
      ImageOverlay o{"layer " + std::to_string(l) + ", head " + std::to_string(h),
                     std::vector<double>(row + 1, row + 1 + N)};
      for (std::int64_t n = 0; n < N; ++n) csv.row({l, h, n, n / a.grid, n % a.grid, row[1 + n]});
      heads.push_back(std::move(o));
    }
  }
  for (std::int64_t n = 0; n < N; ++n)
    csv.row({"rollout", CsvField::empty(), n, n / a.grid, n % a.grid, a.rollout[static_cast<std::size_t>(n)]});
  const std::string map_png = out_dir + "/vit_attention_map.png", rollout_png = out_dir + "/attention_rollout.png";
  plot_image_attention(map_png, std::string(title) + "; class token -> patches, each panel scaled to its maximum",
                       a.image, static_cast<int>(a.channels), static_cast<int>(a.size), static_cast<int>(a.grid), heads,
                       static_cast<int>(H));
  std::vector<double> last_mean(static_cast<std::size_t>(N), 0.0);
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t n = 0; n < N; ++n)
      last_mean[static_cast<std::size_t>(n)] +=
          heads[heads.size() - static_cast<std::size_t>(H - h)].heat[static_cast<std::size_t>(n)] /
          static_cast<double>(H);
  plot_image_attention(
      rollout_png, title, a.image, static_cast<int>(a.channels), static_cast<int>(a.size), static_cast<int>(a.grid),
      {{"image", {}}, {"last layer, mean of heads", last_mean}, {"rollout over all layers", a.rollout}}, 3);
  csv.write(out_dir + "/cls_attention.csv");
  return {title, map_png, rollout_png, out_dir + "/cls_attention.csv"};
}

}  // namespace rune::report
