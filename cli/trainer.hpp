// The `rune` subcommands' work: train a task from a config (with resume, run folder, logs,
// curves, checkpoints, progress, Ctrl-C and NaN handling), evaluate a checkpoint, describe one.
//
// A run folder <run.dir>/<run.name>[-N]/ holds:
//   config.toml          the resolved config (every key, defaults included)
//   metrics.jsonl        one JSON object per line: training records (step, epoch, loss, lr,
//                        grad_norm, items_per_s, elapsed_s) and validation records (step, val_*)
//   curves.png           loss and validation curves, redrawn at every evaluation
//   checkpoints/         last.h5, best.h5 (by the task's primary validation metric), step-N.h5
#pragma once

#include <string>
#include <vector>

#include "cli/head_analysis.hpp"

namespace rune::cli {

// Exit codes of `rune train`.
inline constexpr int kExitOk = 0, kExitError = 1, kExitNonFinite = 3, kExitInterrupted = 130;

struct TrainRequest {
  std::string config;               // path of the TOML config
  std::vector<std::string> sets;    // "key=value" overrides, in order
  std::string resume;               // a checkpoint to continue from, or empty
  bool progress = true;             // the live progress line (otherwise a line every log_every)
};

int train(const TrainRequest& request);
struct EvalRequest {
  std::string checkpoint, split = "test";
  std::vector<std::string> sets;  // overrides of the checkpoint's config ("data.image_size=32")
  std::string out_dir;            // reports (eval-<split>.json, a confusion matrix); default: the run folder
  std::string predictions;        // a file for one line per example, if the task has them
};
int evaluate(const EvalRequest& request);
int info(const std::string& checkpoint);
// Translations of `sentences` (or of stdin's lines when empty) by a translation checkpoint; with
// `scores`, each followed by a tab and its log-probability under the model.
int translate(const std::string& checkpoint, const std::vector<std::string>& sentences, bool scores = false);
// multi_head_attention_map.png (a heatmap per head of every attention module of every layer) and
// attention_weights.csv in `out_dir`, for the translation of `sentence`.
int attention(const std::string& checkpoint, const std::string& sentence, const std::string& out_dir);
// For a ViT checkpoint and one image (a PNG file, or an index into the test split), in `out_dir`:
// vit_attention_map.png (the class token's attention over the patches, a panel per head of every
// layer, over the image), attention_rollout.png (the rollout across layers) and cls_attention.csv.
int image_attention(const std::string& checkpoint, const std::string& image, const std::string& out_dir);

// `rune heads`: the head analysis of a checkpoint (cli/head_analysis.hpp) on a split, with
// --prune the pruning curve; the report and its pictures in `out_dir` (default: heads-<split> in
// the checkpoint's run folder, else in the current one) and a summary on stdout.
struct HeadsRequest {
  std::string checkpoint;
  std::vector<std::string> sets;  // overrides of the checkpoint's config
  std::string out_dir;
  bool prune = false;
  HeadAnalysisOptions analysis;  // the split, limits and thresholds
};
int heads(const HeadsRequest& request);

}  // namespace rune::cli
