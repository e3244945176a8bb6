#include "cli/trainer.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "autograd/ops.hpp"
#include "cli/config.hpp"
#include "cli/head_analysis.hpp"
#include "cli/output.hpp"
#include "cli/plot.hpp"
#include "cli/task.hpp"
#include "examples/translation/translation_task.hpp"
#include "examples/vit/vit_task.hpp"
#include "nn/attention.hpp"
#include "nn/checkpoint.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"

namespace rune::cli {
namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// Training options from [train] and [run].
struct TrainOptions {
  std::uint64_t seed;
  std::int64_t epochs, eval_every, log_every, keep_last;
  std::string optimizer;
  double lr, weight_decay, beta1, beta2, eps, momentum, clip_norm;
  bool nesterov;
  optim::Schedule schedule;
  optim::DropHeadSchedule drophead;
  std::string run_dir, run_name;
};

TrainOptions read_train_options(Config& c, const std::string& config_path, std::int64_t batches_per_epoch) {
  TrainOptions o;
  o.epochs = c.integer("train.epochs", 10, 1);
  const std::int64_t total = o.epochs * batches_per_epoch;
  o.optimizer = c.string("train.optimizer", "adamw", {"adamw", "adam", "sgd"});
  o.lr = c.number("train.lr", 1e-3, 0.0);
  o.weight_decay = c.number("train.weight_decay", 0.01, 0.0);
  o.beta1 = c.number("train.beta1", 0.9, 0.0, 1.0, true);
  o.beta2 = c.number("train.beta2", 0.98, 0.0, 1.0, true);
  o.eps = c.number("train.eps", 1e-9, 0.0);
  o.momentum = c.number("train.momentum", 0.9, 0.0, 1.0, true);
  o.nesterov = c.boolean("train.nesterov", false);
  o.clip_norm = c.number("train.clip_norm", 1.0, 0.0);
  o.schedule.kind = optim::schedule_from_name(
      c.string("train.schedule", "warmup_cosine", {"constant", "warmup_cosine", "warmup_inverse_sqrt"}));
  o.schedule.warmup_steps = c.integer("train.warmup_steps", std::min<std::int64_t>(100, total / 10), 0);
  o.schedule.total_steps = total;
  o.schedule.min_factor = c.number("train.min_lr_factor", 0.0, 0.0, 1.0);
  try {
    o.schedule.validate();
  } catch (const std::invalid_argument& e) {
    c.fail("train.warmup_steps", e.what());
  }
  o.drophead.p = c.number("train.drophead", 0.0, 0.0, 1.0, true);
  o.drophead.scheduled = c.string("train.drophead_schedule", "constant", {"constant", "scheduled"}) == "scheduled";
  o.drophead.warmup_steps = c.integer("train.drophead_warmup_steps", o.schedule.warmup_steps, 0);
  o.drophead.total_steps = total;
  if (o.drophead.scheduled && o.drophead.warmup_steps >= total)
    c.fail("train.drophead_warmup_steps", "must be below the run's " + std::to_string(total) + " steps");
  o.eval_every = c.integer("train.eval_every", batches_per_epoch, 1);
  o.log_every = c.integer("train.log_every", 10, 1);
  o.keep_last = c.integer("train.keep_last", 3, 1);
  o.run_dir = c.string("run.dir", "runs");
  o.run_name = c.string("run.name", fs::path(config_path).stem().string());
  return o;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainOptions& o, const Task& task, nn::Module& model) {
  auto groups = optim::param_groups_by_weight_decay(model.named_parameters(), o.lr, o.weight_decay,
                                                    task.no_decay_patterns());
  if (o.optimizer == "sgd") {
    optim::SGDOptions s;
    s.momentum = o.momentum;
    s.nesterov = o.nesterov;
    return std::make_unique<optim::SGD>(std::move(groups), s);
  }
  optim::AdamOptions a;
  a.beta1 = o.beta1;
  a.beta2 = o.beta2;
  a.eps = o.eps;
  a.decoupled_weight_decay = o.optimizer == "adamw";
  return std::make_unique<optim::Adam>(std::move(groups), a);
}

// A new folder <dir>/<name>, or <name>-2, -3 ... if taken.
std::string new_run_folder(const std::string& dir, const std::string& name) {
  fs::path p = fs::path(dir) / name;
  for (int i = 2; fs::exists(p); ++i) p = fs::path(dir) / (name + "-" + std::to_string(i));
  fs::create_directories(p / "checkpoints");
  return p.string();
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string json_line(const std::vector<std::pair<std::string, double>>& fields) {
  std::string s = "{";
  for (const auto& [k, v] : fields) s += (s.size() > 1 ? ", \"" : "\"") + k + "\": " + json_number(v);
  return s + "}\n";
}

// The flat {"key": number, ...} objects metrics.jsonl holds.
std::map<std::string, double> parse_json_line(const std::string& line) {
  std::map<std::string, double> out;
  std::size_t at = 0;
  while ((at = line.find('"', at)) != std::string::npos) {
    const std::size_t end = line.find('"', at + 1);
    const std::size_t colon = line.find(':', end);
    if (end == std::string::npos || colon == std::string::npos) break;
    const std::string key = line.substr(at + 1, end - at - 1);
    const char* start = line.c_str() + colon + 1;
    char* stop = nullptr;
    const double v = std::strtod(start, &stop);
    out[key] = stop == start ? NAN : v;
    at = colon + 1;
  }
  return out;
}

// The live status line: epoch, step, a bar, loss, lr, throughput and time left.
class Progress {
 public:
  Progress(std::int64_t total, std::int64_t per_epoch, std::string items, bool live)
      : total_(total), per_epoch_(per_epoch), items_(std::move(items)), live_(live && ::isatty(2)) {}
  void update(std::int64_t step, double loss, double lr, double items_per_s, double left_s, bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (live_ ? !force && now - last_ < std::chrono::milliseconds(200) : !force) return;
    last_ = now;
    const int width = 24;
    const int filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(step) / static_cast<double>(total_));
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
    std::fprintf(stderr, "%sepoch %lld/%lld step %lld/%lld [%s] loss %.4f lr %.2e %.0f %s/s left %s%s",
                 live_ ? "\r" : "", static_cast<long long>((step - 1) / per_epoch_ + 1),
                 static_cast<long long>((total_ + per_epoch_ - 1) / per_epoch_), static_cast<long long>(step),
                 static_cast<long long>(total_), bar.c_str(), loss, lr, items_per_s, items_.c_str(),
                 duration(left_s).c_str(), live_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }
  void line(const std::string& text) {
    std::fprintf(stderr, "%s%s\n", live_ ? "\r\033[K" : "", text.c_str());
    std::fflush(stderr);
  }

 private:
  std::int64_t total_, per_epoch_;
  std::string items_;
  bool live_;
  std::chrono::steady_clock::time_point last_{};
};

std::string format_metrics(const std::map<std::string, double>& m, const std::string& prefix) {
  std::string s;
  for (const auto& [k, v] : m) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s%s %.4f", s.empty() ? "" : ", ", prefix.c_str(), k.c_str(), v);
    s += buf;
  }
  return s;
}

// A checkpoint with the task rebuilt from its own config (plus `sets`) and its parameters loaded.
// Never moved once made: the task's model keeps a pointer to `dropout`.
struct LoadedTask {
  nn::Checkpoint checkpoint;
  Generator init, dropout;
  std::unique_ptr<Task> task;
};

std::unique_ptr<LoadedTask> load_task(const std::string& path, const std::vector<std::string>& sets = {}) {
  auto loaded = std::make_unique<LoadedTask>();
  loaded->checkpoint = nn::read_checkpoint(path);
  Config config = Config::parse(loaded->checkpoint.config, path + " (its config)");
  for (const std::string& s : sets) config.set(s);
  const auto seed = static_cast<std::uint64_t>(config.integer("seed", 0, 0));
  loaded->init.manual_seed(seed);
  loaded->dropout.manual_seed(seed);
  loaded->task = make_task(config, {seed, &loaded->init, &loaded->dropout});
  for (const std::string& note : loaded->task->load_parameters(loaded->checkpoint, path))
    std::fprintf(stderr, "%s: %s\n", path.c_str(), note.c_str());
  return loaded;
}

examples::TranslationTask& translation_task(const LoadedTask& loaded, const std::string& path) {
  auto* translation = dynamic_cast<examples::TranslationTask*>(loaded.task.get());
  if (!translation) throw std::runtime_error("checkpoint " + path + " is not a translation model");
  return *translation;
}

}  // namespace

// ------------------------------------------------------------------------- train

int train(const TrainRequest& request) {
  Config config = Config::load(request.config);
  for (const std::string& s : request.sets) config.set(s);
  const auto seed = static_cast<std::uint64_t>(config.integer("seed", 0, 0));
  Generator init(seed), dropout(seed ^ 0x5DEECE66DULL);
  const std::unique_ptr<Task> task = make_task(config, {seed, &init, &dropout});
  nn::Module& model = task->model();
  const TrainOptions o = read_train_options(config, request.config, task->batches_per_epoch());
  // fine-tuning: parameters (only) from another run's checkpoint, adapted by the task if it can
  const std::string init_from = config.string("train.init_from", "");
  config.check_all_used();
  if (!init_from.empty() && request.resume.empty()) {
    if (!fs::exists(init_from)) config.fail("train.init_from", init_from + ": no such checkpoint");
    for (const std::string& note : task->load_parameters(nn::read_checkpoint(init_from), init_from))
      std::fprintf(stderr, "%s: %s\n", init_from.c_str(), note.c_str());
  }
  const std::int64_t total = o.schedule.total_steps, per_epoch = task->batches_per_epoch();
  const auto attention_layers = nn::attention_modules(model);  // DropHead's rate is set on each per step
  if (o.drophead.p > 0 && attention_layers.empty())
    config.fail("train.drophead", "the model has no multi-head attention to drop heads from");

  std::unique_ptr<optim::Optimizer> opt = make_optimizer(o, *task, model);
  std::string folder;
  std::int64_t start = 0;
  if (!request.resume.empty()) {
    const nn::Checkpoint c = nn::read_checkpoint(request.resume);
    nn::load_parameters(model, c, request.resume);
    opt->load_state(c.optimizer_state, c.optimizer_steps);
    if (c.optimizer != opt->name())
      throw std::runtime_error("checkpoint " + request.resume + " holds " + c.optimizer + " state but the config asks for " +
                               opt->name());
    if (!c.rng.count("dropout")) throw std::runtime_error("checkpoint " + request.resume + " has no dropout generator state");
    dropout.set_state(c.rng.at("dropout"));
    start = c.step;
    folder = fs::path(request.resume).parent_path().parent_path().string();  // <run>/checkpoints/x.h5
    if (!fs::exists(fs::path(folder) / "config.toml"))
      throw std::runtime_error("checkpoint " + request.resume + " is not inside a run folder (<run>/checkpoints/)");
  } else {
    folder = new_run_folder(o.run_dir, o.run_name);
  }
  write_file(folder + "/config.toml", config.resolved());
  nn::CheckpointManager checkpoints(folder + "/checkpoints", static_cast<int>(o.keep_last), "val_" + task->primary_metric(),
                                    task->higher_is_better());

  // the log so far (a resumed run drops records past its checkpoint), and the curves from it
  const std::string log_path = folder + "/metrics.jsonl";
  Series loss_series{"train", {}}, val_loss{"val loss", {}};
  std::map<std::string, Series> val_series;
  std::string kept;
  if (start > 0 && fs::exists(log_path)) {
    std::ifstream in(log_path);
    for (std::string line; std::getline(in, line);) {
      const auto rec = parse_json_line(line);
      if (!rec.count("step") || rec.at("step") > static_cast<double>(start)) continue;
      kept += line + "\n";
      for (const auto& [k, v] : rec) {
        if (k == "loss") loss_series.points.emplace_back(rec.at("step"), v);
        if (k == "val_loss") val_loss.points.emplace_back(rec.at("step"), v);
        else if (k.rfind("val_", 0) == 0) val_series[k].points.emplace_back(rec.at("step"), v);
      }
    }
  }
  write_file(log_path, kept);
  std::ofstream log(log_path, std::ios::app);

  const auto make_checkpoint = [&](std::int64_t step, const std::map<std::string, double>& metrics) {
    nn::Checkpoint c;
    c.params = model.named_parameters();
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
  const auto draw = [&] {
    std::vector<Series> metrics;
    for (const auto& [k, s] : val_series) metrics.push_back({k.substr(4), s.points});
    plot_curves(folder + "/curves.png", o.run_name, loss_series, val_loss, metrics);
  };

  Progress progress(total, per_epoch, task->items_name(), request.progress);
  progress.line("run folder " + folder + (start > 0 ? ", resuming at step " + std::to_string(start) : "") + "; " +
                std::to_string(model.num_parameters()) + " parameters; " + std::to_string(total) + " steps");
  g_interrupted = 0;
  const auto previous_handler = std::signal(SIGINT, on_sigint);
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
    const BatchLoss bl = task->train_batch(epoch, step % per_epoch);
    const double loss = bl.loss.item();
    if (!std::isfinite(loss)) {
      progress.line("loss is " + std::to_string(loss) + " at step " + std::to_string(step + 1) +
                    ": stopping. The last good checkpoint is " + folder + "/checkpoints/last.h5" +
                    (fs::exists(folder + "/checkpoints/last.h5") ? "" : " (none was saved yet)"));
      status = kExitNonFinite;
      break;
    }
    bl.loss.backward();
    const double grad_norm =
        optim::clip_grad_norm_(model.parameters(), o.clip_norm > 0 ? o.clip_norm : INFINITY);
    opt->step();
    opt->zero_grad();
    items_since += bl.items;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const double span = std::chrono::duration<double>(now - window).count();
    if (span > 0.5 || rate == 0) {
      rate = items_since / std::max(span, 1e-9);
      items_since = 0;
      window = now;
    }
    const double per_step = elapsed / static_cast<double>(step + 1 - start);
    const double lr = o.lr * factor;
    if ((step + 1) % o.log_every == 0 || step + 1 == total) {
      log << json_line({{"step", static_cast<double>(step + 1)}, {"epoch", static_cast<double>(epoch)}, {"loss", loss},
                        {"lr", lr}, {"grad_norm", grad_norm}, {"items_per_s", rate}, {"elapsed_s", elapsed}});
      log.flush();
      loss_series.points.emplace_back(static_cast<double>(step + 1), loss);
    }
    progress.update(step + 1, loss, lr, rate, per_step * static_cast<double>(total - step - 1),
                    (step + 1) % o.log_every == 0 || step + 1 == total);
    const bool last = step + 1 == total;
    if ((step + 1) % o.eval_every == 0 || last) {
      const std::map<std::string, double> metrics = task->evaluate("val");
      model.train();
      if (!std::all_of(metrics.begin(), metrics.end(), [](const auto& m) { return std::isfinite(m.second); })) {
        // the parameters have gone bad without the training loss showing it yet: no checkpoint of them
        progress.line("validation at step " + std::to_string(step + 1) + " is not finite (" + format_metrics(metrics, "val ") +
                      "): stopping. The last good checkpoint is " + folder + "/checkpoints/last.h5");
        status = kExitNonFinite;
        break;
      }
      std::vector<std::pair<std::string, double>> rec{{"step", static_cast<double>(step + 1)}};
      for (const auto& [k, v] : metrics) {
        rec.emplace_back("val_" + k, v);
        if (k == "loss") val_loss.points.emplace_back(static_cast<double>(step + 1), v);
        else val_series["val_" + k].points.emplace_back(static_cast<double>(step + 1), v);
      }
      log << json_line(rec);
      log.flush();
      checkpoints.save(make_checkpoint(step + 1, metrics));
      draw();
      progress.line("step " + std::to_string(step + 1) + ": " + format_metrics(metrics, "val ") + " (" +
                    duration(elapsed) + ")");
    }
    if (g_interrupted) {
      checkpoints.save(make_checkpoint(step + 1, {}));
      draw();
      progress.line("interrupted at step " + std::to_string(step + 1) + "; saved " + folder +
                    "/checkpoints/last.h5; continue with: rune train " + request.config + " --resume " + folder +
                    "/checkpoints/last.h5");
      status = kExitInterrupted;
      break;
    }
  }
  std::signal(SIGINT, previous_handler);
  if (status == kExitOk) progress.line("done: " + folder);
  return status;
}

// ------------------------------------------------------------------------- eval, info

int evaluate(const EvalRequest& request) {
  const std::string& checkpoint = request.checkpoint;
  const std::string& split = request.split;
  const std::unique_ptr<LoadedTask> loaded = load_task(checkpoint, request.sets);
  const nn::Checkpoint& c = loaded->checkpoint;
  const std::map<std::string, double> metrics = loaded->task->evaluate(split);
  std::printf("%s, step %lld, %s split:\n", checkpoint.c_str(), static_cast<long long>(c.step), split.c_str());
  std::vector<std::pair<std::string, double>> rec{{"step", static_cast<double>(c.step)}};
  for (const auto& [k, v] : metrics) {
    std::printf("  %-16s %.6f\n", k.c_str(), v);
    rec.emplace_back(k, v);
  }
  const fs::path run = fs::path(checkpoint).parent_path().parent_path();
  const bool in_run = fs::exists(run / "config.toml");
  // reports go to --out, else next to the run's other files, else here
  const std::string out = !request.out_dir.empty() ? request.out_dir : in_run ? run.string() : ".";
  fs::create_directories(out);
  if (!request.out_dir.empty() || in_run) write_file((fs::path(out) / ("eval-" + split + ".json")).string(), json_line(rec));
  for (const std::string& file : loaded->task->write_reports(split, out)) std::printf("wrote %s\n", file.c_str());
  if (!request.predictions.empty()) {
    loaded->task->write_predictions(request.predictions);
    std::printf("wrote %s\n", request.predictions.c_str());
  }
  return kExitOk;
}

int translate(const std::string& checkpoint, const std::vector<std::string>& sentences, bool scores) {
  const std::unique_ptr<LoadedTask> loaded = load_task(checkpoint);
  examples::TranslationTask& translation = translation_task(*loaded, checkpoint);
  std::vector<std::string> inputs = sentences;
  if (inputs.empty())
    for (std::string line; std::getline(std::cin, line);) inputs.push_back(line);
  const std::vector<std::string> out = translation.translate(inputs);
  std::vector<double> logp;
  if (scores) {
    std::vector<examples::Pair> pairs;
    for (std::size_t i = 0; i < out.size(); ++i) pairs.push_back({inputs[i], out[i]});
    logp = translation.log_probability(pairs);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::printf(sentences.empty() ? "%s%s" : "%s -> %s", sentences.empty() ? "" : inputs[i].c_str(), out[i].c_str());
    if (scores) std::printf("\t%.9g", logp[i]);
    std::printf("\n");
  }
  return kExitOk;
}

int attention(const std::string& checkpoint, const std::string& sentence, const std::string& out_dir) {
  const std::unique_ptr<LoadedTask> loaded = load_task(checkpoint);
  examples::TranslationTask& translation = translation_task(*loaded, checkpoint);
  const examples::TranslationTask::AttentionMaps maps = translation.attention_maps(sentence);
  fs::create_directories(out_dir);
  std::vector<Heatmap> heatmaps;
  std::ostringstream csv;
  csv << "kind,layer,head,query,query_token,key,key_token,weight\n";
  const auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::int64_t heads = 1;
  for (const auto& l : maps.layers) {
    const Tensor w = to_dtype(l.weights, DType::float64).contiguous();
    const std::int64_t H = w.size(0), Tq = w.size(1), Tk = w.size(2);
    heads = std::max(heads, H);
    const std::vector<std::string>& rows = l.kind == "encoder self" ? maps.source : maps.target;
    const std::vector<std::string>& cols = l.kind == "decoder self" ? maps.target : maps.source;
    for (std::int64_t h = 0; h < H; ++h) {
      Heatmap m{l.kind + " " + std::to_string(l.layer) + ", head " + std::to_string(h), {}, rows, cols};
      for (std::int64_t q = 0; q < Tq; ++q) {
        m.weights.emplace_back(w.data<double>() + (h * Tq + q) * Tk, w.data<double>() + (h * Tq + q + 1) * Tk);
        for (std::int64_t k = 0; k < Tk; ++k)
          csv << quoted(l.kind) << ',' << l.layer << ',' << h << ',' << q << ',' << quoted(rows[q]) << ',' << k << ','
              << quoted(cols[k]) << ',' << json_number(w.data<double>()[(h * Tq + q) * Tk + k]) << '\n';
      }
      heatmaps.push_back(std::move(m));
    }
  }
  const std::string png = out_dir + "/multi_head_attention_map.png";
  plot_attention(png, "\"" + sentence + "\" -> \"" + maps.translation + "\"", heatmaps, static_cast<int>(heads));
  write_file(out_dir + "/attention_weights.csv", csv.str());
  std::printf("%s -> %s\nwrote %s and %s/attention_weights.csv\n", sentence.c_str(), maps.translation.c_str(), png.c_str(),
              out_dir.c_str());
  return kExitOk;
}

int image_attention(const std::string& checkpoint, const std::string& image, const std::string& out_dir) {
  const std::unique_ptr<LoadedTask> loaded = load_task(checkpoint);
  auto* vit = dynamic_cast<examples::ViTTask*>(loaded->task.get());
  if (!vit) throw std::runtime_error("checkpoint " + checkpoint + " is not a ViT model (attention --image needs one)");
  const examples::ViTTask::ImageAttention a = vit->image_attention(image);
  fs::create_directories(out_dir);
  const std::int64_t N = a.grid * a.grid;
  const auto name = [&](std::int64_t k) { return a.classes[static_cast<std::size_t>(k)]; };
  char title[256];
  std::snprintf(title, sizeof title, "%s%s: predicted %s (%.1f%%)", image.c_str(),
                a.label >= 0 ? (" (" + name(a.label) + ")").c_str() : "", name(a.predicted).c_str(), 100 * a.confidence);
  std::vector<ImageOverlay> heads;
  std::ostringstream csv;
  csv << "layer,head,patch,patch_row,patch_column,weight\n";
  std::int64_t H = 1;
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const Tensor w = to_dtype(a.layers[l], DType::float64).contiguous();  // (H, 1+N, 1+N)
    H = w.size(0);
    for (std::int64_t h = 0; h < H; ++h) {
      const double* row = w.data<double>() + h * (1 + N) * (1 + N);  // the class token's query row
      ImageOverlay o{"layer " + std::to_string(l) + ", head " + std::to_string(h), std::vector<double>(row + 1, row + 1 + N)};
      for (std::int64_t n = 0; n < N; ++n)
        csv << l << ',' << h << ',' << n << ',' << n / a.grid << ',' << n % a.grid << ',' << json_number(row[1 + n]) << '\n';
      heads.push_back(std::move(o));
    }
  }
  for (std::int64_t n = 0; n < N; ++n)
    csv << "rollout,," << n << ',' << n / a.grid << ',' << n % a.grid << ',' << json_number(a.rollout[static_cast<std::size_t>(n)]) << '\n';
  const std::string map_png = out_dir + "/vit_attention_map.png", rollout_png = out_dir + "/attention_rollout.png";
  plot_image_attention(map_png, std::string(title) + "; class token -> patches, each panel scaled to its maximum", a.image,
                       static_cast<int>(a.channels), static_cast<int>(a.size), static_cast<int>(a.grid), heads, static_cast<int>(H));
  std::vector<double> last_mean(static_cast<std::size_t>(N), 0.0);
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t n = 0; n < N; ++n)
      last_mean[static_cast<std::size_t>(n)] += heads[heads.size() - static_cast<std::size_t>(H - h)].heat[static_cast<std::size_t>(n)] / static_cast<double>(H);
  plot_image_attention(rollout_png, title, a.image, static_cast<int>(a.channels), static_cast<int>(a.size), static_cast<int>(a.grid),
                       {{"image", {}}, {"last layer, mean of heads", last_mean}, {"rollout over all layers", a.rollout}}, 3);
  write_file(out_dir + "/cls_attention.csv", csv.str());
  std::printf("%s\nwrote %s, %s and %s/cls_attention.csv\n", title, map_png.c_str(), rollout_png.c_str(), out_dir.c_str());
  return kExitOk;
}

int heads(const HeadsRequest& request) {
  const std::unique_ptr<LoadedTask> loaded = load_task(request.checkpoint, request.sets);
  HeadAnalysis analysis = analyse_heads(*loaded->task, request.analysis);
  const std::string& split = request.analysis.split;
  if (request.prune) prune_heads(*loaded->task, analysis);
  const fs::path run = fs::path(request.checkpoint).parent_path().parent_path();
  const std::string out = !request.out_dir.empty()              ? request.out_dir
                          : fs::exists(run / "config.toml") ? (run / ("heads-" + split)).string()
                                                                : "heads-" + split;
  const std::string title = fs::path(request.checkpoint).filename().string() + " (step " + std::to_string(loaded->checkpoint.step) + ")";

  std::printf("%s, %s split, %lld examples, mean loss %.4f\n", request.checkpoint.c_str(), split.c_str(),
              static_cast<long long>(analysis.examples), analysis.loss);
  std::size_t width = 6;
  for (const ModuleHeads& m : analysis.modules) width = std::max(width, head_module_label(m.path).size());
  for (const ModuleHeads& m : analysis.modules) {
    std::printf("  %-*s", static_cast<int>(width), head_module_label(m.path).c_str());
    for (const HeadResult& r : m.heads)
      std::printf("  %.4s %.2f%s", pattern_name(r.stats.pattern).c_str(), r.importance, r.dead ? "!" : " ");
    std::printf("\n");
  }
  std::printf("  (per head: pattern class, importance normalised per module; ! marks a dead head)\n");
  std::printf("redundant pairs (JS < %g): %zu; dead heads: ", request.analysis.redundant_js, analysis.redundant.size());
  std::int64_t dead = 0;
  for (const ModuleHeads& m : analysis.modules)
    for (const HeadResult& r : m.heads) dead += r.dead;
  std::printf("%lld\n", static_cast<long long>(dead));
  for (const auto& [name, can] : analysis.prunable)
    std::printf("pruning: %lld heads can go before %s drops by more than one point (%.4f at first)\n", static_cast<long long>(can),
                name.c_str(), analysis.pruning.front().metrics.at(name));
  for (const std::string& file : write_head_report(analysis, out, title)) std::printf("wrote %s\n", file.c_str());
  return kExitOk;
}

int info(const std::string& checkpoint) {
  const nn::Checkpoint c = nn::read_checkpoint(checkpoint);
  std::printf("%s: %s version %lld\n", checkpoint.c_str(), nn::kCheckpointFormat, static_cast<long long>(nn::kCheckpointVersion));
  std::printf("step %lld, epoch %lld, optimizer %s (%lld steps)\n", static_cast<long long>(c.step),
              static_cast<long long>(c.epoch), c.optimizer.empty() ? "none" : c.optimizer.c_str(),
              static_cast<long long>(c.optimizer_steps));
  if (!c.metrics.empty()) std::printf("metrics: %s\n", format_metrics(c.metrics, "").c_str());
  for (const auto& [k, v] : c.meta_strings) std::printf("meta %s: %zu entries\n", k.c_str(), v.size());
  for (const auto& [k, v] : c.meta_numbers) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + json_number(x);
    std::printf("meta %s: [%s]\n", k.c_str(), s.c_str());
  }
  std::size_t width = 9;
  for (const auto& [name, t] : c.params) width = std::max(width, name.size());
  std::printf("\n%-*s  %-16s %10s\n", static_cast<int>(width), "parameter", "shape", "count");
  std::int64_t total = 0;
  for (const auto& [name, t] : c.params) {
    std::printf("%-*s  %-16s %10lld\n", static_cast<int>(width), name.c_str(), shape_str(t.shape()).c_str(),
                static_cast<long long>(t.numel()));
    total += t.numel();
  }
  std::printf("%-*s  %-16s %10lld\n\nconfig:\n%s", static_cast<int>(width), "total", "", static_cast<long long>(total),
              c.config.c_str());
  return kExitOk;
}

}  // namespace rune::cli
