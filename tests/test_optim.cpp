// optim/: parameter groups and the weight-decay split by name, SGD's update rules by hand, Adam's
// first step, state export and strict reload (a resumed optimizer continues bit for bit),
// gradient clipping, and the schedules (learning rate, DropHead) at known points. Trajectories
// against torch.optim are in tests/parity/test_parity_optim.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

// Gives `p` the gradient `g` through a backward, as training would.
void set_grad(const Tensor& p, const std::vector<double>& g) {
  sum(p * to_dtype(from_vector(g, p.shape()), p.dtype())).backward();
}

TEST(Optim, GlobMatchesNamesByPattern) {
  EXPECT_TRUE(optim::glob_match("*.bias", "encoder.layers.0.linear1.bias"));
  EXPECT_FALSE(optim::glob_match("*.bias", "encoder.layers.0.linear1.weight"));
  EXPECT_TRUE(optim::glob_match("*norm*", "decoder.layers.1.norm3.weight"));
  EXPECT_TRUE(optim::glob_match("pos_embed", "pos_embed"));
  EXPECT_FALSE(optim::glob_match("pos_embed", "pos_embed2"));
  EXPECT_TRUE(optim::glob_match("*", ""));
  EXPECT_TRUE(optim::glob_match("a*b*c", "aXXbYYbc"));
  EXPECT_FALSE(optim::glob_match("a*b*c", "aXXbYYb"));
}

TEST(Optim, WeightDecaySplitsByName) {
  const optim::NamedTensors params{{"embed.weight", ones({3})},
                                   {"layers.0.linear1.weight", ones({3})},
                                   {"layers.0.linear1.bias", ones({3})},
                                   {"layers.0.norm1.weight", ones({3})},
                                   {"pos_embed", ones({3})},
                                   {"head.weight", ones({3})}};
  const auto groups =
      optim::param_groups_by_weight_decay(params, 0.1, 0.05, {"*.bias", "*norm*", "embed.*", "pos_embed"});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "decay");
  EXPECT_EQ(groups[0].weight_decay, 0.05);
  std::vector<std::string> decayed, kept;
  for (const auto& [n, t] : groups[0].params) decayed.push_back(n);
  for (const auto& [n, t] : groups[1].params) kept.push_back(n);
  EXPECT_EQ(decayed, (std::vector<std::string>{"layers.0.linear1.weight", "head.weight"}));
  EXPECT_EQ(kept,
            (std::vector<std::string>{"embed.weight", "layers.0.linear1.bias", "layers.0.norm1.weight", "pos_embed"}));
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_THROW(optim::SGD({{"a", {{"x", ones({1})}}, 0.1, 0.1, 0}, {"b", {{"x", ones({1})}}, 0.1, 0.1, 0}}),
               std::invalid_argument);
}

TEST(Optim, SgdMomentumNesterovAndWeightDecayByHand) {
  const Tensor p = from_vector(std::vector<double>{1.0, -2.0}, {2}).requires_grad_();
  optim::SGDOptions o;
  o.momentum = 0.5;
  o.nesterov = true;
  optim::SGD opt({{"g", {{"p", p}}, 0.1, 0.1, 0.01}}, o);
  // step 1: d = g + wd p = (0.51, 1.98); buf = d; nesterov: d + 0.5 buf = 1.5 d
  set_grad(p, {0.5, 2.0});
  opt.step();
  opt.zero_grad();
  const double p1a = 1.0 - 0.1 * 1.5 * 0.51, p1b = -2.0 - 0.1 * 1.5 * 1.98;
  EXPECT_NEAR(values(p)[0], p1a, 1e-12);
  EXPECT_NEAR(values(p)[1], p1b, 1e-12);
  // step 2: d = g + wd p; buf = 0.5 buf + d; p -= lr (d + 0.5 buf)
  set_grad(p, {-1.0, 0.0});
  opt.step();
  const double da = -1.0 + 0.01 * p1a, db = 0.01 * p1b;
  const double ba = 0.5 * 0.51 + da, bb = 0.5 * 1.98 + db;
  EXPECT_NEAR(values(p)[0], p1a - 0.1 * (da + 0.5 * ba), 1e-12);
  EXPECT_NEAR(values(p)[1], p1b - 0.1 * (db + 0.5 * bb), 1e-12);
  EXPECT_THROW(optim::SGD({{"g", {{"p", p}}, 0.1, 0.1, 0}}, optim::SGDOptions{0.0, 0.0, true}), std::invalid_argument);
}

TEST(Optim, AdamFirstStepMovesEachWeightByAboutLr) {
  // at t = 1, m / sqrt(v) corrected is sign(g): every weight moves by lr (minus eps's share)
  const Tensor p = from_vector(std::vector<double>{1.0, 1.0, 1.0}, {3}).requires_grad_();
  optim::Adam opt({{"g", {{"p", p}}, 0.01, 0.01, 0.0}});
  set_grad(p, {3.0, -0.001, 0.0});
  opt.step();
  const std::vector<double> v = values(p);
  EXPECT_NEAR(v[0], 0.99, 1e-8);
  EXPECT_NEAR(v[1], 1.01, 1e-7);
  EXPECT_EQ(v[2], 1.0) << "a zero gradient moves nothing";
  // parameters without a gradient are skipped and get no state
  const Tensor q = ones({2}).requires_grad_();
  optim::Adam opt2({{"g", {{"p", p}, {"q", q}}, 0.01, 0.01, 0.0}});
  set_grad(p, {1.0, 1.0, 1.0});
  opt2.step();
  EXPECT_EQ(values(q), (std::vector<double>{1.0, 1.0}));
  for (const auto& [name, t] : opt2.state()) EXPECT_EQ(name.rfind("p/", 0), 0u) << name;
}

// step() runs elementwise updates on pieces of 32768 elements of every parameter, shared out
// between threads: a parameter longer than a piece, one shorter, and both variants of Adam (L2
// and decoupled decay, amsgrad) give what a plain loop over each element gives, on 1 thread and
// on 2 with the same bits.
TEST(Optim, AdamOnPiecesOfParametersEqualsAPlainLoopOnAnyThreadCount) {
  for (const bool decoupled : {false, true})
    for (const bool amsgrad : {false, true}) {
      const optim::AdamOptions o{0.9, 0.98, 1e-6, amsgrad, decoupled};
      const double lr = 0.01, wd = 0.1;
      std::vector<std::vector<float>> on_one_thread;
      for (const int threads : {1, 2}) {
        Generator g(5);
        const Tensor big = randn({70001}, g).requires_grad_(), small = randn({5}, g).requires_grad_();
        const std::vector<float> p0b = big.to_vector<float>(), p0s = small.to_vector<float>();
        optim::Adam opt({{"g", {{"big", big}, {"small", small}}, lr, lr, wd}}, o);
        std::vector<std::vector<float>> grads;
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        for (int step = 0; step < 2; ++step) {
          const Tensor gb = randn({70001}, g), gs = randn({5}, g);
          sum(big * gb).backward();
          sum(small * gs).backward();
          grads.push_back(gb.to_vector<float>());
          grads.push_back(gs.to_vector<float>());
          opt.step();
          opt.zero_grad();
        }
        omp_set_num_threads(saved);
        // the reference: torch's update, element by element, in double
        const auto reference = [&](std::vector<float> p, int which) {
          std::vector<double> m(p.size()), v(p.size()), vmax(p.size());
          for (int t = 1; t <= 2; ++t) {
            const std::vector<float>& gr = grads[static_cast<std::size_t>(2 * (t - 1) + which)];
            for (std::size_t i = 0; i < p.size(); ++i) {
              double x = p[i], gi = gr[i];
              if (decoupled)
                x *= 1 - lr * wd;
              else
                gi += wd * x;
              m[i] = 0.9 * m[i] + 0.1 * gi;
              v[i] = 0.98 * v[i] + 0.02 * gi * gi;
              vmax[i] = std::max(vmax[i], v[i]);
              const double second = amsgrad ? vmax[i] : v[i];
              const double denom = std::sqrt(second) / std::sqrt(1 - std::pow(0.98, t)) + 1e-6;
              p[i] = static_cast<float>(x - lr / (1 - std::pow(0.9, t)) * m[i] / denom);
            }
          }
          return p;
        };
        const std::vector<float> got_b = big.to_vector<float>(), got_s = small.to_vector<float>();
        const std::vector<float> want_b = reference(p0b, 0), want_s = reference(p0s, 1);
        double worst = 0;
        for (std::size_t i = 0; i < got_b.size(); ++i) worst = std::max(worst, double(std::abs(got_b[i] - want_b[i])));
        for (std::size_t i = 0; i < got_s.size(); ++i) worst = std::max(worst, double(std::abs(got_s[i] - want_s[i])));
        EXPECT_LT(worst, 2e-6) << "decoupled " << decoupled << " amsgrad " << amsgrad << " threads " << threads;
        if (threads == 1)
          on_one_thread = {got_b, got_s};
        else
          EXPECT_TRUE(on_one_thread == std::vector<std::vector<float>>({got_b, got_s}))
              << "2 threads differ from 1: decoupled " << decoupled << " amsgrad " << amsgrad;
      }
    }
}

TEST(Optim, StateRoundTripResumesBitForBit) {
  Generator gen(1);
  const Tensor start = randn({4, 3}, gen);
  std::vector<std::vector<double>> grads;
  for (int i = 0; i < 6; ++i) grads.push_back(values(randn({4, 3}, gen)));
  optim::AdamOptions o;
  o.amsgrad = true;
  // six steps straight
  const Tensor a = start.clone().requires_grad_();
  optim::AdamW straight({{"g", {{"w", a}}, 0.01, 0.01, 0.1}}, o);
  for (const auto& g : grads) {
    set_grad(a, g);
    straight.step();
    straight.zero_grad();
  }
  // three steps, state exported, a fresh optimizer loads it and does three more
  const Tensor b = start.clone().requires_grad_();
  optim::AdamW first({{"g", {{"w", b}}, 0.01, 0.01, 0.1}}, o);
  for (int i = 0; i < 3; ++i) {
    set_grad(b, grads[i]);
    first.step();
    first.zero_grad();
  }
  optim::NamedTensors saved;
  for (const auto& [name, t] : first.state()) saved.emplace_back(name, t.clone());
  EXPECT_EQ(saved.size(), 4u);  // w/step, w/exp_avg, w/exp_avg_sq, w/max_exp_avg_sq
  optim::AdamW second({{"g", {{"w", b}}, 0.01, 0.01, 0.1}}, o);
  second.load_state(saved, first.steps());
  for (int i = 3; i < 6; ++i) {
    set_grad(b, grads[i]);
    second.step();
    second.zero_grad();
  }
  EXPECT_EQ(values(a), values(b));
  EXPECT_EQ(second.steps(), 6);
  // strict: a wrong shape, an unknown slot and a missing slot are all reported, nothing changes
  optim::NamedTensors bad = saved;
  bad[1].second = zeros({3});
  bad.emplace_back("w/velocity", zeros({4, 3}));
  bad.erase(bad.begin() + 2);
  try {
    second.load_state(bad, 3);
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("shape mismatch: w/exp_avg"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected: w/velocity"), std::string::npos) << m;
    EXPECT_NE(m.find("missing: w/exp_avg_sq"), std::string::npos) << m;
  }
  EXPECT_EQ(second.steps(), 6);
}

TEST(Optim, ClipGradNormScalesToTheLimitAndReturnsTheNorm) {
  const Tensor a = zeros({2}).requires_grad_(), b = zeros({1}).requires_grad_(), c = zeros({1}).requires_grad_();
  set_grad(a, {3.0, 0.0});
  set_grad(b, {4.0});
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm_({a, b, c}, 1.0), 5.0);  // c has no gradient: skipped
  EXPECT_NEAR(values(a.grad())[0], 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(values(b.grad())[0], 4.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(optim::clip_grad_norm_({a, b}, 10.0), 1.0, 1e-6);  // below the limit: unchanged
  EXPECT_NEAR(values(b.grad())[0], 0.8, 1e-6);
  set_grad(c, {NAN});
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm_({a, c}, 1.0)));
  EXPECT_THROW(optim::clip_grad_norm_({a, c}, 1.0, true), std::runtime_error);
}

TEST(Optim, SchedulesAtKnownPoints) {
  optim::Schedule constant;
  EXPECT_EQ(constant.factor(0), 1.0);
  EXPECT_EQ(constant.factor(12345), 1.0);
  optim::Schedule cos{"warmup_cosine", 10, 110, 0.1};
  cos.validate();
  EXPECT_DOUBLE_EQ(cos.factor(0), 0.1);  // 1/10 of the way up
  EXPECT_DOUBLE_EQ(cos.factor(4), 0.5);
  EXPECT_DOUBLE_EQ(cos.factor(9), 1.0);                 // the peak after warmup
  EXPECT_NEAR(cos.factor(59), 0.1 + 0.9 * 0.5, 1e-12);  // half way down: p = 1/2
  EXPECT_NEAR(cos.factor(109), 0.1, 1e-12);             // the end
  EXPECT_NEAR(cos.factor(500), 0.1, 1e-12);             // and after
  optim::Schedule inv{"warmup_inverse_sqrt", 4000, 0, 0};
  inv.validate();
  // Vaswani et al.: d^-0.5 min(n^-0.5, n w^-1.5) = base min(n / w, sqrt(w / n)) with base = (d w)^-0.5
  const double d = 512, w = 4000, base = 1 / std::sqrt(d * w);
  for (std::int64_t n : {1, 100, 3999, 4000, 4001, 10000, 100000})
    EXPECT_NEAR(base * inv.factor(n - 1), std::pow(d, -0.5) * std::min(std::pow(n, -0.5), n * std::pow(w, -1.5)), 1e-15)
        << n;
  EXPECT_THROW((optim::Schedule{"warmup_cosine", 10, 10, 0}.validate()), std::invalid_argument);
  EXPECT_EQ(optim::schedule_names(), (std::vector<std::string>{"constant", "warmup_cosine", "warmup_inverse_sqrt"}));
  EXPECT_THROW((optim::Schedule{"step", 0, 10, 0}.validate()), std::invalid_argument);
  // the optimizer applies a factor to each group's base lr
  const Tensor p = ones({1}).requires_grad_();
  optim::SGD opt({{"a", {{"p", p}}, 0.5, 0.5, 0}, {"b", {}, 2.0, 2.0, 0}});
  opt.set_lr_factor(cos.factor(4));
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.25);
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr, 1.0);
}

TEST(Schedules, DropHeadRateIsAVShape) {
  optim::DropHeadSchedule s;
  s.p = 0.2;
  EXPECT_EQ(s.rate(0), 0.2);
  EXPECT_EQ(s.rate(999), 0.2);
  s.scheduled = true;
  s.warmup_steps = 100;
  s.total_steps = 1100;
  EXPECT_NO_THROW(s.validate());
  EXPECT_DOUBLE_EQ(s.rate(0), 0.2);
  EXPECT_DOUBLE_EQ(s.rate(50), 0.1);
  EXPECT_DOUBLE_EQ(s.rate(100), 0.0);
  EXPECT_DOUBLE_EQ(s.rate(600), 0.1);
  EXPECT_DOUBLE_EQ(s.rate(1100), 0.2);
  s.warmup_steps = 1100;
  EXPECT_THROW(s.validate(), std::invalid_argument);
  s.p = 1.0;
  s.warmup_steps = 10;
  EXPECT_THROW(s.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace rune
