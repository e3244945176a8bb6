// The numbers a training step computes do not depend on the number of OpenMP threads: every
// reduction that threads share (sums over rows, LayerNorm's weight gradients, a gemm split along
// its reduction, the gradient norm) is cut into parts fixed by the sizes alone and added up in
// one order. So a run resumed with another thread count, or a trainer that changes its thread
// count mid-run (train/threads.hpp), computes the same parameters bit for bit.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/seq2seq.hpp"
#include "nn/vit.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "tests/helpers.hpp"
#include "train/threads.hpp"

namespace rune {
namespace {

// Sets the OpenMP thread count for a scope.
class Threads {
 public:
  explicit Threads(int n) : old_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(old_); }

 private:
  int old_;
};

using Parameters = std::map<std::string, std::vector<double>>;

// Three AdamW steps, gradients clipped, with `threads` threads; the parameters after them.
template <class Model, class Loss>
Parameters train(int threads, const std::function<std::shared_ptr<Model>(Generator&, Generator&)>& make,
                 const Loss& loss) {
  const Threads scope(threads);
  Generator g(11), dropout(3);
  const std::shared_ptr<Model> model = make(g, dropout);
  optim::AdamW opt(optim::param_groups_by_weight_decay(model->named_parameters(), 1e-3, 0.05, {"*.bias", "*norm*"}));
  for (int step = 0; step < 3; ++step) {
    loss(*model, step).backward();
    optim::clip_grad_norm_(model->parameters(), 0.5);
    opt.step();
    opt.zero_grad();
  }
  Parameters out;
  for (const auto& [name, p] : model->named_parameters()) out[name] = values(p);
  return out;
}

void expect_same_bits(const Parameters& one, const Parameters& two) {
  ASSERT_EQ(one.size(), two.size());
  for (const auto& [name, v] : one) {
    const std::vector<double>& w = two.at(name);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < v.size(); ++i) differ += v[i] != w[i];
    EXPECT_EQ(differ, 0u) << name << ": " << differ << " of " << v.size() << " values differ from one thread's";
  }
}

TEST(Threads, AViTStepComputesTheSameBitsOnOneTwoAndThreeThreads) {
  ASSERT_GE(omp_get_num_procs(), 1);
  nn::VisionTransformerOptions o;
  o.image_size = 16;
  o.patch_size = 4;
  o.in_chans = 3;
  o.num_classes = 10;
  o.embed_dim = 64;
  o.depth = 2;
  o.num_heads = 4;
  o.mlp_dim = 128;
  Generator data(5);
  const Tensor images = randn({48, 3, 16, 16}, data), labels = randint(0, 10, {48}, data);
  const auto make = [&](Generator& g, Generator&) { return std::make_shared<nn::VisionTransformer>(o, g); };
  const auto loss = [&](const nn::VisionTransformer& m, int) {
    CrossEntropyOptions ce;
    ce.label_smoothing = 0.1;
    return cross_entropy(m.forward(images), labels, ce);
  };
  const Parameters one = train<nn::VisionTransformer>(1, make, loss);
  expect_same_bits(one, train<nn::VisionTransformer>(2, make, loss));
  expect_same_bits(one, train<nn::VisionTransformer>(3, make, loss));
}

TEST(Threads, ATranslationStepWithDropoutComputesTheSameBitsOnOneAndTwoThreads) {
  nn::Seq2SeqOptions o;
  o.src_vocab = o.tgt_vocab = 50;
  o.max_len = 32;
  o.transformer.d_model = 64;
  o.transformer.nhead = 4;
  o.transformer.num_encoder_layers = o.transformer.num_decoder_layers = 1;
  o.transformer.dim_feedforward = 128;
  o.transformer.dropout = 0.1;
  Generator data(6);
  const Tensor src = randint(1, 50, {32, 20}, data), tgt = randint(1, 50, {32, 20}, data);
  const auto make = [&](Generator& g, Generator& dropout) {
    nn::Seq2SeqOptions with = o;
    with.transformer.dropout_generator = &dropout;
    return std::make_shared<nn::Seq2SeqTransformer>(with, g);
  };
  const auto loss = [&](const nn::Seq2SeqTransformer& m, int) {
    return cross_entropy(reshape(m.forward(src, tgt), {-1, 50}), reshape(tgt, {-1}));
  };
  expect_same_bits(train<nn::Seq2SeqTransformer>(1, make, loss), train<nn::Seq2SeqTransformer>(2, make, loss));
}

// ------------------------------------------------------------------------- ThreadGovernor

// A machine whose step takes `seconds(threads)`: the governor's steps on it, `steps` of them;
// the thread count of each step, and the lines it printed.
struct Governed {
  std::vector<int> counts;
  std::vector<std::string> lines;
};
Governed run_on(train::ThreadGovernor& governor, int steps, const std::function<double(int)>& seconds) {
  Governed r;
  for (int i = 0; i < steps; ++i) {
    const int n = governor.begin_step();
    if (governor.adapts()) {
      EXPECT_EQ(omp_get_max_threads(), n);
    }
    r.counts.push_back(n);
    const std::string line = governor.end_step(seconds(n), 100);
    if (!line.empty()) r.lines.push_back(line);
  }
  return r;
}

int steps_on(const Governed& r, int n, std::size_t from = 0) {
  return static_cast<int>(std::count(r.counts.begin() + static_cast<std::ptrdiff_t>(from), r.counts.end(), n));
}

TEST(ThreadGovernor, KeepsAllThreadsOnAnIdleMachineAndProbesLessAndLessOften) {
  const Threads scope(2);
  train::ThreadGovernor governor(2);
  const Governed r = run_on(governor, 3000, [](int n) { return n == 2 ? 1.0 : 1.8; });
  EXPECT_TRUE(r.lines.empty());
  EXPECT_EQ(governor.threads(), 2);
  // probes of 4 steps after 20 s (20 steps of 1 s), then 100, 200, 400, 800, 1600 steps apart:
  // 4 * 5 = 20 steps on 1 thread in the first 3,000
  EXPECT_EQ(steps_on(r, 1), 20);
  EXPECT_EQ(r.counts.front(), 2);
}

TEST(ThreadGovernor, DropsToOneThreadWhenACoreIsTakenAndComesBackWhenItIsFree) {
  const Threads scope(2);
  train::ThreadGovernor governor(2);
  bool busy = false;
  const auto machine = [&](int n) { return busy ? (n == 2 ? 4.0 : 1.9) : (n == 2 ? 1.0 : 1.8); };
  Governed idle = run_on(governor, 500, machine);
  EXPECT_TRUE(idle.lines.empty());
  busy = true;  // another process takes a core: the steps slow down, a probe follows at once
  const Governed taken = run_on(governor, 200, machine);
  ASSERT_EQ(taken.lines.size(), 1u);
  EXPECT_NE(taken.lines[0].find("threads: 2 -> 1"), std::string::npos) << taken.lines[0];
  EXPECT_LE(std::find(taken.counts.begin(), taken.counts.end(), 1) - taken.counts.begin(), 4)
      << "a slowdown is probed within the steps that show it";
  EXPECT_EQ(governor.threads(), 1);
  EXPECT_EQ(omp_get_max_threads(), 1);
  busy = false;  // it leaves: the next probe of 2 threads wins
  const Governed freed = run_on(governor, 200, machine);
  ASSERT_EQ(freed.lines.size(), 1u);
  EXPECT_NE(freed.lines[0].find("threads: 1 -> 2"), std::string::npos) << freed.lines[0];
  EXPECT_EQ(governor.threads(), 2);
}

TEST(ThreadGovernor, ProbesWithinSecondsWhenTheStepsAreSlowFromTheStart) {
  const Threads scope(2);
  train::ThreadGovernor governor(2);
  // a core taken before the run starts (no slowdown to see), steps of 3 s on 2 threads: the
  // first probe comes after 20 s of steps, not after 50 steps
  const Governed r = run_on(governor, 30, [](int n) { return n == 2 ? 3.0 : 1.5; });
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_NE(r.lines[0].find("threads: 2 -> 1"), std::string::npos) << r.lines[0];
  EXPECT_EQ(std::find(r.counts.begin(), r.counts.end(), 1) - r.counts.begin(), 7)
      << "steps 1-7 took 21 s on 2 threads, the probe starts at the 8th";
  EXPECT_EQ(governor.threads(), 1);
}

TEST(ThreadGovernor, TriesTheHalvesOfTheMaximumAndStaysOutWithOneThread) {
  const Threads scope(4);
  {
    train::ThreadGovernor governor(4);
    // 2 threads are the fastest here (say, two cores taken of four)
    const Governed r = run_on(governor, 1000, [](int n) { return n == 4 ? 3.0 : n == 2 ? 1.0 : 1.8; });
    EXPECT_EQ(governor.threads(), 2) << ::testing::PrintToString(r.lines);
    EXPECT_GT(steps_on(r, 1), 0) << "from 2 both neighbours are tried";
  }
  EXPECT_EQ(omp_get_max_threads(), 4) << "the count is put back at the end";
  omp_set_num_threads(3);
  train::ThreadGovernor one(1);
  const Governed r = run_on(one, 300, [](int) { return 1.0; });
  EXPECT_EQ(omp_get_max_threads(), 3);  // never set
  EXPECT_TRUE(r.lines.empty());
}

}  // namespace
}  // namespace rune
