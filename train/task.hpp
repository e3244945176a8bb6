// What `rune train` trains: a Task owns a model and its data, and gives the trainer a loss per
// batch and metrics per split. The trainer (train/trainer.hpp) owns everything else: the
// optimizer, the schedule, checkpoints, the run folder, logs and the progress line.
//
// Tasks live in examples/<name>/ and register themselves with one line in their own folder:
//
//   const bool registered = train::register_task<ReverseTask, analysis::HeadAnalysisSource>(
//       "reverse", "reverse a sequence of digits: the smallest sequence-to-sequence task, a smoke test");
//
// The types after the task are the capabilities it offers beyond training (translating text,
// head analysis, ...): interfaces a command asks a task for by type (capability<Translator>),
// never by casting to a concrete task. Each capability interface names itself
// (`static constexpr const char* capability = "translate"`), so that a command can say which
// registered tasks have what a checkpoint's task lacks.
//
// Config keys: a task reads every key it uses in its constructor, each with its default, range
// and description (train/config.hpp), and reads them all before it loads data or builds its model:
// with context.describe_only (`rune config`) it returns right after them, so that the keys are
// listed without any data. Such a task is asked only for its primary_metric() and
// higher_is_better() (`rune sweep`), then destroyed.
//
// Determinism: a task's training batch is a function of (seed, epoch, index) only, and its
// dropout draws from the generator the trainer hands it (saved in checkpoints), so a resumed run
// continues exactly where it stopped.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "nn/module.hpp"
#include "nn/sampling.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"

namespace rune::train {

struct TaskContext {
  std::uint64_t seed = 0;
  Generator* init = nullptr;     // parameter initialisation
  Generator* dropout = nullptr;  // every dropout in the model
  bool describe_only = false;    // declare the keys only: no data, no model (rune config)
  // The checkpoint the task is rebuilt from (rune translate, eval, --resume ...), or null for a new
  // run. A rebuilt task takes what its model computes with from it (vocabularies, class names,
  // normalisation: what describe() wrote), never from its data, so that a checkpoint means the
  // same whatever happened to the data since.
  const Checkpoint* checkpoint = nullptr;
  // False when the command uses no data (rune translate): a task rebuilt from a checkpoint then
  // reads none, and has no splits to train or evaluate on.
  bool load_data = true;
};

struct BatchLoss {
  Tensor loss;       // scalar, the mean over the batch's items; undefined when the batch has none
  double items = 0;  // tokens or images the mean is over (data-parallel training weighs ranks by it)
};

// Data-parallel training (train/distributed.hpp): the part of each global training batch this
// process computes. Of a batch of n rows (sentences, images), rank r of `ranks` takes rows
// [begin, end): n / ranks each, and one more for each of the first n % ranks ranks.
struct Shard {
  int rank = 0, ranks = 1;
  std::pair<std::int64_t, std::int64_t> rows(std::int64_t n) const {
    const std::int64_t base = n / ranks, extra = n % ranks;
    const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
    return {begin, begin + base + (rank < extra ? 1 : 0)};
  }
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  virtual std::int64_t batches_per_epoch() const = 0;
  // The loss of training batch `index` of `epoch` (of this process's shard() of it).
  virtual BatchLoss train_batch(std::int64_t epoch, std::int64_t index) = 0;
  // True when train_batch computes only shard()'s rows, so that the task trains data-parallel.
  virtual bool shards_batches() const { return false; }
  // True when evaluate(), with a shard of more than one rank set, computes only its shard of the
  // split and reduces with the other ranks (train/distributed.hpp), each rank returning the
  // split's metrics: data-parallel validation. Every rank must then call evaluate().
  virtual bool shards_evaluation() const { return false; }
  void set_shard(Shard s) { shard_ = s; }
  const Shard& shard() const { return shard_; }
  // Metrics on a split ("val" or "test", or another of splits()), in eval mode; keys without the
  // split's prefix.
  virtual std::map<std::string, double> evaluate(const std::string& split) = 0;
  // The splits evaluate() takes (`rune eval --split`): val and test, and any the task adds.
  virtual std::vector<std::string> splits() const { return {"val", "test"}; }
  virtual std::string primary_metric() const = 0;  // a key of evaluate()'s result
  virtual bool higher_is_better() const = 0;
  virtual std::string items_name() const { return "items"; }  // "tokens", "images"
  // Task metadata a checkpoint carries (vocabulary, class names, image size ...).
  virtual void describe(Checkpoint&) const {}
  // Parameter-name patterns kept out of weight decay (biases, attention's packed in_proj_bias
  // included, norms and embeddings by default).
  virtual std::vector<std::string> no_decay_patterns() const { return {"*.bias", "*_bias", "*norm*", "*embed*"}; }
  // A checkpoint's parameters into model(), strictly. A task may adapt them to its config (a ViT
  // resizes its position embedding to another image size); it returns one line per adaptation.
  virtual std::vector<std::string> load_parameters(const Checkpoint& c, const std::string& path);

  // The registered name ("translation"), set by make_task.
  const std::string& name() const { return name_; }

 private:
  friend std::unique_ptr<Task> make_task(Config&, const TaskContext&);
  std::string name_;
  Shard shard_;
};

// Capability: files a person reads after evaluate(split), and per-example predictions.
class EvalReports {
 public:
  static constexpr const char* capability = "write evaluation reports";
  virtual ~EvalReports() = default;
  // Files (a confusion matrix, say) written into `dir` after evaluate(split); their paths.
  virtual std::vector<std::string> write_reports(const std::string& split, const std::string& dir) = 0;
  // After evaluate(split): one line per example of the split (index, truth, prediction) into
  // `path`.
  virtual void write_predictions(const std::string& path) const = 0;
};

// Capability: translating text (`rune translate`).
class Translator {
 public:
  static constexpr const char* capability = "translate";
  virtual ~Translator() = default;
  // Both take `notes`, null or a list to which they append one line per thing a reader of the
  // results should know (a sentence cut to the model's length, a word it has never seen, ...),
  // naming the sentence by its 1-based position ("sentence 3: ...").
  // Translations of source sentences, detokenized.
  virtual std::vector<std::string> translate(const std::vector<std::string>& sources,
                                             std::vector<std::string>* notes) = 0;
  // log P(target | source) under the model (teacher-forced, <eos> included), per pair: the sum of
  // the natural-log probabilities of the target's tokens.
  virtual std::vector<double> log_probability(const std::vector<std::pair<std::string, std::string>>& pairs,
                                              std::vector<std::string>* notes) = 0;
};

// Capability: the model as standard ONNX (`rune export --onnx`), built by the onnx/ layer and
// checked by the ONNX checker before it is written. docs/onnx.md has each task's layout.
class OnnxExporter {
 public:
  static constexpr const char* capability = "export to ONNX";
  virtual ~OnnxExporter() = default;
  // Writes the model's graphs for `path` (one file, or a task's files named from it, as its
  // onnx_layout() says) with the metadata a caller needs (vocabularies, class names, special
  // ids) in each model's metadata_props; the paths written. A model this task builds but ONNX
  // export does not cover (rotary positions, say) throws, saying why.
  virtual std::vector<std::string> export_onnx(const std::string& path) = 0;
  // What the files hold, their inputs and outputs, in a few lines for a person (rune export prints it).
  virtual std::string onnx_layout() const = 0;
};

// Capability: continuing a text (`rune generate`), one token at a time with the KV cache.
struct GenerationOptions {
  std::int64_t max_new_tokens = 200;
  nn::SamplingOptions sampling;  // greedy (temperature 0), temperature, top-k, top-p
  std::uint64_t seed = 0;        // the same seed, prompt and options give the same text
};
struct GenerationResult {
  std::string text;                // the continuation alone
  std::int64_t prompt_tokens = 0;  // what the model read before the first new token
  std::int64_t new_tokens = 0;
  double prompt_seconds = 0;  // reading the prompt (one forward over it)
  double decode_seconds = 0;  // the new tokens, one step each
};
class TextGenerator {
 public:
  static constexpr const char* capability = "generate text";
  virtual ~TextGenerator() = default;
  // The continuation of `prompt`, handed to on_text piece by piece as it is decoded (on_text may
  // be empty). notes as Translator's: a prompt cut to the model's context, characters it has
  // never seen, the context filling up.
  virtual GenerationResult generate(const std::string& prompt, const GenerationOptions& options,
                                    const std::function<void(const std::string&)>& on_text,
                                    std::vector<std::string>* notes) = 0;
};

// ----------------------------------------------------------------------------- the registry

using TaskFactory = std::function<std::unique_ptr<Task>(Config&, const TaskContext&)>;

struct TaskInfo {
  std::string name, description;
  std::vector<std::string> capabilities;  // the capability names it offers
  TaskFactory make;
};

// Adds a task; throws std::logic_error when the name is taken. register_task<T, Caps...> is the
// one line a task's folder adds: T is built from (Config&, const TaskContext&), and derives from
// every capability it lists (checked at compile time).
bool register_task(TaskInfo info);
template <class T, class... Capabilities>
bool register_task(const std::string& name, const std::string& description) {
  static_assert(std::is_base_of_v<Task, T>, "a task derives from train::Task");
  static_assert((std::is_base_of_v<Capabilities, T> && ...), "a task derives from every capability it lists");
  return register_task(TaskInfo{
      name, description, {Capabilities::capability...}, [](Config& c, const TaskContext& ctx) -> std::unique_ptr<Task> {
        return std::make_unique<T>(c, ctx);
      }});
}

// Every registered task, by name.
std::vector<TaskInfo> registered_tasks();
std::vector<std::string> task_names();
// The task named by the config's task.name, reading its own keys ([task], [model], [data]).
std::unique_ptr<Task> make_task(Config& config, const TaskContext& context);

// The names of the registered tasks that offer `capability`, joined for a message.
std::string tasks_with(const std::string& capability);

// The task as capability C, or std::runtime_error naming what `what` (a checkpoint, say) holds,
// what it lacks and which registered tasks have it.
// The task as capability C, or null when it has none.
template <class C>
C* find_capability(Task& task) {
  return dynamic_cast<C*>(&task);
}

template <class C>
C& capability(Task& task, const std::string& what) {
  if (C* c = find_capability<C>(task)) return *c;
  const std::string holds = task.name().empty() ? "a task" : "a '" + task.name() + "' task";
  throw std::runtime_error(what + " holds " + holds + ", which cannot " + C::capability +
                           " (tasks that can: " + tasks_with(C::capability) + ")");
}

}  // namespace rune::train
