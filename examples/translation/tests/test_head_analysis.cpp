// Head analysis over a split (cli/head_analysis): importance against finite differences of each
// example's loss in the gate, statistics of padded batches against the same examples one at a
// time, pruning's order, curve and counts on a task whose metric is known, and the report.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "analysis/attention_recorder.hpp"
#include "analysis/head_analysis.hpp"
#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "examples/translation/translation_task.hpp"
#include "nn/attention.hpp"
#include "report/head_report.hpp"
#include "report/plot.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"

namespace rune::examples {
namespace {

using namespace analysis;
using train::BatchLoss;
using train::Config;
using train::Task;

namespace fs = std::filesystem;

// An untrained translation model (its gradients are far from zero) with 2-head attention in
// every kind of module: encoder self, decoder self and cross.
struct TinyTranslation {
  Config config = Config::parse(R"([data]
batch_size = 8
batches_per_epoch = 2
eval_size = 23
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
dropout = 0.1
)",
                                "tiny.toml");
  Generator init{1}, dropout{2};
  TranslationTask task{config, {0, &init, &dropout}};
};

// Each example's loss over the first `limit` examples of the test split, in eval mode.
std::vector<double> example_losses(TranslationTask& task, std::int64_t limit) {
  NoGradGuard no_grad;
  task.model().eval();
  std::vector<double> out;
  const std::int64_t n = task.prepare_analysis("test", 5, limit);
  for (std::int64_t i = 0; i * 5 < n; ++i)
    for (double v : values(task.analysis_batch(i).losses)) out.push_back(v);
  task.model().train();
  return out;
}

// Michel et al.'s importance is E_x |dL(x)/dgate|: against central differences of every
// example's own loss, for every head of every module (batches of 7 leave a short last batch).
TEST(HeadAnalysis, ImportanceIsTheMeanAbsoluteFiniteDifferenceOfEachExamplesLoss) {
  TinyTranslation t;
  HeadAnalysisOptions o;
  o.batch_size = 7;
  o.limit = 20;
  o.progress = false;
  const HeadAnalysis a = analyse_heads(t.task, o);
  ASSERT_EQ(a.examples, 20);
  const auto modules = nn::attention_modules(t.task.model());
  ASSERT_EQ(a.modules.size(), 3u);
  const std::vector<double> base = example_losses(t.task, 20);
  double mean = 0;
  for (double v : base) mean += v / 20;
  EXPECT_NEAR(a.loss, mean, 1e-5 * mean);
  const double eps = 1e-2;  // the float32 losses' rounding (1e-7) stays far below eps * gradient
  for (std::size_t k = 0; k < modules.size(); ++k) {
    EXPECT_EQ(a.modules[k].path, modules[k].first);
    double norm = 0;
    for (std::int64_t h = 0; h < 2; ++h) {
      std::vector<float> up{1, 1}, down{1, 1};
      up[static_cast<std::size_t>(h)] += static_cast<float>(eps);
      down[static_cast<std::size_t>(h)] -= static_cast<float>(eps);
      modules[k].second->set_head_gate(from_vector(up, {2}));
      const std::vector<double> plus = example_losses(t.task, 20);
      modules[k].second->set_head_gate(from_vector(down, {2}));
      const std::vector<double> minus = example_losses(t.task, 20);
      modules[k].second->clear_head_gate();
      double fd = 0;
      for (std::size_t x = 0; x < plus.size(); ++x) fd += std::abs(plus[x] - minus[x]) / (2 * eps) / 20;
      const HeadResult& r = a.modules[k].heads[static_cast<std::size_t>(h)];
      EXPECT_GT(fd, 1e-4) << "a gradient this small would not test anything";
      EXPECT_NEAR(r.raw_importance, fd, 2e-3 * fd + 2e-5) << modules[k].first << " head " << h;
      norm += r.importance * r.importance;
    }
    EXPECT_NEAR(norm, 1.0, 1e-9) << "importance is normalised per module";
  }
  // the model is as it was: training mode, no gates, no hooks, parameters learning
  EXPECT_TRUE(t.task.model().is_training());
  for (const auto& [path, m] : modules) EXPECT_FALSE(m->head_gate().defined()) << path;
  for (const auto& [path, m] : modules) EXPECT_FALSE(m->has_forward_hooks()) << path;
  for (const Tensor& p : t.task.model().parameters()) EXPECT_TRUE(p.requires_grad());
}

// Padded batches give the statistics of the same examples run one at a time (no padding): the
// valid rows and keys are all that is counted.
TEST(HeadAnalysis, PaddedBatchesCountOnlyValidRowsAndKeys) {
  TinyTranslation t;
  HeadAnalysisOptions o;
  o.batch_size = 9;
  o.progress = false;
  o.redundant_js = 1.0;  // every pair: ln 2 < 1
  const HeadAnalysis a = analyse_heads(t.task, o);
  ASSERT_EQ(a.examples, 23);
  EXPECT_EQ(a.redundant.size(), 3u);

  const auto modules = nn::attention_modules(t.task.model());
  std::vector<std::vector<HeadAccumulator>> alone(modules.size(), std::vector<HeadAccumulator>(2));
  std::vector<RedundancyAccumulator> pairs(modules.size(), RedundancyAccumulator(2));
  {
    NoGradGuard no_grad;
    t.task.model().eval();
    const AttentionRecorder recorder(t.task.model());
    const std::int64_t n = t.task.prepare_analysis("test", 1, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      t.task.analysis_batch(i);
      for (std::size_t k = 0; k < modules.size(); ++k) {
        const Tensor w = recorder.weights(k).contiguous();  // (1, 2, Tq, Tk), nothing padded
        const std::int64_t Tq = w.size(2), Tk = w.size(3);
        for (std::int64_t h = 0; h < 2; ++h)
          alone[k][static_cast<std::size_t>(h)].add(w.data<float>() + h * Tq * Tk, Tq, Tk, Tk);
        pairs[k].add(w.data<float>(), Tq, Tk, Tk, Tq * Tk);
      }
    }
    t.task.model().train();
  }
  for (std::size_t k = 0; k < modules.size(); ++k) {
    for (std::size_t h = 0; h < 2; ++h) {
      const HeadStatistics want = alone[k][h].result(), got = a.modules[k].heads[h].stats;
      EXPECT_EQ(got.rows, want.rows) << modules[k].first;
      for (const auto& [name, g, w] : {std::tuple<const char*, double, double>{"entropy", got.entropy, want.entropy},
                                       {"distance", got.distance, want.distance},
                                       {"confidence", got.confidence, want.confidence},
                                       {"diagonal", got.diagonal, want.diagonal},
                                       {"offset", got.offset, want.offset},
                                       {"vertical", got.vertical, want.vertical},
                                       {"block", got.block, want.block}})
        EXPECT_NEAR(g, w, 1e-5) << modules[k].first << " head " << h << " " << name;
      EXPECT_EQ(got.pattern, want.pattern);
    }
    EXPECT_NEAR(a.modules[k].js[0][1], pairs[k].mean(0, 1), 1e-6);
    EXPECT_EQ(a.modules[k].js[1][0], a.modules[k].js[0][1]);
  }
  // the causal decoder's first query sees one key: its rows are counted, its padding is not
  EXPECT_EQ(a.modules[1].heads[0].stats.rows, a.modules[2].heads[0].stats.rows)
      << "decoder self and cross share the queries";
}

// A task whose metric is known: two modules of two heads; each masked head costs its own
// amount of the metric, and evaluate() reads the gates the pruning sets.
class GateTask : public Task {
 public:
  struct Net : nn::Module {
    Net() {
      nn::MultiheadAttentionOptions o;
      o.embed_dim = 4;
      o.num_heads = 2;
      a = register_module("a", std::make_shared<nn::MultiheadAttention>(o));
      b = register_module("b", std::make_shared<nn::MultiheadAttention>(o));
    }
    std::string repr() const override { return "Net"; }
    std::shared_ptr<nn::MultiheadAttention> a, b;
  };
  nn::Module& model() override { return net; }
  std::int64_t batches_per_epoch() const override { return 1; }
  BatchLoss train_batch(std::int64_t, std::int64_t) override { return {}; }
  std::map<std::string, double> evaluate(const std::string&) override {
    // costs: a.0 0.004, a.1 0.05, b.0 0.003, b.1 0.002
    const double cost[2][2] = {{0.004, 0.05}, {0.003, 0.002}};
    double score = 0.9;
    const nn::MultiheadAttention* m[2] = {net.a.get(), net.b.get()};
    for (int k = 0; k < 2; ++k)
      if (m[k]->head_gate().defined())
        for (int h = 0; h < 2; ++h)
          score -= cost[k][h] * (1.0 - values(m[k]->head_gate())[static_cast<std::size_t>(h)]);
    return {{"score", score}, {"loss", 1 - score}, {"other", 0.5}};
  }
  std::string primary_metric() const override { return "score"; }
  bool higher_is_better() const override { return true; }
  Net net;
};

HeadAnalysis analysis_of(const std::vector<std::vector<double>>& importance) {
  HeadAnalysis a;
  a.split = "test";
  a.options.progress = false;
  for (std::size_t k = 0; k < importance.size(); ++k) {
    ModuleHeads m;
    m.path = k == 0 ? "a" : "b";
    for (double v : importance[k]) {
      HeadResult r;
      r.importance = r.raw_importance = v;
      m.heads.push_back(r);
    }
    m.js.assign(2, std::vector<double>(2, 0.0));
    a.modules.push_back(m);
  }
  return a;
}

TEST(HeadPruning, MasksByIncreasingImportanceAndCountsWhatCanGo) {
  GateTask task;
  HeadAnalysis a = analysis_of({{0.6, 0.8}, {0.3, 0.1}});  // order: b.1, b.0, a.0, a.1
  prune_heads(task, a);
  ASSERT_EQ(a.pruning.size(), 5u);
  const std::vector<std::pair<std::string, std::int64_t>> order{{"", -1}, {"b", 1}, {"b", 0}, {"a", 0}, {"a", 1}};
  const std::vector<double> score{0.9, 0.898, 0.895, 0.891, 0.841};
  for (std::size_t s = 0; s < order.size(); ++s) {
    EXPECT_EQ(a.pruning[s].pruned, static_cast<std::int64_t>(s));
    EXPECT_EQ(a.pruning[s].path, order[s].first) << s;
    EXPECT_EQ(a.pruning[s].head, order[s].second) << s;
    EXPECT_NEAR(a.pruning[s].metrics.at("score"), score[s], 1e-9) << s;
  }
  EXPECT_EQ(a.primary_metric, "score");
  // score falls 0.009 after three heads (within a point), 0.059 after four
  EXPECT_EQ(a.prunable.at("score"), 3);
  EXPECT_EQ(a.prunable.at("other"), 4) << "a metric that never drops lets every head go";
  EXPECT_EQ(a.prunable.count("loss"), 0u) << "the loss is not a score in points";
  EXPECT_FALSE(task.net.a->head_gate().defined());
  EXPECT_FALSE(task.net.b->head_gate().defined());

  // lower-is-better metrics count drops upwards
  struct ErrorTask : GateTask {
    bool higher_is_better() const override { return false; }
  } error_task;
  HeadAnalysis e = analysis_of({{0.6, 0.8}, {0.3, 0.1}});
  prune_heads(error_task, e);
  EXPECT_EQ(e.prunable.at("score"), 4) << "a falling score is no drop when lower is better";

  // an analysis of another model is refused
  HeadAnalysis other = analysis_of({{0.1, 0.2}});
  EXPECT_NE(error_of([&] { prune_heads(task, other); }).find("1 modules"), std::string::npos);
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(HeadReport, TheReportHasEveryHeadThePicturesAndThePruningCurve) {
  TinyTranslation t;
  HeadAnalysisOptions o;
  o.progress = false;
  o.redundant_js = 1.0;
  HeadAnalysis a = analyse_heads(t.task, o);
  prune_heads(t.task, a);
  ASSERT_EQ(a.pruning.size(), 7u);  // 6 heads
  EXPECT_EQ(a.primary_metric, "exact_match");
  const fs::path dir = scratch_dir("head_report");
  const std::vector<std::string> files = report::write_head_report(a, (dir / "out").string(), "tiny");
  for (const char* f : {"heads.md", "heads.csv", "redundancy.csv", "head_patterns.png", "head_importance.png",
                        "pattern_shares.csv", "head_pattern_shares.png", "pruning.csv", "pruning.png", "heads.json"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  EXPECT_EQ(files.size(), 10u);
  // heads.json: the counts of the analysis
  const nlohmann::json j = nlohmann::json::parse(read(dir / "out" / "heads.json"));
  EXPECT_EQ(j.at("heads"), 6);
  EXPECT_EQ(j.at("modules"), a.modules.size());
  std::size_t pairs = 0;
  for (const ModuleHeads& m : a.modules) pairs += m.heads.size() * (m.heads.size() - 1) / 2;
  EXPECT_EQ(j.at("pairs"), pairs);
  EXPECT_EQ(j.at("redundant_pairs"), a.redundant.size());
  std::int64_t classified = 0;
  for (const auto& [name, n] : j.at("patterns").items()) classified += n.get<std::int64_t>();
  EXPECT_EQ(classified, 6);
  EXPECT_EQ(j.at("primary_metric"), "exact_match");
  EXPECT_EQ(j.at("prunable").at("exact_match"), a.prunable.at("exact_match"));
  EXPECT_DOUBLE_EQ(j.at("unpruned").at("exact_match").get<double>(), a.pruning.front().metrics.at("exact_match"));
  for (const char* png : {"head_patterns.png", "head_importance.png", "head_pattern_shares.png", "pruning.png"}) {
    int height = 0, width = 0;
    EXPECT_FALSE(report::read_png((dir / "out" / png).string(), 3, height, width).empty()) << png;
    EXPECT_GT(width, 200) << png;
  }
  const std::string csv = read(dir / "out" / "heads.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 6) << csv;
  EXPECT_NE(csv.find("transformer.decoder.layers.0.multihead_attn,1,"), std::string::npos) << csv;
  // a module's heads by class: counts that add up to its heads, and to heads.csv's classes
  const std::string shares = read(dir / "out" / "pattern_shares.csv");
  EXPECT_EQ(shares.rfind("module,heads,diagonal,offset,vertical,block,heterogeneous\n", 0), 0u) << shares;
  std::istringstream rows(shares.substr(shares.find('\n') + 1));
  std::int64_t modules = 0;
  for (std::string line; std::getline(rows, line); ++modules) {
    std::vector<std::string> f;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) f.push_back(cell);
    ASSERT_EQ(f.size(), 7u) << line;
    const ModuleHeads& m = a.modules[static_cast<std::size_t>(modules)];
    EXPECT_EQ(f[0], m.path);
    EXPECT_EQ(std::stoll(f[1]), static_cast<std::int64_t>(m.heads.size()));
    for (int k = 0; k < 5; ++k)
      EXPECT_EQ(std::stoll(f[static_cast<std::size_t>(2 + k)]),
                std::count_if(m.heads.begin(), m.heads.end(),
                              [k](const HeadResult& r) { return static_cast<int>(r.stats.pattern) == k; }))
          << line << " class " << k;
  }
  EXPECT_EQ(modules, static_cast<std::int64_t>(a.modules.size()));
  const std::string pruning = read(dir / "out" / "pruning.csv");
  EXPECT_EQ(pruning.rfind("pruned,module,head,importance,bleu,exact_match,loss,token_accuracy\n", 0), 0u) << pruning;
  EXPECT_EQ(std::count(pruning.begin(), pruning.end(), '\n'), 1 + 7);
  const std::string md = read(dir / "out" / "heads.md");
  for (const char* s :
       {"## transformer.encoder.layers.0.self_attn", "## transformer.decoder.layers.0.self_attn",
        "## transformer.decoder.layers.0.multihead_attn", "## Redundancy", "## Dead heads", "## Pruning",
        "![pattern classes](head_patterns.png)", "![pruning curve](pruning.png)", "heads can go before it drops"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  fs::remove_all(dir);
}

TEST(HeadAnalysis, LabelsAndErrors) {
  EXPECT_EQ(head_module_label("transformer.encoder.layers.0.self_attn"), "encoder.0.self_attn");
  EXPECT_EQ(head_module_label("encoder.layers.11.self_attn"), "encoder.11.self_attn");
  GateTask task;  // no prepare_analysis of its own
  HeadAnalysisOptions o;
  o.progress = false;
  EXPECT_NE(error_of([&] { analyse_heads(task, o); }).find("cannot analyse its heads"), std::string::npos);
  o.batch_size = 0;
  EXPECT_NE(error_of([&] { analyse_heads(task, o); }).find("batch size"), std::string::npos);
}

}  // namespace
}  // namespace rune::examples
