// `rune heads`: what every attention head of a task's model does on a data split, how much the
// loss depends on it, which heads repeat each other, and what masking them costs.
//
// Over the split's examples (Task::prepare_analysis / analysis_batch), in eval mode:
//   statistics   entropy, distance, confidence and the pattern class of each head (cli/heads.hpp)
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

#include "cli/heads.hpp"
#include "cli/task.hpp"

namespace rune::cli {

struct HeadAnalysisOptions {
  std::string split = "test";
  std::int64_t batch_size = 64;
  std::int64_t limit = 0;          // examples analysed (0: the whole split); pruning always evaluates all
  double redundant_js = 0.05;      // nats
  double dead_fraction = 0.01;     // of the largest raw importance
  bool progress = true;            // progress lines on stderr
};

struct HeadResult {
  HeadStatistics stats;
  double importance = 0;      // normalised within its module (the module's vector has l2 norm 1)
  double raw_importance = 0;  // E |dL/dgate|
  bool dead = false;
};

struct ModuleHeads {
  std::string path;                     // "transformer.encoder.layers.0.self_attn"
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
  double importance = 0;    // its normalised importance
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
// grad). Throws std::runtime_error for a task without head analysis or a model without attention.
HeadAnalysis analyse_heads(Task& task, const HeadAnalysisOptions& options);

// Masks the heads in increasing order of importance, one more each step, and evaluates the task
// on the analysis's split after each (the first step is the whole model); fills
// analysis.pruning, primary_metric and prunable. Clears the gates afterwards.
void prune_heads(Task& task, HeadAnalysis& analysis);

// Into `dir`: heads.md (the report), heads.csv (a row per head), redundancy.csv (every pair),
// head_patterns.png (the pattern-class map), head_importance.png (the importance heatmap) and,
// after prune_heads, pruning.csv and pruning.png. Returns the paths written.
std::vector<std::string> write_head_report(const HeadAnalysis& analysis, const std::string& dir, const std::string& title);

// "encoder.0.self_attn" for "transformer.encoder.layers.0.self_attn": the path without the
// containers that add nothing to a label.
std::string head_module_label(const std::string& path);

}  // namespace rune::cli
