// Data-parallel training under mpirun (train/distributed.hpp), with the rune binary: N ranks
// sharing a global batch train the parameters one process trains with that batch, their
// gradients summed in many buckets; a run resumes on the same number of ranks bit for bit
// (dropout on: the ranks' streams are redrawn) and on another number within float tolerance;
// a rank that fails ends the run rather than leave the others waiting, and a non-finite loss on
// one rank stops them all.
//
// Run by ctest with label mpi. mpirun is started as root where the tests run as root (CI), with
// --oversubscribe (4 ranks on 2 cores) and one OpenMP thread a rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>

#include "autograd/ops.hpp"
#include "tests/mpi.hpp"
#include "train/checkpoint.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

std::string tiny_translation(double dropout) {
  return R"(seed = 3
[task]
name = "translation"
[data]
batch_size = 13
batches_per_epoch = 5
eval_size = 16
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
tie_output = true
dropout = )" +
         std::to_string(dropout) +
         R"(
[decode]
beam = 1
[train]
epochs = 2
lr = 3e-3
warmup_steps = 2
eval_every = 5
log_every = 1
)";
}

TEST_F(Mpi, TranslationOnTwoAndFourRanksTrainsWhatOneProcessTrains) {
  expect_ranks_equal_one_process("translation", tiny_translation(0.0), 3e-3, scratch_dir("mpi_translation"));
}

TEST_F(Mpi, ResumesBitForBitOnAsManyRanksAndWithinFloatsOnOthers) {
  const fs::path dir = scratch_dir("mpi_resume");
  std::ofstream(dir / "dropout.toml") << tiny_translation(0.2);
  std::ofstream(dir / "plain.toml") << tiny_translation(0.0);
  // dropout on, two ranks: the resumed run redraws each rank's stream from (seed, rank, step)
  const RunResult whole = rune_on(2, "train dropout.toml --no-progress --set run.name=whole", dir);
  ASSERT_EQ(whole.status, 0) << whole.output;
  fs::copy_file(dir / "runs/whole/checkpoints/last.h5", dir / "uninterrupted.h5");
  const RunResult again = rune_on(2, "train --resume runs/whole/checkpoints/step-000005.h5 --no-progress", dir);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_TRUE(same_bits((dir / "runs/whole/checkpoints/last.h5").string(), (dir / "uninterrupted.h5").string()))
      << "two ranks resumed at step 5, with dropout, end where two ranks uninterrupted end";
  // and dropout made a difference: one process draws one stream
  ASSERT_EQ(rune_on(0, "train dropout.toml --no-progress --set run.name=single", dir).status, 0);
  EXPECT_GT(largest_relative_difference((dir / "runs/single/checkpoints/last.h5").string(),
                                        (dir / "uninterrupted.h5").string()),
            1e-4);

  // dropout off: a checkpoint of N ranks continues on M ranks as M ranks uninterrupted do
  for (const auto& [from, to] : std::vector<std::pair<int, int>>{{2, 1}, {1, 2}, {2, 4}}) {
    const std::string a = "from" + std::to_string(from) + "to" + std::to_string(to);
    ASSERT_EQ(rune_on(from == 1 ? 0 : from, "train plain.toml --no-progress --set run.name=" + a, dir).status, 0);
    const RunResult r =
        rune_on(to == 1 ? 0 : to, "train --resume runs/" + a + "/checkpoints/step-000005.h5 --no-progress", dir);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string uninterrupted = "whole" + std::to_string(to);
    if (!fs::exists(dir / "runs" / uninterrupted)) {
      ASSERT_EQ(rune_on(to == 1 ? 0 : to, "train plain.toml --no-progress --set run.name=" + uninterrupted, dir).status,
                0);
    }
    EXPECT_LT(largest_relative_difference((dir / "runs" / a / "checkpoints/last.h5").string(),
                                          (dir / "runs" / uninterrupted / "checkpoints/last.h5").string()),
              kRanksTolerance)
        << from << " ranks, resumed on " << to;
  }
}

TEST_F(Mpi, ShardedValidationTranslatesAndScoresAsOneProcessDoes) {
  // a model trained far enough to translate some numbers, then one more validation on 1, 2 and 4
  // ranks: each rank decodes its share of the examples, and the gathered translations score the same
  const fs::path dir = scratch_dir("mpi_validation");
  std::ofstream(dir / "plain.toml") << tiny_translation(0.0);
  const RunResult trained =
      rune_on(0,
              "train plain.toml --no-progress --set train.epochs=80 --set train.eval_every=400 --set model.d_model=32 "
              "--set model.dim_feedforward=64 --set run.name=base",
              dir);
  ASSERT_EQ(trained.status, 0) << trained.output;
  std::map<std::string, double> want;
  for (const int ranks : {1, 2, 4}) {
    const std::string run = "val" + std::to_string(ranks);
    fs::create_directories(dir / "runs" / run / "checkpoints");
    fs::copy_file(dir / "runs/base/config.toml", dir / "runs" / run / "config.toml");
    fs::copy_file(dir / "runs/base/checkpoints/last.h5", dir / "runs" / run / "checkpoints/from.h5");
    const RunResult r =
        rune_on(ranks == 1 ? 0 : ranks,
                "train --resume runs/" + run + "/checkpoints/from.h5 --no-progress --set train.epochs=81", dir);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::map<std::string, double> got = last_validation((dir / "runs" / run / "metrics.jsonl").string());
    if (ranks == 1) {
      want = got;
      ASSERT_GT(want.at("val_bleu"), 0.3) << "the model translates some numbers";
      ASSERT_LT(want.at("val_exact_match"), 1.0) << "and gets some wrong";
      continue;
    }
    ASSERT_EQ(got.size(), want.size()) << ranks << " ranks";
    for (const auto& [key, value] : want)
      EXPECT_NEAR(got.at(key), value, 1e-5 * std::max(1.0, std::abs(value))) << ranks << " ranks: " << key;
  }
}

TEST_F(Mpi, AnErrorAKilledRankOrCtrlCEndsEveryRankWithinSeconds) {
  const fs::path dir = scratch_dir("mpi_fail");
  // a config error on every rank: each says so, and the run ends rather than hang
  std::ofstream(dir / "bad.toml") << tiny_translation(0.0) << "[oops]\nkey = 1\n";
  const RunResult bad = rune_on(2, "train bad.toml --no-progress", dir);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("oops"), std::string::npos) << bad.output;

  // rank 1 killed (SIGKILL) mid-run: mpirun ends rank 0 and exits, in seconds, with an error
  std::ofstream(dir / "long.toml") << tiny_translation(0.0) << "\n";
  // a 2-rank run of long.toml started in the background (mpirun's pid in $m), once it has
  // validated at step 5; its output in <name>.log
  const auto started = [&](const std::string& name) {
    return "cd '" + dir.string() +
           "' && ('" RUNE_MPIEXEC "' -np 2 --oversubscribe --bind-to none '" RUNE_BINARY
           "' train long.toml --no-progress --set train.epochs=1000 --set run.name=" +
           name + " > " + name + ".log 2>&1 & m=$!; for i in $(seq 600); do grep -q 'step 5:' " + name +
           ".log && break; sleep 0.1; done; ";
  };
  const std::string script = started("killed") +
                             "victim=$(pgrep -P $m | tail -1); kill -9 $victim; t0=$(date +%s.%N); wait $m; rc=$?; "
                             "echo \"$rc $(awk \"BEGIN { print $(date +%s.%N) - $t0 }\")\" > killed.rc)";
  ASSERT_EQ(std::system(script.c_str()), 0);
  std::ifstream rc(dir / "killed.rc");
  int status = 0;
  double seconds = 0;
  rc >> status >> seconds;
  EXPECT_NE(status, 0);
  EXPECT_LT(seconds, 10.0) << "mpirun took " << seconds << " s to end the run";
  // Ctrl-C on mpirun (SIGINT): mpirun sends every rank SIGTERM, and the ranks agree at the next
  // step to stop there; rank 0 saves once
  const std::string interrupt = started("ctrlc") + "kill -INT $m; wait $m)";
  EXPECT_NE(std::system(interrupt.c_str()), 0);
  std::ifstream ctrlc_log(dir / "ctrlc.log");
  const std::string said((std::istreambuf_iterator<char>(ctrlc_log)), std::istreambuf_iterator<char>());
  EXPECT_NE(said.find("interrupted at step"), std::string::npos) << said;
  EXPECT_EQ(said.find("interrupted at step"), said.rfind("interrupted at step")) << "saved once\n" << said;
  EXPECT_NO_THROW(train::read_checkpoint((dir / "runs/ctrlc/checkpoints/last.h5").string()));

  // and no checkpoint is left half-written: every one there loads
  for (const auto& e : fs::directory_iterator(dir / "runs/killed/checkpoints"))
    if (e.path().extension() == ".h5") {
      EXPECT_NO_THROW(train::read_checkpoint(e.path().string())) << e.path();
    }
}

TEST_F(Mpi, ANonFiniteLossOnOneRankStopsEveryRankAndNamesIt) {
  const fs::path dir = scratch_dir("mpi_nan");
  // pairs of which one holds a source word no other holds ("poison"); one batch takes all of the
  // training split, so each step one rank's shard holds that pair and the other's does not
  {
    std::ofstream tsv(dir / "pairs.tsv");
    for (int i = 0; i < 24; ++i)
      tsv << (i == 5 ? "poison " : "") << "w" << i % 7 << " w" << i % 5 << "\tv" << i % 7 << " v" << i % 3 << "\n";
  }
  std::ofstream(dir / "pairs.toml") << R"(seed = 3
[run]
name = "pairs"
[task]
name = "translation"
[data]
source = "tsv"
path = "pairs.tsv"
val_fraction = 0.05
test_fraction = 0.0
batch_size = 32
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
dropout = 0.0
[decode]
beam = 1
[train]
epochs = 1
lr = 3e-3
warmup_steps = 0
eval_every = 1
)";
  ASSERT_EQ(rune_on(0, "train pairs.toml --no-progress", dir).status, 0);
  const std::string last = (dir / "runs/pairs/checkpoints/last.h5").string();
  // the word's embedding made as large as a float goes: any batch that reads it overflows
  train::Checkpoint c = train::read_checkpoint(last);
  const auto& words = c.meta_strings.at("source_vocabulary");
  const auto poison = std::find(words.begin(), words.end(), "poison");
  ASSERT_NE(poison, words.end()) << "the poisoned pair is in the training split";
  for (auto& [name, t] : c.params)
    if (name == "src_embed.weight") {
      float* row = t.data<float>() + (poison - words.begin()) * t.size(1);
      std::fill(row, row + t.size(1), 3e38f);
    }
  fs::copy(dir / "runs/pairs", dir / "runs/poisoned", fs::copy_options::recursive);
  const std::string poisoned = (dir / "runs/poisoned/checkpoints/last.h5").string();
  train::save_checkpoint(poisoned, c);
  const auto before = fs::last_write_time(poisoned);

  const RunResult r =
      rune_on(2, "train --no-progress --set train.epochs=3 --resume runs/poisoned/checkpoints/last.h5", dir);
  EXPECT_EQ(r.status, 3) << r.output;
  const std::regex named("loss is -?nan at step 2 \\(not finite on rank [01] of 2\\): stopping");
  EXPECT_TRUE(std::regex_search(r.output, named)) << r.output;
  EXPECT_EQ(r.output.find("nan at step"), r.output.rfind("nan at step")) << "said once, by rank 0\n" << r.output;
  EXPECT_EQ(fs::last_write_time(poisoned), before) << "the last good checkpoint is untouched";
  EXPECT_EQ(train::read_checkpoint(poisoned).step, 1);
}

}  // namespace
}  // namespace rune
