// The tape: seeding and accumulation, fan-out, detach and no-grad, retain_graph, upstream
// gradients, the gradient-ready hook, freeing of graphs and activations (1,000 training steps with flat memory), and
// graphs long enough that recursion would overflow the stack; slices' gradients added into one
// buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"

namespace rune {
namespace {

std::vector<double> values(const Tensor& t) { return to_dtype(t, DType::float64).to_vector<double>(); }

TEST(Tape, ScalarBackwardSeedsOneAndFillsLeafGradients) {
  Tensor x = tensor({1.0, 2.0, 3.0}, DType::float64).requires_grad_();
  Tensor y = sum(x * x);  // dy/dx = 2x
  y.backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2.0, 4.0, 6.0}));
  EXPECT_TRUE(x.is_leaf());
  EXPECT_FALSE(y.is_leaf());
  ASSERT_TRUE(y.grad_fn());
  EXPECT_STREQ(y.grad_fn()->name(), "sum");
}

TEST(Tape, GradientsAccumulateUntilZeroGrad) {
  Tensor x = tensor({1.0, -2.0}, DType::float64).requires_grad_();
  for (int i = 0; i < 3; ++i) sum(x * 3.0).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{9.0, 9.0}));
  const Tensor g = x.grad();
  x.zero_grad();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{0.0, 0.0}));
  EXPECT_TRUE(g.shares_storage(x.grad())) << "zero_grad keeps the buffer";
  sum(x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1.0, 1.0}));
}

TEST(Tape, FanOutAndSharedWeightsAddTheirContributions) {
  // w used twice (as in tied embeddings): d/dw sum(w * x + w * w) = x + 2w
  Tensor w = tensor({0.5, -1.5}, DType::float64).requires_grad_();
  const Tensor x = tensor({2.0, 3.0}, DType::float64);
  Tensor a = w * x;
  Tensor b = w * w;
  sum(a + b).backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{2.0 + 1.0, 3.0 - 3.0}));
}

TEST(Tape, GradReadyHookCallsEachLeafOnceWhenItsGradientIsFinal) {
  Tensor w = tensor({1.0, 2.0}, DType::float64).requires_grad_();  // used first and last: tied
  Tensor v = tensor({3.0, 4.0}, DType::float64).requires_grad_();
  const Tensor x = tensor({0.5, -1.0}, DType::float64);
  std::vector<std::pair<const AutogradMeta*, std::vector<double>>> calls;
  {
    const GradReadyHook hook([&](const AutogradMeta& leaf) {
      ASSERT_TRUE(leaf.grad);
      calls.emplace_back(&leaf, values(Tensor(leaf.grad)));
    });
    const Tensor h = w * x;  // w's first use: its gradient is final only after this node runs
    sum(h * v + w * w).backward();
  }
  ASSERT_EQ(calls.size(), 2u) << "each leaf once, w although it has three edges";
  // v is final as soon as h * v has run, before w's first use is reached
  EXPECT_EQ(calls[0].first, v.impl()->meta.get());
  EXPECT_EQ(calls[0].second, (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(calls[1].first, w.impl()->meta.get());
  EXPECT_EQ(calls[1].second, (std::vector<double>{0.5 * 3.0 + 2.0, -1.0 * 4.0 + 4.0})) << "x v + 2 w, whole";
  // the hook is gone with its guard
  calls.clear();
  sum(w * 2.0).backward();
  EXPECT_TRUE(calls.empty());
}

// A slice hands the engine its piece of the gradient; the engine adds the pieces into one buffer
// (in place when it holds it alone). Pieces side by side (q, k, v of a projection), overlapping
// and strided pieces, and full-size gradients before and after them must still add up exactly,
// into an intermediate tensor's gradient and into a leaf's (with and without a .grad already).
TEST(Tape, SlicesOfOneTensorAddTheirPiecesIntoOneGradient) {
  Generator gen(4);
  const Tensor w = randn({4, 9}, gen, DType::float64);
  for (const bool leaf : {true, false})
    for (const bool full_first : {true, false}) {
      Tensor base = randn({4, 9}, gen, DType::float64).requires_grad_();
      base.zero_grad();  // a leaf whose .grad exists: pieces go into it
      const Tensor x = leaf ? base : base * 2.0;
      const Tensor q = x.slice(1, 0, 3), k = x.slice(1, 3, 6), v = x.slice(1, 6, 9);
      const Tensor odd = x.slice(1, 1, 9, 2), rows = x.slice(0, 1, 3);  // strided; overlapping
      Tensor loss = sum(q * 1.0) + sum(k * 2.0) + sum(v * 3.0) + sum(odd * 10.0) + sum(rows * 100.0);
      loss = full_first ? sum(x * w) + loss : loss + sum(x * w);
      loss.backward();
      const std::vector<double> wv = values(w), got = values(base.grad());
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 9; ++c) {
          double want = wv[r * 9 + c] +
                        (c < 3   ? 1.0
                         : c < 6 ? 2.0
                                 : 3.0) +
                        (c % 2 == 1 ? 10.0 : 0.0) + (r == 1 || r == 2 ? 100.0 : 0.0);
          if (!leaf) want *= 2.0;
          EXPECT_NEAR(got[r * 9 + c], want, 1e-12)
              << "leaf " << leaf << " full first " << full_first << " at " << r << "," << c;
        }
    }
  // a leaf reached by one slice only, with no .grad yet: zeros around the piece
  Tensor only = tensor({1.0, 2.0, 3.0, 4.0}, DType::float64).requires_grad_();
  sum(only.slice(0, 1, 3) * 5.0).backward();
  EXPECT_EQ(values(only.grad()), (std::vector<double>{0.0, 5.0, 5.0, 0.0}));
}

TEST(Tape, DiamondGraphRunsEachNodeOnce) {
  // y = exp(x); z = y * y + y  =>  dz/dx = (2y + 1) * y
  Tensor x = tensor({0.3}, DType::float64).requires_grad_();
  Tensor y = exp(x);
  Tensor z = sum(y * y + y);
  z.backward();
  const double e = std::exp(0.3);
  EXPECT_NEAR(x.grad().item(), (2 * e + 1) * e, 1e-12);
}

TEST(Tape, UpstreamGradientForNonScalarOutputs) {
  Tensor x = tensor({{1.0, 2.0}, {3.0, 4.0}}, DType::float64).requires_grad_();
  Tensor y = x * 2.0;
  y.backward(tensor({{1.0, 0.0}, {0.5, 2.0}}, DType::float64));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2.0, 0.0, 1.0, 4.0}));
}

TEST(Tape, BroadcastGradientIsReducedAndLeafGradIsContiguous) {
  Tensor b = zeros({3}, DType::float64).requires_grad_();
  Tensor x = ones({4, 3}, DType::float64);
  sum(x + b).backward();  // each bias element was added to 4 rows
  EXPECT_EQ(values(b.grad()), (std::vector<double>{4.0, 4.0, 4.0}));
  EXPECT_TRUE(b.grad().is_contiguous());
  EXPECT_EQ(b.grad().shape(), (Shape{3}));
}

TEST(Tape, DetachAndNoGradRecordNothing) {
  Tensor x = ones({2}).requires_grad_();
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.shares_storage(x));
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(is_grad_enabled());
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_FALSE(y.grad_fn());
    {
      NoGradGuard nested;
      EXPECT_FALSE(is_grad_enabled());
    }
    EXPECT_FALSE(is_grad_enabled());
  }
  EXPECT_TRUE(is_grad_enabled());
  Tensor z = x * 2.0 + d;  // d contributes no gradient path
  sum(z).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2.0, 2.0}));
}

TEST(Tape, RetainGraphAllowsASecondBackward) {
  Tensor x = tensor({1.0, 2.0}, DType::float64).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_NEAR(values(x.grad())[0], 2 * std::exp(1.0), 1e-12);
  EXPECT_THROW(y.backward(), std::logic_error);  // now freed
}

TEST(Tape, BackwardReleasesSavedActivations) {
  const std::int64_t n = 1 << 16;
  Tensor w = ones({n}).requires_grad_();
  sum(w).backward();  // allocates w.grad once, so the pass below allocates nothing that stays
  Tensor loss;
  {
    Tensor h = exp(w * 2.0);  // exp saves its output h (n floats), and h * h saves h again
    loss = sum(h * h);
  }  // the user's handle on h is gone; only the tape holds it now
  const std::int64_t with_graph = live_tensor_bytes();
  loss.backward();
  // loss is still alive, but its graph was released: the n floats of h must be gone.
  EXPECT_LE(live_tensor_bytes(), with_graph - n * 4);
  EXPECT_TRUE(loss.grad_fn()->released());
}

TEST(Tape, AbandonedGraphsAreFreedWithTheirTensors) {
  const std::int64_t nodes0 = Node::live_count(), bytes0 = live_tensor_bytes();
  {
    Tensor w = randn({64, 64}).requires_grad_();
    Tensor y = tanh(matmul(w, w)).sum();  // never backwarded (validation without no-grad)
    EXPECT_GT(Node::live_count(), nodes0);
  }
  EXPECT_EQ(Node::live_count(), nodes0);
  EXPECT_EQ(live_tensor_bytes(), bytes0);
}

TEST(Tape, ThousandTrainingStepsKeepNodesAndMemoryFlat) {
  // A 2-layer MLP regression trained with SGD: after every step the tape must be gone and the
  // live tensor bytes back to the parameters and their gradients.
  Generator gen(3);
  const Tensor x = randn({32, 8}, gen);
  const Tensor target = sum(x * x, {1}, true) * 0.1;  // (32, 1)
  Tensor w1 = (randn({8, 16}, gen) * 0.3).detach().requires_grad_(), b1 = zeros({16}).requires_grad_();
  Tensor w2 = (randn({16, 1}, gen) * 0.3).detach().requires_grad_(), b2 = zeros({1}).requires_grad_();
  std::vector<Tensor*> params{&w1, &b1, &w2, &b2};
  const std::int64_t nodes0 = Node::live_count();
  std::int64_t bytes_at_10 = -1, nodes_at_10 = -1;
  double first_loss = 0, last_loss = 0;
  for (int step = 1; step <= 1000; ++step) {
    {
      Tensor h = gelu(matmul(x, w1) + b1);
      Tensor loss = mse_loss(matmul(h, w2) + b2, target);
      loss.backward();
      if (step == 1) first_loss = loss.item();
      last_loss = loss.item();
      NoGradGuard no_grad;
      for (Tensor* p : params) {
        p->add_(p->grad(), -0.05);
        p->zero_grad();
      }
    }
    if (step == 10) {
      bytes_at_10 = live_tensor_bytes();
      nodes_at_10 = Node::live_count();
    }
  }
  EXPECT_EQ(nodes_at_10, nodes0);
  EXPECT_EQ(Node::live_count(), nodes0);
  EXPECT_EQ(live_tensor_bytes(), bytes_at_10);
  EXPECT_LT(last_loss, first_loss * 0.5) << "the model should also learn";
}

TEST(Tape, LongChainsNeitherRecurseInBackwardNorInDestruction) {
  Tensor x = tensor({1.0}, DType::float64).requires_grad_();
  {
    Tensor y = x;
    for (int i = 0; i < 200000; ++i) y = y + 1e-6;
    y.backward();
    EXPECT_EQ(x.grad().item(), 1.0);
  }  // 200k nodes destroyed here
  EXPECT_EQ(Node::live_count(), 0);
}

TEST(Tape, RequiresGradPropagatesAndIntegerTensorsCannotRequireIt) {
  Tensor a = ones({2}).requires_grad_();
  Tensor b = ones({2});
  EXPECT_TRUE((a * b).requires_grad());
  EXPECT_FALSE((b * b).requires_grad());
  Tensor idx = from_vector(std::vector<std::int64_t>{1, 2}, {2});
  EXPECT_THROW(idx.requires_grad_(), std::invalid_argument);
}

}  // namespace
}  // namespace rune
