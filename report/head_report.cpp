#include "report/head_report.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "report/csv.hpp"
#include "report/plot.hpp"
#include "train/files.hpp"
#include "train/format.hpp"

namespace rune::report {
namespace fs = std::filesystem;
using namespace analysis;
using train::fixed;
using train::write_file;

namespace {

// The pattern classes' colours on the map (Tableau's palette; heterogeneous is grey).
struct Rgb {
  double r, g, b;
};
Rgb pattern_colour(Pattern p) {
  switch (p) {
    case Pattern::diagonal:
      return {0.12, 0.47, 0.71};
    case Pattern::offset:
      return {1.0, 0.5, 0.05};
    case Pattern::vertical:
      return {0.17, 0.63, 0.17};
    case Pattern::block:
      return {0.58, 0.4, 0.74};
    case Pattern::heterogeneous:
      return {0.8, 0.8, 0.8};
  }
  return {0.8, 0.8, 0.8};
}

std::string pattern_label(const HeadStatistics& s) {
  std::string name = pattern_name(s.pattern);
  if (s.pattern == Pattern::offset)
    name += " " + std::string(s.best_offset > 0 ? "+" : "") + std::to_string(s.best_offset);
  return name;
}

}  // namespace

std::vector<std::string> write_head_report(const HeadAnalysis& a, const std::string& dir, const std::string& title) {
  fs::create_directories(dir);
  std::vector<std::string> written;
  const auto path_of = [&](const std::string& name) {
    written.push_back((fs::path(dir) / name).string());
    return written.back();
  };
  std::int64_t H_max = 0, total_heads = 0, dead = 0;
  for (const ModuleHeads& m : a.modules) {
    H_max = std::max<std::int64_t>(H_max, static_cast<std::int64_t>(m.heads.size()));
    total_heads += static_cast<std::int64_t>(m.heads.size());
    for (const HeadResult& r : m.heads) dead += r.dead;
  }

  // heads.csv and redundancy.csv
  const auto f6 = [](double v) { return CsvField::fixed(v, 6); };
  Csv heads({"module", "head", "pattern", "pattern_score", "entropy", "distance", "confidence", "diagonal", "offset",
             "best_offset", "vertical", "block", "importance", "raw_importance", "dead", "rows"});
  for (const ModuleHeads& m : a.modules)
    for (std::size_t h = 0; h < m.heads.size(); ++h) {
      const HeadResult& r = m.heads[h];
      const HeadStatistics& s = r.stats;
      heads.row({m.path, h, pattern_name(s.pattern), f6(s.pattern_score), f6(s.entropy), f6(s.distance),
                 f6(s.confidence), f6(s.diagonal), f6(s.offset), s.best_offset, f6(s.vertical), f6(s.block),
                 f6(r.importance), r.raw_importance, r.dead ? 1 : 0, s.rows});
    }
  heads.write(path_of("heads.csv"));
  Csv pairs({"module", "head_a", "head_b", "js_divergence"});
  for (const ModuleHeads& m : a.modules)
    for (std::size_t x = 0; x < m.js.size(); ++x)
      for (std::size_t y = x + 1; y < m.js.size(); ++y) pairs.row({m.path, x, y, f6(m.js[x][y])});
  pairs.write(path_of("redundancy.csv"));

  // the pattern-class map and the importance heatmap
  std::vector<std::string> rows, columns;
  for (const ModuleHeads& m : a.modules) rows.push_back(head_module_label(m.path));
  for (std::int64_t h = 0; h < H_max; ++h) columns.push_back("head " + std::to_string(h));
  std::vector<std::vector<GridCell>> patterns, importance;
  for (const ModuleHeads& m : a.modules) {
    patterns.emplace_back();
    importance.emplace_back();
    for (const HeadResult& r : m.heads) {
      const Rgb c = pattern_colour(r.stats.pattern);
      std::string text = fixed(r.stats.pattern_score, 2);
      if (r.stats.pattern == Pattern::offset)
        text += " (" + std::string(r.stats.best_offset > 0 ? "+" : "") + std::to_string(r.stats.best_offset) + ")";
      patterns.back().push_back({c.r, c.g, c.b, text});
      importance.back().push_back(weight_cell(r.importance, fixed(r.importance, 2) + (r.dead ? " dead" : "")));
    }
  }
  std::vector<GridLegend> legend;
  for (Pattern p : {Pattern::diagonal, Pattern::offset, Pattern::vertical, Pattern::block, Pattern::heterogeneous}) {
    const Rgb c = pattern_colour(p);
    legend.push_back({pattern_name(p), c.r, c.g, c.b});
  }
  const std::string patterns_png = path_of("head_patterns.png");
  plot_grid(patterns_png, title + ": pattern class per head (score in the cell)", rows, columns, patterns, legend);
  // each module's heads by pattern class: counts (pattern_shares.csv) and shares (a stacked bar each)
  Csv shares_csv({"module", "heads", "diagonal", "offset", "vertical", "block", "heterogeneous"});
  std::vector<std::vector<double>> shares;
  std::vector<std::int64_t> class_total(5, 0);  // over every module, for heads.json
  for (const ModuleHeads& m : a.modules) {
    std::vector<std::int64_t> count(5, 0);
    for (const HeadResult& r : m.heads) ++count[static_cast<std::size_t>(r.stats.pattern)];
    for (std::size_t k = 0; k < count.size(); ++k) class_total[k] += count[k];
    const auto n = static_cast<double>(m.heads.size());
    shares.emplace_back();
    for (std::int64_t k : count) shares.back().push_back(n > 0 ? static_cast<double>(k) / n : 0.0);
    shares_csv.row({m.path, m.heads.size(), count[0], count[1], count[2], count[3], count[4]});
  }
  shares_csv.write(path_of("pattern_shares.csv"));
  plot_stacked_bars(path_of("head_pattern_shares.png"), title + ": heads of each module by pattern class",
                    "share of the module's heads", rows, shares, legend);
  const std::string importance_png = path_of("head_importance.png");
  plot_grid(importance_png, title + ": head importance, normalised per module (l2)", rows, columns, importance, [] {
    std::vector<GridLegend> scale;
    for (double w : {0.0, 0.5, 1.0}) {
      const GridCell c = weight_cell(w, "");
      scale.push_back({fixed(w, 1), c.r, c.g, c.b});
    }
    return scale;
  }());

  // the pruning curve
  std::string pruning_png;
  if (!a.pruning.empty()) {
    std::vector<CsvField> header{"pruned", "module", "head", "importance"};
    for (const auto& [name, v] : a.pruning.front().metrics) header.emplace_back(name);
    Csv p(header);
    std::map<std::string, Series> series;
    for (const PruneStep& s : a.pruning) {
      std::vector<CsvField> row{s.pruned, s.path, s.head >= 0 ? CsvField(s.head) : CsvField::empty(),
                                s.pruned > 0 ? CsvField::fixed(s.importance, 6) : CsvField::empty()};
      for (const auto& [name, v] : s.metrics) {
        row.push_back(CsvField::fixed(v, 6));
        series[name].name = name;
        series[name].points.emplace_back(static_cast<double>(s.pruned), v);
      }
      p.row(row);
    }
    p.write(path_of("pruning.csv"));
    std::vector<Series> metrics;
    for (const auto& [name, s] : series)
      if (name != "loss") metrics.push_back(s);
    std::vector<std::pair<std::string, std::vector<Series>>> panels;
    if (series.count("loss")) panels.push_back({"loss", {series["loss"]}});
    panels.push_back({"metrics", metrics});
    pruning_png = path_of("pruning.png");
    plot_panels(pruning_png, title + ": heads masked in increasing order of importance (" + a.split + " split)",
                "heads masked", panels);
  }

  // heads.md
  std::ostringstream md;
  md << "# Head analysis: " << title << "\n\n";
  md << "Split `" << a.split << "`, " << a.examples << " examples";
  if (a.options.limit > 0) md << " (the first " << a.options.limit << ")";
  md << "; mean example loss " << fixed(a.loss, 4) << ". " << a.modules.size() << " attention modules, " << total_heads
     << " heads.\n\n";
  md << "- **entropy** (nats), **distance** (positions) and **confidence** (the row maximum) are means over every "
        "valid attention row.\n"
        "- **pattern**: the highest of the diagonal, offset (best k in -3..3), vertical (two keys) and block scores, "
        "if it reaches 0.5; "
        "otherwise heterogeneous. Each score is a share of attention mass (see analysis/head_statistics.hpp).\n"
        "- **importance**: E|dL/dgate| per example (Michel et al. 2019), divided by the module's l2 norm; "
        "**raw** is the unnormalised value. A head is **dead** when its raw importance is below "
     << a.options.dead_fraction << " of the largest in the model.\n\n";
  md << "![pattern classes](head_patterns.png)\n\n![pattern shares](head_pattern_shares.png)\n\n"
        "![importance](head_importance.png)\n\n";
  for (const ModuleHeads& m : a.modules) {
    md << "## " << m.path << "\n\n";
    md << "| head | pattern | score | entropy | distance | confidence | diagonal | offset (k) | vertical | block | "
          "importance | raw | dead |\n";
    md << "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for (std::size_t h = 0; h < m.heads.size(); ++h) {
      const HeadResult& r = m.heads[h];
      const HeadStatistics& s = r.stats;
      md << "| " << h << " | " << pattern_label(s) << " | " << fixed(s.pattern_score, 3) << " | " << fixed(s.entropy, 3)
         << " | " << fixed(s.distance, 2) << " | " << fixed(s.confidence, 3) << " | " << fixed(s.diagonal, 3) << " | "
         << fixed(s.offset, 3) << " (" << s.best_offset << ") | " << fixed(s.vertical, 3) << " | " << fixed(s.block, 3)
         << " | " << fixed(r.importance, 3) << " | " << train::significant(r.raw_importance, 3) << " | "
         << (r.dead ? "yes" : "") << " |\n";
    }
    md << '\n';
  }
  md << "## Redundancy\n\nPairs of heads in one module whose attention rows have a mean Jensen-Shannon divergence "
        "below "
     << a.options.redundant_js << " nats (every pair is in redundancy.csv):\n\n";
  if (a.redundant.empty())
    md << "none.\n\n";
  else {
    md << "| module | heads | JS divergence |\n|---|---|---:|\n";
    for (const RedundantPair& r : a.redundant)
      md << "| " << a.modules[r.module].path << " | " << r.a << ", " << r.b << " | " << fixed(r.js, 4) << " |\n";
    md << '\n';
  }
  md << "## Dead heads\n\n";
  if (dead == 0)
    md << "none.\n\n";
  else {
    for (const ModuleHeads& m : a.modules)
      for (std::size_t h = 0; h < m.heads.size(); ++h)
        if (m.heads[h].dead) md << "- " << m.path << " head " << h << '\n';
    md << '\n';
  }
  if (!a.pruning.empty()) {
    md << "## Pruning\n\nHeads masked one at a time in increasing order of importance, the task evaluated on the whole "
          "`"
       << a.split << "` split after each (pruning.csv).\n\n";
    for (const auto& [name, can] : a.prunable)
      md << "- **" << name << "**: " << can << " of " << total_heads
         << " heads can go before it drops by more than one point (from "
         << fixed(a.pruning.front().metrics.at(name), 4) << ")"
         << (name == a.primary_metric ? ", the task's primary metric" : "") << ".\n";
    md << "\n![pruning curve](pruning.png)\n\n";
    md << "| masked | head |";
    for (const auto& [name, v] : a.pruning.front().metrics) md << ' ' << name << " |";
    md << "\n|---:|---|";
    for (std::size_t i = 0; i < a.pruning.front().metrics.size(); ++i) md << "---:|";
    md << '\n';
    for (const PruneStep& s : a.pruning) {
      md << "| " << s.pruned << " | "
         << (s.pruned > 0 ? head_module_label(s.path) + " " + std::to_string(s.head) : "(none)") << " |";
      for (const auto& [name, v] : s.metrics) md << ' ' << fixed(v, 4) << " |";
      md << '\n';
    }
  }
  write_file(path_of("heads.md"), md.str());

  // heads.json: the report's counts for a program (a sweep's table over many checkpoints)
  nlohmann::ordered_json j;
  j["title"] = title;
  j["split"] = a.split;
  j["examples"] = a.examples;
  j["loss"] = a.loss;
  j["modules"] = a.modules.size();
  j["heads"] = total_heads;
  std::int64_t pair_count = 0;
  for (const ModuleHeads& m : a.modules) {
    const auto n = static_cast<std::int64_t>(m.heads.size());
    pair_count += n * (n - 1) / 2;
  }
  j["pairs"] = pair_count;
  j["redundant_js"] = a.options.redundant_js;
  j["redundant_pairs"] = a.redundant.size();
  j["dead"] = dead;
  nlohmann::ordered_json classes;
  for (Pattern p : {Pattern::diagonal, Pattern::offset, Pattern::vertical, Pattern::block, Pattern::heterogeneous})
    classes[pattern_name(p)] = class_total[static_cast<std::size_t>(p)];
  j["patterns"] = classes;
  if (!a.pruning.empty()) {
    j["primary_metric"] = a.primary_metric;
    j["unpruned"] = a.pruning.front().metrics;
    j["prunable"] = a.prunable;  // per metric: heads masked before it falls by more than 0.01
  }
  write_file(path_of("heads.json"), j.dump(2) + "\n");
  return written;
}

}  // namespace rune::report
