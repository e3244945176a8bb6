#include "report/sweep_report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>

#include "report/plot.hpp"
#include "train/files.hpp"
#include "train/format.hpp"

namespace rune::report {

namespace {

using train::fixed;

// The metric as the table shows it: four decimals, blank when there is none.
std::string cell(double v) { return std::isfinite(v) ? fixed(v, 4) : ""; }

// The first row of the best mean, or rows.size() when no row has one.
std::size_t best_row(const train::SweepSummary& s) {
  std::size_t best = s.rows.size();
  for (std::size_t i = 0; i < s.rows.size(); ++i) {
    const double m = s.rows[i].mean;
    if (!std::isfinite(m)) continue;
    if (best == s.rows.size() || (s.higher_is_better ? m > s.rows[best].mean : m < s.rows[best].mean)) best = i;
  }
  return best;
}

// What a run's value is, as column heads and plots say it: "best val_accuracy" or "test accuracy".
std::string value_label(const train::SweepSummary& s) {
  return s.split.empty() ? "best val_" + s.metric : s.split + " " + s.metric;
}

// Several sweeps in one table: the first axis is `sweep`, the folders' names.
bool several(const train::SweepSummary& s) { return s.sources.size() > 1; }

std::string combination(const train::SweepSummary& s, const train::SweepRow& row) {
  std::vector<std::string> parts;
  for (std::size_t k = 0; k < s.grid.size(); ++k) parts.push_back(s.grid[k].key + " = " + row.values[k]);
  return parts.empty() ? "the config as it is" : train::join(parts, ", ");
}

// A number's text, whole: "1e-3" is 0.001; false for anything else (a word, true, 1_000).
bool number(const std::string& text, double& v) {
  if (text.empty()) return false;
  char* end = nullptr;
  v = std::strtod(text.c_str(), &end);
  return *end == '\0' && std::isfinite(v);
}

}  // namespace

std::string sweep_markdown(const train::SweepSummary& s) {
  const std::string m = s.metric, label = value_label(s);
  std::string md;
  if (several(s)) {
    md = "# Sweeps " + train::join(s.grid[0].values, ", ") + " (of " + s.config + ")\n\n";
    std::vector<std::string> folders;
    for (std::size_t i = 0; i < s.sources.size(); ++i)
      folders.push_back(s.grid[0].values[i] + ": `" + s.sources[i] + "`");
    md += "The column `sweep` names the sweep folder of each row (" + train::join(folders, ", ") + "). ";
  } else {
    md = "# Sweep of " + s.config + "\n\n";
  }
  if (s.split.empty())
    md += "Each run's result is its best validation " + m + " (the value its `best.h5` holds; ";
  else
    md += "Each run's result is the " + m + " of its `best.h5` (its best validation " + m + ") evaluated on the " +
          s.split + " split (`<run>/eval-" + s.split + ".json`; a run whose evaluation failed counts as failed, its " +
          "output in `<sweep>/<run>.eval-" + s.split + ".log`; ";
  md += std::string(s.higher_is_better ? "higher" : "lower") +
        " is better). Per combination: the seeds done (of those asked), runs that failed or diverged, and " +
        "over the seeds done the mean, sample standard deviation (n - 1; blank with one seed), min and max of " +
        label + ", and the mean time of a run's training (validation included).\n\n";
  std::string head = "|", rule = "|";
  for (const train::GridAxis& a : s.grid) head += " " + a.key + " |", rule += "---|";
  head += " seeds | failed | " + label + " mean | std | min | max | time |\n";
  rule += "---:|---:|---:|---:|---:|---:|---:|\n";
  md += head + rule;
  for (const train::SweepRow& r : s.rows) {
    md += "|";
    for (const std::string& v : r.values) md += " " + v + " |";
    md += " " + std::to_string(r.done) + "/" + std::to_string(r.runs) + " | " + std::to_string(r.failed) + " | " +
          cell(r.mean) + " | " + cell(r.std) + " | " + cell(r.min) + " | " + cell(r.max) + " | " +
          (std::isfinite(r.time_s) ? train::duration(r.time_s) : "") + " |\n";
  }
  const std::size_t best = best_row(s);
  if (best < s.rows.size()) {
    const train::SweepRow& r = s.rows[best];
    md += "\nBest: " + combination(s, r) + ": " + (s.split.empty() ? m : label) + " " + fixed(r.mean, 4) +
          (r.done > 1 ? " (mean of " + std::to_string(r.done) + " seeds)" : "") + ".\n";
  }
  int pending = 0;
  for (const train::SweepRow& r : s.rows) pending += r.pending;
  if (pending)
    md += "\n" + std::to_string(pending) + (pending == 1 ? " run has" : " runs have") +
          " not finished yet: rerun the sweep's command to go on.\n";
  return md;
}

Csv sweep_csv(const train::SweepSummary& s) {
  std::vector<CsvField> header;
  for (const train::GridAxis& a : s.grid) header.emplace_back(a.key);
  for (const char* h : {"seeds_done", "seeds_failed", "seeds_asked"}) header.emplace_back(h);
  // val_accuracy_mean, test_accuracy_mean: the split is in the name
  const std::string column = (s.split.empty() ? std::string("val") : s.split) + "_" + s.metric;
  for (const char* h : {"_mean", "_std", "_min", "_max"}) header.emplace_back(column + h);
  header.emplace_back("time_s");
  Csv csv(header);
  for (const train::SweepRow& r : s.rows) {
    std::vector<CsvField> row;
    for (const std::string& v : r.values) row.emplace_back(v);
    row.insert(row.end(), {r.done, r.failed, r.runs});
    for (const double v : {r.mean, r.std, r.min, r.max, r.time_s})
      row.push_back(std::isfinite(v) ? CsvField(v) : CsvField::empty());
    csv.row(row);
  }
  return csv;
}

std::vector<double> axis_positions(const std::vector<std::string>& values, bool* log) {
  std::vector<double> x(values.size());
  bool numeric = !values.empty();
  for (std::size_t i = 0; i < values.size() && numeric; ++i) numeric = number(values[i], x[i]);
  const bool logarithmic = numeric && *std::min_element(x.begin(), x.end()) > 0 &&
                           *std::max_element(x.begin(), x.end()) >= 10 * *std::min_element(x.begin(), x.end());
  if (log) *log = logarithmic;
  for (std::size_t i = 0; i < values.size(); ++i)
    x[i] = !numeric ? static_cast<double>(i) : logarithmic ? std::log10(x[i]) : x[i];
  return x;
}

std::vector<std::string> write_sweep_report(const std::string& folder, const train::SweepSummary& s) {
  train::FileTransaction files;
  std::vector<std::string> paths{folder + "/sweep.md", folder + "/sweep.csv"};
  train::write_file(paths[0], sweep_markdown(s), "sweep table");
  sweep_csv(s).write(paths[1]);
  for (std::size_t k = 0; k < s.grid.size(); ++k) {
    // of several sweeps, a plot per key with a line per sweep; against the sweeps themselves only
    // when they vary no key
    if (several(s) && k == 0 && s.grid.size() > 1) continue;
    const train::GridAxis& axis = s.grid[k];
    bool log = false;
    const std::vector<double> x = axis_positions(axis.values, &log);
    std::vector<std::pair<double, std::string>> ticks;
    for (std::size_t i = 0; i < x.size(); ++i) ticks.emplace_back(x[i], axis.values[i]);
    // one line per combination of the other keys, in the order the grid first gives it
    std::vector<ErrorBarSeries> series;
    std::map<std::string, std::size_t> line_of;
    for (const train::SweepRow& r : s.rows) {
      std::vector<std::string> others;
      for (std::size_t j = 0; j < s.grid.size(); ++j)
        if (j != k) others.push_back(s.grid[j].key + "=" + r.values[j]);
      const std::string name = others.empty() ? value_label(s) : train::join(others, ", ");
      const auto [it, fresh] = line_of.emplace(name, series.size());
      if (fresh) series.push_back({name, {}, {}, {}, {}});
      ErrorBarSeries& line = series[it->second];
      const auto at = std::find(axis.values.begin(), axis.values.end(), r.values[k]) - axis.values.begin();
      const double px = x[static_cast<std::size_t>(at)];
      line.x.push_back(px);
      line.mean.push_back(r.mean);
      line.spread.push_back(r.std);
      for (const auto& [seed, v] : r.metric) line.values.emplace_back(px, v);
    }
    std::string file;
    for (const char ch : axis.key) file += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' ? ch : '_';
    paths.push_back(folder + "/sweep-" + file + ".png");
    plot_error_bars(paths.back(), value_label(s) + " against " + axis.key + (log ? " (log scale)" : ""), axis.key,
                    value_label(s) + ": mean +- std over seeds (hollow: each seed)", ticks, series);
  }
  files.commit();
  return paths;
}

}  // namespace rune::report
