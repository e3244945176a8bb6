// The reverse task, the fast part: the architecture facts its checkpoints carry, translating
// digit sequences (`rune translate`) with the errors it names, and its examples with gold word
// alignments (`rune align`). Its trainings run in tests/test_cli.cpp and test_reverse_align_e2e.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "examples/reverse/reverse_task.hpp"
#include "tests/described.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"
#include "train/format.hpp"

namespace rune::examples {
namespace {

std::unique_ptr<ReverseTask> tiny_task(const std::string& model_keys) {
  static Generator init(1), dropout(2);
  train::Config c = train::Config::parse(
      "[task]\nname = \"reverse\"\n[data]\nmin_len = 2\nmax_len = 5\neval_size = 8\n[model]\nd_model = 16\nnhead = 2\n"
      "num_encoder_layers = 2\nnum_decoder_layers = 1\ndim_feedforward = 24\n" +
          model_keys,
      "reverse.toml");
  return std::make_unique<ReverseTask>(c, train::TaskContext{3, &init, &dropout});
}

TEST(ReverseTask, CheckpointCarriesTheArchitectureOfItsOptions) {
  const train::Checkpoint d = saved_and_read(*tiny_task(""), "reverse_described");
  EXPECT_EQ(fact<std::string>(d, "model"), "seq2seq_transformer");
  EXPECT_EQ(fact<std::int64_t>(d, "d_model"), 16);
  EXPECT_EQ(fact<std::int64_t>(d, "num_encoder_layers"), 2);
  EXPECT_EQ(fact<std::int64_t>(d, "num_decoder_layers"), 1);
  EXPECT_EQ(fact<std::int64_t>(d, "dim_feedforward"), 24);
  EXPECT_EQ(fact<std::int64_t>(d, "norm_first"), 1);
  EXPECT_EQ(fact<std::string>(d, "activation"), "gelu");
  EXPECT_EQ(fact<std::string>(d, "positions"), "sinusoidal");
  EXPECT_EQ(fact<std::int64_t>(d, "max_positions"), 7);
  // the source is the digits alone; no <unk>: other tokens are refused
  EXPECT_EQ(fact<std::string>(d, "source_framing"), "tokens");
  EXPECT_EQ(fact<std::string>(d, "target_framing"), "tokens <eos>");
  EXPECT_EQ(fact<std::string>(d, "unknown_tokens"), "refused");
  EXPECT_EQ(d.architecture.count("unk_id"), 0u);
  EXPECT_EQ(fact<std::int64_t>(d, "max_source_tokens"), 5);
  EXPECT_EQ(fact<std::int64_t>(d, "max_decode_steps"), 6);
  const std::vector<std::string>& vocab = d.meta_strings.at(fact<std::string>(d, "source_vocabulary"));
  ASSERT_EQ(vocab.size(), 13u);
  EXPECT_EQ(vocab[static_cast<std::size_t>(fact<std::int64_t>(d, "eos_id"))], "<eos>");
  EXPECT_EQ(vocab[3], "0");

  const train::Checkpoint o = saved_and_read(
      *tiny_task("norm_first = false\nactivation = \"relu\"\npositions = \"learned\"\ntie_output = true\n"),
      "reverse_described_other");
  EXPECT_EQ(fact<std::int64_t>(o, "norm_first"), 0);
  EXPECT_EQ(fact<std::string>(o, "activation"), "relu");
  EXPECT_EQ(fact<std::string>(o, "positions"), "learned");
  EXPECT_EQ(fact<std::int64_t>(o, "tie_output"), 1);
}

TEST(ReverseTask, TranslatesDigitSequencesAloneAsInABatch) {
  const auto task = tiny_task("");
  const std::vector<std::string> sources{"3 1 4", "2", "9 8 7 6 5", " 0  1\t2 "};
  const std::vector<std::string> together = task->translate(sources, nullptr);
  ASSERT_EQ(together.size(), sources.size());
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    EXPECT_EQ(task->translate({sources[i]}, nullptr), std::vector<std::string>{together[i]})
        << sources[i];  // padding is masked
    pairs.emplace_back(sources[i], "4 1 3");
  }
  const std::vector<double> lp = task->log_probability(pairs, nullptr);
  for (std::size_t i = 0; i < sources.size(); ++i) {
    EXPECT_TRUE(std::isfinite(lp[i]) && lp[i] < 0) << lp[i];
    EXPECT_NEAR(task->log_probability({pairs[i]}, nullptr).at(0), lp[i], 1e-5) << sources[i];
  }
  // digits beyond data.max_len are not read, and a note says so
  std::vector<std::string> notes;
  EXPECT_EQ(task->translate({"1 2", "1 2 3 4 5 6 7"}, &notes).at(1), task->translate({"1 2 3 4 5"}, nullptr).at(0));
  const std::string said = train::join(notes, "\n");
  EXPECT_NE(said.find("sentence 2 has 7 digits; the model reads 5 of them"), std::string::npos) << said;
  EXPECT_EQ(said.find("sentence 1 has"), std::string::npos) << said;
  EXPECT_NE(error_of([&] { task->translate({"3 x 4"}, nullptr); }).find("'x' in '3 x 4' is not a digit 0..9"),
            std::string::npos);
  EXPECT_NE(error_of([&] { task->log_probability({{"3 4", "4 10"}}, nullptr); }).find("'10'"), std::string::npos);
}

TEST(ReverseTask, AlignmentExamplesHoldTheMirroredLinksAndTheCrossAttention) {
  const auto task = tiny_task("");  // 2 heads, one decoder layer
  EXPECT_EQ(task->prepare_alignment("test", 0), 8);
  EXPECT_EQ(task->prepare_alignment("val", 3), 3);
  for (std::int64_t i = 0; i < 3; ++i) {
    const analysis::AlignmentExample e = task->alignment_example(i);
    EXPECT_EQ(e.name, "pair " + std::to_string(i));
    const auto n = static_cast<int>(e.source_words.size());
    ASSERT_GE(n, 2);
    ASSERT_LE(n, 5);
    ASSERT_EQ(e.target_words.size(), e.source_words.size());
    std::vector<int> words(static_cast<std::size_t>(n));
    analysis::Links gold;
    for (int j = 0; j < n; ++j) {
      EXPECT_EQ(e.target_words[static_cast<std::size_t>(j)], e.source_words[static_cast<std::size_t>(n - 1 - j)]);
      gold.emplace_back(n - 1 - j, j);
      words[static_cast<std::size_t>(j)] = j;
    }
    EXPECT_EQ(e.gold, gold);
    EXPECT_EQ(e.source_word_of, words);  // digits alone, no <eos>
    words.push_back(-1);                 // the row that predicts <eos>
    EXPECT_EQ(e.target_word_of, words);
    EXPECT_EQ(e.attention.source, e.source_words);
    EXPECT_EQ(e.attention.target.front(), "<bos>");
    // the cross layer only, (H, n + 1, n), each row a distribution over the source digits
    ASSERT_EQ(e.attention.layers.size(), 1u);
    EXPECT_EQ(e.attention.layers[0].kind, "cross");
    const Tensor& w = e.attention.layers[0].weights;
    ASSERT_EQ(w.shape(), (Shape{2, n + 1, n}));
    const std::vector<double> v = values(w);
    for (std::int64_t row = 0; row < 2 * (n + 1); ++row) {
      double total = 0;
      for (int k = 0; k < n; ++k) total += v[static_cast<std::size_t>(row * n + k)];
      EXPECT_NEAR(total, 1.0, 1e-5);
    }
    EXPECT_EQ(analysis::cross_layers(e).size(), 1u);  // consistent with its word maps
  }
  EXPECT_NE(error_of([&] { task->alignment_example(3); }).find("no example 3 of 3"), std::string::npos);
  EXPECT_NE(error_of([&] { task->prepare_alignment("train", 0); }).find("reverse: no split 'train' to align"),
            std::string::npos);
  // a command asking for the capability finds it
  EXPECT_NE(train::tasks_with(analysis::AlignmentSource::capability).find("reverse"), std::string::npos);
}

}  // namespace
}  // namespace rune::examples
