// The translation example's tiny trainings (e2e: a few seconds each): a tiny model's loss must
// fall on both data sources, number words and a TSV file read by characters, and evaluation,
// translation and the checkpoint's description work on what it learned. Then the rune binary:
// what train and translate say on stderr about data they cut or do not know.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

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
  EXPECT_EQ(task.translate({"one", "two"}, nullptr).size(), 2u);
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

// The rune binary's stdout alone, its stderr and its exit status; `env` ("OMP_NUM_THREADS=1")
// goes before the command.
struct Streams {
  int status;
  std::string out, err;
};
Streams run_rune_streams(const std::string& args, const std::string& dir, const std::string& env = "") {
  const std::string cmd =
      "cd '" + dir + "' && " + env + " '" + std::string(RUNE_BINARY) + "' " + args + " 2>stderr.txt";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, read_file(fs::path(dir) / "stderr.txt")};
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A TSV file with a pair longer than data.max_len: rune train says so once at load; rune
// translate names the sentences it cuts and the words it does not know on stderr, and its stdout
// holds the translations (and scores) alone.
TEST(Translation, TrainAndTranslateSayWhatTheyCutAndDoNotKnow) {
  const fs::path dir = scratch_dir("translation_notes");
  {
    std::ofstream out(dir / "pairs.tsv");
    for (int n = 0; n < 200; ++n) out << number_pair(n).source << "\t" << number_pair(n).target << "\n";
    out << "one two three four five six seven eight\tun deux trois\n";  // line 201
    std::ofstream(dir / "tsv.toml") << R"(seed = 1
[task]
name = "translation"
[data]
source = "tsv"
path = "pairs.tsv"
max_len = 8
batch_size = 32
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
[train]
epochs = 1
)";
  }
  const std::string long_pairs =
      "pairs.tsv: 1 of 201 pairs are longer than data.max_len = 8 tokens, <eos> included (first: line 201) and are "
      "cut in training and evaluation; raise data.max_len to keep them whole\n";
  const Streams train = run_rune_streams("train tsv.toml --no-progress", dir.string());
  ASSERT_EQ(train.status, 0) << train.out << train.err;
  EXPECT_EQ(occurrences(train.err, long_pairs), 1u) << train.err;

  const std::string ckpt = "runs/tsv/checkpoints/last.h5";
  const std::string unknown =
      "rune translate: sentence 2: \"zillion\" is not in the model's source vocabulary (read as <unk>)\n";
  const std::string cut =
      "rune translate: sentence 3 (\"one two three four five ...\") has 9 tokens; the model reads 7 of them "
      "(data.max_len = 8, <eos> included): the rest is ignored\n";
  Streams r = run_rune_streams(
      "translate " + ckpt + " 'seventy-one' 'zillion one' 'one two three four five six seven eight nine'",
      dir.string());
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(occurrences(r.err, unknown), 1u) << r.err;
  EXPECT_EQ(occurrences(r.err, cut), 1u) << r.err;
  EXPECT_EQ(occurrences(r.err, "sentence 1: \""), 0u) << "seventy-one is known: " << r.err;
  EXPECT_EQ(occurrences(r.err, "sentence 1 ("), 0u) << "and short: " << r.err;
  EXPECT_EQ(occurrences(r.out, "\n"), 3u) << r.out;
  EXPECT_EQ(r.out.rfind("seventy-one -> ", 0), 0u) << r.out;
  EXPECT_EQ(occurrences(r.out, "rune translate"), 0u) << "notes stay off stdout: " << r.out;
  // from stdin, the sentence's number is its line; with --scores, each note once
  std::ofstream(dir / "in.txt") << "seventy-one\nzillion one\none two three four five six seven eight nine\n";
  r = run_rune_streams("translate " + ckpt + " --scores < in.txt", dir.string());
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(occurrences(r.err, unknown), 1u) << r.err;
  EXPECT_EQ(occurrences(r.err, cut), 1u) << r.err;
  EXPECT_EQ(occurrences(r.out, "\n"), 3u) << r.out;
  EXPECT_EQ(occurrences(r.out, "\t"), 3u) << "a translation and its score per line: " << r.out;
  fs::remove_all(dir);
}

// The fields of one line of a report's CSV file: quoted fields hold commas, never quotes.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (const char c : line) {
    if (c == '"')
      quoted = !quoted;
    else if (c == ',' && !quoted)
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

// rune eval --split rare on a tiny trained checkpoint: it scores the held-out rare numbers (none
// trained on), and each translation it reports is the one rune translate decodes, right or wrong;
// the wrong ones are in errors-rare.csv and the first ten on stderr. A split the task lacks is
// refused by name. One thread: the tiny model's work is all overhead, and on a busy machine
// OpenMP's threads wait for each other.
TEST(Translation, EvalScoresTheHeldOutRareNumbersAsTranslateDecodesThem) {
  const fs::path dir = scratch_dir("translation_rare");
  std::ofstream(dir / "tiny.toml") << R"(seed = 2
[task]
name = "translation"
[data]
batch_size = 32
batches_per_epoch = 50
eval_size = 64
[model]
d_model = 32
nhead = 4
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 64
dropout = 0.0
[train]
epochs = 4
lr = 3e-3
warmup_steps = 20
[run]
dir = "runs"
)";
  const std::string env = "OMP_NUM_THREADS=1";
  const Streams train = run_rune_streams("train tiny.toml --no-progress", dir.string(), env);
  ASSERT_EQ(train.status, 0) << train.out << train.err;
  const std::string ckpt = "runs/tiny/checkpoints/last.h5";
  const Streams eval = run_rune_streams("eval " + ckpt + " --split rare --predictions rare.csv", dir.string(), env);
  ASSERT_EQ(eval.status, 0) << eval.out << eval.err;
  EXPECT_NE(eval.out.find("step 200, rare split:"), std::string::npos) << eval.out;
  EXPECT_NE(eval.out.find("exact_match"), std::string::npos) << eval.out;

  std::istringstream rows(read_file(dir / "rare.csv"));
  std::string line;
  std::getline(rows, line);
  EXPECT_EQ(line, "index,number,training,source,reference,translation,exact");
  std::vector<std::vector<std::string>> predictions;
  std::string sources;
  while (std::getline(rows, line)) {
    predictions.push_back(csv_fields(line));
    ASSERT_EQ(predictions.back().size(), 7u) << line;
    sources += predictions.back()[3] + "\n";
  }
  ASSERT_EQ(predictions.size(), 10488u) << "half of each rare class";
  std::size_t exact = 0;
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const std::vector<std::string>& p = predictions[i];
    EXPECT_EQ(p[0], std::to_string(i));
    EXPECT_EQ(p[2], "0") << "held out, never trained on: " << p[1];
    EXPECT_EQ(p[4], number_pair(std::stoll(p[1])).target);
    EXPECT_EQ(p[6], p[5] == p[4] ? "1" : "0");
    exact += p[6] == "1";
  }
  ASSERT_GT(exact, 0u) << "the test needs translations both right and wrong";
  ASSERT_LT(exact, predictions.size());

  // the same translations from rune translate, which decodes every sentence (from stdin: a line each)
  std::ofstream(dir / "sources.txt") << sources;
  const Streams translated = run_rune_streams("translate " + ckpt + " < sources.txt", dir.string(), env);
  ASSERT_EQ(translated.status, 0) << translated.err;
  std::istringstream outputs(translated.out);
  std::size_t i = 0, differ = 0;
  for (; std::getline(outputs, line) && i < predictions.size(); ++i)
    if (line != predictions[i][5] && differ++ < 5)
      ADD_FAILURE() << "rune translate: " << line << "\nrune eval: " << predictions[i][5];
  EXPECT_EQ(i, predictions.size());
  EXPECT_EQ(differ, 0u);

  const std::string errors = read_file(dir / "runs/tiny/errors-rare.csv");
  EXPECT_EQ(occurrences(errors, "\n"), predictions.size() - exact + 1) << "a header and every wrong translation";
  EXPECT_NE(eval.err.find(std::to_string(predictions.size() - exact) +
                          " of 10488 translations of the rare split are wrong (runs/tiny/errors-rare.csv); the "
                          "first 10:\n"),
            std::string::npos)
      << eval.err;
  EXPECT_EQ(occurrences(eval.err, " (reference: "), 10u) << eval.err;

  const Streams bad = run_rune_streams("eval " + ckpt + " --split train", dir.string(), env);
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.err, "rune: --split train: the 'translation' task of " + ckpt +
                         " has no such split (it has val, test, domain, rare)\n");
  fs::remove_all(dir);
}

// A TSV line of three columns (a Tatoeba file's attribution, say) is refused, not silently cut.
TEST(Translation, TrainRefusesATsvLineOfThreeColumns) {
  const fs::path dir = scratch_dir("translation_columns");
  std::ofstream(dir / "pairs.tsv") << "one\tun\ntwo\tdeux\tCC-BY 2.0\n";
  std::ofstream(dir / "tsv.toml") << "[task]\nname = \"translation\"\n[data]\nsource = \"tsv\"\npath = \"pairs.tsv\"\n";
  const Streams r = run_rune_streams("train tsv.toml", dir.string());
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("rune: pairs.tsv:2: 3 columns, expected 2 (source<TAB>target)", 0), 0u) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::examples
