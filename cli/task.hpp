// What `rune train` trains: a Task owns a model and its data, and gives the trainer a loss per
// batch and metrics per split. The trainer (trainer.hpp) owns everything else: the optimizer,
// the schedule, checkpoints, the run folder, logs and the progress bar.
//
// Determinism: a task's training batch is a function of (seed, epoch, index) only, and its
// dropout draws from the generator the trainer hands it (saved in checkpoints), so a resumed run
// continues exactly where it stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "cli/config.hpp"
#include "nn/checkpoint.hpp"
#include "nn/module.hpp"

namespace rune::cli {

struct TaskContext {
  std::uint64_t seed = 0;
  Generator* init = nullptr;     // parameter initialisation
  Generator* dropout = nullptr;  // every dropout in the model
};

struct BatchLoss {
  Tensor loss;       // scalar, the mean over the batch's items
  double items = 0;  // tokens or images in the batch, for throughput
};

// One batch of a split for head analysis (`rune heads`), run through the model as it stands (the
// caller sets eval mode, head gates and keep_weights) with the tape recording.
struct AnalysisBatch {
  Tensor losses;  // (B): each example's loss, the mean over its items (tokens), unsmoothed
  // The valid query and key counts of example b in the attention module at `path` (a path of
  // nn::attention_modules): the rows and columns of its weights that are not padding.
  std::function<std::pair<std::int64_t, std::int64_t>(const std::string& path, std::int64_t b)> valid;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  virtual std::int64_t batches_per_epoch() const = 0;
  virtual BatchLoss train_batch(std::int64_t epoch, std::int64_t index) = 0;
  // Metrics on a split ("val" or "test"), in eval mode; keys without the split's prefix.
  virtual std::map<std::string, double> evaluate(const std::string& split) = 0;
  virtual std::string primary_metric() const = 0;  // a key of evaluate()'s result
  virtual bool higher_is_better() const = 0;
  virtual std::string items_name() const { return "items"; }  // "tokens", "images"
  // Task metadata a checkpoint carries (vocabulary, class names, image size ...).
  virtual void describe(nn::Checkpoint&) const {}
  // Parameter-name patterns kept out of weight decay (biases, norms, embeddings by default).
  virtual std::vector<std::string> no_decay_patterns() const { return {"*.bias", "*norm*", "*embed*"}; }
  // A checkpoint's parameters into model(), strictly. A task may adapt them to its config (a ViT
  // resizes its position embedding to another image size); it returns one line per adaptation.
  virtual std::vector<std::string> load_parameters(const nn::Checkpoint& c, const std::string& path);
  // After evaluate(split): files a person reads (a confusion matrix, say) written into `dir`;
  // returns their paths. None by default.
  virtual std::vector<std::string> write_reports(const std::string& split, const std::string& dir);
  // After evaluate(split): one line per example of the split (index, truth, prediction) into
  // `path`. Throws std::runtime_error for a task without per-example predictions.
  virtual void write_predictions(const std::string& path) const;
  // Head analysis: prepares the first `limit` examples (0: all) of a split ("val" or "test"), in
  // the split's order, and returns how many there are; analysis_batch(i) then holds examples
  // [i batch_size, min((i + 1) batch_size, count)). Throws std::runtime_error for a task without it.
  virtual std::int64_t prepare_analysis(const std::string& split, std::int64_t batch_size, std::int64_t limit);
  virtual AnalysisBatch analysis_batch(std::int64_t index);
};

// The task named by the config's task.name, reading its own keys ([task], [model], [data]).
std::unique_ptr<Task> make_task(Config& config, const TaskContext& context);
std::vector<std::string> task_names();

}  // namespace rune::cli
