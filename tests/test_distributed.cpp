// Data-parallel training's parts that one process can check (train/distributed.hpp, the Shard of
// train/task.hpp): how a batch is shared among ranks, the GradientReducer's buckets and hooks in a
// world of one, the parameter digest and the ranks' dropout seeds. tests/test_mpi.cpp runs the
// real thing under mpirun.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"
#include "train/distributed.hpp"
#include "train/task.hpp"

namespace rune::train {
namespace {

TEST(Distributed, ShardsCoverTheBatchOnceTheFirstRanksTakingTheRemainder) {
  for (std::int64_t n = 0; n <= 13; ++n)
    for (int ranks = 1; ranks <= 5; ++ranks) {
      std::int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const auto [begin, end] = Shard{r, ranks}.rows(n);
        EXPECT_EQ(begin, next) << n << " rows, rank " << r << " of " << ranks;
        EXPECT_EQ(end - begin, n / ranks + (r < n % ranks ? 1 : 0)) << n << " rows, rank " << r << " of " << ranks;
        next = end;
      }
      EXPECT_EQ(next, n) << "every row once";
    }
}

// Two linear layers and a third that the loss never uses.
struct Net : nn::Module {
  explicit Net(Generator& g) {
    a = register_module("a", std::make_shared<nn::Linear>(6, 5, true, g));
    b = register_module("b", std::make_shared<nn::Linear>(5, 3, true, g));
    unused = register_module("unused", std::make_shared<nn::Linear>(3, 2, true, g));
  }
  Tensor loss(const Tensor& x) const {
    const Tensor h = b->forward(tanh(a->forward(x)));
    return mean(h * h) + mean(a->weight * a->weight);  // a.weight used twice
  }
  std::string repr() const override { return "Net"; }
  std::shared_ptr<nn::Linear> a, b, unused;
};

TEST(Distributed, ReducerInAWorldOfOneGivesBackwardsGradientsBucketByBucket) {
  const Communicator& one = Communicator::world();
  ASSERT_FALSE(one.distributed()) << "the unit tests run without mpirun";
  Generator g(5);
  Net net(g);
  const Tensor x = randn({4, 6}, g);
  net.loss(x).backward();
  std::vector<std::vector<float>> want;
  for (const Tensor& p : net.parameters())
    want.push_back(p.grad().defined() ? p.grad().to_vector<float>() : std::vector<float>());
  net.zero_grad();
  for (const Tensor& p : net.parameters()) p.clear_grad();

  // 10 floats a bucket, filled last parameter first until it holds 10 or more: unused (2 + 6) and
  // b.bias (3); b.weight (15); a.bias (5) and a.weight (30)
  GradientReducer reducer(one, net.parameters(), 10 * sizeof(float));
  EXPECT_EQ(reducer.buckets(), 3u);
  for (int round = 0; round < 2; ++round) {  // twice: the second pass finds the grads there
    net.zero_grad();
    reducer.backward(net.loss(x));
    const std::vector<Tensor> params = net.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << "every parameter has a gradient, zeros where none reached it";
      const std::vector<float> got = params[i].grad().to_vector<float>();
      if (want[i].empty())
        EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << "parameter " << i;
      else
        EXPECT_EQ(got, want[i]) << "parameter " << i << ", round " << round;
    }
  }
  // a rank without rows contributes the gradients it holds: zeros after zero_grad
  net.zero_grad();
  reducer.backward(Tensor());
  for (const Tensor& p : net.parameters())
    EXPECT_EQ(p.grad().to_vector<float>(), std::vector<float>(static_cast<std::size_t>(p.numel()), 0.0f));
  // one bucket for everything
  EXPECT_EQ(GradientReducer(one, net.parameters(), 1 << 20).buckets(), 1u);
}

TEST(Distributed, ParameterDigestSeesOneBitAndDropoutSeedsDifferByRankAndStep) {
  Generator g(6);
  Net net(g);
  const std::vector<Tensor> params = net.parameters();
  const std::uint64_t before = parameter_digest(params);
  EXPECT_EQ(parameter_digest(params), before);
  {
    NoGradGuard no_grad;
    float* w = params[1].data<float>();
    std::uint32_t bits;
    std::memcpy(&bits, w, 4);
    bits ^= 1u;  // the last bit of one float
    std::memcpy(w, &bits, 4);
  }
  EXPECT_NE(parameter_digest(params), before);

  std::set<std::uint64_t> seeds;
  for (int rank = 0; rank < 8; ++rank)
    for (std::int64_t step = 0; step < 100; ++step) seeds.insert(dropout_seed(42, rank, step));
  EXPECT_EQ(seeds.size(), 800u) << "every (rank, step) its own stream";
  EXPECT_EQ(dropout_seed(42, 3, 17), dropout_seed(42, 3, 17));
  EXPECT_NE(dropout_seed(42, 3, 17), dropout_seed(43, 3, 17));
}

}  // namespace
}  // namespace rune::train
