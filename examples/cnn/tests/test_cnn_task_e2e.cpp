// The CNN example's task trained on images written here in IDX format (e2e: seconds each): a tiny
// ResNet learns, its batch norms' running statistics move in training and serve evaluation, and
// end to end through the `rune` binary: train, eval (the running statistics come back from the
// checkpoint: the same accuracy), the confusion matrix; and the shipped config trains.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "examples/cnn/cnn_task.hpp"
#include "examples/cnn/tests/tiny_cnn.hpp"
#include "optim/sgd.hpp"
#include "tests/helpers.hpp"
#include "tests/image_files.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(CnnTask, ATinyResNetLearnsAndItsBatchNormsTrack) {
  OneThread one;
  const fs::path data = cnn_idx_folder("learns");
  train::Config config = train::Config::parse(tiny_cnn_config(data), "tiny.toml");
  Generator init(1), dropout(2);
  EXPECT_EQ(config.string("task.name", "", "the task"), "cnn");
  CnnTask task(config, {0, &init, &dropout});
  config.check_all_used();
  const nn::ResNet& net = task.resnet();
  // ResNet names: stem, three stages (the later two downsample), fc; buffers after the parameters
  const nn::NamedTensors state = task.model().state_dict();
  std::vector<std::string> names;
  for (const auto& [name, t] : state) names.push_back(name);
  EXPECT_EQ(names.front(), "conv1.weight");
  for (const char* name : {"layer1.0.conv1.weight", "layer1.0.bn2.bias", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.running_var", "layer2.0.bn1.num_batches_tracked", "fc.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  EXPECT_EQ(net.layers.size(), 3u);
  EXPECT_EQ(static_cast<double>(task.model().num_parameters()), nn::parameter_count(net.options));

  optim::SGDOptions momentum;
  momentum.momentum = 0.9;
  optim::SGD opt(optim::param_groups_by_weight_decay(task.model().named_parameters(), 0.05, 0.0, {}), momentum);
  double first = 0, last = 0;
  const std::int64_t steps = 40;
  for (std::int64_t step = 0; step < steps; ++step) {
    const train::BatchLoss b = task.train_batch(step / task.batches_per_epoch(), step % task.batches_per_epoch());
    if (step < 5) first += b.loss.item() / 5;
    if (step >= steps - 5) last += b.loss.item() / 5;
    b.loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_LT(last, 0.7 * first) << "the loss did not fall";
  EXPECT_EQ(net.bn1->num_batches_tracked.data<std::int64_t>()[0], steps);
  EXPECT_GT(max_abs(net.bn1->running_mean), 0.0) << "the running mean never moved";
  // evaluation normalises by the running statistics: the same images give the same logits whatever
  // else is in the batch, which batch statistics would not
  const std::map<std::string, double> m = task.evaluate("test");
  EXPECT_GT(m.at("accuracy"), 0.5);  // 4 classes: chance is 0.25
  const Tensor before = net.bn1->running_mean.clone();
  task.evaluate("val");
  EXPECT_EQ(max_abs_diff(before, net.bn1->running_mean), 0.0) << "evaluation moved the running statistics";
  train::Checkpoint c;
  task.describe(c);
  EXPECT_EQ(std::get<std::string>(c.architecture.at("model")), "resnet");
  EXPECT_EQ(std::get<std::string>(c.architecture.at("widths")), "8,16,32");
  EXPECT_EQ(c.meta_numbers.at("image_size"), std::vector<double>{12});
  fs::remove_all(data);
}

TEST(CnnTask, StagesThatHalveTheImageToNothingAreRefusedByKey) {
  const fs::path data = cnn_idx_folder("stages");
  train::Config config = train::Config::parse(tiny_cnn_config(data, "", "5"), "tiny.toml");
  Generator init(1), dropout(2);
  const std::string e = error_of([&] { CnnTask task(config, {0, &init, &dropout}); });
  EXPECT_NE(e.find("model.stages"), std::string::npos) << e;
  EXPECT_NE(e.find("12 pixels"), std::string::npos) << e;
  fs::remove_all(data);
}

TEST(CnnTask, EndToEndThroughRune) {
  OneThread one;
  const fs::path data = cnn_idx_folder("cli");
  std::ofstream(data / "tiny.toml") << "seed = 2\n"
                                    << tiny_cnn_config(data, R"([train]
epochs = 6
optimizer = "sgd"
lr = 0.1
warmup_steps = 2
[run]
dir = "runs"
name = "tiny"
)");
  RunResult r = run_rune("train tiny.toml --no-progress", data);
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path run = data / "runs" / "tiny";
  // the best validation accuracy the run logged is what eval finds in the checkpoint: the running
  // statistics were saved and loaded with the parameters
  double best = 0;
  {
    std::ifstream log(run / "metrics.jsonl");
    for (std::string line; std::getline(log, line);) {
      const auto at = line.find("\"val_accuracy\":");
      if (at != std::string::npos) best = std::max(best, std::stod(line.substr(at + 15)));
    }
  }
  EXPECT_GT(best, 0.5) << r.output;
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --split val", data);
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream json(run / "eval-val.json");
  std::stringstream text;
  text << json.rdbuf();
  const std::string s = text.str();
  const auto at = s.find("\"accuracy\":");
  ASSERT_NE(at, std::string::npos) << s;
  EXPECT_NEAR(std::stod(s.substr(at + 11)), best, 1e-12) << s;
  EXPECT_TRUE(fs::exists(run / "confusion-val.png"));
  // the shipped recipe trains as it is on 28x28 IDX files, shrunk by --set
  const fs::path fm = data / "fm";
  vision::testdata::write_idx(fm.string(), vision::testdata::synthetic_images(200, 1, 28, 10, 1),
                              vision::testdata::synthetic_images(50, 1, 28, 10, 2), true);
  r = run_rune("train " + std::string(RUNE_SOURCE_DIR) +
                   "/examples/cnn/fashion_mnist.toml --no-progress --set data.dir=" + fm.string() +
                   " --set model.width=4 --set model.blocks=1 --set train.epochs=1 --set train.warmup_steps=1 "
                   "--set data.batch_size=50 --set data.val_size=40 --set run.dir=runs",
               data);
  ASSERT_EQ(r.status, 0) << r.output;
  // and the data-efficiency experiment's, on 120 of the images in epochs of 3 batches
  r = run_rune("train " + std::string(RUNE_SOURCE_DIR) +
                   "/examples/cnn/data_efficiency.toml --no-progress --set data.dir=" + fm.string() +
                   " --set model.width=4 --set train.epochs=2 --set train.warmup_steps=1 --set data.batch_size=50 "
                   "--set data.val_size=40 --set data.train_size=120 --set data.batches_per_epoch=3 --set run.dir=runs",
               data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("6 steps"), std::string::npos) << r.output;
  fs::remove_all(data);
}

}  // namespace
}  // namespace rune::examples
