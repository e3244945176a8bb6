#include "analysis/head_analysis.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "analysis/attention_recorder.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "nn/attention.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
#include "train/progress.hpp"

namespace rune::analysis {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Restores what analysis changes on the model, however it ends: training mode, gates and
// parameters' requires_grad (turned off so the backward computes only what the gates need).
// The attention weights are observed by an AttentionRecorder, whose hooks go with it.
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
    for (const auto& [path, m] : modules_) m->clear_head_gate();
    model_.train(training_);
  }

 private:
  nn::Module& model_;
  std::vector<std::pair<std::string, nn::MultiheadAttention*>> modules_;
  bool training_;
  std::vector<Tensor> params_;
  std::vector<bool> requires_;
};

std::vector<std::pair<std::string, nn::MultiheadAttention*>> attention_of(train::Task& task) {
  auto modules = nn::attention_modules(task.model());
  if (modules.empty()) throw std::runtime_error("the model has no attention module to analyse");
  return modules;
}

}  // namespace

std::string head_module_label(const std::string& path) {
  std::string label = path;
  for (const std::string& drop : {std::string("transformer."), std::string("layers.")}) {
    for (std::size_t at; (at = label.find(drop)) != std::string::npos;) label.erase(at, drop.size());
  }
  return label;
}

HeadAnalysis analyse_heads(train::Task& task, const HeadAnalysisOptions& options) {
  if (options.batch_size < 1) throw std::invalid_argument("head analysis: the batch size must be positive");
  HeadAnalysisSource& source = train::capability<HeadAnalysisSource>(task, "the model");
  const auto modules = attention_of(task);
  HeadAnalysis result;
  result.split = options.split;
  result.options = options;
  const std::int64_t examples = source.prepare_analysis(options.split, options.batch_size, options.limit);
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
  AttentionRecorder recorder(modules);  // its hooks go with it, however analysis ends
  train::ProgressLine progress(options.progress, 10);
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
    recorder.clear();  // a module the batch does not run must not show the previous batch
    const AnalysisBatch batch = source.analysis_batch(i);
    if (batch.losses.dim() != 1 || batch.losses.size(0) != B)
      throw std::logic_error("head analysis: batch " + std::to_string(i) + " has losses " +
                             shape_str(batch.losses.shape()) + " for " + std::to_string(B) + " examples");
    // the attention statistics, from the weights the recorder saw
    for (std::size_t k = 0; k < modules.size(); ++k) {
      const std::string& path = modules[k].first;
      const Tensor& seen = recorder.weights(k);
      if (!seen.defined()) throw std::logic_error("head analysis: batch " + std::to_string(i) + " did not run " + path);
      const Tensor w = seen.contiguous();  // (B, H, Tq, Tk)
      if (w.dim() != 4 || w.size(0) != B)
        throw std::logic_error("head analysis: " + path + " gave weights " + shape_str(w.shape()) + " for a batch of " +
                               std::to_string(B));
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
          heads[static_cast<std::size_t>(h)].add(data + ((b * H + h) * Tq) * Tk,
                                                 valid[static_cast<std::size_t>(b)].first,
                                                 valid[static_cast<std::size_t>(b)].second, Tk);
      for (std::int64_t b = 0; b < B; ++b)
        redundancy[k].add(data + b * H * Tq * Tk, valid[static_cast<std::size_t>(b)].first,
                          valid[static_cast<std::size_t>(b)].second, Tk, Tq * Tk);
    }
    // importance: row b of each gate's gradient is example b's own dL/dgate
    const Tensor total = sum(batch.losses);
    loss_sum += to_dtype(total, DType::float64).item();
    total.backward();
    for (std::size_t k = 0; k < modules.size(); ++k) {
      const Tensor g = to_dtype(gates[k].grad(), DType::float64).contiguous();
      const std::int64_t H = g.size(1);
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t h = 0; h < H; ++h)
          importance[k][static_cast<std::size_t>(h)] += std::abs(g.data<double>()[b * H + h]);
    }
    progress.show(train::ProgressLine::status("heads: batch", i + 1, batches, start), i + 1 == batches);
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
        if (a < b && redundancy[k].mean(a, b) < options.redundant_js)
          result.redundant.push_back({k, a, b, redundancy[k].mean(a, b)});
      }
    result.modules.push_back(std::move(mh));
  }
  for (ModuleHeads& mh : result.modules)
    for (HeadResult& r : mh.heads) r.dead = r.raw_importance < options.dead_fraction * largest;
  std::sort(result.redundant.begin(), result.redundant.end(),
            [](const RedundantPair& x, const RedundantPair& y) { return x.js < y.js; });
  return result;
}

void prune_heads(train::Task& task, HeadAnalysis& analysis) {
  const auto modules = attention_of(task);
  if (modules.size() != analysis.modules.size())
    throw std::invalid_argument("prune_heads: the analysis has " + std::to_string(analysis.modules.size()) +
                                " modules, the model " + std::to_string(modules.size()));
  struct Head {
    std::size_t module;
    std::int64_t head;
    double importance, raw;
  };
  std::vector<Head> order;
  std::vector<std::vector<float>> gates;
  for (std::size_t k = 0; k < modules.size(); ++k) {
    if (modules[k].first != analysis.modules[k].path)
      throw std::invalid_argument("prune_heads: module " + modules[k].first + " is " + analysis.modules[k].path +
                                  " in the analysis");
    gates.emplace_back(analysis.modules[k].heads.size(), 1.0f);
    for (std::size_t h = 0; h < analysis.modules[k].heads.size(); ++h)
      order.push_back({k, static_cast<std::int64_t>(h), analysis.modules[k].heads[h].importance,
                       analysis.modules[k].heads[h].raw_importance});
  }
  std::stable_sort(order.begin(), order.end(), [](const Head& x, const Head& y) {
    return x.importance != y.importance ? x.importance < y.importance : x.raw < y.raw;
  });

  ModelState state(task.model(), modules);
  analysis.pruning.clear();
  analysis.primary_metric = task.primary_metric();
  train::ProgressLine progress(analysis.options.progress, 10);
  const auto start = Clock::now();
  const auto total = static_cast<std::int64_t>(order.size());
  for (std::int64_t step = 0; step <= total; ++step) {
    PruneStep s;
    s.pruned = step;
    if (step > 0) {
      const Head& h = order[static_cast<std::size_t>(step - 1)];
      gates[h.module][static_cast<std::size_t>(h.head)] = 0.0f;
      modules[h.module].second->set_head_gate(
          from_vector(gates[h.module], {static_cast<std::int64_t>(gates[h.module].size())}));
      s.path = modules[h.module].first;
      s.head = h.head;
      s.importance = h.importance;
    }
    s.metrics = task.evaluate(analysis.split);
    const auto primary = s.metrics.find(analysis.primary_metric);
    progress.line(
        "pruned " + std::to_string(step) + "/" + std::to_string(total) +
        (step > 0 ? " (" + head_module_label(s.path) + " head " + std::to_string(s.head) + ")"
                  : std::string(" (whole model)")) +
        ": " + analysis.primary_metric + " " +
        (primary != s.metrics.end() ? train::fixed(primary->second, 4) : std::string("?")) + ", " +
        train::duration(seconds_since(start)) + " spent, " +
        train::duration(seconds_since(start) / static_cast<double>(step + 1) * static_cast<double>(total - step)) +
        " left");
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

}  // namespace rune::analysis
