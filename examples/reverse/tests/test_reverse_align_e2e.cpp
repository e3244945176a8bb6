// `rune align` end to end on the reverse task, whose gold alignment is exact (target digit j is
// source digit n - 1 - j): a brief training teaches the cross-attention the anti-diagonal, so some
// head aligns nearly every digit, while the relative-position baseline (the diagonal) is nearly
// always wrong. Then the report's files, another split and folder, and the errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "report/plot.hpp"
#include "tests/helpers.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

// alignment.csv's rows by candidate: its fields after the name.
std::map<std::string, std::vector<std::string>> csv_rows(const std::string& text) {
  std::map<std::string, std::vector<std::string>> rows;
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    const std::size_t end = line.find("\",");
    std::vector<std::string> fields;
    std::istringstream rest(line.substr(end + 2));
    for (std::string f; std::getline(rest, f, ',');) fields.push_back(f);
    rows[line.substr(1, end - 1)] = fields;
  }
  return rows;
}

TEST(ReverseAlign, SomeHeadLearnsTheAntiDiagonalAndThePositionBaselineDoesNot) {
  const OneThread one_thread;
  const fs::path dir = scratch_dir("reverse_align");
  // 500 steps of a one-layer model: a few seconds
  std::ofstream(dir / "tiny.toml") << R"(seed = 1
[task]
name = "reverse"
[data]
min_len = 3
max_len = 6
batch_size = 32
batches_per_epoch = 50
eval_size = 64
[model]
d_model = 32
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 64
dropout = 0.0
[train]
epochs = 10
lr = 3e-3
schedule = "constant"
warmup_steps = 10
log_every = 50
[run]
dir = "runs"
)";
  const std::string d = dir.string();
  RunResult r = run_rune("train tiny.toml --no-progress", d);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string ckpt = "runs/tiny/checkpoints/last.h5";

  r = run_rune("align " + ckpt + " --example 3 --no-progress", d);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* s : {"test split, 64 examples", "layer 0 head 1", "layer 0 mean", "all heads mean",
                        "position baseline", "<- best head", "chosen by its AER on the test split"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  const fs::path out = dir / "runs/tiny/align-test";
  const auto rows = csv_rows(read_file(out / "alignment.csv"));
  ASSERT_EQ(rows.size(), 5u) << read_file(out / "alignment.csv");  // 2 heads, the layer, all, the baseline
  // fields: layer, head, links, gold_links, correct_links, precision, recall, aer, best
  double best_aer = 1;
  std::string best;
  for (const auto& [name, f] : rows) {
    ASSERT_EQ(f.size(), 9u) << name;
    EXPECT_EQ(f[3], rows.at("position baseline")[3]) << "every candidate is scored against the same gold links";
    if (f[8] == "yes") best = name;
    if (name.find(" head ") != std::string::npos) best_aer = std::min(best_aer, std::stod(f[7]));
  }
  // measured: the best head's AER 0.04, the baseline's 0.92 (the digits' diagonal is right only in
  // the middle of odd lengths)
  EXPECT_LT(best_aer, 0.25) << read_file(out / "alignment.csv");
  EXPECT_EQ(std::stod(rows.at(best)[7]), best_aer) << "the best head has the lowest AER";
  EXPECT_GT(std::stod(rows.at("position baseline")[7]), 0.7);
  const std::string md = read_file(out / "alignment.md");
  EXPECT_NE(md.find("The best head, chosen by its AER on the test split, is " + best), std::string::npos) << md;
  EXPECT_NE(md.find("![" + best + " on pair 3](alignment.png)"), std::string::npos) << md;
  int H = 0, W = 0;
  EXPECT_FALSE(report::read_png((out / "alignment.png").string(), 3, H, W).empty());
  EXPECT_GT(H, 100);

  // another split, a part of it, another folder
  r = run_rune("align " + ckpt + " --split val --limit 10 --out elsewhere --no-progress", d);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("val split, 10 examples"), std::string::npos) << r.output;
  for (const char* f : {"alignment.csv", "alignment.md", "alignment.png"})
    EXPECT_TRUE(fs::exists(dir / "elsewhere" / f)) << f;

  // errors: an example out of range, before any is aligned; an unknown split
  r = run_rune("align " + ckpt + " --limit 5 --example 5 --out bad", d);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("rune: example 5 is out of range: the test split has 5 examples with gold alignments"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "bad"));
  r = run_rune("align " + ckpt + " --split train", d);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--split"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune
