// The training loop: trains a task from a config, with resume, a run folder, the metrics log,
// checkpoints, progress, Ctrl-C and NaN handling. Pictures are not drawn here: the caller
// observes the run (after_validation) and draws what it likes from the run folder's files.
//
// A run folder <run.dir>/<run.name>[-N]/ holds:
//   config.toml          the resolved config (every key, defaults included)
//   metrics.jsonl        one JSON object per line (train/metrics_log.hpp)
//   checkpoints/         last.h5, best.h5 (by the task's primary validation metric), step-N.h5
// and what the caller adds (`rune train` draws curves.png from metrics.jsonl).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rune::train {

class Config;

// Exit codes of `rune train`.
inline constexpr int kExitOk = 0, kExitError = 1, kExitNonFinite = 3, kExitInterrupted = 130;

// The keys --set may change when a run resumes: how long the run goes on, how fast it steps from
// here, and what it records; never what shapes the model, the data or the optimizer's state. (A
// longer train.epochs stretches the learning rate's schedule from the resumed step on.)
inline const std::vector<std::string> kResumeKeys = {"train.epochs",     "train.lr",        "train.clip_norm",
                                                     "train.eval_every", "train.log_every", "train.keep_last"};

struct TrainRequest {
  std::string config;             // path of the TOML config; empty when resuming
  std::vector<std::string> sets;  // "key=value" overrides, in order (only kResumeKeys when resuming)
  std::string resume;             // a checkpoint to continue from, or empty: the run's config comes from it
  bool progress = true;           // the live progress line (otherwise a line every log_every)
  // Called with the run folder and the run's name after every validation's record and checkpoint
  // are written, and when the run stops.
  std::function<void(const std::string& folder, const std::string& name)> after_validation;
};

// Trains; returns one of the exit codes above. Throws for bad input (config, checkpoint, data).
int train(const TrainRequest& request);

// The run folder a checkpoint lives in (<run>/checkpoints/x.h5, beside <run>/config.toml), or ""
// when it is not in one.
std::string run_folder_of(const std::string& checkpoint);

// The seed every run, and every task rebuilt from a checkpoint, starts from (key `seed`).
std::uint64_t read_seed(Config& config);

// Declares into `config` every key a run of its task would read, in train()'s order (seed,
// task.name, the task's own keys, [train], [run], the optimizer's settings) without loading data
// or building a model: what `rune config` lists. Returns the keys the task itself declared.
std::vector<std::string> declare_keys(Config& config);

// What a run of `config` is judged by, read as declare_keys reads (no data, no model): the task's
// primary validation metric (best.h5 is chosen by val_<metric>) and its direction. `config_path`
// names the config as `rune train` is given it (run.name's default is its stem).
struct RunDescription {
  std::vector<std::string> task_keys;  // the keys the task declared
  std::string primary_metric;          // a key of the task's evaluate(), without val_
  bool higher_is_better = true;
};
RunDescription describe_run(Config& config, const std::string& config_path);

// "val loss 0.1234, val bleu 0.5678": metrics in key order, each with `prefix`.
std::string format_metrics(const std::map<std::string, double>& m, const std::string& prefix);

}  // namespace rune::train
