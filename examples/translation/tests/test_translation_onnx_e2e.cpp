// The translation model exported to ONNX and run in ONNX Runtime (e2e, seconds): a tiny model
// trained by the rune binary (post-LN, learned positions, output tied to the target embedding:
// the branches the demo's config does not take), exported by `rune export`, then greedy-decoded
// from Node.js (tests/onnx/check.mjs) on 200 numbers: every translation must equal `rune
// translate`'s and every log-probability `rune translate --scores`' within 1e-4. docs/onnx.md's
// example (tests/onnx/example.mjs) prints the translations rune prints.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "examples/translation/number_words.hpp"
#include "tests/helpers.hpp"
#include "tests/onnx_check.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(TranslationOnnx, TheExportedModelDecodesAsRuneTranslates) {
  const fs::path dir = scratch_dir("translation_onnx");
  std::ofstream(dir / "tiny.toml") << R"(seed = 3
[task]
name = "translation"
[data]
batch_size = 32
batches_per_epoch = 60
eval_size = 32
[model]
d_model = 32
nhead = 4
num_encoder_layers = 2
num_decoder_layers = 2
dim_feedforward = 64
dropout = 0.0
norm_first = false
positions = "learned"
tie_output = true
activation = "relu"
[train]
epochs = 1
lr = 3e-3
warmup_steps = 10
[run]
dir = "runs"
)";
  const OneThread one_thread;
  const RunResult train = run_rune("train tiny.toml --no-progress", dir.string());
  ASSERT_EQ(train.status, 0) << train.output;
  const std::string ckpt = "runs/tiny/checkpoints/last.h5";

  const RunResult exported = run_rune("export " + ckpt + " --onnx onnx/tiny.onnx", dir.string());
  ASSERT_EQ(exported.status, 0) << exported.output;
  EXPECT_NE(exported.output.find("wrote onnx/tiny-encoder.onnx\nwrote onnx/tiny-decoder.onnx\n"), std::string::npos)
      << exported.output;
  EXPECT_NE(exported.output.find("graph decoder_step: token int64 (batch, 1)"), std::string::npos) << exported.output;

  // 200 numbers of every size, from 0 to 999,999
  std::string sources;
  for (std::int64_t i = 0; i < 200; ++i) sources += english_words((i * 7919 * 104729 + i * i * 31) % 1000000) + "\n";
  std::ofstream(dir / "sources.txt") << sources;
  // stdout alone into rune.tsv: notes (an input cut, a translation without <eos>) go to notes.txt
  const RunResult translated =
      run_rune("translate " + ckpt + " --scores < sources.txt > rune.tsv 2> notes.txt; exit $?", dir.string());
  ASSERT_EQ(translated.status, 0) << translated.output;

  const RunResult check = run_onnx_check(
      "translation --encoder onnx/tiny-encoder.onnx --decoder onnx/tiny-decoder.onnx --sources sources.txt --rune "
      "rune.tsv --tolerance 1e-4",
      dir.string());
  ASSERT_NE(check.status, 3) << check.output;  // node or npm missing: the output names scripts/install-deps.sh
  EXPECT_EQ(check.status, 0) << check.output;
  EXPECT_NE(check.output.find("translations equal: 200 of 200"), std::string::npos) << check.output;
  std::printf("%s", check.output.c_str());  // the figures, in ctest's output

  // docs/onnx.md's example prints what rune translate prints
  const std::string some = "'seventy-one' 'two hundred and thirty-four' 'eighty thousand' 'nine hundred and five'";
  const RunResult example = run_onnx_check("--example translate onnx/tiny.onnx " + some, dir.string());
  ASSERT_EQ(example.status, 0) << example.output;
  const RunResult rune = run_rune("translate " + ckpt + " " + some, dir.string());
  ASSERT_EQ(rune.status, 0) << rune.output;
  EXPECT_EQ(example.output, rune.output);
}

}  // namespace
}  // namespace rune::examples
