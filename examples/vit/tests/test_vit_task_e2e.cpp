// The ViT example's task trained on data written here in the real formats (e2e: seconds each): a
// tiny model learns (IDX and CIFAR-10), a checkpoint loads into a model of another image size with
// its position embedding resized, the confusion matrix and predictions agree with the accuracy;
// and end to end through the `rune` binary: train, eval --predictions, eval at 16 and 24 pixels,
// attention --image, fine-tune, and the shipped configs. The fast tests are in test_vit_task.cpp.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "autograd/ops.hpp"
#include "autograd/tape.hpp"
#include "examples/vit/tests/tiny_vit.hpp"
#include "examples/vit/vit_task.hpp"
#include "optim/adam.hpp"
#include "tests/helpers.hpp"
#include "tests/image_files.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

struct Trained {
  std::unique_ptr<ViTTask> task;
  Generator init{1}, dropout{2};
  double first = 0, last = 0;
};

// Trains the config's task for `steps` AdamW steps, recording the mean loss of the first and last five.
std::unique_ptr<Trained> train(const std::string& config_text, std::int64_t steps) {
  auto t = std::make_unique<Trained>();
  train::Config config = train::Config::parse(config_text, "tiny.toml");
  EXPECT_EQ(config.string("task.name", "", "the task"), "vit");
  t->task = std::make_unique<ViTTask>(config, train::TaskContext{0, &t->init, &t->dropout});
  config.check_all_used();
  optim::AdamW opt(optim::param_groups_by_weight_decay(t->task->model().named_parameters(), 3e-3, 0.0, {}));
  for (std::int64_t step = 0; step < steps; ++step) {
    const train::BatchLoss b =
        t->task->train_batch(step / t->task->batches_per_epoch(), step % t->task->batches_per_epoch());
    if (step < 5) t->first += b.loss.item() / 5;
    if (step >= steps - 5) t->last += b.loss.item() / 5;
    b.loss.backward();
    opt.step();
    opt.zero_grad();
  }
  return t;
}

TEST(ViTTask, ATinyViTLearnsFromIdxFiles) {
  const fs::path data = idx_folder("learns");
  const auto t = train(tiny_config(data), 60);
  EXPECT_LT(t->last, 0.7 * t->first) << "the loss did not fall";
  const std::map<std::string, double> m = t->task->evaluate("test");
  EXPECT_GT(m.at("accuracy"), 0.5);  // 4 classes: chance is 0.25
  EXPECT_EQ(t->task->batches_per_epoch(), 400 / 32);
  EXPECT_EQ(t->task->split("val").size(), 80);
  EXPECT_EQ(t->task->split("train").size(), 400);
  train::Checkpoint c;
  t->task->describe(c);
  EXPECT_EQ(c.meta_strings.at("classes").size(), 10u);  // mnist's names
  EXPECT_EQ(c.meta_numbers.at("image_size"), std::vector<double>{12});
  fs::remove_all(data);
}

TEST(ViTTask, ATinyViTLearnsFromCifar10Files) {
  const fs::path data = scratch_dir("vit_cifar");
  vision::testdata::write_cifar10(data.string(), vision::testdata::synthetic_images(64, 3, 32, 10, 4), 32);
  const std::string header = "[task]\nname = \"vit\"\n[data]\ndataset = \"cifar10\"\ndir = \"" + data.string() + "\"\n";
  {  // CIFAR-10's augmentation defaults: crops from 4 pixels of padding, flips
    Generator init(1), dropout(2);
    train::Config defaults = train::Config::parse(header + "val_size = 40\n", "defaults.toml");
    const ViTTask task(defaults, {0, &init, &dropout});
    EXPECT_TRUE(task.transform().hflip);
    EXPECT_EQ(task.transform().crop_padding, 4);
    EXPECT_EQ(task.vit().options.in_chans, 3);
    EXPECT_EQ(task.vit().options.image_size, 32);
  }
  // the class is the height of a band of rows: vertical shifts would blur it, flips keep it
  const auto t = train(header + R"(crop_padding = 0
val_size = 40
batch_size = 20
[model]
patch_size = 8
embed_dim = 16
depth = 1
num_heads = 2
mlp_dim = 32
)",
                       40);
  EXPECT_LT(t->last, 0.8 * t->first) << "the loss did not fall";
  EXPECT_EQ(t->task->split("train").size(), 5 * 64 - 40);
  EXPECT_EQ(t->task->split("test").size(), 32);
  fs::remove_all(data);
}

TEST(ViTTask, ACheckpointLoadsAtAnotherImageSizeWithItsPositionsResized) {
  const fs::path data = idx_folder("resize");
  const auto t = train(tiny_config(data), 40);
  const double accuracy = t->task->evaluate("test").at("accuracy");
  train::Checkpoint c;
  c.params = t->task->model().named_parameters();
  for (const auto& [size, mode, grid] : {std::tuple<int, const char*, int>{16, "pad", 4}, {24, "upsample", 6}}) {
    Generator init(5), dropout(6);
    train::Config config = train::Config::parse(tiny_config(data, "") + "", "big.toml");
    config.set("data.image_size=" + std::to_string(size));
    config.set(std::string("data.resize=\"") + mode + "\"");
    ViTTask big(config, {0, &init, &dropout});
    const std::vector<std::string> notes = big.load_parameters(c, "tiny.h5");
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("3x3 resized bicubically to " + std::to_string(grid) + "x" + std::to_string(grid)),
              std::string::npos)
        << notes[0];
    const Tensor old_pos = t->task->vit().pos_embed;
    EXPECT_EQ(big.vit().pos_embed.shape(), (Shape{1, 1 + grid * grid, 16}));
    EXPECT_LT(max_abs_diff(big.vit().pos_embed, nn::resize_pos_embed(old_pos, 3, 3, grid, grid)), 1e-6);
    EXPECT_EQ(max_abs_diff(slice(big.vit().pos_embed, 1, 0, 1), slice(old_pos, 1, 0, 1)), 0.0);  // class token kept
    EXPECT_EQ(max_abs_diff(big.vit().head->weight, t->task->vit().head->weight), 0.0);
    const double resized = big.evaluate("test").at("accuracy");
    EXPECT_GE(resized, 0.0);
    std::printf("trained at 12x12: test accuracy %.3f; at %dx%d (%s): %.3f\n", accuracy, size, size, mode, resized);
  }
  // a position embedding that is no square grid is refused, naming the file
  train::Checkpoint bad = c;
  for (auto& [name, p] : bad.params)
    if (name == "pos_embed") p = zeros({1, 7, 16});
  Generator init(5), dropout(6);
  train::Config config = train::Config::parse(tiny_config(data), "same.toml");
  ViTTask same(config, {0, &init, &dropout});
  try {
    same.load_parameters(bad, "odd.h5");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.h5: pos_embed"), std::string::npos) << e.what();
  }
  fs::remove_all(data);
}

// data.train_size: the first images of the seeded order, so smaller sets nest in larger ones, and
// the validation images stay those of the full set; more than there are is refused by name.
// data.batches_per_epoch: epochs that are not passes.
TEST(ViTTask, TrainSizeAndBatchesPerEpochChooseTheTrainingStream) {
  const fs::path data = idx_folder("train_size");
  const auto images_of = [](const vision::ImageSet& set) {
    std::set<std::string> out;
    for (std::int64_t i = 0; i < set.size(); ++i)
      out.insert(std::string(reinterpret_cast<const char*>(set.image(i)), static_cast<std::size_t>(set.image_bytes())) +
                 static_cast<char>(set.labels[static_cast<std::size_t>(i)]));
    return out;
  };
  const auto task = [&](const std::string& extra) {
    std::string text = tiny_config(data);
    text.insert(text.find("val_size = 80\n"), extra + "\n");  // into [data]
    train::Config config = train::Config::parse(text, "tiny.toml");
    EXPECT_EQ(config.string("task.name", "", "the task"), "vit");
    Generator init(1), dropout(2);
    auto t = std::make_unique<ViTTask>(config, train::TaskContext{0, &init, &dropout});
    config.check_all_used();
    return t;
  };
  const auto all = task(""), small = task("train_size = 64"), medium = task("train_size = 200");
  ASSERT_EQ(all->split("train").size(), 400);
  EXPECT_EQ(small->split("train").size(), 64);
  EXPECT_EQ(medium->split("train").size(), 200);
  EXPECT_EQ(small->batches_per_epoch(), 2);
  const std::set<std::string> a = images_of(all->split("train")), s = images_of(small->split("train")),
                              m = images_of(medium->split("train"));
  ASSERT_EQ(a.size(), 400u) << "the generated images are distinct";
  EXPECT_TRUE(std::includes(m.begin(), m.end(), s.begin(), s.end())) << "64 images among the 200";
  EXPECT_TRUE(std::includes(a.begin(), a.end(), m.begin(), m.end())) << "200 images among the 400";
  EXPECT_EQ(images_of(small->split("val")), images_of(all->split("val")));
  EXPECT_EQ(task("train_size = 400")->split("train").size(), 400);
  try {
    task("train_size = 401");
    ADD_FAILURE() << "401 training images of 400 accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("data.train_size"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("401 is more than the 400 images"), std::string::npos) << e.what();
  }
  // data.batches_per_epoch: epochs of 5 batches over passes of 2 (64 images, batches of 32) go on
  // through the passes: epoch 1's first batch is the sixth, pass 2's second batch
  const auto five = task("train_size = 64\nbatches_per_epoch = 5"), two = task("train_size = 64");
  EXPECT_EQ(five->batches_per_epoch(), 5);
  const double sixth = five->train_batch(1, 0).loss.item();
  EXPECT_EQ(sixth, two->train_batch(2, 1).loss.item()) << "the same images, augmentation and model";
  EXPECT_NE(sixth, two->train_batch(2, 0).loss.item()) << "another batch";
  fs::remove_all(data);
}

TEST(ViTTask, ConfusionMatrixAndPredictionsAgreeWithTheAccuracy) {
  const fs::path data = idx_folder("reports");
  const auto t = train(tiny_config(data), 30);
  const double accuracy = t->task->evaluate("test").at("accuracy");
  const std::vector<std::string> files = t->task->write_reports("test", data.string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_TRUE(fs::exists(data / "confusion-test.png"));
  std::ifstream csv(data / "confusion-test.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("label\\predicted,\"0\",\"1\"", 0), 0u) << line;
  std::int64_t total = 0, diagonal = 0;
  for (int row = 0; std::getline(csv, line); ++row) {
    std::stringstream ss(line);
    std::string cell;
    std::getline(ss, cell, ',');  // the class name
    for (int col = 0; std::getline(ss, cell, ','); ++col) {
      total += std::stoll(cell);
      if (col == row) diagonal += std::stoll(cell);
    }
  }
  EXPECT_EQ(total, 120);
  EXPECT_NEAR(static_cast<double>(diagonal) / 120.0, accuracy, 1e-12);
  const std::string predictions = (data / "predictions.csv").string();
  t->task->write_predictions(predictions);
  std::ifstream in(predictions);
  std::getline(in, line);
  EXPECT_EQ(line,
            "index,label,predicted,logit_0,logit_1,logit_2,logit_3,logit_4,logit_5,logit_6,logit_7,logit_8,logit_9")
      << "a logit for each of MNIST's ten classes";
  std::int64_t n = 0, correct = 0;
  for (; std::getline(in, line); ++n) {
    std::vector<double> fields;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) fields.push_back(std::stod(cell));
    ASSERT_EQ(fields.size(), 13u) << line;
    const auto label = static_cast<std::int64_t>(fields[1]), predicted = static_cast<std::int64_t>(fields[2]);
    EXPECT_EQ(fields[0], static_cast<double>(n));
    EXPECT_EQ(label, t->task->split("test").labels[static_cast<std::size_t>(n)]);
    EXPECT_EQ(predicted, std::max_element(fields.begin() + 3, fields.end()) - (fields.begin() + 3))
        << "the prediction is the top logit: " << line;
    correct += label == predicted;
  }
  EXPECT_EQ(n, 120);
  EXPECT_NEAR(static_cast<double>(correct) / 120.0, accuracy, 1e-12);
  fs::remove_all(data);
}

// ------------------------------------------------------------------------- through the binary

// A minimal 8-bit RGB PNG (one IDAT, filter 0 on every row), written with zlib.
void write_png(const fs::path& path, int size) {
  std::string raw;
  for (int y = 0; y < size; ++y) {
    raw.push_back(0);
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) raw.push_back(static_cast<char>(y * 255 / size));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
           static_cast<uLong>(raw.size()));
  packed.resize(packed_size);
  std::ofstream out(path, std::ios::binary);
  const auto be = [](std::string& s, std::uint32_t v) {
    for (int k = 24; k >= 0; k -= 8) s.push_back(static_cast<char>((v >> k) & 0xFF));
  };
  const auto chunk = [&](const std::string& type, const std::string& body) {
    std::string len, crc;
    be(len, static_cast<std::uint32_t>(body.size()));
    const std::string typed = type + body;
    be(crc, static_cast<std::uint32_t>(
                crc32(0, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()))));
    out << len << typed << crc;
  };
  out << "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  be(ihdr, static_cast<std::uint32_t>(size));
  be(ihdr, static_cast<std::uint32_t>(size));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter set, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", packed);
  chunk("IEND", "");
}

TEST(ViTTask, EndToEndThroughRune) {
  const fs::path data = idx_folder("cli");
  std::ofstream(data / "tiny.toml") << "seed = 2\n"
                                    << tiny_config(data, R"([train]
epochs = 2
lr = 3e-3
warmup_steps = 2
[run]
dir = "runs"
name = "tiny"
)");
  RunResult r = run_rune("train tiny.toml --no-progress", data);
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path run = data / "runs" / "tiny";
  // eval: metrics, the confusion matrix next to the run's files, predictions where asked
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --predictions preds.csv", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos) << r.output;
  for (const char* f : {"confusion-test.csv", "confusion-test.png", "eval-test.json"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  std::ifstream preds(data / "preds.csv");
  std::int64_t lines = 0;
  for (std::string line; std::getline(preds, line);) ++lines;
  EXPECT_EQ(lines, 1 + 120);
  // evaluated at 16x16 (padded) and 24x24 (upsampled): the position embedding is resized, said so
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --set data.image_size=16 --set data.resize=pad --out at16", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3x3 resized bicubically to 4x4"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(data / "at16" / "confusion-test.png"));
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --set data.image_size=24 --set data.resize=upsample --out at24",
               data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("to 6x6"), std::string::npos) << r.output;
  // without a resize mode the size change is refused by key
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --set data.image_size=16", data);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("data.resize"), std::string::npos) << r.output;
  // attention over a test image by index, and over a PNG file of another size
  r = run_rune("attention runs/tiny/checkpoints/best.h5 --image 5 --out att", data);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"vit_attention_map.png", "attention_rollout.png", "cls_attention.csv"})
    EXPECT_GT(fs::file_size(data / "att" / f), 100u) << f;
  std::ifstream csv(data / "att" / "cls_attention.csv");
  std::int64_t rows = 0;
  for (std::string line; std::getline(csv, line);) ++rows;
  EXPECT_EQ(rows, 1 + 2 * 2 * 9 + 9);  // header, layers x heads x patches, rollout
  write_png(data / "picture.png", 40);
  r = run_rune("attention runs/tiny/checkpoints/best.h5 --image picture.png --out att_png", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("predicted"), std::string::npos);
  r = run_rune("attention runs/tiny/checkpoints/best.h5 --image nothing.png --out x", data);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("nothing.png"), std::string::npos) << r.output;
  r = run_rune("attention runs/tiny/checkpoints/best.h5 --image 999 --out x", data);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("999"), std::string::npos) << r.output;
  // head analysis of the ViT's blocks (every row and key valid), with the pruning curve
  r = run_rune("heads runs/tiny/checkpoints/best.h5 --limit 50 --prune --no-progress", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("test split, 50 examples"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("heads can go before accuracy drops"), std::string::npos) << r.output;
  for (const char* f :
       {"heads.md", "heads.csv", "head_patterns.png", "head_importance.png", "pruning.csv", "pruning.png"})
    EXPECT_TRUE(fs::exists(run / "heads-test" / f)) << f;
  {
    std::ifstream heads(run / "heads-test" / "heads.csv");
    std::string header, line;
    std::getline(heads, header);
    std::getline(heads, line);
    EXPECT_EQ(line.rfind("encoder.layers.0.self_attn,0,", 0), 0u) << line;
    // a row of every valid query of 50 images: 1 + 9 tokens each
    EXPECT_EQ(line.substr(line.rfind(',') + 1), std::to_string(50 * 10)) << line;
  }
  // fine-tuning at 16x16 from the 12x12 checkpoint
  r = run_rune(
      "train tiny.toml --no-progress --set run.name=ft --set data.image_size=16 --set data.resize=pad "
      "--set train.epochs=1 --set train.init_from=runs/tiny/checkpoints/best.h5",
      data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resized bicubically to 4x4"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(data / "runs" / "ft" / "checkpoints" / "best.h5"));
  fs::remove_all(data);
}

// The configs shipped in examples/vit/ train as they are, on data written here in their formats
// (their own data sets are not needed in the test suite), with the model shrunk by --set.
TEST(ViTTask, TheShippedConfigsTrain) {
  const fs::path data = idx_folder("configs");
  const fs::path fm = data / "fm", cifar = data / "cifar";
  vision::testdata::write_idx(fm.string(), vision::testdata::synthetic_images(200, 1, 28, 10, 1),
                              vision::testdata::synthetic_images(50, 1, 28, 10, 2), true);
  vision::testdata::write_cifar10(cifar.string(), vision::testdata::synthetic_images(60, 3, 32, 10, 4), 30);
  const std::string examples = std::string(RUNE_SOURCE_DIR) + "/examples/vit/";
  const std::string small =
      " --no-progress --set model.embed_dim=16 --set model.num_heads=2 --set model.mlp_dim=32 "
      "--set model.depth=1 --set train.epochs=1 --set train.warmup_steps=1 --set data.batch_size=50 "
      "--set data.val_size=40 --set run.dir=runs";
  RunResult r = run_rune("train " + examples + "fashion_mnist.toml --set data.dir=" + fm.string() + small, data);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_rune("train " + examples + "fashion_mnist_32.toml --set data.dir=" + fm.string() + small +
                   " --set train.init_from=runs/fashion_mnist/checkpoints/best.h5",
               data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("pos_embed [1,50,16] -> [1,65,16]: patch grid 7x7 resized bicubically to 8x8"),
            std::string::npos)
      << r.output;
  r = run_rune("train " + examples + "data_efficiency.toml --set data.dir=" + fm.string() + small +
                   " --set data.train_size=120 --set data.batches_per_epoch=3",
               data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("3 steps"), std::string::npos) << r.output;
  r = run_rune("train " + examples + "cifar10.toml" + small, data);  // without its data folder
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("data.dir"), std::string::npos) << r.output;
  r = run_rune("train " + examples + "cifar10.toml --set data.dir=" + cifar.string() + small, data);
  ASSERT_EQ(r.status, 0) << r.output;
  fs::remove_all(data);
}

}  // namespace
}  // namespace rune::examples
