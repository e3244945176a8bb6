// The ViT exported to ONNX and run in ONNX Runtime (e2e, seconds): a tiny ViT (mean pooling, the
// branch the shipped configs do not take) trained by the rune binary on IDX files, exported by
// `rune export`, then run from Node.js (tests/onnx/check.mjs) on the first 64 test images, read
// from the same files: its logits must be within 1e-4 of `rune eval --predictions`' and its
// predicted classes the same; docs/onnx.md's example (tests/onnx/example.mjs) names the same classes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "examples/vit/tests/tiny_vit.hpp"
#include "tests/helpers.hpp"
#include "tests/onnx_check.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(ViTOnnx, TheExportedModelGivesRunesLogits) {
  const fs::path data = idx_folder("onnx");
  std::ofstream(data / "tiny.toml") << "seed = 4\n"
                                    << tiny_config(data, R"(pool = "mean"
[train]
epochs = 2
lr = 3e-3
warmup_steps = 2
[run]
dir = "runs"
name = "tiny"
)");
  const OneThread one_thread;
  RunResult r = run_rune("train tiny.toml --no-progress", data);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_rune("export runs/tiny/checkpoints/best.h5 --onnx tiny.onnx", data);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote tiny.onnx\ngraph vit: images float (batch, 1, 12, 12), pixel values 0..255 -> "
                          "logits float (batch, 10)"),
            std::string::npos)
      << r.output;
  r = run_rune("eval runs/tiny/checkpoints/best.h5 --split test --predictions preds.csv", data);
  ASSERT_EQ(r.status, 0) << r.output;

  const RunResult check = run_onnx_check(
      "vit --model tiny.onnx --images '" + data.string() + "' --predictions preds.csv --count 64 --tolerance 1e-4",
      data);
  ASSERT_NE(check.status, 3) << check.output;  // node or npm missing: the output names scripts/install-deps.sh
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("predicted classes equal: 64 of 64"), std::string::npos) << check.output;
  std::printf("%s", check.output.c_str());  // the figures, in ctest's output

  // docs/onnx.md's example names the classes rune predicts (MNIST's names are the digits)
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
}

}  // namespace
}  // namespace rune::examples
