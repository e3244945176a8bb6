#include "cli/head_analysis.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "cli/output.hpp"
#include "cli/plot.hpp"
#include "nn/attention.hpp"

namespace rune::cli {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One progress line on stderr: rewritten in place on a terminal, a line per call otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(bool on) : on_(on), live_(on && ::isatty(2)) {}
  void show(const std::string& what, std::int64_t done, std::int64_t total, Clock::time_point start, bool force = false) {
    if (!on_) return;
    const auto now = Clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(live_ ? 200 : 10000)) return;
    last_ = now;
    const double spent = seconds_since(start);
    const double left = done > 0 ? spent * static_cast<double>(total - done) / static_cast<double>(done) : 0.0;
    std::fprintf(stderr, "%s%s %lld/%lld, %s spent, %s left%s", live_ ? "\r" : "", what.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), duration(spent).c_str(), duration(left).c_str(), live_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }
  void line(const std::string& text) {
    if (!on_) return;
    std::fprintf(stderr, "%s%s\n", live_ ? "\r\033[K" : "", text.c_str());
    std::fflush(stderr);
  }

 private:
  bool on_, live_;
  Clock::time_point last_{};
};

// Restores what analysis changes on the model, however it ends: training mode, gates, weight
// keeping and parameters' requires_grad (turned off so the backward computes only what the
// gates need).
class ModelState {
 public:
  ModelState(nn::Module& model, const std::vector<std::pair<std::string, nn::MultiheadAttention*>>& modules)
      : model_(model), modules_(modules), training_(model.is_training()), params_(model.parameters()) {
    for (const Tensor& p : params_) requires_.push_back(p.requires_grad());
  }
  void freeze() {
    for (Tensor& p : params_) p.requires_grad_(false);
  }
  ~ModelState() {
    for (std::size_t i = 0; i < params_.size(); ++i) params_[i].requires_grad_(requires_[i]);
    for (const auto& [path, m] : modules_) {
      m->clear_head_gate();
      m->keep_weights(false);
    }
    model_.train(training_);
  }

 private:
  nn::Module& model_;
  std::vector<std::pair<std::string, nn::MultiheadAttention*>> modules_;
  bool training_;
  std::vector<Tensor> params_;
  std::vector<bool> requires_;
};

std::vector<std::pair<std::string, nn::MultiheadAttention*>> attention_of(Task& task) {
  auto modules = nn::attention_modules(task.model());
  if (modules.empty()) throw std::runtime_error("the model has no attention module to analyse");
  return modules;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// The pattern classes' colours on the map (Tableau's palette; heterogeneous is grey).
struct Rgb {
  double r, g, b;
};
Rgb pattern_colour(Pattern p) {
  switch (p) {
    case Pattern::diagonal: return {0.12, 0.47, 0.71};
    case Pattern::offset: return {1.0, 0.5, 0.05};
    case Pattern::vertical: return {0.17, 0.63, 0.17};
    case Pattern::block: return {0.58, 0.4, 0.74};
    case Pattern::heterogeneous: return {0.8, 0.8, 0.8};
  }
  return {0.8, 0.8, 0.8};
}

std::string pattern_label(const HeadStatistics& s) {
  std::string name = pattern_name(s.pattern);
  if (s.pattern == Pattern::offset) name += " " + std::string(s.best_offset > 0 ? "+" : "") + std::to_string(s.best_offset);
  return name;
}

}  // namespace

std::string head_module_label(const std::string& path) {
  std::string label = path;
  for (const std::string& drop : {std::string("transformer."), std::string("layers.")}) {
    for (std::size_t at; (at = label.find(drop)) != std::string::npos;) label.erase(at, drop.size());
  }
  return label;
}

HeadAnalysis analyse_heads(Task& task, const HeadAnalysisOptions& options) {
  if (options.batch_size < 1) throw std::invalid_argument("head analysis: the batch size must be positive");
  const auto modules = attention_of(task);
  HeadAnalysis result;
  result.split = options.split;
  result.options = options;
  const std::int64_t examples = task.prepare_analysis(options.split, options.batch_size, options.limit);
  if (examples <= 0) throw std::runtime_error("head analysis: the " + options.split + " split has no examples");
  result.examples = examples;

  std::vector<std::vector<HeadAccumulator>> stats;
  std::vector<RedundancyAccumulator> redundancy;
  std::vector<std::vector<double>> importance;  // sum over examples of |dL_x / dgate|
  for (const auto& [path, m] : modules) {
    const std::int64_t H = m->options.num_heads;
    stats.emplace_back(static_cast<std::size_t>(H));
    redundancy.emplace_back(H);
    importance.emplace_back(static_cast<std::size_t>(H), 0.0);
  }

  ModelState state(task.model(), modules);
  state.freeze();
  task.model().eval();
  for (const auto& [path, m] : modules) m->keep_weights(true);
  ProgressLine progress(options.progress);
  const auto start = Clock::now();
  const std::int64_t batches = (examples + options.batch_size - 1) / options.batch_size;
  double loss_sum = 0;
  for (std::int64_t i = 0; i < batches; ++i) {
    const std::int64_t B = std::min(options.batch_size, examples - i * options.batch_size);
    std::vector<Tensor> gates;
    for (const auto& [path, m] : modules) {
      gates.push_back(ones({B, m->options.num_heads}).requires_grad_());
      m->set_head_gate(gates.back());
    }
    const AnalysisBatch batch = task.analysis_batch(i);
    if (batch.losses.dim() != 1 || batch.losses.size(0) != B)
      throw std::logic_error("head analysis: batch " + std::to_string(i) + " has losses " + shape_str(batch.losses.shape()) +
                             " for " + std::to_string(B) + " examples");
    // the attention statistics, from the weights the forward kept
    for (std::size_t k = 0; k < modules.size(); ++k) {
      const auto& [path, m] = modules[k];
      const Tensor w = m->last_weights().contiguous();  // (B, H, Tq, Tk)
      if (w.dim() != 4 || w.size(0) != B)
        throw std::logic_error("head analysis: " + path + " kept weights " + shape_str(w.shape()) + " for a batch of " + std::to_string(B));
      const std::int64_t H = w.size(1), Tq = w.size(2), Tk = w.size(3);
      const Tensor wf = w.dtype() == DType::float32 ? w : to_dtype(w, DType::float32).contiguous();
      const float* data = wf.data<float>();
      std::vector<std::pair<std::int64_t, std::int64_t>> valid;
      for (std::int64_t b = 0; b < B; ++b) {
        valid.push_back(batch.valid(path, b));
        if (valid.back().first > Tq || valid.back().second > Tk || valid.back().second < 1)
          throw std::logic_error("head analysis: example " + std::to_string(b) + " of " + path + " claims " +
                                 std::to_string(valid.back().first) + "x" + std::to_string(valid.back().second) +
                                 " valid weights in a " + std::to_string(Tq) + "x" + std::to_string(Tk) + " matrix");
      }
      auto& heads = stats[k];
#pragma omp parallel for schedule(static)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t b = 0; b < B; ++b)
          heads[static_cast<std::size_t>(h)].add(data + ((b * H + h) * Tq) * Tk, valid[static_cast<std::size_t>(b)].first,
                                                 valid[static_cast<std::size_t>(b)].second, Tk);
      for (std::int64_t b = 0; b < B; ++b)
        redundancy[k].add(data + b * H * Tq * Tk, valid[static_cast<std::size_t>(b)].first, valid[static_cast<std::size_t>(b)].second, Tk,
                          Tq * Tk);
    }
    // importance: row b of each gate's gradient is example b's own dL/dgate
    const Tensor total = sum(batch.losses);
    loss_sum += to_dtype(total, DType::float64).item();
    total.backward();
    for (std::size_t k = 0; k < modules.size(); ++k) {
      const Tensor g = to_dtype(gates[k].grad(), DType::float64).contiguous();
      const std::int64_t H = g.size(1);
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t h = 0; h < H; ++h) importance[k][static_cast<std::size_t>(h)] += std::abs(g.data<double>()[b * H + h]);
    }
    progress.show("heads: batch", i + 1, batches, start, i + 1 == batches);
  }
  result.loss = loss_sum / static_cast<double>(examples);

  double largest = 0;
  for (std::size_t k = 0; k < modules.size(); ++k) {
    ModuleHeads mh;
    mh.path = modules[k].first;
    const auto H = static_cast<std::int64_t>(stats[k].size());
    double norm = 0;
    for (double v : importance[k]) norm += (v / static_cast<double>(examples)) * (v / static_cast<double>(examples));
    norm = std::sqrt(norm);
    for (std::int64_t h = 0; h < H; ++h) {
      HeadResult r;
      r.stats = stats[k][static_cast<std::size_t>(h)].result();
      r.raw_importance = importance[k][static_cast<std::size_t>(h)] / static_cast<double>(examples);
      r.importance = norm > 0 ? r.raw_importance / norm : 0.0;
      largest = std::max(largest, r.raw_importance);
      mh.heads.push_back(r);
    }
    mh.js.assign(static_cast<std::size_t>(H), std::vector<double>(static_cast<std::size_t>(H), 0.0));
    for (std::int64_t a = 0; a < H; ++a)
      for (std::int64_t b = 0; b < H; ++b) {
        mh.js[static_cast<std::size_t>(a)][static_cast<std::size_t>(b)] = redundancy[k].mean(a, b);
        if (a < b && redundancy[k].mean(a, b) < options.redundant_js) result.redundant.push_back({k, a, b, redundancy[k].mean(a, b)});
      }
    result.modules.push_back(std::move(mh));
  }
  for (ModuleHeads& mh : result.modules)
    for (HeadResult& r : mh.heads) r.dead = r.raw_importance < options.dead_fraction * largest;
  std::sort(result.redundant.begin(), result.redundant.end(), [](const RedundantPair& x, const RedundantPair& y) { return x.js < y.js; });
  return result;
}

void prune_heads(Task& task, HeadAnalysis& analysis) {
  const auto modules = attention_of(task);
  if (modules.size() != analysis.modules.size())
    throw std::invalid_argument("prune_heads: the analysis has " + std::to_string(analysis.modules.size()) + " modules, the model " +
                                std::to_string(modules.size()));
  struct Head {
    std::size_t module;
    std::int64_t head;
    double importance, raw;
  };
  std::vector<Head> order;
  std::vector<std::vector<float>> gates;
  for (std::size_t k = 0; k < modules.size(); ++k) {
    if (modules[k].first != analysis.modules[k].path)
      throw std::invalid_argument("prune_heads: module " + modules[k].first + " is " + analysis.modules[k].path + " in the analysis");
    gates.emplace_back(analysis.modules[k].heads.size(), 1.0f);
    for (std::size_t h = 0; h < analysis.modules[k].heads.size(); ++h)
      order.push_back({k, static_cast<std::int64_t>(h), analysis.modules[k].heads[h].importance, analysis.modules[k].heads[h].raw_importance});
  }
  std::stable_sort(order.begin(), order.end(), [](const Head& x, const Head& y) {
    return x.importance != y.importance ? x.importance < y.importance : x.raw < y.raw;
  });

  ModelState state(task.model(), modules);
  analysis.pruning.clear();
  analysis.primary_metric = task.primary_metric();
  ProgressLine progress(analysis.options.progress);
  const auto start = Clock::now();
  const auto total = static_cast<std::int64_t>(order.size());
  for (std::int64_t step = 0; step <= total; ++step) {
    PruneStep s;
    s.pruned = step;
    if (step > 0) {
      const Head& h = order[static_cast<std::size_t>(step - 1)];
      gates[h.module][static_cast<std::size_t>(h.head)] = 0.0f;
      modules[h.module].second->set_head_gate(from_vector(gates[h.module], {static_cast<std::int64_t>(gates[h.module].size())}));
      s.path = modules[h.module].first;
      s.head = h.head;
      s.importance = h.importance;
    }
    s.metrics = task.evaluate(analysis.split);
    const auto primary = s.metrics.find(analysis.primary_metric);
    progress.line("pruned " + std::to_string(step) + "/" + std::to_string(total) +
                  (step > 0 ? " (" + head_module_label(s.path) + " head " + std::to_string(s.head) + ")" : std::string(" (whole model)")) +
                  ": " + analysis.primary_metric + " " + (primary != s.metrics.end() ? fixed(primary->second, 4) : std::string("?")) +
                  ", " + duration(seconds_since(start)) + " spent, " +
                  duration(seconds_since(start) / static_cast<double>(step + 1) * static_cast<double>(total - step)) + " left");
    analysis.pruning.push_back(std::move(s));
  }
  // per metric: the heads that go before it first falls by more than a point
  analysis.prunable.clear();
  const bool higher = task.higher_is_better();
  for (const auto& [name, base] : analysis.pruning.front().metrics) {
    if (name == "loss") continue;
    std::int64_t can = total;
    for (const PruneStep& s : analysis.pruning) {
      const double v = s.metrics.at(name);
      const double drop = higher ? base - v : v - base;
      if (!(drop <= 0.01)) {  // NaN counts as a drop
        can = s.pruned - 1;
        break;
      }
    }
    analysis.prunable[name] = can;
  }
}

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
  std::ostringstream csv;
  csv << "module,head,pattern,pattern_score,entropy,distance,confidence,diagonal,offset,best_offset,vertical,block,importance,raw_importance,dead,rows\n";
  for (const ModuleHeads& m : a.modules)
    for (std::size_t h = 0; h < m.heads.size(); ++h) {
      const HeadResult& r = m.heads[h];
      const HeadStatistics& s = r.stats;
      csv << m.path << ',' << h << ',' << pattern_name(s.pattern) << ',' << fixed(s.pattern_score, 6) << ',' << fixed(s.entropy, 6) << ','
          << fixed(s.distance, 6) << ',' << fixed(s.confidence, 6) << ',' << fixed(s.diagonal, 6) << ',' << fixed(s.offset, 6) << ','
          << s.best_offset << ',' << fixed(s.vertical, 6) << ',' << fixed(s.block, 6) << ',' << fixed(r.importance, 6) << ','
          << r.raw_importance << ',' << (r.dead ? 1 : 0) << ',' << s.rows << '\n';
    }
  write_file(path_of("heads.csv"), csv.str());
  std::ostringstream pairs;
  pairs << "module,head_a,head_b,js_divergence\n";
  for (const ModuleHeads& m : a.modules)
    for (std::size_t x = 0; x < m.js.size(); ++x)
      for (std::size_t y = x + 1; y < m.js.size(); ++y) pairs << m.path << ',' << x << ',' << y << ',' << fixed(m.js[x][y], 6) << '\n';
  write_file(path_of("redundancy.csv"), pairs.str());

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
      if (r.stats.pattern == Pattern::offset) text += " (" + std::string(r.stats.best_offset > 0 ? "+" : "") + std::to_string(r.stats.best_offset) + ")";
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
  const std::string importance_png = path_of("head_importance.png");
  plot_grid(importance_png, title + ": head importance, normalised per module (l2)", rows, columns, importance,
            [] {
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
    std::ostringstream p;
    p << "pruned,module,head,importance";
    for (const auto& [name, v] : a.pruning.front().metrics) p << ',' << name;
    p << '\n';
    std::map<std::string, Series> series;
    for (const PruneStep& s : a.pruning) {
      p << s.pruned << ',' << s.path << ',' << (s.head >= 0 ? std::to_string(s.head) : "") << ',' << (s.pruned > 0 ? fixed(s.importance, 6) : "");
      for (const auto& [name, v] : s.metrics) {
        p << ',' << fixed(v, 6);
        series[name].name = name;
        series[name].points.emplace_back(static_cast<double>(s.pruned), v);
      }
      p << '\n';
    }
    write_file(path_of("pruning.csv"), p.str());
    std::vector<Series> metrics;
    for (const auto& [name, s] : series)
      if (name != "loss") metrics.push_back(s);
    std::vector<std::pair<std::string, std::vector<Series>>> panels;
    if (series.count("loss")) panels.push_back({"loss", {series["loss"]}});
    panels.push_back({"metrics", metrics});
    pruning_png = path_of("pruning.png");
    plot_panels(pruning_png, title + ": heads masked in increasing order of importance (" + a.split + " split)", "heads masked", panels);
  }

  // heads.md
  std::ostringstream md;
  md << "# Head analysis: " << title << "\n\n";
  md << "Split `" << a.split << "`, " << a.examples << " examples";
  if (a.options.limit > 0) md << " (the first " << a.options.limit << ")";
  md << "; mean example loss " << fixed(a.loss, 4) << ". " << a.modules.size() << " attention modules, " << total_heads << " heads.\n\n";
  md << "- **entropy** (nats), **distance** (positions) and **confidence** (the row maximum) are means over every valid attention row.\n"
        "- **pattern**: the highest of the diagonal, offset (best k in -3..3), vertical (two keys) and block scores, if it reaches 0.5; "
        "otherwise heterogeneous. Each score is a share of attention mass (see cli/heads.hpp).\n"
        "- **importance**: E|dL/dgate| per example (Michel et al. 2019), divided by the module's l2 norm; "
        "**raw** is the unnormalised value. A head is **dead** when its raw importance is below "
     << a.options.dead_fraction << " of the largest in the model.\n\n";
  md << "![pattern classes](head_patterns.png)\n\n![importance](head_importance.png)\n\n";
  for (const ModuleHeads& m : a.modules) {
    md << "## " << m.path << "\n\n";
    md << "| head | pattern | score | entropy | distance | confidence | diagonal | offset (k) | vertical | block | importance | raw | dead |\n";
    md << "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for (std::size_t h = 0; h < m.heads.size(); ++h) {
      const HeadResult& r = m.heads[h];
      const HeadStatistics& s = r.stats;
      char raw[32];
      std::snprintf(raw, sizeof raw, "%.3g", r.raw_importance);
      md << "| " << h << " | " << pattern_label(s) << " | " << fixed(s.pattern_score, 3) << " | " << fixed(s.entropy, 3) << " | "
         << fixed(s.distance, 2) << " | " << fixed(s.confidence, 3) << " | " << fixed(s.diagonal, 3) << " | " << fixed(s.offset, 3) << " ("
         << s.best_offset << ") | " << fixed(s.vertical, 3) << " | " << fixed(s.block, 3) << " | " << fixed(r.importance, 3) << " | "
         << raw << " | " << (r.dead ? "yes" : "") << " |\n";
    }
    md << '\n';
  }
  md << "## Redundancy\n\nPairs of heads in one module whose attention rows have a mean Jensen-Shannon divergence below "
     << a.options.redundant_js << " nats (every pair is in redundancy.csv):\n\n";
  if (a.redundant.empty()) md << "none.\n\n";
  else {
    md << "| module | heads | JS divergence |\n|---|---|---:|\n";
    for (const RedundantPair& r : a.redundant)
      md << "| " << a.modules[r.module].path << " | " << r.a << ", " << r.b << " | " << fixed(r.js, 4) << " |\n";
    md << '\n';
  }
  md << "## Dead heads\n\n";
  if (dead == 0) md << "none.\n\n";
  else {
    for (const ModuleHeads& m : a.modules)
      for (std::size_t h = 0; h < m.heads.size(); ++h)
        if (m.heads[h].dead) md << "- " << m.path << " head " << h << '\n';
    md << '\n';
  }
  if (!a.pruning.empty()) {
    md << "## Pruning\n\nHeads masked one at a time in increasing order of importance, the task evaluated on the whole `" << a.split
       << "` split after each (pruning.csv).\n\n";
    for (const auto& [name, can] : a.prunable)
      md << "- **" << name << "**: " << can << " of " << total_heads << " heads can go before it drops by more than one point (from "
         << fixed(a.pruning.front().metrics.at(name), 4) << ")" << (name == a.primary_metric ? ", the task's primary metric" : "") << ".\n";
    md << "\n![pruning curve](pruning.png)\n\n";
    md << "| masked | head |";
    for (const auto& [name, v] : a.pruning.front().metrics) md << ' ' << name << " |";
    md << "\n|---:|---|";
    for (std::size_t i = 0; i < a.pruning.front().metrics.size(); ++i) md << "---:|";
    md << '\n';
    for (const PruneStep& s : a.pruning) {
      md << "| " << s.pruned << " | " << (s.pruned > 0 ? head_module_label(s.path) + " " + std::to_string(s.head) : "(none)") << " |";
      for (const auto& [name, v] : s.metrics) md << ' ' << fixed(v, 4) << " |";
      md << '\n';
    }
  }
  write_file(path_of("heads.md"), md.str());
  return written;
}

}  // namespace rune::cli
