// The translation example's tiny trainings (e2e: a few seconds each): a tiny model's loss must
// fall on both data sources, number words and a TSV file read by characters, and evaluation,
// translation and the checkpoint's description work on what it learned.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "autograd/ops.hpp"
#include "examples/translation/corpus.hpp"
#include "examples/translation/translation_task.hpp"
#include "optim/adam.hpp"
#include "tests/helpers.hpp"
#include "train/config.hpp"

namespace rune::examples {
namespace {

namespace fs = std::filesystem;

// Trains a tiny model a few dozen steps; the loss must fall and evaluation must produce metrics.
void expect_learns(const std::string& config_text) {
  train::Config config = train::Config::parse(config_text, "tiny.toml");
  Generator init(1), dropout(2);
  TranslationTask task(config, {0, &init, &dropout});
  config.check_all_used();
  optim::AdamW opt(optim::param_groups_by_weight_decay(task.model().named_parameters(), 3e-3, 0.0, {}));
  double first = 0, last = 0;
  for (std::int64_t step = 0; step < 40; ++step) {
    const train::BatchLoss b = task.train_batch(step / task.batches_per_epoch(), step % task.batches_per_epoch());
    if (step < 5) first += b.loss.item() / 5;
    if (step >= 35) last += b.loss.item() / 5;
    b.loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_LT(last, 0.8 * first) << "the loss did not fall";
  const std::map<std::string, double> m = task.evaluate("val");
  for (const char* k : {"loss", "token_accuracy", "exact_match", "bleu"}) EXPECT_TRUE(m.count(k)) << k;
  EXPECT_EQ(task.translate({"one", "two"}).size(), 2u);
  train::Checkpoint c;
  task.describe(c);
  EXPECT_EQ(c.meta_strings.at("target_vocabulary").front(), "<pad>");
}

TEST(Translation, ATinyModelLearnsNumberWords) {
  expect_learns(R"([data]
batch_size = 16
batches_per_epoch = 20
eval_size = 32
[decode]
beam = 3
[model]
positions = "learned"
tie_output = true
d_model = 32
nhead = 4
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 64
dropout = 0.0
)");
}

TEST(Translation, ATinyModelLearnsFromATsvFileByCharacters) {
  const fs::path dir = scratch_dir("translation_tsv");
  const std::string path = (dir / "pairs.tsv").string();
  {
    std::ofstream out(path);
    for (int n = 0; n < 400; ++n) out << number_pair(n).source << "\t" << number_pair(n).target << "\n";
  }
  expect_learns("[data]\nsource = \"tsv\"\npath = \"" + path + R"("
tokenization = "char"
batch_size = 16
[model]
d_model = 32
nhead = 4
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 64
dropout = 0.0
)");
  train::Config missing = train::Config::parse("[data]\nsource = \"tsv\"\n", "nopath.toml");
  Generator g(0);
  EXPECT_NE(error_of([&] { TranslationTask t(missing, {0, &g, &g}); }).find("data.path"), std::string::npos);
  fs::remove_all(dir);
}

// A checkpoint computes with what it holds (its vocabularies, its config), never with the data it
// was trained on: edited or deleted afterwards, the corpus changes no translation and no score.
TEST(Translation, ACheckpointTranslatesTheSameWhateverHappensToItsCorpus) {
  const fs::path dir = scratch_dir("translation_self_contained");
  const auto write_corpus = [&](bool swapped) {
    std::ofstream out(dir / "pairs.tsv");
    for (int n = 0; n < 300; ++n) {
      const Pair p = number_pair(swapped ? 299 - n : n);
      out << (swapped ? p.target : p.source) << "\t" << (swapped ? p.source : p.target) << "\n";
    }
  };
  write_corpus(false);
  std::ofstream(dir / "tiny.toml") << R"([task]
name = "translation"
[data]
source = "tsv"
path = "pairs.tsv"
batch_size = 32
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
[train]
epochs = 1
[run]
dir = "runs"
)";
  ASSERT_EQ(run_rune("train tiny.toml --no-progress", dir.string()).status, 0);
  const std::string translate = "translate runs/tiny/checkpoints/last.h5 --scores 'seven eight' 'seventy-one'";
  const RunResult before = run_rune(translate, dir.string());
  ASSERT_EQ(before.status, 0) << before.output;
  write_corpus(true);  // the French side first: every word's frequency, hence a rebuilt vocabulary, differs
  const RunResult edited = run_rune(translate, dir.string());
  EXPECT_EQ(edited.status, 0) << edited.output;
  EXPECT_EQ(edited.output, before.output);
  fs::remove(dir / "pairs.tsv");
  const RunResult deleted = run_rune(translate, dir.string());
  EXPECT_EQ(deleted.status, 0) << deleted.output;
  EXPECT_EQ(deleted.output, before.output);
  // evaluating needs the data, and says which file it lacks
  const RunResult eval = run_rune("eval runs/tiny/checkpoints/last.h5", dir.string());
  EXPECT_EQ(eval.status, 1) << eval.output;
  EXPECT_NE(eval.output.find("pairs.tsv"), std::string::npos) << eval.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::examples
