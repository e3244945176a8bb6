// The language model end to end with the rune binary: a tiny model trained on the made-up corpus,
// then `rune generate` (the prompt first, the same text for the same seed, prompts from stdin, the
// decoding speed on request) and `rune eval`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "examples/lm/tests/lm_corpus.hpp"
#include "tests/helpers.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(LmE2E, TrainsThenGeneratesReproduciblyFromAPromptOrStdin) {
  const OneThread one_thread;
  const fs::path dir = scratch_dir("lm_e2e");
  write_lm_corpus(dir);
  std::ofstream(dir / "tiny.toml") << tiny_lm_config(dir, "batches_per_epoch = 40") << R"(
[train]
epochs = 3
lr = 1e-2
schedule = "constant"
log_every = 40
[run]
dir = "runs"
)";
  const std::string d = dir.string();
  RunResult r = run_rune("train tiny.toml --no-progress", d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("val bits_per_char"), std::string::npos) << r.output;
  const std::string ckpt = "runs/tiny/checkpoints/last.h5";

  const std::string args = "generate " + ckpt + " --prompt 'the cat' -n 40 --temperature 0.8 --top-k 10 --seed 3";
  r = run_rune(args, d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.rfind("the cat", 0), 0u) << r.output;
  EXPECT_GE(r.output.size(), std::string("the cat").size() + 40) << r.output;
  EXPECT_EQ(run_rune(args, d).output, r.output);  // the same seed: the same text
  EXPECT_NE(run_rune(args + "1", d).output, r.output);

  // greedy from stdin, a prompt per line; the speed on stderr
  r = run_rune("generate " + ckpt + " -n 12 --temperature 0 --tokens-per-s < /dev/null", d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.output.empty()) << r.output;
  std::ofstream(dir / "prompts.txt") << "a dog\nthe old man\n";
  r = run_rune("generate " + ckpt + " -n 12 --temperature 0 --tokens-per-s < prompts.txt", d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.rfind("a dog", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("\nthe old man"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rune generate: 12 new tokens in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens/s (the prompt's 6 tokens read in"), std::string::npos) << r.output;

  r = run_rune("eval " + ckpt + " --split test", d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("bits_per_char"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("perplexity"), std::string::npos) << r.output;

  r = run_rune("generate " + ckpt + " --prompt x --top-p 1.5", d);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--top-p"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace rune::examples
