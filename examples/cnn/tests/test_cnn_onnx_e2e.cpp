// The ResNet exported to ONNX and run in ONNX Runtime (e2e, seconds): a tiny ResNet of two stages
// (the second's first block has the downsample shortcut) trained by the rune binary on IDX files,
// exported by `rune export`, then run from Node.js (tests/onnx/check.mjs) on the first 64 test
// images, read from the same files: its logits must be within 1e-4 of `rune eval --predictions`'
// (batch norms by the running statistics the training moved) and its predicted classes the same;
// docs/onnx.md's example (tests/onnx/example.mjs) runs it as the ViT's and names the same classes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/helpers.hpp"
#include "tests/image_files.hpp"
#include "tests/onnx_check.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(CnnOnnx, TheExportedModelGivesRunesLogits) {
  // 12x12 grey IDX files: 480 training and 120 test images of 4 classes
  const fs::path data = scratch_dir("cnn_onnx");
  vision::testdata::write_small_idx(data.string());
  std::ofstream(data / "tiny.toml") << "seed = 3\n[task]\nname = \"cnn\"\n[data]\ndataset = \"mnist\"\ndir = \""
                                    << data.string() << R"("
val_size = 80
batch_size = 32
eval_batch_size = 64
[model]
width = 4
blocks = 1
stages = 2
[train]
epochs = 2
optimizer = "sgd"
lr = 0.1
warmup_steps = 2
[run]
dir = "runs"
name = "tiny"
)";
  const OneThread one_thread;
  RunResult r = run_rune("train tiny.toml --no-progress", data);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_rune("export runs/tiny/checkpoints/best.h5 --onnx tiny.onnx", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote tiny.onnx\ngraph resnet: images float (batch, 1, 12, 12), pixel values 0..255 -> "
                          "logits float (batch, 10)"),
            std::string::npos)
      << r.output;
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --split test --predictions preds.csv", data);
  ASSERT_EQ(r.status, 0) << r.output;

  const RunResult check = run_onnx_check(
      "cnn --model tiny.onnx --images '" + data.string() + "' --predictions preds.csv --count 64 --tolerance 1e-4",
      data);
  ASSERT_NE(check.status, 3) << check.output;  // node or npm missing: the output names scripts/install-deps.sh
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("predicted classes equal: 64 of 64"), std::string::npos) << check.output;
  std::printf("%s", check.output.c_str());  // the figures, in ctest's output

  // check.mjs reads the task from the model's metadata: the ResNet is not taken for a ViT
  const RunResult wrong =
      run_onnx_check("vit --model tiny.onnx --images '" + data.string() + "' --predictions preds.csv --count 8", data);
  EXPECT_EQ(wrong.status, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("is a model of the task \"cnn\", not vit"), std::string::npos) << wrong.output;

  // docs/onnx.md's example, written for the ViT, names the classes rune predicts (MNIST's: the digits)
  const RunResult example = run_onnx_check("--example classify tiny.onnx '" + data.string() + "' 8", data);
  ASSERT_EQ(example.status, 0) << example.output;
  std::istringstream rows(read_file(data / "preds.csv"));
  std::string expected, line;
  std::getline(rows, line);  // index,label,predicted,logit_0,...
  for (int i = 0; i < 8 && std::getline(rows, line); ++i) {
    const std::size_t a = line.find(','), b = line.find(',', a + 1), c = line.find(',', b + 1);
    expected += "test image " + std::to_string(i) + ": " + line.substr(b + 1, c - b - 1) + "\n";
  }
  EXPECT_EQ(example.output, expected);
  fs::remove_all(data);
}

}  // namespace
}  // namespace rune::examples
