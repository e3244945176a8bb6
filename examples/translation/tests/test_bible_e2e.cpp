// The Bible recipe end to end on a small cache file (bible_corpus.hpp) with the rune binary: train
// in SentencePiece subwords, evaluate on the test book with sacreBLEU and chrF, align words from
// the cross-attention against the gold links, translate from the checkpoint alone, and score
// translations with rune score as rune eval does.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "examples/translation/tests/bible_corpus.hpp"
#include "report/plot.hpp"
#include "tests/helpers.hpp"
#include "text/sacrebleu.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

TEST(BibleRecipe, TrainEvalAlignTranslateAndScore) {
  const OneThread one_thread;
  const fs::path dir = scratch_dir("bible_recipe");
  testing_corpus::write((dir / "data" / "bible.tsv").string());
  std::ofstream(dir / "tiny.toml") << R"([task]
name = "translation"
[data]
source = "bible"
cache = "data/bible.tsv"
tokenization = "sentencepiece"
vocab_size = 300
max_len = 64
batch_size = 16
[model]
d_model = 32
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 64
[train]
epochs = 2
lr = 3e-3
[decode]
beam = 2
[run]
dir = "runs"
)";
  const RunResult train = run_rune("train tiny.toml --no-progress", dir.string());
  ASSERT_EQ(train.status, 0) << train.output;
  const std::string ckpt = "runs/tiny/checkpoints/best.h5";

  const RunResult eval = run_rune("eval " + ckpt + " --split test", dir.string());
  ASSERT_EQ(eval.status, 0) << eval.output;
  for (const char* metric : {"sacrebleu", "chrf", "exact_match"})
    EXPECT_NE(eval.output.find(metric), std::string::npos) << eval.output;
  // every translation of the test book (10 verses), beside eval-test.json
  const fs::path translations = dir / "runs" / "tiny" / "translations-test.csv";
  EXPECT_NE(
      eval.output.find("the translations of the test split are in " + translations.lexically_relative(dir).string()),
      std::string::npos)
      << eval.output;
  std::ifstream csv(translations);
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "index,source,reference,translation,exact");
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 10);

  const RunResult align = run_rune("align " + ckpt + " --split test", dir.string());
  ASSERT_EQ(align.status, 0) << align.output;
  EXPECT_NE(align.output.find("position baseline"), std::string::npos) << align.output;
  EXPECT_NE(align.output.find("layer 0 head 1"), std::string::npos) << align.output;
  for (const char* file : {"alignment.csv", "alignment.md", "alignment.png"})
    EXPECT_TRUE(fs::exists(dir / "runs" / "tiny" / "align-test" / file)) << file;
  int h = 0, w = 0;
  EXPECT_FALSE(report::read_png((dir / "runs" / "tiny" / "align-test" / "alignment.png").string(), 3, h, w).empty());
  // the rows that read each target token, into a folder of their own
  const RunResult reads = run_rune("align " + ckpt + " --split test --rows reads", dir.string());
  ASSERT_EQ(reads.status, 0) << reads.output;
  EXPECT_NE(reads.output.find("the rows that read each target token"), std::string::npos) << reads.output;
  EXPECT_TRUE(fs::exists(dir / "runs" / "tiny" / "align-test-reads" / "alignment.md"));

  // the checkpoint translates with the corpus gone: its SentencePiece models are inside it
  fs::remove_all(dir / "data");
  const RunResult translated = run_rune("translate " + ckpt + " 'the king said' 'Paul prayed'", dir.string());
  ASSERT_EQ(translated.status, 0) << translated.output;
  EXPECT_NE(translated.output.find("the king said -> "), std::string::npos) << translated.output;

  // rune score: sacreBLEU's figures of two files, the same code as rune eval's
  std::ofstream(dir / "hyp.txt") << "el rey dijo a David\nPablo oró en el templo\n";
  std::ofstream(dir / "ref.txt") << "el rey dijo a David\nPablo oró en el monte\n";
  const RunResult score = run_rune("score hyp.txt ref.txt", dir.string());
  ASSERT_EQ(score.status, 0) << score.output;
  const double bleu = text::corpus_bleu_sacre({"el rey dijo a David", "Pablo oró en el templo"},
                                              {{"el rey dijo a David", "Pablo oró en el monte"}})
                          .score;
  char expected[64];
  std::snprintf(expected, sizeof expected, "BLEU = %.2f", bleu);
  EXPECT_NE(score.output.find(expected), std::string::npos) << score.output << " expected " << expected;
  EXPECT_NE(score.output.find("chrF2 = "), std::string::npos) << score.output;
  std::ofstream(dir / "short.txt") << "el rey\n";
  const RunResult mismatch = run_rune("score hyp.txt short.txt", dir.string());
  EXPECT_EQ(mismatch.status, 1);
  EXPECT_NE(mismatch.output.find("short.txt has 1 lines, hyp.txt 2"), std::string::npos) << mismatch.output;
}

}  // namespace
}  // namespace rune::examples
