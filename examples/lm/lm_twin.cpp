// bench_lm_twin: what bench/torch_lm.py, the PyTorch twin of an `lm` run, needs from Runestone,
// and Runestone's side of the step-time comparison. The task is rebuilt from a checkpoint of the
// run (its config and vocabulary), reading the run's data again.
//
//   bench_lm_twin data CKPT DIR   writes DIR/{train,val,test}.npy (the token streams, int32),
//                                 DIR/{val,test}_chars.npy (the characters each token stands for,
//                                 uint8) and DIR/offsets.npy (int64, steps x batch_size: the start of
//                                 every training window of the run, in the order it trains on them)
//   bench_lm_twin step CKPT       one training step of the run's model (a fresh initialisation from
//                                 its seed) on its first batches, as the trainer takes it: forward,
//                                 backward, clipping, AdamW; prints the median time and tokens/s
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "bench/timing.hpp"
#include "examples/lm/lm_task.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/trainer.hpp"

using namespace rune;

namespace {

// A NumPy .npy file (format 1.0): the magic, a header of the dtype and shape, the little-endian data.
template <class T>
void write_npy(const std::string& path, const char* dtype, const std::vector<T>& data,
               std::vector<std::int64_t> shape) {
  std::string dims;
  for (const std::int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // (n,) but (a, b)
  std::string header = "{'descr': '" + std::string(dtype) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  const std::uint16_t length = static_cast<std::uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&length), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(T)));
  if (!out) throw std::runtime_error(path + ": cannot be written");
}

struct Run {
  train::Checkpoint checkpoint;
  std::optional<train::Config> config;  // the run's, as its checkpoint holds it
  Generator init, dropout;
  std::unique_ptr<train::Task> task;
  std::int64_t epochs = 0;
};

// The run's task from its checkpoint, with its data; parameters as the run began (its seed).
std::unique_ptr<Run> rebuild(const std::string& path) {
  auto run = std::make_unique<Run>();
  run->checkpoint = train::read_checkpoint(path);
  run->config.emplace(train::Config::parse(run->checkpoint.config, path + " (its config)"));
  train::Config& config = *run->config;
  const std::uint64_t seed = train::read_seed(config);
  run->init.manual_seed(seed);
  run->dropout.manual_seed(seed);
  train::TaskContext context{seed, &run->init, &run->dropout};
  context.checkpoint = &run->checkpoint;
  run->task = train::make_task(config, context);
  if (!dynamic_cast<examples::LmTask*>(run->task.get()))
    throw std::runtime_error(path + ": not a checkpoint of the lm task");
  run->epochs = config.integer("train.epochs", 10, {1}, "");
  return run;
}

int data(const std::string& path, const std::string& dir) {
  const auto run = rebuild(path);
  const auto& lm = dynamic_cast<const examples::LmTask&>(*run->task);
  for (const std::string split : {"train", "val", "test"}) {
    const examples::TokenStream& s = lm.stream(split);
    const std::vector<std::int32_t> ids(s.ids.begin(), s.ids.end());
    write_npy(dir + "/" + split + ".npy", "<i4", ids, {static_cast<std::int64_t>(ids.size())});
    if (split != "train")
      write_npy(dir + "/" + split + "_chars.npy", "|u1", s.chars, {static_cast<std::int64_t>(s.chars.size())});
  }
  const std::int64_t per_epoch = run->task->batches_per_epoch(), steps = run->epochs * per_epoch;
  std::vector<std::int64_t> offsets;
  for (std::int64_t step = 0; step < steps; ++step) {
    const std::vector<std::int64_t> o = lm.window_offsets(step / per_epoch, step % per_epoch);
    offsets.insert(offsets.end(), o.begin(), o.end());
  }
  const auto batch = static_cast<std::int64_t>(offsets.size()) / steps;
  write_npy(dir + "/offsets.npy", "<i8", offsets, {steps, batch});
  std::printf("%s: %zu training, %zu validation, %zu test tokens; %lld steps of %lld windows\n", dir.c_str(),
              lm.stream("train").ids.size(), lm.stream("val").ids.size(), lm.stream("test").ids.size(),
              static_cast<long long>(steps), static_cast<long long>(batch));
  return 0;
}

int step(const std::string& path) {
  const auto run = rebuild(path);
  train::Task& task = *run->task;
  // AdamW as the trainer builds it from the run's config (lr, weight decay, betas, eps, no-decay names)
  train::Config& config = *run->config;
  const double lr = config.number("train.lr", 1e-3, {0.0}, ""),
               wd = config.number("train.weight_decay", 0.01, {0.0}, "");
  optim::AdamOptions adam;
  adam.beta1 = config.number("train.beta1", 0.9, {0.0}, "");
  adam.beta2 = config.number("train.beta2", 0.98, {0.0}, "");
  adam.eps = config.number("train.eps", 1e-9, {0.0}, "");
  optim::AdamW opt(
      optim::param_groups_by_weight_decay(task.model().named_parameters(), lr, wd, task.no_decay_patterns()), adam);
  const double clip = config.number("train.clip_norm", 1.0, {0.0}, "");
  const std::vector<Tensor> params = task.model().parameters();
  task.model().train();
  std::int64_t index = 0;
  double tokens = 0;
  const double s = bench::median_seconds(
      [&] {
        const train::BatchLoss bl = task.train_batch(0, index++ % task.batches_per_epoch());
        bl.loss.backward();
        optim::clip_grad_norm_(params, clip);
        opt.step();
        opt.zero_grad();
        tokens = bl.items;
      },
      10.0);
  bench::report("lm train step", s, tokens / s, "tokens/s", {0, true});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "data" && argc == 4) return data(argv[2], argv[3]);
    if (mode == "step" && argc == 3) return step(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lm_twin: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bench_lm_twin data CKPT DIR | bench_lm_twin step CKPT\n");
  return 2;
}
