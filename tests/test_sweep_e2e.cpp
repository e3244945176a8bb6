// `rune sweep` end to end through the real binary, on the reverse task's tiny config: a 2x1 grid
// with 2 seeds interrupted by Ctrl-C in its second run, then rerun (two at a time) to the end
// without redoing the finished run; the table's rows against the runs' own logs; a different grid
// refused on the sweep's folder; bad values refused before anything runs; a run that diverges
// recorded as such while the sweep goes on; and two finished sweeps tabulated together on the test
// split (`rune sweep --summarize`), each run evaluated once, a broken best.h5 counted as failed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/helpers.hpp"
#include "train/files.hpp"
#include "train/format.hpp"
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

// The exact_match of a run's eval-test.json, read here rather than by the code under test (the
// file is one metrics record).
double test_exact_match(const std::string& run) {
  const auto records = train::read_metrics_log(run + "/eval-test.json");
  EXPECT_EQ(records.size(), 1u) << run;
  return records.empty() ? -1 : records[0].at("exact_match");
}

// sweep.csv's rows by their first two fields ("a,1"), each row's fields.
std::map<std::string, std::vector<std::string>> csv_rows(const std::string& path, std::string& header) {
  std::stringstream s(read_file(path));
  std::getline(s, header);
  std::map<std::string, std::vector<std::string>> rows;
  for (std::string line; std::getline(s, line);) {
    const std::vector<std::string> f = fields(line);
    if (f.size() >= 2) rows[f[0] + "," + f[1]] = f;
  }
  return rows;
}

TEST(SweepE2e, TwoSweepsAreTabulatedTogetherOnTheTestSplitEvaluatingEachRunOnce) {
  const OneThread one_thread;
  const std::string dir = workspace("summarize");
  const std::string runs =
      " --set train.epochs=20 --set train.eval_every=40 --set train.lr=1e-2 --set data.eval_size=64 "
      "--jobs 2";
  const RunResult a = run_rune("sweep tiny.toml --grid model.nhead=1,2 --seeds 2 --out a" + runs, dir);
  ASSERT_EQ(a.status, 0) << a.output;
  const RunResult b = run_rune("sweep tiny.toml --grid model.nhead=2,4 --out b" + runs, dir);
  ASSERT_EQ(b.status, 0) << b.output;
  const std::vector<std::string> all{"a/model.nhead=1,seed=3", "a/model.nhead=1,seed=4", "a/model.nhead=2,seed=3",
                                     "a/model.nhead=2,seed=4", "b/model.nhead=2,seed=3", "b/model.nhead=4,seed=3"};

  // a sweep of other keys is refused before anything is evaluated
  train::SweepManifest other = train::parse_manifest(read_file(dir + "/b/sweep.json"), "b/sweep.json");
  other.grid = {train::parse_grid("train.lr=1e-2")};
  other.runs = {{"train.lr=1e-2,seed=3", "pending", 0}};
  fs::create_directories(dir + "/lr");
  train::write_file(dir + "/lr/sweep.json", train::manifest_json(other));
  const RunResult refused = run_rune("sweep --summarize a lr --split test --out c", dir);
  EXPECT_EQ(refused.status, 1) << refused.output;
  EXPECT_NE(refused.output.find("rune: sweep folder lr: its grid keys are train.lr, those of a model.nhead: sweeps "
                                "tabulated together need the same keys in the same order"),
            std::string::npos)
      << refused.output;
  EXPECT_FALSE(fs::exists(dir + "/c"));
  EXPECT_FALSE(fs::exists(dir + "/" + all[0] + "/eval-test.json"));
  const RunResult no_out = run_rune("sweep --summarize a b --split test", dir);
  EXPECT_EQ(no_out.status, 1) << no_out.output;
  EXPECT_NE(no_out.output.find("needs --out"), std::string::npos) << no_out.output;
  const RunResult both = run_rune("sweep tiny.toml --summarize a", dir);
  EXPECT_EQ(both.status, 1) << both.output;
  EXPECT_NE(both.output.find("not both"), std::string::npos) << both.output;

  // every done run's best.h5 evaluated on test, two at a time, into one table of both sweeps
  const std::string command = "sweep --summarize a b --split test --out c --jobs 2";
  const RunResult first = run_rune(command, dir);
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("6 done runs in 2 sweep folders, highest by test exact_match: 0 evaluated before, 6 to "
                              "evaluate, 2 at a time"),
            std::string::npos)
      << first.output;
  EXPECT_NE(first.output.find("a/model.nhead=1,seed=3: evaluating best.h5 on test (output in "
                              "a/model.nhead=1,seed=3.eval-test.log)"),
            std::string::npos)
      << first.output;
  EXPECT_NE(first.output.find("evaluated 6 runs on test"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("wrote c/sweep.md"), std::string::npos) << first.output;
  std::map<std::string, double> value;
  std::map<std::string, fs::file_time_type> written;
  for (const std::string& run : all) {
    ASSERT_TRUE(fs::exists(dir + "/" + run + "/eval-test.json")) << run << "\n" << first.output;
    value[run] = test_exact_match(dir + "/" + run);
    written[run] = fs::last_write_time(dir + "/" + run + "/eval-test.json");
    EXPECT_NE(first.output.find(run + ": test exact_match " + train::fixed(value[run], 4)), std::string::npos)
        << first.output;
  }
  // the rows of both sweeps, each mean that of its runs' eval-test.json values
  std::string header;
  auto rows = csv_rows(dir + "/c/sweep.csv", header);
  EXPECT_EQ(header,
            "sweep,model.nhead,seeds_done,seeds_failed,seeds_asked,test_exact_match_mean,test_exact_match_std,"
            "test_exact_match_min,test_exact_match_max,time_s");
  ASSERT_EQ(rows.size(), 4u) << read_file(dir + "/c/sweep.csv");
  const std::map<std::string, std::vector<std::string>> members{
      {"a,1", {all[0], all[1]}}, {"a,2", {all[2], all[3]}}, {"b,2", {all[4]}}, {"b,4", {all[5]}}};
  for (const auto& [row, its] : members) {
    const std::vector<std::string>& f = rows[row];
    ASSERT_EQ(f.size(), 10u) << row;
    double sum = 0;
    for (const std::string& run : its) sum += value[run];
    EXPECT_EQ(f[2], std::to_string(its.size())) << row;
    EXPECT_EQ(f[3], "0") << row;
    EXPECT_NEAR(std::stod(f[5]), sum / static_cast<double>(its.size()), 1e-9) << row;
  }
  EXPECT_NE(read_file(dir + "/c/sweep.md").find("| sweep | model.nhead | seeds | failed | test exact_match mean |"),
            std::string::npos);
  EXPECT_EQ(read_file(dir + "/c/sweep-model.nhead.png").substr(1, 3), "PNG");

  // again: everything is up to date, nothing is evaluated
  const RunResult second = run_rune(command, dir);
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("6 evaluated before, 0 to evaluate"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("nothing evaluated"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("evaluating"), std::string::npos) << second.output;
  for (const std::string& run : all)
    EXPECT_EQ(fs::last_write_time(dir + "/" + run + "/eval-test.json"), written[run]) << run;

  // a best.h5 made unreadable (newer than its eval-test.json) and one gone: those two runs count
  // as failed, the others are tabulated as before
  const std::string broken = dir + "/" + all[5] + "/checkpoints/best.h5";
  train::write_file(broken, "not a checkpoint");
  fs::last_write_time(broken, written[all[5]] + std::chrono::seconds(1));
  fs::remove(dir + "/" + all[1] + "/checkpoints/best.h5");
  const RunResult third = run_rune(command, dir);
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_NE(third.output.find("a/model.nhead=1,seed=4: it has no checkpoints/best.h5: counted as failed"),
            std::string::npos)
      << third.output;
  EXPECT_NE(third.output.find("[1/1] b/model.nhead=4,seed=3: evaluation failed (exit code 1: rune: checkpoint "
                              "b/model.nhead=4,seed=3/checkpoints/best.h5 is refused"),
            std::string::npos)
      << third.output;
  EXPECT_NE(third.output.find("2 runs counted as failed: a/model.nhead=1,seed=4, b/model.nhead=4,seed=3"),
            std::string::npos)
      << third.output;
  EXPECT_NE(read_file(dir + "/" + all[5] + ".eval-test.log").find("is refused"), std::string::npos);
  rows = csv_rows(dir + "/c/sweep.csv", header);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows["a,1"][2], "1");
  EXPECT_EQ(rows["a,1"][3], "1");
  EXPECT_NEAR(std::stod(rows["a,1"][5]), value[all[0]], 1e-9);
  EXPECT_NEAR(std::stod(rows["a,2"][5]), (value[all[2]] + value[all[3]]) / 2, 1e-9);
  EXPECT_EQ(rows["b,4"][2], "0");
  EXPECT_EQ(rows["b,4"][3], "1");
  EXPECT_EQ(rows["b,4"][5], "");
  for (const std::string& run : {all[0], all[2], all[3], all[4]})
    EXPECT_EQ(fs::last_write_time(dir + "/" + run + "/eval-test.json"), written[run]) << run;

  // one sweep without --split: its own table again, of the best validation values
  const RunResult val = run_rune("sweep --summarize b", dir);
  ASSERT_EQ(val.status, 0) << val.output;
  EXPECT_NE(read_file(dir + "/b/sweep.md").find("| model.nhead | seeds | failed | best val_exact_match mean |"),
            std::string::npos);
  rows = csv_rows(dir + "/b/sweep.csv", header);
  EXPECT_NEAR(std::stod(rows["2,1"][4]), best_exact_match(dir + "/" + all[4]), 1e-9);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune
