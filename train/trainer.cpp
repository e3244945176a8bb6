#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include <omp.h>

#include "autograd/ops.hpp"
#include "nn/attention.hpp"
#include "optim/clip.hpp"
#include "optim/registry.hpp"
#include "optim/schedule.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/distributed.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
#include "train/metrics_log.hpp"
#include "train/progress.hpp"
#include "train/task.hpp"
#include "train/threads.hpp"

namespace rune::train {
namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// The optimizer's own settings (betas, momentum ...) as keys of [train].
class ConfigSettings : public optim::OptimizerSettings {
 public:
  explicit ConfigSettings(Config& c) : c_(c) {}
  double number(const std::string& key, double fallback, double min, double max, bool max_open,
                const std::string& description) override {
    return c_.number("train." + key, fallback, {min, max, max_open}, description);
  }
  bool boolean(const std::string& key, bool fallback, const std::string& description) override {
    return c_.boolean("train." + key, fallback, description);
  }

 private:
  Config& c_;
};

// The keys an optimizer reads, without a config: every setting at its default.
class SettingNames : public optim::OptimizerSettings {
 public:
  double number(const std::string& key, double fallback, double, double, bool, const std::string&) override {
    keys.push_back("train." + key);
    return fallback;
  }
  bool boolean(const std::string& key, bool fallback, const std::string&) override {
    keys.push_back("train." + key);
    return fallback;
  }
  std::vector<std::string> keys;
};

// Training options from [train] and [run].
struct TrainOptions {
  std::int64_t epochs, eval_every, log_every, keep_last;
  std::string optimizer;
  double lr, weight_decay, clip_norm;
  double bucket_mb;  // data-parallel training: the gradient buckets' size
  bool adapt_threads;
  optim::Schedule schedule;
  optim::DropHeadSchedule drophead;
  std::string run_dir, run_name;
};

// "name = description; ..." of a registry's list (optimizers, schedules), for its key's description.
template <class Infos>
std::string described(const Infos& infos) {
  std::string list;
  for (const auto& info : infos) list += (list.empty() ? "" : "; ") + info.name + " = " + info.description;
  return list;
}

// steps_known false: batches_per_epoch stands in for a task that loads no data, and the checks
// against the run's number of steps are left to the run.
TrainOptions read_train_options(Config& c, const std::string& config_path, std::int64_t batches_per_epoch,
                                bool steps_known = true) {
  TrainOptions o;
  o.epochs = c.integer("train.epochs", 10, {1},
                       "passes over the task's training batches (an epoch is the task's batches per epoch)");
  const std::int64_t total = o.epochs * batches_per_epoch;
  o.optimizer =
      c.string("train.optimizer", "adamw", optim::optimizer_names(),
               "the optimizer, whose own settings are keys of [train] too: " + described(optim::optimizers()));
  o.lr = c.number("train.lr", 1e-3, {0.0}, "the peak learning rate (the schedule scales it step by step)");
  o.weight_decay = c.number("train.weight_decay", 0.01, {0.0},
                            "weight decay, except on the task's no-decay parameters (biases, norms, embeddings)");
  o.clip_norm =
      c.number("train.clip_norm", 1.0, {0.0}, "the gradients' global norm is clipped to this (0: no clipping)");
  o.schedule.name = c.string("train.schedule", "warmup_cosine", optim::schedule_names(),
                             "the learning rate's schedule: " + described(optim::schedules()));
  o.schedule.warmup_steps =
      c.integer("train.warmup_steps", {std::min<std::int64_t>(100, total / 10), "min(100, steps / 10)"}, {0},
                "steps of linear learning-rate warmup; steps = train.epochs * batches per epoch");
  o.schedule.total_steps = total;
  o.schedule.min_factor = c.number("train.min_lr_factor", 0.0, {0.0, 1.0},
                                   "warmup_cosine: the final learning rate, as a fraction of train.lr");
  try {
    if (steps_known) o.schedule.validate();
  } catch (const std::invalid_argument& e) {
    c.fail("train.warmup_steps", e.what());
  }
  o.drophead.p = c.number("train.drophead", 0.0, {0.0, 1.0, true},
                          "DropHead (Zhou et al., 2020): the rate at which whole attention heads are dropped in "
                          "training (0: off)");
  o.drophead.scheduled =
      c.string("train.drophead_schedule", "constant", {"constant", "scheduled"},
               "constant: train.drophead throughout; scheduled: falls linearly to 0 over train.drophead_warmup_steps, "
               "then rises linearly back to train.drophead at the last step") == "scheduled";
  o.drophead.warmup_steps = c.integer("train.drophead_warmup_steps", {o.schedule.warmup_steps, "train.warmup_steps"},
                                      {0}, "the scheduled DropHead rate's falling phase, in steps");
  o.drophead.total_steps = total;
  if (steps_known && o.drophead.scheduled && o.drophead.warmup_steps >= total)
    c.fail("train.drophead_warmup_steps", "must be below the run's " + std::to_string(total) + " steps");
  o.eval_every = c.integer("train.eval_every", {batches_per_epoch, "batches per epoch"}, {1},
                           "steps between validations, each followed by checkpoints (and at the last step)");
  o.log_every = c.integer("train.log_every", 10, {1},
                          "steps between records of the metrics log (and log lines with --no-progress)");
  o.keep_last = c.integer("train.keep_last", 3, {1}, "numbered step checkpoints kept besides last.h5 and best.h5");
  o.bucket_mb = c.number("train.bucket_mb", 25.0, {1e-6},
                         "data-parallel training (mpirun -np N rune train): megabytes (10^6 bytes) of float32 "
                         "gradients summed by one MPI_Allreduce, started as soon as backward has finished them "
                         "(PyTorch DDP's bucket_cap_mb)");
  o.adapt_threads = c.boolean("train.adapt_threads", true,
                              "run the steps on the OpenMP thread count (OMP_NUM_THREADS, or a half of it ... "
                              "down to 1) that is fastest now, tried now and then: fewer while other processes "
                              "hold cores (a step's numbers do not depend on it; one process only, not under "
                              "mpirun)");
  o.run_dir = c.string("run.dir", "runs", "the folder that holds the run folders");
  o.run_name = c.string("run.name", {fs::path(config_path).stem().string(), "the config file's name without .toml"},
                        "the run folder's name (-2, -3 ... is added when it is taken)");
  // one folder name inside run.dir: nothing that leaves it, hides it or names no folder
  if (o.run_name.empty() || o.run_name.find('/') != std::string::npos || o.run_name.front() == '.')
    c.fail("run.name", "'" + o.run_name + "' is not a folder name (not empty, no '/', not starting with '.')");
  return o;
}

// What a run reads from its config, in this order: seed, task.name and the task's own keys,
// [train] and [run], train.init_from, the optimizer's settings. train() and declare_keys() both
// read through here, so that `rune config` lists what a run reads.
struct Setup {
  std::uint64_t seed = 0;
  std::unique_ptr<Task> task;
  std::vector<std::string> task_keys;  // the keys the task declared
  TrainOptions options;
  std::string init_from;
  std::unique_ptr<optim::Optimizer> optimizer;
};

// describe_only: the task loads no data and builds no model, and the optimizer gets no parameters.
Setup read_setup(Config& config, const std::string& config_path, Generator& init, Generator& dropout,
                 bool describe_only, const Checkpoint* resumed = nullptr) {
  Setup s;
  const std::uint64_t seed = s.seed = read_seed(config);
  init.manual_seed(seed);
  dropout.manual_seed(seed ^ 0x5DEECE66DULL);
  const std::size_t before = config.declarations().size();
  TaskContext context{seed, &init, &dropout, describe_only};
  context.checkpoint = resumed;
  s.task = make_task(config, context);
  for (std::size_t i = before; i < config.declarations().size(); ++i)
    if (config.declarations()[i].key != "task.name") s.task_keys.push_back(config.declarations()[i].key);
  // a described task has no data, hence no batches: one stands in (the defaults that depend on
  // them have rules that say so), and the checks against the run's steps wait for the run
  s.options = read_train_options(config, config_path, describe_only ? 1 : s.task->batches_per_epoch(), !describe_only);
  s.init_from =
      config.string("train.init_from", "",
                    "fine-tuning: a checkpoint whose parameters (only) start the run; the task may adapt them "
                    "(a ViT resizes its position embedding)");
  std::vector<optim::ParamGroup> groups;
  if (!describe_only)
    groups = optim::param_groups_by_weight_decay(s.task->model().named_parameters(), s.options.lr,
                                                 s.options.weight_decay, s.task->no_decay_patterns());
  ConfigSettings settings(config);
  s.optimizer = optim::make_optimizer(s.options.optimizer, std::move(groups), settings);
  // the other optimizers' settings, given anyway, are named as theirs rather than unknown
  std::map<std::string, std::vector<std::string>> read_by;
  for (const optim::OptimizerInfo& info : optim::optimizers()) {
    SettingNames names;
    info.make({}, names);
    for (const std::string& key : names.keys) read_by[key].push_back(info.name);
  }
  for (const auto& [key, optimizers] : read_by) config.unused_here({key}, "train.optimizer", optimizers);
  return s;
}

// A new folder <dir>/<name>, or <name>-2, -3 ... if taken. Taken by creating it (mkdir either
// creates the folder or finds it there, atomically), so two runs started together with one name
// never share a folder.
std::string new_run_folder(const std::string& dir, const std::string& name) {
  fs::create_directories(dir);
  fs::path p = fs::path(dir) / name;
  for (int i = 2; !fs::create_directory(p); ++i) p = fs::path(dir) / (name + "-" + std::to_string(i));
  fs::create_directory(p / "checkpoints");
  return p.string();
}

// The status line: epoch, step, a bar, loss, lr, throughput and time left.
std::string status_text(std::int64_t step, std::int64_t total, std::int64_t per_epoch, double loss, double lr,
                        double items_per_s, const std::string& items, double left_s) {
  const int width = 24;
  const int filled =
      static_cast<int>(static_cast<double>(width) * static_cast<double>(step) / static_cast<double>(total));
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
  char buf[512];
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld [%s] loss %.4f lr %.2e %.0f %s/s left %s",
                static_cast<long long>((step - 1) / per_epoch + 1),
                static_cast<long long>((total + per_epoch - 1) / per_epoch), static_cast<long long>(step),
                static_cast<long long>(total), bar.c_str(), loss, lr, items_per_s, items.c_str(),
                duration(left_s).c_str());
  return buf;
}

}  // namespace

std::uint64_t read_seed(Config& config) {
  return static_cast<std::uint64_t>(config.integer(
      "seed", 0, {0}, "the seed of everything random: initialisation, dropout, data order, splits and sampling"));
}

std::vector<std::string> declare_keys(Config& config) { return describe_run(config, "CONFIG.toml").task_keys; }

RunDescription describe_run(Config& config, const std::string& config_path) {
  Generator init, dropout;
  const Setup s = read_setup(config, config_path, init, dropout, true);
  return {s.task_keys, s.task->primary_metric(), s.task->higher_is_better()};
}

std::string format_metrics(const std::map<std::string, double>& m, const std::string& prefix) {
  std::string s;
  for (const auto& [k, v] : m) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s%s %.4f", s.empty() ? "" : ", ", prefix.c_str(), k.c_str(), v);
    s += buf;
  }
  return s;
}

// ------------------------------------------------------------------------- train

std::string run_folder_of(const std::string& checkpoint) {
  const fs::path p(checkpoint);
  const bool in_run =
      p.parent_path().filename() == "checkpoints" && fs::exists(p.parent_path().parent_path() / "config.toml");
  return in_run ? p.parent_path().parent_path().string() : "";
}

int train(const TrainRequest& request) {
  // a resumed run's config is the one it started with, from its checkpoint; --set may change
  // only what does not alter what has been computed so far (kResumeKeys)
  std::unique_ptr<const Checkpoint> resumed;
  if (!request.resume.empty()) {
    if (!request.config.empty())
      throw std::invalid_argument("--resume continues with the run's config, from " + request.resume + ": leave out " +
                                  request.config + " (--set may change " + join(kResumeKeys, ", ") + ")");
    resumed = std::make_unique<const Checkpoint>(read_checkpoint(request.resume));
    for (const std::string& s : request.sets) {
      const std::string key = s.substr(0, s.find('='));
      if (std::find(kResumeKeys.begin(), kResumeKeys.end(), key) == kResumeKeys.end())
        throw std::invalid_argument("--set " + s + ": " + key + " cannot change when a run resumes (keys that can: " +
                                    join(kResumeKeys, ", ") + ")");
    }
  }
  Config config =
      resumed ? Config::parse(resumed->config, request.resume + " (its config)") : Config::load(request.config);
  for (const std::string& s : request.sets) config.set(s);
  // data-parallel: every rank runs all of this; rank 0 alone writes the run folder and prints
  const Communicator& comm = Communicator::world();
  const bool root = comm.rank() == 0, parallel = comm.distributed();
  Generator init, dropout;
  Setup setup = read_setup(config, request.config, init, dropout, false, resumed.get());
  const std::unique_ptr<Task> task = std::move(setup.task);
  nn::Module& model = task->model();
  if (parallel) {
    if (!task->shards_batches())
      throw std::invalid_argument("task " + task->name() + " does not train data-parallel (on " +
                                  std::to_string(comm.size()) + " MPI ranks): run it without mpirun");
    task->set_shard({comm.rank(), comm.size()});
  }
  const TrainOptions& o = setup.options;
  // fine-tuning: parameters (only) from another run's checkpoint, adapted by the task if it can
  const std::string& init_from = setup.init_from;
  std::unique_ptr<optim::Optimizer> opt = std::move(setup.optimizer);
  config.check_all_used();
  if (!init_from.empty() && !resumed) {
    if (!fs::exists(init_from)) config.fail("train.init_from", init_from + ": no such checkpoint");
    for (const std::string& note : task->load_parameters(read_checkpoint(init_from), init_from))
      std::fprintf(stderr, "%s: %s\n", init_from.c_str(), note.c_str());
  }
  const std::int64_t total = o.schedule.total_steps, per_epoch = task->batches_per_epoch();
  const auto attention_layers = nn::attention_modules(model);  // DropHead's rate is set on each per step
  if (o.drophead.p > 0 && attention_layers.empty())
    config.fail("train.drophead", "the model has no multi-head attention to drop heads from");

  // everything is read and checked before the first file changes
  std::string folder;
  std::int64_t start = 0;
  if (resumed) {
    const Checkpoint& c = *resumed;
    folder = run_folder_of(request.resume);
    if (folder.empty())
      throw std::runtime_error("checkpoint " + request.resume + " is not inside a run folder (<run>/checkpoints/)");
    load_parameters(model, c, request.resume);
    if (c.optimizer != opt->name())
      throw std::runtime_error("checkpoint " + request.resume + " holds " + c.optimizer +
                               " state but the config asks for " + opt->name());
    opt->load_state(c.optimizer_state, c.optimizer_steps);
    if (!c.rng.count("dropout"))
      throw std::runtime_error("checkpoint " + request.resume + " has no dropout generator state");
    dropout.set_state(c.rng.at("dropout"));
    start = c.step;
    if (start >= total)
      throw std::invalid_argument(
          "checkpoint " + request.resume + " is at step " + std::to_string(start) + ", and the run ends at step " +
          std::to_string(total) + " (train.epochs = " + std::to_string(o.epochs) +
          "): nothing is left to train; --set train.epochs=N " + "with N > " + std::to_string(o.epochs) + " trains on");
  } else if (root) {
    folder = new_run_folder(o.run_dir, o.run_name);
  }
  // every rank starts from rank 0's parameters (a new run's initialisation, or the same checkpoint)
  const std::vector<Tensor> params = model.parameters();
  broadcast_parameters(comm, params);
  std::vector<Tensor> buffers;  // running statistics: averaged over the ranks before they are used or saved
  for (const auto& [name, b] : model.named_buffers()) buffers.push_back(b);
  std::unique_ptr<GradientReducer> reducer;
  if (parallel) reducer = std::make_unique<GradientReducer>(comm, params, static_cast<std::size_t>(o.bucket_mb * 1e6));
  std::unique_ptr<CheckpointManager> checkpoints;
  std::unique_ptr<MetricsLog> log;
  if (root) {
    if (resumed) remove_temporaries(folder);  // what a killed run left unfinished (curves.png.tmp ...)
    write_file(folder + "/config.toml", config.resolved());
    checkpoints = std::make_unique<CheckpointManager>(folder + "/checkpoints", static_cast<int>(o.keep_last),
                                                      "val_" + task->primary_metric(), task->higher_is_better());
    for (const std::string& note : checkpoints->notes()) std::fprintf(stderr, "rune train: %s\n", note.c_str());
    // the log so far (a resumed run drops the records past its checkpoint)
    log = std::make_unique<MetricsLog>(folder + "/metrics.jsonl", start);
  }

  const auto make_checkpoint = [&](std::int64_t step, const std::map<std::string, double>& metrics) {
    Checkpoint c;
    c.params = model.state_dict();  // parameters and buffers
    c.optimizer_state = opt->state();
    c.optimizer = opt->name();
    c.optimizer_steps = opt->steps();
    c.step = step;
    c.epoch = step / per_epoch;
    c.rng["dropout"] = dropout.state();
    c.config = config.resolved();
    for (const auto& [k, v] : metrics) c.metrics["val_" + k] = v;
    task->describe(c);
    return c;
  };
  const auto observe = [&] {
    if (request.after_validation) request.after_validation(folder, o.run_name);
  };

  ProgressLine progress(root, 1e300, request.progress);
  progress.line("run folder " + folder + (start > 0 ? ", resuming at step " + std::to_string(start) : "") + "; " +
                std::to_string(model.num_parameters()) + " parameters; " + std::to_string(total) + " steps" +
                (parallel ? "; " + std::to_string(comm.size()) + " MPI ranks, gradients summed in " +
                                std::to_string(reducer->buckets()) + (reducer->buckets() == 1 ? " bucket" : " buckets")
                          : ""));
  g_interrupted = 0;
  const auto previous_handler = std::signal(SIGINT, on_sigint);
  // mpirun turns Ctrl-C into SIGTERM for every rank (then SIGKILL after odls_base_sigkill_timeout
  // seconds): under it, SIGTERM is the interruption
  const auto previous_term = parallel ? std::signal(SIGTERM, on_sigint) : SIG_DFL;
  ThreadGovernor threads(o.adapt_threads && !parallel ? omp_get_max_threads() : 1);
  const auto t0 = std::chrono::steady_clock::now();
  double items_since = 0, rate = 0;
  auto window = t0;
  int status = kExitOk;
  model.train();
  for (std::int64_t step = start; step < total; ++step) {
    const std::int64_t epoch = step / per_epoch;
    const double factor = o.schedule.factor(step);
    opt->set_lr_factor(factor);
    if (o.drophead.p > 0)
      for (auto& [name, attention] : attention_layers) attention->set_drophead(o.drophead.rate(step));
    // ranks draw their own dropout streams, a function of (seed, rank, step) that any resume redraws
    if (parallel) dropout.manual_seed(dropout_seed(setup.seed, comm.rank(), step));
    threads.begin_step();
    const auto step_start = std::chrono::steady_clock::now();
    const BatchLoss bl = task->train_batch(epoch, step % per_epoch);
    double loss = bl.loss.defined() ? bl.loss.item() : 0.0, items = bl.items;
    bool interrupted = g_interrupted != 0;
    if (parallel) {
      // the global batch's mean loss and item count, and whether any rank was interrupted
      double global[3] = {items, bl.loss.defined() ? items * loss : 0.0, interrupted ? 1.0 : 0.0};
      comm.allreduce_sum(global, 3);
      items = global[0];
      loss = global[1] / global[0];
      interrupted = global[2] > 0;
    }
    if (!std::isfinite(loss)) {
      // every rank sees the global loss and stops here; the ranks whose own share was not finite
      // are named (the data at fault is in their shards)
      std::string where;
      if (parallel) {
        const bool mine = bl.loss.defined() && !std::isfinite(bl.loss.item());
        const std::vector<std::string> flags = comm.allgather(mine ? "1" : "0");
        std::vector<std::string> ranks;
        for (std::size_t r = 0; r < flags.size(); ++r)
          if (flags[r] == "1") ranks.push_back(std::to_string(r));
        where = " (not finite on rank" + std::string(ranks.size() == 1 ? " " : "s ") + join(ranks, ", ") + " of " +
                std::to_string(comm.size()) + ")";
      }
      progress.line("loss is " + std::to_string(loss) + " at step " + std::to_string(step + 1) + where +
                    ": stopping. The last good checkpoint is " + folder + "/checkpoints/last.h5" +
                    (fs::exists(folder + "/checkpoints/last.h5") ? "" : " (none was saved yet)"));
      status = kExitNonFinite;
      break;
    }
    if (parallel) {
      // weighted by this rank's share of the items, the ranks' gradients sum to the mean loss's
      reducer->backward(bl.loss.defined() ? bl.loss * (bl.items / items) : Tensor());
    } else {
      bl.loss.backward();
    }
    const double grad_norm = optim::clip_grad_norm_(params, o.clip_norm > 0 ? o.clip_norm : INFINITY);
    opt->step();
    opt->zero_grad();
    items_since += items;
    const auto now = std::chrono::steady_clock::now();
    const std::string changed = threads.end_step(std::chrono::duration<double>(now - step_start).count(), items);
    if (!changed.empty()) progress.line(changed);
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const double span = std::chrono::duration<double>(now - window).count();
    if (span > 0.5 || rate == 0) {
      rate = items_since / std::max(span, 1e-9);
      items_since = 0;
      window = now;
    }
    const double per_step = elapsed / static_cast<double>(step + 1 - start);
    const double lr = o.lr * factor;
    if (root && ((step + 1) % o.log_every == 0 || step + 1 == total)) {
      log->append({{"step", static_cast<double>(step + 1)},
                   {"epoch", static_cast<double>(epoch)},
                   {"loss", loss},
                   {"lr", lr},
                   {"grad_norm", grad_norm},
                   {"items_per_s", rate},
                   {"threads", static_cast<double>(threads.threads())},
                   {"elapsed_s", elapsed}});
    }
    progress.show(status_text(step + 1, total, per_epoch, loss, lr, rate, task->items_name(),
                              per_step * static_cast<double>(total - step - 1)),
                  (step + 1) % o.log_every == 0 || step + 1 == total);
    const bool last = step + 1 == total;
    if ((step + 1) % o.eval_every == 0 || last) {
      if (parallel && !comm.same_everywhere(parameter_digest(params)))
        throw std::logic_error("the ranks' parameters differ at step " + std::to_string(step + 1) +
                               ": data-parallel training has diverged");
      if (parallel) average_buffers(comm, buffers);
      const auto eval_start = std::chrono::steady_clock::now();
      // every rank validates its shard of the split when the task can; otherwise rank 0 alone,
      // while the others wait for whether the run goes on
      std::map<std::string, double> metrics;
      if (root || task->shards_evaluation()) metrics = task->evaluate("val");
      const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
      model.train();
      double finite =
          std::all_of(metrics.begin(), metrics.end(), [](const auto& m) { return std::isfinite(m.second); }) ? 1 : 0;
      comm.broadcast(&finite, sizeof finite, 0);
      if (!finite) {
        // the parameters have gone bad without the training loss showing it yet: no checkpoint of them
        progress.line("validation at step " + std::to_string(step + 1) + " is not finite (" +
                      format_metrics(metrics, "val ") + "): stopping. The last good checkpoint is " + folder +
                      "/checkpoints/last.h5");
        status = kExitNonFinite;
        break;
      }
      if (root) {
        std::vector<std::pair<std::string, double>> rec{{"step", static_cast<double>(step + 1)}};
        for (const auto& [k, v] : metrics) rec.emplace_back("val_" + k, v);
        rec.emplace_back("eval_s", eval_s);  // within elapsed_s: the training alone is their difference
        log->append(rec);
        checkpoints->save(make_checkpoint(step + 1, metrics));
        observe();
      }
      progress.line("step " + std::to_string(step + 1) + ": " + format_metrics(metrics, "val ") + " (" +
                    duration(elapsed) + ")");
    }
    if (interrupted) {
      if (parallel) average_buffers(comm, buffers);
      if (root) {
        checkpoints->save(make_checkpoint(step + 1, {}));
        observe();
      }
      progress.line("interrupted at step " + std::to_string(step + 1) + "; saved " + folder +
                    "/checkpoints/last.h5; continue with: rune train --resume " + folder + "/checkpoints/last.h5");
      status = kExitInterrupted;
      break;
    }
  }
  std::signal(SIGINT, previous_handler);
  if (parallel) std::signal(SIGTERM, previous_term);
  if (status == kExitOk) progress.line("done: " + folder);
  return status;
}

}  // namespace rune::train
