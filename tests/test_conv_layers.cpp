// The CNN modules (nn/conv.hpp): torch's names, shapes and initialisation bounds, BatchNorm2d's
// buffers (what training moves, what evaluation reads, a checkpoint keeping them), and the
// pools as modules. Their arithmetic against torch.nn is in tests/parity/ (ParityConv).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/random.hpp"
#include "nn/conv.hpp"
#include "tests/helpers.hpp"
#include "train/checkpoint.hpp"

namespace rune {
namespace {

std::vector<std::string> names(const nn::NamedTensors& t) {
  std::vector<std::string> out;
  for (const auto& [name, value] : t) out.push_back(name);
  return out;
}

TEST(Conv2dModule, HasTorchsShapesAndInitialisationBounds) {
  Generator g(1);
  Conv2dOptions o;
  o.groups = 2;
  nn::Conv2d conv(4, 6, {3, 2}, o, true, g);
  EXPECT_EQ(conv.weight.shape(), (Shape{6, 2, 3, 2}));
  EXPECT_EQ(names(conv.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  const double bound = 1.0 / std::sqrt(2.0 * 3 * 2);  // fan_in = C / groups * kh * kw
  EXPECT_LE(max_abs(conv.weight), bound);
  EXPECT_GT(max_abs(conv.weight), 0.8 * bound);
  EXPECT_LE(max_abs(conv.bias), bound);
  EXPECT_EQ(conv.forward(zeros({2, 4, 5, 5})).shape(), (Shape{2, 6, 3, 4}));
  EXPECT_NE(error_of([] {
              nn::Conv2d(4, 6, {3, 3}, [] {
                Conv2dOptions bad;
                bad.groups = 3;
                return bad;
              }());
            }).find("groups 3"),
            std::string::npos);
}

TEST(BatchNorm2dModule, NamesItsParametersAndBuffersAsTorch) {
  nn::BatchNorm2d bn(3);
  EXPECT_EQ(names(bn.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(names(bn.named_buffers()),
            (std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(names(bn.state_dict()).size(), 5u);
  EXPECT_EQ(bn.num_parameters(), 6);  // buffers are not trained
  EXPECT_FALSE(bn.running_mean.requires_grad());
  nn::BatchNorm2d plain(3, 1e-5, 0.1, false, false);
  EXPECT_TRUE(plain.state_dict().empty());
}

TEST(BatchNorm2dModule, TrainingMovesAndCountsEvaluationReads) {
  Generator g(2);
  nn::BatchNorm2d bn(2);
  const Tensor x = randn({4, 2, 3, 3}, g) * 3.0 + 2.0;
  bn.forward(x);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.data<std::int64_t>()[0], 2);
  const std::vector<double> moved = values(bn.running_mean);
  // two steps of momentum 0.1 from 0 towards the same batch mean: 0.1 m + 0.9 (0.1 m) = 0.19 m
  const std::vector<double> batch_mean = values(mean(x, {0, 2, 3}));
  EXPECT_NEAR(moved[0], 0.19 * batch_mean[0], 1e-5);
  EXPECT_NEAR(moved[1], 0.19 * batch_mean[1], 1e-5);
  bn.eval();
  const Tensor y = bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.data<std::int64_t>()[0], 2);
  EXPECT_EQ(values(bn.running_mean), moved);
  // evaluation normalises by the running statistics, not the batch's: the output is not centred
  EXPECT_GT(std::abs(values(mean(y))[0]), 0.5);
  EXPECT_NE(error_of([&] { bn.forward(zeros({2, 3, 4, 4})); }).find("(B, 2, H, W)"), std::string::npos);
}

TEST(BatchNorm2dModule, ARefusedBatchLeavesTheBuffersAsTheyWere) {
  nn::BatchNorm2d bn(2);
  EXPECT_NE(error_of([&] {
              bn.forward(zeros({1, 2, 1, 1}));
            }).find("more than one value per channel"),
            std::string::npos);
  EXPECT_EQ(bn.num_batches_tracked.data<std::int64_t>()[0], 0);
  EXPECT_EQ(values(bn.running_mean), (std::vector<double>{0, 0}));
}

TEST(BatchNorm2dModule, BuffersTravelThroughACheckpoint) {
  Generator g(3);
  nn::BatchNorm2d bn(3);
  bn.forward(randn({5, 3, 2, 2}, g) + 1.0);
  train::Checkpoint c;
  c.params = bn.state_dict();
  c.config = "seed = 0\n";
  const std::string path = scratch_dir("bn_buffers").string() + "/bn.h5";
  train::save_checkpoint(path, c);
  nn::BatchNorm2d loaded(3);
  train::load_parameters(loaded, train::read_checkpoint(path), path);
  EXPECT_EQ(values(loaded.running_mean), values(bn.running_mean));
  EXPECT_EQ(values(loaded.running_var), values(bn.running_var));
  EXPECT_EQ(loaded.num_batches_tracked.data<std::int64_t>()[0], 1);
  // a checkpoint without the buffers does not fit, and says which are missing
  train::Checkpoint no_buffers;
  no_buffers.params = bn.named_parameters();
  EXPECT_NE(error_of([&] { train::load_parameters(loaded, no_buffers, path); }).find("missing: running_mean"),
            std::string::npos);
}

TEST(PoolModules, ForwardTheirOptions) {
  const Tensor x = zeros({2, 3, 8, 6});
  EXPECT_EQ(nn::MaxPool2d(nn::pool_options(2)).forward(x).shape(), (Shape{2, 3, 4, 3}));
  EXPECT_EQ(nn::AvgPool2d(nn::pool_options(3, 2, 1)).forward(x).shape(), (Shape{2, 3, 4, 3}));
  EXPECT_EQ(nn::AdaptiveAvgPool2d({1, 1}).forward(x).shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(nn::MaxPool2d(nn::pool_options(2)).repr(),
            "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=false)");
}

}  // namespace
}  // namespace rune
