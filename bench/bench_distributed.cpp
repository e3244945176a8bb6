// Data-parallel training steps (train/distributed.hpp): the translation and ViT steps of
// bench_translation and bench_vit, each rank computing its shard of the global batch and the
// GradientReducer summing the gradients in buckets during backward. bench/distributed.sh runs it
// on 1 rank x 2 threads, 2 ranks x 1 thread and 1 rank x 1 thread, and joins the tables.
//
//   bench_distributed [--bucket-mb X ...]   (default: 25 and 1)
//
// Per case, the step's median over the ranks' slowest (each step starts after a barrier), and on
// '#' lines what the allreduces cost:
//   alone     the buckets' allreduces with nothing else running (reducer.backward of no loss):
//             the communication a step needs
//   waited    the time a rank spends after its backward, waiting for reductions still running:
//             the ranks' skew (the other rank's backward still running) plus
//   exposed   the time from the last rank's end of backward to the last sum: the communication
//             that backward did not hide
//   overlap   1 - exposed / alone
// With one rank there is no communication, and the reducer is not used.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/blas.hpp"
#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "bench/models.hpp"
#include "bench/timing.hpp"
#include "optim/adam.hpp"
#include "train/distributed.hpp"
#include "train/task.hpp"

using namespace rune;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double step = 0, waited = 0, exposed = 0, skew = 0, alone = 0;
};

// `loss(begin, end)` builds this rank's loss on rows [begin, end) of a batch of `rows`.
Timing time_steps(const train::Communicator& comm, nn::Module& model, optim::Optimizer& opt, std::int64_t rows,
                  double bucket_mb, const std::function<Tensor(std::int64_t, std::int64_t)>& loss) {
  const auto [begin, end] = train::Shard{comm.rank(), comm.size()}.rows(rows);
  const double weight = static_cast<double>(end - begin) / static_cast<double>(rows);
  const std::vector<Tensor> params = model.parameters();
  train::broadcast_parameters(comm, params);
  std::unique_ptr<train::GradientReducer> reducer;
  if (comm.distributed())
    reducer = std::make_unique<train::GradientReducer>(comm, params, static_cast<std::size_t>(bucket_mb * 1e6));
  std::vector<double> steps, waits, exposed, skews;
  const double budget_end = now() + 6.0;
  for (int i = 0;; ++i) {
    comm.barrier();
    const double t0 = now();
    const Tensor l = loss(begin, end);
    if (reducer) {
      reducer->backward(l * weight);
    } else {
      l.backward();
    }
    opt.step();
    opt.zero_grad();
    // every rank's step, wait, end of backward and end of reduction (one machine: one clock)
    constexpr std::size_t kFields = 4;
    std::vector<double> all(kFields * static_cast<std::size_t>(comm.size()), 0.0);
    double* mine = all.data() + kFields * static_cast<std::size_t>(comm.rank());
    mine[0] = now() - t0;
    if (reducer) {
      mine[1] = reducer->wait_seconds();
      mine[2] = reducer->backward_ended_at() - t0;
      mine[3] = reducer->reduced_at() - t0;
    }
    comm.allreduce_sum(all.data(), all.size());
    double step = 0, wait = 0, last_backward = 0, first_backward = 1e300, last_reduced = 0;
    for (std::size_t r = 0; r < static_cast<std::size_t>(comm.size()); ++r) {
      const double* f = all.data() + kFields * r;
      step = std::max(step, f[0]);
      wait = std::max(wait, f[1]);
      last_backward = std::max(last_backward, f[2]);
      first_backward = std::min(first_backward, f[2]);
      last_reduced = std::max(last_reduced, f[3]);
    }
    if (i >= 3) {  // warm-up: page faults, threads, caches
      steps.push_back(step);
      waits.push_back(wait);
      exposed.push_back(std::max(0.0, last_reduced - last_backward));
      skews.push_back(last_backward - first_backward);
    }
    double go_on = (steps.size() < 10 || (now() < budget_end && steps.size() < 200)) ? 1 : 0;
    comm.broadcast(&go_on, sizeof go_on, 0);  // rank 0's clock decides, so that all stop together
    if (!go_on) break;
  }
  Timing t{median(steps), median(waits), median(exposed), median(skews), 0};
  if (reducer) {  // the communication alone: the buckets' allreduces of the gradients there
    std::vector<double> alone;
    for (int i = 0; i < 13; ++i) {
      comm.barrier();
      reducer->backward(Tensor());
      if (i >= 3) alone.push_back(reducer->backward_seconds());
    }
    t.alone = median(alone);
    if (comm.rank() == 0)
      std::printf("# %zu buckets of up to %g MB for %.2f MB of gradients\n", reducer->buckets(), bucket_mb,
                  4e-6 * static_cast<double>(model.num_parameters()));
  }
  return t;
}

void report(const train::Communicator& comm, const std::string& name, const Timing& t, double items, const char* unit,
            double bucket_mb) {
  if (comm.rank() != 0) return;
  const char* threads = std::getenv("OMP_NUM_THREADS");
  const std::string setup = std::to_string(comm.size()) + " rank" + (comm.size() > 1 ? "s" : "") + " x " +
                            (threads ? threads : "?") + " thread" + (threads && std::string(threads) == "1" ? "" : "s");
  char bucket[32] = "";
  if (comm.distributed()) std::snprintf(bucket, sizeof bucket, ", buckets %g MB", bucket_mb);
  bench::report(name + bucket, t.step, items / t.step, unit);
  if (comm.distributed())
    std::printf(
        "# %s%s, %s: allreduce alone %.2f ms a step (%.1f%% of the step); waited after backward %.2f ms, "
        "of which the ranks' skew %.2f ms and the reductions after the last backward %.2f ms: overlap "
        "%.0f%%\n",
        name.c_str(), bucket, setup.c_str(), 1e3 * t.alone, 100 * t.alone / t.step, 1e3 * t.waited, 1e3 * t.skew,
        1e3 * t.exposed, t.alone > 0 ? 100 * std::clamp(1 - t.exposed / t.alone, 0.0, 1.0) : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> buckets;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--bucket-mb") buckets.push_back(std::atof(argv[i + 1]));
  if (buckets.empty()) buckets = {25, 1};
  const train::Communicator& comm = train::Communicator::world();
  if (comm.rank() == 0)
    std::printf("# runestone BLAS: %s; %d rank(s); %s\n", blas::describe().c_str(), comm.size(),
                train::Communicator::library_version().c_str());
  if (!comm.distributed()) buckets = {buckets.front()};  // one process: nothing to bucket

  for (const double mb : buckets) {  // translation: bench_translation's train step
    constexpr std::int64_t B = bench::kTranslationBatch, L = bench::kTranslationLength, V = bench::kTranslationVocab;
    Generator g(0);
    nn::Seq2SeqTransformer model(bench::translation_options(), g);
    optim::AdamW opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-4, 0.01, {"*.bias", "*norm*"}));
    const Tensor src = randint(4, V, {B, L}, g), tgt_in = randint(4, V, {B, L}, g), tgt_out = randint(4, V, {B, L}, g);
    CrossEntropyOptions ce;
    ce.label_smoothing = 0.1;
    const Timing t = time_steps(comm, model, opt, B, mb, [&](std::int64_t b, std::int64_t e) {
      const Tensor logits = model.forward(src.slice(0, b, e), tgt_in.slice(0, b, e));
      return cross_entropy(reshape(logits, {(e - b) * L, V}), reshape(tgt_out.slice(0, b, e), {(e - b) * L}), ce);
    });
    report(comm, "translation train step 64x24, 2+2, d128", t, B, "seq/s", mb);
  }
  struct VitCase {
    std::string name;
    std::int64_t size, chans, dim, mlp;
  };
  // bench_vit's train step, and the model of examples/vit/fashion_mnist.toml (`make vit`)
  const std::vector<VitCase> vits{{"vit train step 128x3x32x32, d128, depth 6", 32, 3, 128, 512},
                                  {"vit recipe step 128x1x28x28, d96, depth 6 (fashion_mnist.toml)", 28, 1, 96, 192}};
  for (const VitCase& c : vits)
    for (const double mb : buckets) {
      constexpr std::int64_t B = 128;
      Generator g(0);
      nn::VisionTransformer model(bench::vit_options(c.size, c.chans, c.dim, c.mlp), g);
      optim::AdamW opt(optim::param_groups_by_weight_decay(model.named_parameters(), 1e-3, 0.05,
                                                           {"*.bias", "*norm*", "pos_embed", "cls_token"}));
      const Tensor images = randn({B, c.chans, c.size, c.size}, g), labels = randint(0, 10, {B}, g);
      CrossEntropyOptions ce;
      ce.label_smoothing = 0.1;
      const Timing t = time_steps(comm, model, opt, B, mb, [&](std::int64_t b, std::int64_t e) {
        return cross_entropy(model.forward(images.slice(0, b, e)), labels.slice(0, b, e), ce);
      });
      report(comm, c.name, t, B, "img/s", mb);
    }
  return 0;
}
