// A full disk: `rune` run with a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: a write past it
// fails with EFBIG, as on a full disk) at sizes chosen so that each file a command writes is in
// turn the one that hits it. Each such run must exit with status 1 (never a signal), say which
// file it could not write, leave every file that was there before as it was, and leave no *.tmp.
#include <signal.h>

#include "tests/faults/faults.hpp"
#include "train/metrics_log.hpp"

namespace rune::faults {
namespace {

// One limited run: what it is, the file size limit, and the file its error must name.
struct Case {
  std::string what;
  rlim_t limit;
  std::string names;
};

// The checks every limited run passes: `e` ended with status 1 naming `c.names` and the cause,
// the files of `before` are as they were in `after` (but a log in `may_grow` may have grown by
// whole lines), and no temporary is left below `dir`.
void expect_clean_failure(const Case& c, const Exit& e, const fs::path& dir, const Snapshot& before,
                          const std::set<std::string>& may_grow = {}) {
  std::string first_line =
      e.output.substr(e.output.rfind("rune: ") == std::string::npos ? 0 : e.output.rfind("rune: "));
  first_line = first_line.substr(0, first_line.find('\n'));
  std::printf("%s, limit %llu bytes: %s: %s\n", c.what.c_str(), static_cast<unsigned long long>(c.limit),
              e.describe().c_str(), first_line.c_str());
  EXPECT_EQ(e.code, 1) << c.what << ": " << e.describe() << "\n" << e.output;
  EXPECT_NE(e.output.find(c.names), std::string::npos) << c.what << ": the error names " << c.names << "\n" << e.output;
  EXPECT_NE(e.output.find("File too large"), std::string::npos) << c.what << ": the error says why\n" << e.output;
  const std::vector<std::string> changed = changed_files(before, snapshot(dir), may_grow);
  EXPECT_TRUE(changed.empty()) << c.what << ": files that were there before changed: " << listed(changed);
  const std::vector<std::string> tmp = temporaries(dir);
  EXPECT_TRUE(tmp.empty()) << c.what << ": temporaries left: " << listed(tmp);
}

// The size of the first lines of metrics.jsonl, up to and including the first validation record.
std::size_t bytes_to_first_validation(const std::string& log) {
  for (std::size_t at = 0, end; (end = log.find('\n', at)) != std::string::npos; at = end + 1)
    if (log.substr(at, end - at).find("\"val_") != std::string::npos) return end + 1;
  return log.size();
}

std::size_t size_of(const fs::path& p) { return static_cast<std::size_t>(fs::file_size(p)); }

// A fresh run: 8 steps, one validation at the end, so that metrics.jsonl outgrows config.toml
// before the first checkpoint; then config.toml, metrics.jsonl, the checkpoint and curves.png
// each hit the limit first.
TEST(DiskFull, AFreshRunFailsByNameAtEachFileItWrites) {
  const TestClock clock;
  const fs::path dir = tiny_workspace("full_fresh", "epochs = 2\neval_every = 8\n");
  const std::vector<std::string> train{"train", "tiny.toml", "--no-progress"};
  const Exit reference = run_rune(train, dir.string());
  ASSERT_EQ(reference.code, 0) << reference.output;
  const fs::path run = dir / "runs" / "tiny";
  const std::size_t config = size_of(run / "config.toml"), checkpoint = size_of(run / "checkpoints" / "last.h5"),
                    png = size_of(run / "curves.png"),
                    metrics = bytes_to_first_validation(read_file(run / "metrics.jsonl"));
  std::printf(
      "config.toml %zu bytes, metrics.jsonl %zu bytes at the first checkpoint, a checkpoint %zu, "
      "curves.png %zu\n",
      config, metrics, checkpoint, png);
  ASSERT_LT(config, metrics) << "metrics.jsonl must outgrow config.toml before the first checkpoint";
  ASSERT_LT(size_of(run / "metrics.jsonl"), checkpoint);
  std::vector<Case> cases{{"config.toml", config - 1, "runs/tiny/config.toml"},
                          {"metrics.jsonl", (config + metrics) / 2, "runs/tiny/metrics.jsonl"},
                          {"a checkpoint", checkpoint - 1, "runs/tiny/checkpoints/"}};
  if (png > checkpoint)
    cases.push_back({"curves.png", png - 1, "runs/tiny/curves.png"});
  else
    std::printf(
        "curves.png (%zu bytes) is written after a checkpoint (%zu bytes): no limit makes it the first "
        "file to fail\n",
        png, checkpoint);
  for (const Case& c : cases) {
    fs::remove_all(dir / "runs");
    const Snapshot before = snapshot(dir);
    expect_clean_failure(c, run_rune(train, dir.string(), c.limit), dir, before);
    // what was written before the failure is whole
    if (fs::exists(run / "metrics.jsonl")) {
      const std::string log = read_file(run / "metrics.jsonl");
      EXPECT_TRUE(log.empty() || log.back() == '\n') << c.what << ": metrics.jsonl ends in half a line";
    }
  }
  fs::remove_all(dir);
}

// A run stopped by Ctrl-C after its second validation, resumed from last.h5 under a limit that
// config.toml, metrics.jsonl or the next checkpoint hits first.
TEST(DiskFull, AResumedRunFailsByNameAndKeepsTheRunFolder) {
  const TestClock clock;
  const fs::path dir = tiny_workspace("full_resume", "epochs = 100000\neval_every = 4\n");
  const fs::path run = dir / "runs" / "tiny";
  const Process first = start_rune({"train", "tiny.toml", "--no-progress"}, dir.string());
  for (int i = 0; i < 1200 && !fs::exists(run / "checkpoints" / "step-000008.h5"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(first.pid, SIGINT);
  const Exit stopped = finish({first})[0];
  ASSERT_EQ(stopped.code, 130) << stopped.output;
  const Snapshot existing = snapshot(dir);
  const std::size_t config = existing.at("runs/tiny/config.toml").size(),
                    metrics = existing.at("runs/tiny/metrics.jsonl").size(),
                    checkpoint = existing.at("runs/tiny/checkpoints/last.h5").size();
  ASSERT_LT(config, metrics) << "metrics.jsonl must have outgrown config.toml";
  const std::vector<Case> cases{{"resumed, config.toml", config - 1, "runs/tiny/config.toml"},
                                {"resumed, metrics.jsonl", metrics - 1, "runs/tiny/metrics.jsonl"},
                                {"resumed, a checkpoint", checkpoint - 1, "runs/tiny/checkpoints/"}};
  for (const Case& c : cases) {
    // each case starts from the run folder as Ctrl-C left it
    fs::remove_all(dir / "runs");
    for (const auto& [name, bytes] : existing) {
      fs::create_directories((dir / name).parent_path());
      std::ofstream(dir / name, std::ios::binary) << bytes;
    }
    const Exit e = run_rune(resume_command("runs/tiny/checkpoints/last.h5"), dir.string(), c.limit, 60);
    expect_clean_failure(c, e, dir, existing, {"runs/tiny/metrics.jsonl"});
  }
  fs::remove_all(dir);
}

// `rune eval` writes eval-test.json into the run folder, over the report of an earlier checkpoint.
TEST(DiskFull, EvalFailsByNameAndKeepsThePreviousReport) {
  const TestClock clock;
  const fs::path dir = tiny_workspace("full_eval", "epochs = 2\neval_every = 4\n");
  ASSERT_EQ(run_rune({"train", "tiny.toml", "--no-progress"}, dir.string()).code, 0);
  const Exit previous = run_rune({"eval", "runs/tiny/checkpoints/step-000004.h5"}, dir.string());
  ASSERT_EQ(previous.code, 0) << previous.output;
  ASSERT_TRUE(fs::exists(dir / "runs" / "tiny" / "eval-test.json"));
  const Snapshot before = snapshot(dir);
  const Case c{"eval-test.json", 16, "runs/tiny/eval-test.json"};
  expect_clean_failure(c, run_rune({"eval", "runs/tiny/checkpoints/last.h5"}, dir.string(), c.limit), dir, before);
  fs::remove_all(dir);
}

// `rune attention` and `rune heads` writing their PNGs and tables over an earlier run's (another
// sentence, another split), under limits from nothing at all to just under each file's size.
TEST(DiskFull, AttentionAndHeadsFailByNameAndKeepTheirPreviousFiles) {
  const TestClock clock;
  const fs::path dir = scratch_dir("fault_full_reports");
  const std::string checkpoint = train_tiny_translation(dir);
  struct Command {
    std::string what, out;
    std::vector<std::string> previous, limited;
  };
  const std::vector<Command> commands{{"attention",
                                       "attention",
                                       {"attention", checkpoint, "twenty three", "--out", "attention"},
                                       {"attention", checkpoint, "four hundred and five", "--out", "attention"}},
                                      {"heads",
                                       "heads",
                                       {"heads", checkpoint, "--split", "val", "--out", "heads", "--no-progress"},
                                       {"heads", checkpoint, "--split", "test", "--out", "heads", "--no-progress"}}};
  for (const Command& command : commands) {
    // the limits: just under the size of each file the limited command writes, measured by a run
    // of it (the earlier run's files may be larger), then the earlier run's files written again
    std::set<rlim_t> limits{0};
    const Exit sizing = run_rune(command.limited, dir.string());
    ASSERT_EQ(sizing.code, 0) << sizing.output;
    for (const auto& entry : fs::directory_iterator(dir / command.out)) limits.insert(size_of(entry.path()) - 1);
    fs::remove_all(dir / command.out);
    const Exit previous = run_rune(command.previous, dir.string());
    ASSERT_EQ(previous.code, 0) << previous.output;
    const Snapshot before = snapshot(dir);
    for (const rlim_t limit : limits) {
      const Case c{command.what + " over " + command.out + "/", limit, command.out + "/"};
      expect_clean_failure(c, run_rune(command.limited, dir.string(), limit), dir, before);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rune::faults
