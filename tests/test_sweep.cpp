// Sweeps (train/sweep.hpp): --grid parsing, the grid's order, run names, the manifest and what
// makes another sweep, a run's result from its metrics log (sessions of a resumed run included),
// the table's arithmetic, a sweep folder read back, several sweeps' tables merged into one (and
// what refuses it), a value read from rune eval's report, and describe_run's primary metric
// (train/trainer.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/helpers.hpp"
#include "train/config.hpp"
#include "train/files.hpp"
#include "train/metrics_log.hpp"
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

// A sweep of one folder over data.train_size (two seeds asked), every run done with `best`.
SweepSummary one_sweep(const std::string& folder, const std::string& sizes, const std::vector<double>& best) {
  const std::vector<GridAxis> grid{parse_grid("data.train_size=" + sizes)};
  std::vector<RunOutcome> outcomes;
  for (std::size_t i = 0; i < best.size(); ++i) outcomes.push_back(outcome(i / 2, i % 2, "done", best[i], 1));
  return {folder + ".toml", "accuracy", true, grid, summarise(combinations(grid), outcomes), "test", {folder}};
}

TEST(Sweep, SeveralSweepsMergeIntoOneTableWithASweepAxis) {
  const SweepSummary vit = one_sweep("runs/vit", "100,200", {0.5, 0.6, 0.7, 0.8});
  const SweepSummary cnn = one_sweep("runs/cnn/", "200,400", {0.9, 0.7, 0.95, 0.85});
  const SweepSummary m = merge_summaries({vit, cnn});
  ASSERT_EQ(m.grid.size(), 2u);
  EXPECT_EQ(m.grid[0].key, "sweep");
  EXPECT_EQ(m.grid[0].values, (Strings{"vit", "cnn"}));  // the folders' names
  EXPECT_EQ(m.grid[1].key, "data.train_size");
  EXPECT_EQ(m.grid[1].values, (Strings{"100", "200", "400"}));  // every sweep's values, each once
  EXPECT_EQ(m.sources, (Strings{"runs/vit", "runs/cnn/"}));
  EXPECT_EQ(m.config, "runs/vit.toml, runs/cnn/.toml");
  EXPECT_EQ(m.metric, "accuracy");
  EXPECT_EQ(m.split, "test");
  ASSERT_EQ(m.rows.size(), 4u);
  EXPECT_EQ(m.rows[0].values, (Strings{"vit", "100"}));
  EXPECT_EQ(m.rows[1].values, (Strings{"vit", "200"}));
  EXPECT_EQ(m.rows[2].values, (Strings{"cnn", "200"}));
  EXPECT_EQ(m.rows[3].values, (Strings{"cnn", "400"}));
  EXPECT_DOUBLE_EQ(m.rows[1].mean, 0.75);
  EXPECT_DOUBLE_EQ(m.rows[2].mean, 0.8);
  EXPECT_EQ(m.rows[3].metric, (std::vector<std::pair<std::uint64_t, double>>{{0, 0.95}, {1, 0.85}}));
  // one sweep is its own table, without a sweep axis
  const SweepSummary alone = merge_summaries({vit});
  ASSERT_EQ(alone.grid.size(), 1u);
  EXPECT_EQ(alone.grid[0].key, "data.train_size");
  EXPECT_EQ(alone.rows[0].values, Strings{"100"});
  EXPECT_EQ(sweep_name("runs/vit/"), "vit");
  EXPECT_EQ(sweep_name("a/../b"), "b");
}

TEST(Sweep, SweepsOfAnotherMetricOrOtherKeysOrOneNameAreNotMerged) {
  const SweepSummary vit = one_sweep("runs/vit", "100,200", {0.5, 0.6, 0.7, 0.8});
  SweepSummary lm = one_sweep("runs/lm", "100,200", {1, 2, 3, 4});
  lm.metric = "bits_per_char";
  lm.higher_is_better = false;
  EXPECT_EQ(error_of([&] {
              merge_summaries({vit, lm});
            }),
            "sweep folder runs/lm: its runs are judged by bits_per_char (lower is better), those of runs/vit by "
            "accuracy (higher is better): one table compares one metric");
  SweepSummary lower = vit;
  lower.sources = {"runs/lower"};
  lower.higher_is_better = false;
  EXPECT_NE(error_of([&] {
              merge_summaries({vit, lower});
            })
                .find("sweep folder runs/lower: its runs are judged by "
                      "accuracy (lower is better)"),
            std::string::npos);
  SweepSummary two_keys = vit;
  two_keys.sources = {"runs/wide"};
  two_keys.grid.push_back(parse_grid("model.d_model=64"));
  EXPECT_EQ(error_of([&] {
              merge_summaries({vit, two_keys});
            }),
            "sweep folder runs/wide: its grid keys are data.train_size, model.d_model, those of runs/vit "
            "data.train_size: sweeps tabulated together need the same keys in the same order");
  SweepSummary swapped = two_keys;
  swapped.sources = {"runs/swapped"};
  std::swap(swapped.grid[0], swapped.grid[1]);
  EXPECT_NE(error_of([&] {
              merge_summaries({two_keys, swapped});
            }).find("sweep folder runs/swapped: its grid keys are model.d_model, data.train_size"),
            std::string::npos);
  SweepSummary seeds_only = vit;
  seeds_only.sources = {"runs/seeds"};
  seeds_only.grid.clear();
  EXPECT_NE(error_of([&] { merge_summaries({vit, seeds_only}); }).find("its grid keys are none"), std::string::npos);
  const SweepSummary same_name = one_sweep("old/vit", "100,200", {0.5, 0.6, 0.7, 0.8});
  EXPECT_EQ(error_of([&] {
              merge_summaries({vit, same_name});
            }),
            "sweep folders runs/vit and old/vit have the same name vit: a table of several sweeps names each by its "
            "folder's name");
  EXPECT_NE(error_of([&] { merge_summaries({vit, vit}); }).find("have the same name vit"), std::string::npos);
  SweepSummary val = one_sweep("runs/val", "100,200", {0.5, 0.6, 0.7, 0.8});
  val.split = "";
  EXPECT_NE(error_of([&] {
              merge_summaries({vit, val});
            }).find("sweep folder runs/val: its values are of another split"),
            std::string::npos);
  EXPECT_NE(error_of([] { merge_summaries({}); }).find("no sweep"), std::string::npos);
}

TEST(Sweep, ASweepFolderReadsBackWithItsRunsAndTheirLogs) {
  namespace fs = std::filesystem;
  const fs::path dir = scratch_dir("sweep_folder");
  EXPECT_NE(error_of([&] { read_sweep_folder(dir.string()); }).find("is not a sweep folder: it has no sweep.json"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_sweep_folder((dir / "gone").string()); }).find("no such folder"), std::string::npos);
  SweepManifest m = manifest();  // model.nhead=2,4 x seeds 3,4: the runs are these four
  m.runs = {{"model.nhead=2,seed=3", "done", 0},
            {"model.nhead=2,seed=4", "failed", 1},
            {"model.nhead=4,seed=3", "done", 0},
            {"model.nhead=4,seed=4", "pending", 0}};
  write_file((dir / "sweep.json").string(), manifest_json(m));
  for (const auto& [run, best] :
       std::vector<std::pair<std::string, double>>{{"model.nhead=2,seed=3", 0.25}, {"model.nhead=4,seed=3", 0.75}}) {
    fs::create_directories(dir / run);
    std::ofstream(dir / run / "metrics.jsonl") << metrics_json({{"step", 2}, {"loss", 1.0}, {"elapsed_s", 3.0}})
                                               << metrics_json({{"step", 2}, {"val_exact_match", best}});
  }
  const SweepFolder f = read_sweep_folder(dir.string());
  ASSERT_EQ(f.runs.size(), 4u);
  EXPECT_EQ(f.runs[2].name, "model.nhead=4,seed=3");
  EXPECT_EQ(f.runs[2].combination, 1u);
  const SweepSummary s = logged_summary(f);
  EXPECT_EQ(s.sources, Strings{dir.string()});
  EXPECT_EQ(s.split, "");
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].done, 1);
  EXPECT_EQ(s.rows[0].failed, 1);
  EXPECT_DOUBLE_EQ(s.rows[0].mean, 0.25);
  EXPECT_EQ(s.rows[1].pending, 1);
  EXPECT_DOUBLE_EQ(s.rows[1].mean, 0.75);
  EXPECT_DOUBLE_EQ(s.rows[1].time_s, 3.0);
  // a manifest whose runs are not its grid's
  m.runs.pop_back();
  write_file((dir / "sweep.json").string(), manifest_json(m));
  EXPECT_NE(error_of([&] { read_sweep_folder(dir.string()); }).find("its runs are not those of its grid and seeds"),
            std::string::npos);
  // a grid over the seed keeps no seeds: each run's seed is its value
  m.grid = {parse_grid("seed=5,6")};
  m.seeds.clear();
  m.runs = {{"seed=5", "done", 0}, {"seed=6", "done", 0}};
  write_file((dir / "sweep.json").string(), manifest_json(m));
  EXPECT_EQ(read_sweep_folder(dir.string()).runs[1].seed, 6u);
}

TEST(Sweep, AnEvaluationsValueIsReadFromItsReport) {
  const std::string dir = scratch_dir("sweep_eval_value").string();
  const std::string path = dir + "/eval-test.json";
  write_file(path, metrics_json({{"step", 40}, {"exact_match", 0.3125}, {"loss", 1.5}}));
  EXPECT_DOUBLE_EQ(read_eval_value(path, "exact_match"), 0.3125);
  EXPECT_EQ(error_of([&] { read_eval_value(path, "accuracy"); }), path + ": no accuracy in it (the sweep's metric)");
  write_file(path, metrics_json({{"step", 40}, {"exact_match", std::nan("")}}));
  EXPECT_EQ(error_of([&] { read_eval_value(path, "exact_match"); }), path + ": its exact_match is not finite");
  write_file(path, "{\"step\": 4");
  EXPECT_NE(error_of([&] { read_eval_value(path, "exact_match"); }).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of([&] { read_eval_value(dir + "/eval-val.json", "exact_match"); }).find("cannot read it"),
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
