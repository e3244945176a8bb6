// `rune heads`: what every attention head of a task's model does on a data split, how much the
// loss depends on it, which heads repeat each other, and what masking them costs.
//
// Over the split's examples (HeadAnalysisSource), in eval mode:
//   statistics   entropy, distance, confidence and the pattern class of each head (analysis/head_statistics.hpp)
//                over the valid rows and keys of every example's attention matrix
//   importance   Michel et al. 2019: I_h = E_x |d L(x) / d xi_h|, xi_h a gate on head h's output
//                (1: the model as trained) and L(x) the example's loss; each example has its own
//                gate row (B, H), so the absolute value is taken per example, not per batch. The
//                importances of one module are then divided by their l2 norm (Michel et al.'s
//                per-layer normalisation); `raw_importance` keeps the unnormalised value.
//   dead heads   raw importance below dead_fraction of the model's largest raw importance (a
//                module whose heads are all unimportant keeps normalised values near 1 / sqrt H,
//                so deadness is judged on the raw scale)
//   redundancy   pairs of heads of one module whose rows' mean Jensen-Shannon divergence is
//                below redundant_js (in nats; 0 for identical attention, ln 2 for disjoint)
// Pruning (prune_heads) masks heads one at a time in increasing order of normalised importance
// (the order fixed by one analysis, as Michel et al.'s pruning experiment) and re-evaluates the
// task on the whole split after each.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <functional>
#include <utility>

#include "analysis/head_statistics.hpp"
#include "autograd/tensor.hpp"
#include "train/task.hpp"

namespace rune::analysis {

// One batch of a split for head analysis, run through the model as it stands (the caller sets
// eval mode and head gates, and observes the attention weights) with the tape recording.
struct AnalysisBatch {
  Tensor losses;  // (B): each example's loss, the mean over its items (tokens), unsmoothed
  // The valid query and key counts of example b in the attention module at `path` (a path of
  // nn::attention_modules): the rows and columns of its weights that are not padding.
  std::function<std::pair<std::int64_t, std::int64_t>(const std::string& path, std::int64_t b)> valid;
};

// Capability of a task (train/task.hpp): its examples, batch by batch, for head analysis.
class HeadAnalysisSource {
 public:
  static constexpr const char* capability = "analyse its heads";
  virtual ~HeadAnalysisSource() = default;
  // Prepares the first `limit` examples (0: all) of a split ("val" or "test"), in the split's
  // order, and returns how many there are; analysis_batch(i) then holds examples
  // [i batch_size, min((i + 1) batch_size, count)).
  virtual std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit) = 0;
  virtual AnalysisBatch analysis_batch(std::int64_t index) = 0;
};

struct HeadAnalysisOptions {
  std::string split = "test";
  std::int64_t batch_size = 64;
  std::int64_t limit = 0;       // examples analysed (0: the whole split); pruning always evaluates all
  double redundant_js = 0.05;   // nats
  double dead_fraction = 0.01;  // of the largest raw importance
  bool progress = true;         // progress lines on stderr
};

struct HeadResult {
  HeadStatistics stats;
  double importance = 0;      // normalised within its module (the module's vector has l2 norm 1)
  double raw_importance = 0;  // E |dL/dgate|
  bool dead = false;
};

struct ModuleHeads {
  std::string path;  // "transformer.encoder.layers.0.self_attn"
  std::vector<HeadResult> heads;
  std::vector<std::vector<double>> js;  // (H, H) mean Jensen-Shannon divergence between heads
};

struct RedundantPair {
  std::size_t module;
  std::int64_t a, b;
  double js;
};

struct PruneStep {
  std::int64_t pruned = 0;  // heads masked so far; 0: the whole model
  std::string path;         // the head masked at this step (none at step 0)
  std::int64_t head = -1;
  double importance = 0;  // its normalised importance
  std::map<std::string, double> metrics;
};

struct HeadAnalysis {
  std::string split;
  std::int64_t examples = 0;
  double loss = 0;  // the mean example loss over the analysed examples
  std::vector<ModuleHeads> modules;
  std::vector<RedundantPair> redundant;  // by increasing divergence
  HeadAnalysisOptions options;
  // prune_heads()
  std::vector<PruneStep> pruning;
  std::string primary_metric;
  // per metric of the task (the loss excepted): how many heads go, in pruning order, before the
  // metric first falls more than one point (0.01) below the whole model's
  std::map<std::string, std::int64_t> prunable;
};

// The statistics, importance and redundancy of every head of every nn::MultiheadAttention in
// task.model(). Leaves the model as it found it (training mode, no gates, parameters requiring
// grad). Throws std::runtime_error for a task that is not a HeadAnalysisSource or a model
// without attention.
HeadAnalysis analyse_heads(train::Task& task, const HeadAnalysisOptions& options);

// Masks the heads in increasing order of importance, one more each step, and evaluates the task
// on the analysis's split after each (the first step is the whole model); fills
// analysis.pruning, primary_metric and prunable. Clears the gates afterwards.
void prune_heads(train::Task& task, HeadAnalysis& analysis);

// "encoder.0.self_attn" for "transformer.encoder.layers.0.self_attn": the path without the
// containers that add nothing to a label.
std::string head_module_label(const std::string& path);

}  // namespace rune::analysis
