// A race: 2, 4 and 8 `rune train` processes started together with one run name. Each must take
// a folder of its own (the name, then -2, -3 ...), and everything in it must be its own: each
// process has its own seed, and its folder's config.toml and every checkpoint's config carry it.
#include <regex>

#include "tests/faults/faults.hpp"
#include "train/checkpoint.hpp"

namespace rune::faults {
namespace {

struct Race {
  int runs;
};
void PrintTo(const Race& r, std::ostream* os) { *os << "runs_" << r.runs; }

class RunsStartedTogether : public ::testing::TestWithParam<Race> {};

TEST_P(RunsStartedTogether, GetTheirOwnFoldersAndFiles) {
  const TestClock clock;
  const int runs = GetParam().runs;
  const fs::path dir = tiny_workspace("race_" + std::to_string(runs), "epochs = 1\neval_every = 2\n");
  std::vector<Process> processes;
  for (int i = 0; i < runs; ++i)
    processes.push_back(
        start_rune({"train", "tiny.toml", "--no-progress", "--set", "seed=" + std::to_string(10 + i)}, dir.string()));
  const std::vector<Exit> exits = finish(processes);
  std::set<std::string> folders;
  for (int i = 0; i < runs; ++i) {
    const Exit& e = exits[static_cast<std::size_t>(i)];
    const std::string seed = "seed = " + std::to_string(10 + i) + "\n";
    ASSERT_EQ(e.code, 0) << "run " << i << ": " << e.describe() << "\n" << e.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(e.output, m, std::regex("run folder (runs/tiny(-[0-9]+)?);"))) << e.output;
    const std::string folder = m[1];
    EXPECT_TRUE(folders.insert(folder).second) << "two runs say they wrote " << folder;
    EXPECT_NE(read_file(dir / folder / "config.toml").find(seed), std::string::npos)
        << folder << "/config.toml is another run's: it lacks " << seed;
    int checkpoints = 0;
    for (const auto& entry : fs::directory_iterator(dir / folder / "checkpoints")) {
      ++checkpoints;
      EXPECT_NE(train::read_checkpoint(entry.path().string()).config.find(seed), std::string::npos)
          << entry.path() << " is another run's: its config lacks " << seed;
    }
    EXPECT_GE(checkpoints, 3) << folder << ": last.h5, best.h5 and step-000004.h5 at least";
  }
  int on_disk = 0;
  for (const auto& entry : fs::directory_iterator(dir / "runs")) on_disk += entry.is_directory();
  EXPECT_EQ(on_disk, runs) << "one folder per run";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Races, RunsStartedTogether, ::testing::Values(Race{2}, Race{4}, Race{8}),
                         [](const ::testing::TestParamInfo<Race>& p) {
                           return "runs_" + std::to_string(p.param.runs);
                         });

}  // namespace
}  // namespace rune::faults
