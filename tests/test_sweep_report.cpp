// A sweep's files (report/sweep_report.hpp): the Markdown and CSV tables of a known summary (their
// heads naming the split the values come from, and the sweep column of several sweeps), where a
// key's values go on the plot's axis, and the plots (report/plot.hpp's plot_error_bars) drawn with
// their series' colours, a line per sweep.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "report/plot.hpp"
#include "report/sweep_report.hpp"
#include "tests/helpers.hpp"

namespace rune::report {
namespace {

namespace fs = std::filesystem;
using train::parse_grid;

// Two keys, two seeds asked: (2, 1e-3) both done; (2, 1e-2) one done, one diverged; (4, 1e-3)
// nothing finished; (4, 1e-2) one done, one not run yet.
train::SweepSummary summary() {
  const std::vector<train::GridAxis> grid{parse_grid("model.nhead=2,4"), parse_grid("train.lr=1e-3,1e-2")};
  const auto outcome = [](std::size_t c, std::uint64_t seed, const std::string& status, double best, double t) {
    train::RunOutcome o{c, seed, status, {}};
    o.result.has_metric = status == "done";
    o.result.best = best;
    o.result.time_s = t;
    return o;
  };
  const std::vector<train::RunOutcome> outcomes{outcome(0, 0, "done", 0.5, 60),      outcome(0, 1, "done", 0.75, 90),
                                                outcome(1, 0, "done", 0.875, 65),    outcome(1, 1, "diverged", 0, 0),
                                                outcome(2, 0, "interrupted", 0, 0),  outcome(2, 1, "pending", 0, 0),
                                                outcome(3, 0, "done", 0.25, 3725.0), outcome(3, 1, "pending", 0, 0)};
  return {"tiny.toml", "exact_match",      true, grid, train::summarise(train::combinations(grid), outcomes),
          "",          {"runs/sweep-tiny"}};
}

TEST(SweepReport, TheMarkdownTableHasARowPerCombinationAndNamesTheBest) {
  const std::string md = sweep_markdown(summary());
  const std::string table =
      "| model.nhead | train.lr | seeds | failed | best val_exact_match mean | std | min | max | time |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
      "| 2 | 1e-3 | 2/2 | 0 | 0.6250 | 0.1768 | 0.5000 | 0.7500 | 1:15 |\n"
      "| 2 | 1e-2 | 1/2 | 1 | 0.8750 |  | 0.8750 | 0.8750 | 1:05 |\n"
      "| 4 | 1e-3 | 0/2 | 0 |  |  |  |  |  |\n"
      "| 4 | 1e-2 | 1/2 | 0 | 0.2500 |  | 0.2500 | 0.2500 | 1:02:05 |\n";
  EXPECT_NE(md.find(table), std::string::npos) << md;
  EXPECT_NE(md.find("Best: model.nhead = 2, train.lr = 1e-2: exact_match 0.8750.\n"), std::string::npos) << md;
  EXPECT_NE(md.find("3 runs have not finished yet"), std::string::npos) << md;
  EXPECT_NE(md.find("higher is better"), std::string::npos) << md;
  // lower is better: the best row is the lowest mean
  train::SweepSummary lower = summary();
  lower.higher_is_better = false;
  EXPECT_NE(sweep_markdown(lower).find("Best: model.nhead = 4, train.lr = 1e-2: exact_match 0.2500.\n"),
            std::string::npos);
}

TEST(SweepReport, TheCsvHasTheSameRowsInFull) {
  EXPECT_EQ(sweep_csv(summary()).text(),
            "model.nhead,train.lr,seeds_done,seeds_failed,seeds_asked,val_exact_match_mean,val_exact_match_std,"
            "val_exact_match_min,val_exact_match_max,time_s\n"
            "2,1e-3,2,0,2,0.625,0.176776695,0.5,0.75,75\n"
            "2,1e-2,1,1,2,0.875,,0.875,0.875,65\n"
            "4,1e-3,0,0,2,,,,,\n"
            "4,1e-2,1,0,2,0.25,,0.25,0.25,3725\n");
}

TEST(SweepReport, TheHeadsSayWhichSplitTheValuesComeFrom) {
  train::SweepSummary s = summary();
  s.split = "test";
  const std::string md = sweep_markdown(s);
  EXPECT_NE(md.find("| model.nhead | train.lr | seeds | failed | test exact_match mean | std | min | max | time |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("evaluated on the test split (`<run>/eval-test.json`"), std::string::npos) << md;
  EXPECT_EQ(md.find("best val_"), std::string::npos) << md;
  EXPECT_NE(md.find("Best: model.nhead = 2, train.lr = 1e-2: test exact_match 0.8750.\n"), std::string::npos) << md;
  const std::string csv = sweep_csv(s).text();
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model.nhead,train.lr,seeds_done,seeds_failed,seeds_asked,test_exact_match_mean,test_exact_match_std,"
            "test_exact_match_min,test_exact_match_max,time_s");
  EXPECT_NE(sweep_markdown(summary()).find("Each run's result is its best validation exact_match"), std::string::npos);
}

// Two sweeps of one key each, merged (train::merge_summaries): a at nhead 2 and 4, b at 4 and 8.
train::SweepSummary two_sweeps() {
  const auto sweep = [](const std::string& folder, const std::string& values, double base) {
    const std::vector<train::GridAxis> grid{parse_grid("model.nhead=" + values)};
    std::vector<train::RunOutcome> outcomes;
    for (std::size_t i = 0; i < 4; ++i) {
      train::RunOutcome o{i / 2, i % 2, "done", {}};
      o.result.has_metric = true;
      o.result.best = base + 0.125 * static_cast<double>(i);
      o.result.time_s = 10;
      outcomes.push_back(o);
    }
    return train::SweepSummary{
        folder + ".toml", "exact_match",     true, grid, train::summarise(train::combinations(grid), outcomes),
        "test",           {"runs/" + folder}};
  };
  return train::merge_summaries({sweep("a", "2,4", 0.25), sweep("b", "4,8", 0.5)});
}

TEST(SweepReport, SeveralSweepsGetASweepColumnAndALinePerSweep) {
  const train::SweepSummary s = two_sweeps();
  const std::string md = sweep_markdown(s);
  EXPECT_NE(md.find("# Sweeps a, b (of a.toml, b.toml)\n"), std::string::npos) << md;
  EXPECT_NE(md.find("(a: `runs/a`, b: `runs/b`)"), std::string::npos) << md;
  EXPECT_NE(md.find("| sweep | model.nhead | seeds | failed | test exact_match mean | std | min | max | time |\n"
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
                    "| a | 2 | 2/2 | 0 | 0.3125 | 0.0884 | 0.2500 | 0.3750 | 0:10 |\n"
                    "| a | 4 | 2/2 | 0 | 0.5625 | 0.0884 | 0.5000 | 0.6250 | 0:10 |\n"
                    "| b | 4 | 2/2 | 0 | 0.5625 | 0.0884 | 0.5000 | 0.6250 | 0:10 |\n"
                    "| b | 8 | 2/2 | 0 | 0.8125 | 0.0884 | 0.7500 | 0.8750 | 0:10 |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("Best: sweep = b, model.nhead = 8: test exact_match 0.8125"), std::string::npos) << md;
  const std::string csv = sweep_csv(s).text();
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "sweep,model.nhead,seeds_done,seeds_failed,seeds_asked,test_exact_match_mean,test_exact_match_std,"
            "test_exact_match_min,test_exact_match_max,time_s");
  EXPECT_NE(csv.find("\nb,8,2,0,2,0.8125,"), std::string::npos) << csv;
}

TEST(SweepReport, NumbersGoOnALinearOrLogAxisAndWordsAreCategories) {
  bool log = true;
  EXPECT_EQ(axis_positions({"0", "0.1", "0.3"}, &log), (std::vector<double>{0, 0.1, 0.3}));
  EXPECT_FALSE(log);
  const std::vector<double> lr = axis_positions({"1e-4", "1e-3", "1e-2"}, &log);
  EXPECT_TRUE(log);
  ASSERT_EQ(lr.size(), 3u);
  EXPECT_NEAR(lr[0], -4, 1e-12);
  EXPECT_NEAR(lr[2], -2, 1e-12);
  EXPECT_EQ(axis_positions({"gelu", "relu"}, &log), (std::vector<double>{0, 1}));
  EXPECT_FALSE(log);
  EXPECT_EQ(axis_positions({"true", "false"}), (std::vector<double>{0, 1}));
  EXPECT_EQ(axis_positions({"2", "x"}), (std::vector<double>{0, 1}));  // one word makes all categories
}

// How many pixels of a (3, H, W) image are within 8 of colour (r, g, b).
int pixels_of(const std::vector<std::uint8_t>& img, int h, int w, int r, int g, int b) {
  int n = 0;
  const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
  for (std::size_t i = 0; i < plane; ++i)
    n += std::abs(img[i] - r) <= 8 && std::abs(img[plane + i] - g) <= 8 && std::abs(img[2 * plane + i] - b) <= 8;
  return n;
}

TEST(SweepReport, TheTablesAndAPlotPerKeyAreWrittenTogether) {
  const fs::path dir = scratch_dir("sweep_report");
  const std::vector<std::string> paths = write_sweep_report(dir.string(), summary());
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(paths[2], (dir / "sweep-model.nhead.png").string());
  EXPECT_EQ(paths[3], (dir / "sweep-train.lr.png").string());
  EXPECT_EQ(read_file(dir / "sweep.md"), sweep_markdown(summary()));
  EXPECT_EQ(read_file(dir / "sweep.csv"), sweep_csv(summary()).text());
  for (std::size_t i = 2; i < 4; ++i) {
    int h = 0, w = 0;
    const std::vector<std::uint8_t> img = read_png(paths[i], 3, h, w);
    // the first line is drawn in the first colour (0.12, 0.47, 0.71), the second in orange
    EXPECT_GT(pixels_of(img, h, w, 31, 120, 181), 50) << paths[i];
    EXPECT_GT(pixels_of(img, h, w, 255, 128, 13), 50) << paths[i];
  }
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST(SweepReport, SeveralSweepsArePlottedAsALinePerSweepAgainstEachKey) {
  const fs::path dir = scratch_dir("sweep_report_several");
  const std::vector<std::string> paths = write_sweep_report(dir.string(), two_sweeps());
  // no plot against the sweeps themselves while there is a key to plot against
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[2], (dir / "sweep-model.nhead.png").string());
  EXPECT_FALSE(fs::exists(dir / "sweep-sweep.png"));
  int h = 0, w = 0;
  const std::vector<std::uint8_t> img = read_png(paths[2], 3, h, w);
  // sweep a's line in the first colour, b's in the second
  EXPECT_GT(pixels_of(img, h, w, 31, 120, 181), 50);
  EXPECT_GT(pixels_of(img, h, w, 255, 128, 13), 50);
  EXPECT_EQ(pixels_of(img, h, w, 44, 160, 44), 0) << "a third line";  // the third colour: a line per sweep only
  // sweeps over seeds alone: the plot is against the sweeps
  train::SweepSummary seeds_only = two_sweeps();
  seeds_only.grid.resize(1);
  for (train::SweepRow& r : seeds_only.rows) r.values.resize(1);
  seeds_only.rows = {seeds_only.rows[0], seeds_only.rows[2]};
  const std::vector<std::string> one = write_sweep_report(dir.string(), seeds_only);
  ASSERT_EQ(one.size(), 3u);
  EXPECT_EQ(one[2], (dir / "sweep-sweep.png").string());
}

TEST(SweepReport, AnErrorBarPlotWithoutValuesSaysSo) {
  const fs::path dir = scratch_dir("sweep_report_empty");
  const std::string path = (dir / "empty.png").string();
  plot_error_bars(path, "nothing yet", "model.nhead", "exact_match", {{0, "2"}, {1, "4"}},
                  {{"exact_match", {0, 1}, {std::nan(""), std::nan("")}, {std::nan(""), std::nan("")}, {}}});
  int h = 0, w = 0;
  const std::vector<std::uint8_t> img = read_png(path, 3, h, w);
  EXPECT_GT(w, 700);
  EXPECT_EQ(pixels_of(img, h, w, 31, 120, 181), 0);  // no point, bar or line for a mean that is NaN
  // one flat value: drawn, its axis widened around it
  plot_error_bars(path, "flat", "k", "m", {{0, "a"}}, {{"m", {0}, {0.5}, {0.0}, {{0, 0.5}}}});
  EXPECT_EQ(read_file(path).substr(1, 3), "PNG");
}

}  // namespace
}  // namespace rune::report
