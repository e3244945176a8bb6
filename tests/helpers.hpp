// Small helpers the test files share: a tensor's values as float64, the largest absolute
// element or difference (computed in float64 from both sides), the message of a thrown
// exception, a file's content, a fresh scratch folder and a run of the rune binary.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.hpp"

namespace rune {

inline std::vector<double> values(const Tensor& t) {
  const Tensor c = to_dtype(t.detach(), DType::float64).contiguous();
  return std::vector<double>(c.data<double>(), c.data<double>() + c.numel());
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : values(t)) m = std::max(m, std::abs(v));
  return m;
}

// Fails the calling test (not just the comparison) when the shapes differ.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  return max_abs(to_dtype(a.detach(), DType::float64) - to_dtype(b.detach(), DType::float64));
}

// What f throws, or "no exception".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no exception";
}

// The whole content of a file ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Removes the scratch folders a test made when it passes, and keeps a failed test's to look at.
class ScratchFolders : public ::testing::EmptyTestEventListener {
 public:
  static std::vector<std::filesystem::path>& made() {
    static std::vector<std::filesystem::path> folders;
    return folders;
  }
  void OnTestEnd(const ::testing::TestInfo& test) override {
    if (test.result()->Passed()) {
      std::error_code ignored;
      for (const auto& dir : made()) std::filesystem::remove_all(dir, ignored);
    }
    made().clear();
  }
};
inline const bool scratch_folders_listened = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new ScratchFolders);
  return true;
}();

// An empty folder of this process's own under the temp dir: rune_<name>_<pid>, removed when the
// test passes.
inline std::filesystem::path scratch_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("rune_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  ScratchFolders::made().push_back(dir);
  return dir;
}

#ifdef RUNE_BINARY
struct RunResult {
  int status;
  std::string output;  // stdout and stderr
};

// The tiny reverse config the e2e tests of the rune binary share: d_model 16, one layer each side,
// 4 batches of 8 per epoch, 2 epochs, validated every 4 steps, runs under runs/.
inline const char* const kTinyReverseConfig = R"(seed = 3
[task]
name = "reverse"
[data]
min_len = 2
max_len = 5
batch_size = 8
batches_per_epoch = 4
eval_size = 16
[model]
d_model = 16
nhead = 2
num_encoder_layers = 1
num_decoder_layers = 1
dim_feedforward = 32
dropout = 0.1
[train]
epochs = 2
lr = 3e-3
schedule = "constant"
warmup_steps = 2
log_every = 1
eval_every = 4
[run]
dir = "runs"
)";

// A new scratch folder `name` holding kTinyReverseConfig as tiny.toml.
inline std::string tiny_reverse_workspace(const std::string& name) {
  const std::filesystem::path dir = scratch_dir(name);
  std::ofstream(dir / "tiny.toml") << kTinyReverseConfig;
  return dir.string();
}

// Runs the rune binary with arguments (shell-quoted by the caller where needed) in `dir`, after
// `launcher` when one is given (mpirun and its options: tests/mpi.hpp).
inline RunResult run_rune(const std::string& args, const std::string& dir, const std::string& launcher = "") {
  const std::string cmd = "cd '" + dir + "' && " + launcher + (launcher.empty() ? "'" : " '") +
                          std::string(RUNE_BINARY) + "' " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// OMP_NUM_THREADS=1 for the rune processes a test starts while it lives, restored after: a tiny
// model gains nothing from a second thread, and ctest -j2 runs another test beside it, against
// whose threads OpenMP's waiting threads would spin.
class OneThread {
 public:
  OneThread() : had_(std::getenv("OMP_NUM_THREADS") != nullptr) {
    if (had_) old_ = std::getenv("OMP_NUM_THREADS");
    ::setenv("OMP_NUM_THREADS", "1", 1);
  }
  ~OneThread() {
    if (had_)
      ::setenv("OMP_NUM_THREADS", old_.c_str(), 1);
    else
      ::unsetenv("OMP_NUM_THREADS");
  }

 private:
  bool had_;
  std::string old_;
};

#endif

}  // namespace rune
