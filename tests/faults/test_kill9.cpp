// A crash: a tiny run that saves checkpoints at every step, killed with SIGKILL at random
// moments (seeded delays, drawn against the time an uninterrupted run takes) 20 times, resumed
// from last.h5 after each kill until it finishes. After each kill every checkpoint left loads,
// and `rune info` reads one; a save after a kill leaves none of the *.tmp files that kill left;
// and the finished run's parameters and optimizer state are bit for bit the uninterrupted run's.
#include <random>

#include "autograd/ops.hpp"
#include "tests/faults/faults.hpp"
#include "train/checkpoint.hpp"

namespace rune::faults {
namespace {

// A file's identity: a *.tmp rewritten since has another inode or modification time.
struct Identity {
  ino_t inode;
  std::int64_t mtime_ns;
  bool operator==(const Identity& o) const { return inode == o.inode && mtime_ns == o.mtime_ns; }
};

std::map<std::string, Identity> temporaries_by_identity(const fs::path& dir) {
  std::map<std::string, Identity> out;
  for (const std::string& tmp : temporaries(dir)) {
    struct stat st {};
    if (::stat((dir / tmp).c_str(), &st) == 0)
      out[tmp] = {st.st_ino, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  return out;
}

// The tensors' names and bytes, for a bit-for-bit comparison.
std::map<std::string, std::string> bits(const nn::NamedTensors& tensors) {
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : tensors) {
    const Tensor c = t.contiguous();
    out[name] = std::string(static_cast<const char*>(c.raw_data()),
                            static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()));
  }
  return out;
}

TEST(Kill9, ARunKilledTwentyTimesEndsBitForBitAsAnUninterruptedOne) {
  const TestClock clock;
  constexpr int kKills = 20;
  const std::string keys = "epochs = 25\neval_every = 1\n";  // 100 steps, each followed by checkpoints
  const std::vector<std::string> train{"train", "tiny.toml", "--no-progress"};

  const fs::path straight = tiny_workspace("kill9_straight", keys);
  const auto t0 = std::chrono::steady_clock::now();
  const Exit uninterrupted = run_rune(train, straight.string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(uninterrupted.code, 0) << uninterrupted.output;
  std::printf("the uninterrupted run: %.2f s\n", seconds);

  const fs::path dir = tiny_workspace("kill9", keys);
  const fs::path run = dir / "runs" / "tiny", last = run / "checkpoints" / "last.h5";
  std::mt19937 random(9);
  // each kill comes after a random part of the uninterrupted run's time: a twentieth at most, so
  // that the 20 kills (half the run's time on average, less each start-up) come before its end
  // however fast the machine is at the moment (with an eighth, a start-up quicker than the
  // uninterrupted run's let a run finish after 19 kills)
  std::uniform_real_distribution<double> delay(0, seconds / 20);
  int kills = 0, restarts = 0;
  std::map<std::string, Identity> left;  // the *.tmp files the last kill left
  for (;;) {
    const bool resume = fs::exists(last);
    if (!resume) fs::remove_all(dir / "runs");  // killed before its first checkpoint: from the start again
    restarts += !resume && kills > 0;
    const std::int64_t step_before = resume ? train::read_checkpoint(last.string()).step : 0;
    const Process p = start_rune(resume ? resume_command("runs/tiny/checkpoints/last.h5") : train, dir.string());
    if (kills < kKills) {
      std::this_thread::sleep_for(std::chrono::duration<double>(delay(random)));
      ::kill(p.pid, SIGKILL);
    }
    const Exit e = finish({p})[0];
    if (fs::exists(last) && train::read_checkpoint(last.string()).step > step_before) {
      const std::map<std::string, Identity> now = temporaries_by_identity(run);
      for (const auto& [tmp, identity] : left)
        EXPECT_FALSE(now.count(tmp) && now.at(tmp) == identity)
            << tmp << ", left by kill " << kills << ", survived a save";
    }
    if (e.signal != SIGKILL) {
      ASSERT_EQ(e.code, 0) << "after " << kills << " kills: " << e.describe() << "\n" << e.output;
      break;
    }
    ++kills;
    std::vector<std::string> checkpoints;
    if (fs::exists(run / "checkpoints"))
      for (const auto& entry : fs::directory_iterator(run / "checkpoints"))
        if (entry.path().extension() == ".h5") checkpoints.push_back(entry.path().string());
    for (const std::string& c : checkpoints)
      EXPECT_EQ(error_of([&] { train::read_checkpoint(c); }), "no exception") << "after kill " << kills;
    if (!checkpoints.empty()) {
      const std::string& one = checkpoints[random() % checkpoints.size()];
      const Exit info = run_rune({"info", one}, dir.string());
      EXPECT_EQ(info.code, 0) << "rune info " << one << " after kill " << kills << ": " << info.output;
    }
    left = fs::exists(run) ? temporaries_by_identity(run) : std::map<std::string, Identity>{};
  }
  std::printf("killed %d times (%d before a first checkpoint, started again), then finished\n", kills, restarts);
  EXPECT_EQ(kills, kKills) << "the run finished before its kills: make it longer";
  EXPECT_TRUE(temporaries(run).empty()) << listed(temporaries(run));
  const train::Checkpoint a = train::read_checkpoint((straight / "runs" / "tiny" / "checkpoints" / "last.h5").string());
  const train::Checkpoint b = train::read_checkpoint(last.string());
  EXPECT_EQ(b.step, a.step);
  EXPECT_EQ(b.optimizer_steps, a.optimizer_steps);
  EXPECT_TRUE(bits(b.params) == bits(a.params)) << "the parameters differ from the uninterrupted run's";
  EXPECT_TRUE(bits(b.optimizer_state) == bits(a.optimizer_state)) << "the optimizer state differs";
  fs::remove_all(dir);
  fs::remove_all(straight);
}

}  // namespace
}  // namespace rune::faults
