// Sweeps (train/sweep.hpp): --grid parsing, the grid's order, run names, the manifest and what
// makes another sweep, a run's result from its metrics log (sessions of a resumed run included),
// the table's arithmetic, and describe_run's primary metric (train/trainer.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/helpers.hpp"
#include "train/config.hpp"
#include "train/sweep.hpp"
#include "train/trainer.hpp"

namespace rune::train {
namespace {

using Strings = std::vector<std::string>;

TEST(Sweep, GridFlagsAreParsedIntoAKeyAndTomlValues) {
  const GridAxis a = parse_grid("model.nhead=2,4,8");
  EXPECT_EQ(a.key, "model.nhead");
  EXPECT_EQ(a.values, (Strings{"2", "4", "8"}));
  EXPECT_EQ(parse_grid(" train.lr = 1e-3 , 3e-3 ").values, (Strings{"1e-3", "3e-3"}));
  EXPECT_EQ(parse_grid("model.activation=gelu,\"re,lu\"").values, (Strings{"gelu", "\"re,lu\""}));
  EXPECT_EQ(parse_grid("data.sizes=[1, 2],[3,4]").values, (Strings{"[1, 2]", "[3,4]"}));
  EXPECT_EQ(parse_grid("seed=7").values, (Strings{"7"}));
}

TEST(Sweep, BadGridFlagsAreRefusedNamingTheFlag) {
  EXPECT_EQ(error_of([] { parse_grid("model.nhead"); }), "--grid model.nhead: expected key=value1,value2,... (no '=')");
  EXPECT_EQ(error_of([] { parse_grid("=1,2"); }), "--grid =1,2: the key before '=' is empty");
  EXPECT_EQ(error_of([] { parse_grid("model.nhead=2,,4"); }),
            "--grid model.nhead=2,,4: an empty value (values are separated by commas)");
  EXPECT_EQ(error_of([] { parse_grid("model.nhead="); }),
            "--grid model.nhead=: an empty value (values are separated by commas)");
  EXPECT_EQ(error_of([] { parse_grid("model.nhead=2,4,2"); }), "--grid model.nhead=2,4,2: the value 2 is given twice");
  EXPECT_EQ(error_of([] { parse_grid("data.sizes=[1,2"); }), "--grid data.sizes=[1,2: an unclosed quote or bracket");
  EXPECT_EQ(error_of([] {
              check_grid({parse_grid("a.b=1"), parse_grid("a.b=2")});
            }),
            "--grid a.b is given twice: give all its values in one --grid");
  EXPECT_NE(error_of([] { check_grid({parse_grid("run.name=x,y")}); }).find("the sweep names each run's folder itself"),
            std::string::npos);
}

TEST(Sweep, CombinationsVaryTheFirstAxisSlowestAndSeedsInnermost) {
  const std::vector<GridAxis> grid{parse_grid("a=1,2"), parse_grid("b=x,y,z")};
  const auto combos = combinations(grid);
  EXPECT_EQ(combos, (std::vector<Strings>{{"1", "x"}, {"1", "y"}, {"1", "z"}, {"2", "x"}, {"2", "y"}, {"2", "z"}}));
  EXPECT_EQ(combinations({}), std::vector<Strings>{{}});  // seeds alone
  EXPECT_EQ(sweep_seeds(5, 3), (std::vector<std::uint64_t>{5, 6, 7}));
  EXPECT_NE(error_of([] { sweep_seeds(0, 0); }).find("--seeds 0"), std::string::npos);
  const std::vector<SweepRun> runs = expand_runs(grid, {5, 6});
  ASSERT_EQ(runs.size(), 12u);
  EXPECT_EQ(runs[0].name, "a=1,b=x,seed=5");
  EXPECT_EQ(runs[1].name, "a=1,b=x,seed=6");
  EXPECT_EQ(runs[2].name, "a=1,b=y,seed=5");
  EXPECT_EQ(runs[11].name, "a=2,b=z,seed=6");
  EXPECT_EQ(runs[11].combination, 5u);
  EXPECT_EQ(runs[11].values, (Strings{"2", "z"}));
  EXPECT_EQ(runs[11].seed, 6u);
}

TEST(Sweep, RunNamesAreFolderNamesThatSayTheCombination) {
  const std::vector<GridAxis> grid{parse_grid("model.activation=\"gelu\",relu"), parse_grid("data.path=a/b c,[1, 2]")};
  EXPECT_EQ(run_name(grid, {"\"gelu\"", "a/b c"}, 1), "model.activation=gelu,data.path=a_b_c,seed=1");
  EXPECT_EQ(run_name(grid, {"relu", "[1, 2]"}, 0, false), "model.activation=relu,data.path=_1__2_");
  // a grid over the seed itself names each run by it once
  const std::vector<SweepRun> runs = expand_runs({parse_grid("seed=3,4")}, {0});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].name, "seed=4");
  EXPECT_EQ(runs[1].seed, 4u);
  EXPECT_NE(error_of([] {
              expand_runs({parse_grid("seed=3,4")}, {0, 1});
            }).find("leave out --seeds"),
            std::string::npos);
  EXPECT_NE(error_of([] { expand_runs({parse_grid("seed=-1")}, {0}); }).find("-1 is not a seed"), std::string::npos);
  // values that differ only where the name replaces characters would share a folder
  EXPECT_NE(error_of([] {
              expand_runs({parse_grid("data.path=a b,a/b")}, {0});
            }).find("would share the folder name data.path=a_b,seed=0"),
            std::string::npos);
}

SweepManifest manifest() {
  SweepManifest m;
  m.config = "tiny.toml";
  m.config_sha256 = std::string(64, 'a');
  m.sets = {"train.epochs=2"};
  m.grid = {parse_grid("model.nhead=2,4")};
  m.seeds = {3, 4};
  m.metric = "exact_match";
  m.runs = {{"model.nhead=2,seed=3", "done", 0}, {"model.nhead=2,seed=4", "failed", 134}};
  return m;
}

TEST(Sweep, TheManifestReadsBackAndSaysWhatMakesAnotherSweep) {
  const SweepManifest m = manifest();
  const SweepManifest back = parse_manifest(manifest_json(m), "sweep.json");
  EXPECT_EQ(manifest_json(back), manifest_json(m));
  ASSERT_EQ(back.runs.size(), 2u);
  EXPECT_EQ(back.runs[1].status, "failed");
  EXPECT_EQ(back.runs[1].exit_code, 134);
  EXPECT_EQ(back.grid[0].values, (Strings{"2", "4"}));
  EXPECT_EQ(manifest_difference(back, m), "");
  SweepManifest other = m;
  other.runs.clear();  // run states are not what makes a sweep
  EXPECT_EQ(manifest_difference(m, other), "");
  other.grid = {parse_grid("model.nhead=2,8")};
  EXPECT_EQ(manifest_difference(m, other), "its grid is --grid model.nhead=2,4, this command's --grid model.nhead=2,8");
  other = m;
  other.seeds = {3};
  EXPECT_EQ(manifest_difference(m, other), "its seeds are 3, 4, this command's 3");
  other = m;
  other.sets = {};
  EXPECT_EQ(manifest_difference(m, other), "its --set overrides are train.epochs=2, this command's none");
  other = m;
  other.config_sha256 = std::string(64, 'b');
  EXPECT_NE(manifest_difference(m, other).find("tiny.toml differs from it now"), std::string::npos);
  EXPECT_NE(
      error_of([] { parse_manifest("{\"config\": 1}", "x/sweep.json"); }).find("x/sweep.json: not a sweep manifest"),
      std::string::npos);
  EXPECT_EQ(error_of([] { parse_manifest("[", "x/sweep.json"); }),
            "x/sweep.json: not a JSON object (a sweep manifest)");
}

TEST(Sweep, ARunsResultIsItsBestValidationValueAndTheTimeOfItsSessions) {
  const double nan = std::nan("");
  // trained to step 4, validated at 2 and 4; resumed from step 4's checkpoint (elapsed_s from 0
  // again), validated at 6 with a value equal to the best, and at 8 with none
  const std::vector<MetricsRecord> log{
      {{"step", 1}, {"loss", 2.0}, {"elapsed_s", 1.0}},
      {{"step", 2}, {"loss", 1.5}, {"elapsed_s", 2.0}},
      {{"step", 2}, {"val_exact_match", 0.25}, {"val_loss", 1.4}},
      {{"step", 4}, {"loss", 1.0}, {"elapsed_s", 4.5}},
      {{"step", 4}, {"val_exact_match", 0.5}, {"val_loss", 0.9}},
      {{"step", 5}, {"loss", 0.8}, {"elapsed_s", 0.5}},
      {{"step", 6}, {"loss", 0.7}, {"elapsed_s", 2.0}},
      {{"step", 6}, {"val_exact_match", 0.5}, {"val_loss", 1.1}},
      {{"step", 8}, {"loss", 0.6}, {"elapsed_s", 3.0}},
      {{"step", 8}, {"val_exact_match", nan}, {"val_loss", 0.8}},
  };
  const RunResult higher = run_result(log, "exact_match", true);
  ASSERT_TRUE(higher.has_metric);
  EXPECT_DOUBLE_EQ(higher.best, 0.5);
  EXPECT_EQ(higher.best_step, 6);  // of equal values the later, as best.h5
  EXPECT_DOUBLE_EQ(higher.time_s, 4.5 + 3.0);
  const RunResult lower = run_result(log, "loss", false);
  EXPECT_DOUBLE_EQ(lower.best, 0.8);
  EXPECT_EQ(lower.best_step, 8);
  EXPECT_FALSE(run_result(log, "bleu", true).has_metric);
  EXPECT_DOUBLE_EQ(run_result({}, "loss", false).time_s, 0.0);
}

RunOutcome outcome(std::size_t combination, std::uint64_t seed, const std::string& status, double best = 0,
                   double time_s = 0) {
  RunOutcome o{combination, seed, status, {}};
  o.result.has_metric = status == "done" || status == "diverged";
  o.result.best = best;
  o.result.time_s = time_s;
  return o;
}

TEST(Sweep, TheTableIsTheMeanSampleStdMinAndMaxOverTheSeedsDone) {
  const std::vector<Strings> combos{{"2"}, {"4"}, {"8"}, {"16"}};
  const std::vector<RunOutcome> outcomes{
      outcome(0, 0, "done", 0.5, 10), outcome(0, 1, "done", 0.7, 20), outcome(0, 2, "done", 0.9, 60),
      // a diverged run's earlier best value and a failed run count as failed, never in the mean
      outcome(1, 0, "done", 0.8, 30), outcome(1, 1, "diverged", 0.99, 5), outcome(1, 2, "failed"),
      // a missing seed (not run yet) and an interrupted one are pending
      outcome(2, 0, "pending"), outcome(2, 1, "interrupted", 0.3), outcome(2, 2, "running"),
      // done, but its log has no finite value
      outcome(3, 0, "done", 0.0, 1)};
  std::vector<RunOutcome> unreadable = outcomes;
  unreadable.back().result.has_metric = false;
  const std::vector<SweepRow> rows = summarise(combos, unreadable);
  ASSERT_EQ(rows.size(), 4u);
  const SweepRow& a = rows[0];
  EXPECT_EQ(a.values, Strings{"2"});
  EXPECT_EQ(a.runs, 3);
  EXPECT_EQ(a.done, 3);
  EXPECT_DOUBLE_EQ(a.mean, 0.7);
  EXPECT_NEAR(a.std, 0.2, 1e-12);  // sqrt((0.04 + 0 + 0.04) / 2)
  EXPECT_DOUBLE_EQ(a.min, 0.5);
  EXPECT_DOUBLE_EQ(a.max, 0.9);
  EXPECT_DOUBLE_EQ(a.time_s, 30.0);
  EXPECT_EQ(a.metric, (std::vector<std::pair<std::uint64_t, double>>{{0, 0.5}, {1, 0.7}, {2, 0.9}}));
  const SweepRow& b = rows[1];
  EXPECT_EQ(b.done, 1);
  EXPECT_EQ(b.failed, 2);
  EXPECT_DOUBLE_EQ(b.mean, 0.8);
  EXPECT_TRUE(std::isnan(b.std));  // one seed: no spread
  EXPECT_DOUBLE_EQ(b.min, 0.8);
  EXPECT_DOUBLE_EQ(b.max, 0.8);
  EXPECT_DOUBLE_EQ(b.time_s, 30.0);
  const SweepRow& c = rows[2];
  EXPECT_EQ(c.done, 0);
  EXPECT_EQ(c.pending, 3);
  EXPECT_TRUE(std::isnan(c.mean) && std::isnan(c.min) && std::isnan(c.max) && std::isnan(c.time_s));
  EXPECT_EQ(rows[3].failed, 1);
  EXPECT_TRUE(std::isnan(rows[3].mean));
  EXPECT_NE(error_of([&] { summarise(combos, {outcome(4, 0, "done")}); }).find("combination 4 of 4"),
            std::string::npos);
}

TEST(Sweep, DescribeRunNamesTheTasksPrimaryMetricWithoutItsData) {
  Config c = Config::parse("[task]\nname = \"reverse\"\n", "reverse.toml");
  const RunDescription d = describe_run(c, "reverse.toml");
  EXPECT_EQ(d.primary_metric, "exact_match");
  EXPECT_TRUE(d.higher_is_better);
  EXPECT_FALSE(d.task_keys.empty());
  // without data the steps are unknown: a warmup longer than epochs x 1 stand-in batch is no error
  Config warm = Config::parse("[task]\nname = \"reverse\"\n[train]\nepochs = 3\nwarmup_steps = 40\n", "warm.toml");
  EXPECT_EQ(describe_run(warm, "warm.toml").primary_metric, "exact_match");
  // the translation task's metric depends on its data source
  Config t = Config::parse("[task]\nname = \"translation\"\n[data]\nsource = \"tsv\"\npath = \"x.tsv\"\n", "t.toml");
  EXPECT_EQ(describe_run(t, "t.toml").primary_metric, "sacrebleu");
}

}  // namespace
}  // namespace rune::train
