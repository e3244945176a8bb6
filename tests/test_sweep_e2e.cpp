// `rune sweep` end to end through the real binary, on the reverse task's tiny config: a 2x1 grid
// with 2 seeds interrupted by Ctrl-C in its second run, then rerun (two at a time) to the end
// without redoing the finished run; the table's rows against the runs' own logs; a different grid
// refused on the sweep's folder; bad values refused before anything runs; and a run that diverges
// recorded as such while the sweep goes on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/helpers.hpp"
#include "train/metrics_log.hpp"
#include "train/sweep.hpp"

namespace rune {
namespace {

namespace fs = std::filesystem;

// A scratch folder holding the tiny reverse config (tests/helpers.hpp) as tiny.toml.
std::string workspace(const std::string& name) { return tiny_reverse_workspace("sweep_" + name); }

train::SweepManifest manifest(const std::string& path) { return train::parse_manifest(read_file(path), path); }

// The best val_exact_match in a run's log, computed here rather than by the code under test.
double best_exact_match(const std::string& run) {
  double best = -1;
  for (const auto& r : train::read_metrics_log(run + "/metrics.jsonl"))
    if (r.count("val_exact_match")) best = std::max(best, r.at("val_exact_match"));
  return best;
}

// One CSV line's fields (the sweep's numbers hold no commas).
std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream s(line);
  for (std::string f; std::getline(s, f, ',');) out.push_back(f);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

TEST(SweepE2e, ACtrlCdSweepGoesOnWhereItStoppedAndTabulatesEveryRun) {
  const OneThread one_thread;
  const std::string dir = workspace("resume");
  const std::string sweep = dir + "/runs/sweep-tiny";
  // runs of 40 steps validated every 8, so that the second is still running when it is interrupted
  const std::string command =
      "sweep tiny.toml --grid model.nhead=1,2 --seeds 2 --set train.epochs=10 --set train.eval_every=8";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    if (!std::freopen("first.log", "w", stdout) || !std::freopen("first.log", "a", stderr)) ::_exit(126);
    ::execl(RUNE_BINARY, RUNE_BINARY, "sweep", "tiny.toml", "--grid", "model.nhead=1,2", "--seeds", "2", "--set",
            "train.epochs=10", "--set", "train.eval_every=8", nullptr);
    ::_exit(127);
  }
  // while it runs, a second sweep in its folder is refused
  const std::string second = sweep + "/model.nhead=1,seed=4";
  for (int i = 0; i < 2400 && !fs::exists(second); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  const RunResult locked = run_rune(command, dir);
  EXPECT_EQ(locked.status, 1) << locked.output;
  EXPECT_NE(locked.output.find("another rune sweep is running in runs/sweep-tiny"), std::string::npos) << locked.output;
  // Ctrl-C once the second run has saved a checkpoint
  for (int i = 0; i < 2400 && !fs::exists(second + "/checkpoints/step-000008.h5"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ::kill(child, SIGINT);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string first_log = read_file(dir + "/first.log");
  ASSERT_TRUE(WIFEXITED(status)) << first_log;
  EXPECT_EQ(WEXITSTATUS(status), 130) << first_log;
  EXPECT_NE(first_log.find("[1/4] model.nhead=1,seed=3: done, best val_exact_match "), std::string::npos) << first_log;
  EXPECT_NE(first_log.find("continue with the same command"), std::string::npos) << first_log;
  train::SweepManifest m = manifest(sweep + "/sweep.json");
  ASSERT_EQ(m.runs.size(), 4u);
  EXPECT_EQ(m.runs[0].name, "model.nhead=1,seed=3");
  EXPECT_EQ(m.runs[0].status, "done");
  EXPECT_EQ(m.runs[1].status, "interrupted");
  EXPECT_EQ(m.runs[2].status, "pending");
  EXPECT_EQ(m.runs[3].name, "model.nhead=2,seed=4");
  EXPECT_EQ(m.metric, "exact_match");
  ASSERT_TRUE(fs::exists(second + "/checkpoints/last.h5"));
  EXPECT_NE(read_file(sweep + "/sweep.md").find("3 runs have not finished yet"), std::string::npos);
  const std::string finished = read_file(sweep + "/model.nhead=1,seed=3/metrics.jsonl");
  ASSERT_FALSE(finished.empty());

  // the same command goes on: the finished run is kept as it is, the interrupted one resumes
  // from its last.h5, the others start; two at a time, each writing to its own log
  const RunResult r = run_rune(command + " --jobs 2", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 finished before, 3 to run, 2 at a time"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[2/4] model.nhead=1,seed=4: resuming from step"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[1/4]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[4/4] model.nhead=2,seed=4: done, best val_exact_match "), std::string::npos) << r.output;
  EXPECT_NE(read_file(sweep + "/model.nhead=2,seed=3.log").find("done: "), std::string::npos);
  EXPECT_EQ(read_file(sweep + "/model.nhead=1,seed=3/metrics.jsonl"), finished) << "a finished run is not redone";
  m = manifest(sweep + "/sweep.json");
  for (const train::RunState& s : m.runs) EXPECT_EQ(s.status, "done") << s.name;
  // every run trained its own combination and seed, each step once (the resumed run's log was cut
  // back to its checkpoint)
  for (const char* nhead : {"1", "2"})
    for (const char* seed : {"3", "4"}) {
      const std::string run = sweep + "/model.nhead=" + nhead + ",seed=" + seed;
      const std::string config = read_file(run + "/config.toml");
      EXPECT_NE(config.find("nhead = " + std::string(nhead) + "\n"), std::string::npos) << run;
      EXPECT_NE(config.find("seed = " + std::string(seed) + "\n"), std::string::npos) << run;
      std::vector<int> steps;
      for (const auto& rec : train::read_metrics_log(run + "/metrics.jsonl"))
        if (rec.count("loss")) steps.push_back(static_cast<int>(rec.at("step")));
      ASSERT_EQ(steps.size(), 40u) << run;
      for (int s = 0; s < 40; ++s) EXPECT_EQ(steps[static_cast<std::size_t>(s)], s + 1) << run;
    }
  // the table: a row per combination, over both seeds, from the runs' own logs
  const std::string csv = read_file(sweep + "/sweep.csv");
  std::vector<std::string> lines;
  std::stringstream s(csv);
  for (std::string line; std::getline(s, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << csv;
  EXPECT_EQ(lines[0],
            "model.nhead,seeds_done,seeds_failed,seeds_asked,val_exact_match_mean,val_exact_match_std,"
            "val_exact_match_min,val_exact_match_max,time_s");
  for (std::size_t row = 1; row <= 2; ++row) {
    const std::string nhead = row == 1 ? "1" : "2";
    const double a = best_exact_match(sweep + "/model.nhead=" + nhead + ",seed=3");
    const double b = best_exact_match(sweep + "/model.nhead=" + nhead + ",seed=4");
    const std::vector<std::string> f = fields(lines[row]);
    ASSERT_EQ(f.size(), 9u) << lines[row];
    EXPECT_EQ(f[0], nhead);
    EXPECT_EQ(f[1], "2");
    EXPECT_EQ(f[2], "0");
    EXPECT_NEAR(std::stod(f[4]), (a + b) / 2, 1e-8) << lines[row];
    EXPECT_NEAR(std::stod(f[5]), std::abs(a - b) / std::sqrt(2.0), 1e-8) << lines[row];
    EXPECT_NEAR(std::stod(f[6]), std::min(a, b), 1e-8);
    EXPECT_NEAR(std::stod(f[7]), std::max(a, b), 1e-8);
    EXPECT_GT(std::stod(f[8]), 0.0);
  }
  EXPECT_NE(read_file(sweep + "/sweep.md").find("| model.nhead | seeds | failed | best val_exact_match mean |"),
            std::string::npos);
  EXPECT_EQ(read_file(sweep + "/sweep-model.nhead.png").substr(1, 3), "PNG");

  // once more: nothing left to run, nothing touched
  const RunResult again = run_rune(command, dir);
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("4 finished before, 0 to run"), std::string::npos) << again.output;
  EXPECT_EQ(read_file(sweep + "/model.nhead=1,seed=3/metrics.jsonl"), finished);
  // another grid in this sweep's folder is refused, naming both
  const RunResult other =
      run_rune("sweep tiny.toml --grid model.nhead=1,4 --seeds 2 --set train.epochs=10 --set train.eval_every=8", dir);
  EXPECT_EQ(other.status, 1) << other.output;
  EXPECT_NE(other.output.find("holds another sweep: its grid is --grid model.nhead=1,2, this command's --grid "
                              "model.nhead=1,4"),
            std::string::npos)
      << other.output;
  fs::remove_all(dir);
}

TEST(SweepE2e, BadKeysAndValuesAreRefusedBeforeAnythingRuns) {
  const OneThread one_thread;
  const std::string dir = workspace("refused");
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--grid model.dropout=0.1,1.5",
       "rune: sweep combination model.dropout=1.5: tiny.toml (--set): model.dropout: 1.5 is outside [0, 1)"},
      {"--grid model.d_modle=8,16", "unknown key model.d_modle (did you mean model.d_model?)"},
      {"--grid model.nhead=1,2x", "rune: sweep combination model.nhead=2x: tiny.toml (--set): model.nhead: 2x is not"},
      {"--grid model.nhead=1,2,1", "rune: --grid model.nhead=1,2,1: the value 1 is given twice"},
      {"--grid run.name=a,b", "the sweep names each run's folder itself"},
      {"--grid seed=1,2 --seeds 2", "the grid gives the seeds; leave out --seeds"},
      {"--grid model.nhead=1,2 --set model.nhead=2", "give the key one of them"},
  };
  for (const auto& [flags, said] : cases) {
    const RunResult r = run_rune("sweep tiny.toml " + flags, dir);
    EXPECT_EQ(r.status, 1) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find(said), std::string::npos) << flags << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/runs")) << "nothing ran, no folder was made";
  fs::remove_all(dir);
}

TEST(SweepE2e, ARunThatDivergesIsRecordedAndTheSweepGoesOn) {
  const OneThread one_thread;
  const std::string dir = workspace("diverged");
  const RunResult r =
      run_rune("sweep tiny.toml --grid train.lr=1e30,3e-3 --set train.clip_norm=0 --set train.epochs=1 --out lr", dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("[1/2] train.lr=1e30,seed=3: diverged in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[2/2] train.lr=3e-3,seed=3: done, best val_exact_match "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sweep lr: 1 done, 1 diverged"), std::string::npos) << r.output;
  const train::SweepManifest m = manifest(dir + "/lr/sweep.json");
  EXPECT_EQ(m.runs[0].status, "diverged");
  EXPECT_EQ(m.runs[1].status, "done");
  const std::string md = read_file(dir + "/lr/sweep.md");
  EXPECT_NE(md.find("| 1e30 | 0/1 | 1 |  |"), std::string::npos) << md;
  EXPECT_NE(md.find("Best: train.lr = 3e-3"), std::string::npos) << md;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune
